import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import type { TestCluster } from '../../../../test/harness/postgres.ts';

export interface CapturedLog {
  readonly level: number;
  readonly msg: string;
  readonly [key: string]: unknown;
}

/** A pino logger that keeps every line in memory, for asserting on warnings. */
export function capturingLogger(): { logger: Logger; lines: CapturedLog[]; warnings(): CapturedLog[] } {
  const lines: CapturedLog[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) if (line) lines.push(JSON.parse(line) as CapturedLog);
      done();
    },
  });
  const logger = pino({ level: 'debug' }, sink);
  return { logger, lines, warnings: () => lines.filter((l) => l.level === 40) };
}

/** Creates a fresh database on the cluster for one test. */
export async function freshDatabase(cluster: { query: TestCluster['query'] }): Promise<string> {
  const name = `t_${randomBytes(6).toString('hex')}`;
  await cluster.query(`CREATE DATABASE ${name}`);
  return name;
}

export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(25);
  }
  throw new Error(`${what} not reached within ${timeoutMs} ms`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A unique application_name so a test can count its own sessions in pg_stat_activity. */
export function appName(): string {
  return `wt_${randomBytes(4).toString('hex')}`;
}
