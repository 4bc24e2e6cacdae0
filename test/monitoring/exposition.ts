import { readFileSync } from 'node:fs';
import path from 'node:path';

/** One sample of the Prometheus text format. */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parses the text format's samples (comments and TYPE/HELP lines aside). */
export function parseSamples(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    for (const pair of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
      labels[pair[1]!] = pair[2]!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The metric families the text declares (`# TYPE name type`). */
export function families(text: string): Map<string, string> {
  return new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** The `warden_*` metrics docs/metrics.md documents, with their type. */
export function documentedMetrics(): Map<string, string> {
  const doc = readFileSync(path.resolve('docs/metrics.md'), 'utf8');
  return new Map(
    [...doc.matchAll(/^\| `(warden_[a-z_]+)` \| (gauge|counter|histogram|summary) \|/gm)].map((m) => [
      m[1]!,
      m[2]!,
    ]),
  );
}

/** The families of the output that are not Warden's own: prom-client's process metrics only. */
export function foreignFamilies(text: string): string[] {
  return [...families(text).keys()].filter((name) => !name.startsWith('warden_'));
}

/** The value of the one sample of `name` whose labels include `labels`; fails when there is none. */
export function valueOf(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
  if (found.length !== 1)
    throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)} (expected one)`);
  return found[0]!.value;
}
