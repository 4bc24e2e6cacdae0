import { spawn } from 'node:child_process';
import type { Registry } from 'prom-client';

/** Series of a Prometheus text exposition, keyed `name{label="value",…}` with labels sorted. */
export type Series = Map<string, number>;

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function seriesKey(name: string, labels: Record<string, string> = {}): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return parts.length ? `${name}{${parts.join(',')}}` : name;
}

/** Parses what `registry.metrics()` serves, as Prometheus would read it. */
export function parseExposition(text: string): Series {
  const series: Series = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE.exec(line);
    if (!match) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(LABEL)) labels[key!] = value!;
    series.set(seriesKey(match[1]!, labels), Number(match[3]));
  }
  return series;
}

export async function scrape(registry: Registry): Promise<Series> {
  return parseExposition(await registry.metrics());
}

/** The value of one series; fails when the series is absent (a missing metric is a failure). */
export function valueOf(series: Series, name: string, labels: Record<string, string> = {}): number {
  const key = seriesKey(name, labels);
  const value = series.get(key);
  if (value === undefined) throw new Error(`no series ${key} in the scrape`);
  return value;
}

/** Runs `promtool check metrics` (Debian's prometheus package) on an exposition; resolves its output. */
export function promtoolCheck(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += String(d)));
    child.stderr.on('data', (d) => (output += String(d)));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
    child.stdin.end(text);
  });
}
