import { createHash, randomBytes } from 'node:crypto';
import os from 'node:os';

/**
 * A short tag of this host's name: temp object names carry it with the writer's pid, so a
 * leftover of a process that is gone can be told from a write still under way (a pid is only
 * meaningful on its own host).
 */
export function hostTag(host = os.hostname()): string {
  return createHash('sha256').update(host).digest('hex').slice(0, 8);
}

/**
 * The suffix of a temp object written before it is renamed (or linked) into place:
 * `.tmp-<host tag>-<pid>-<random>`. Anything listing incomplete objects sees `.tmp-` in it.
 */
export function tempSuffix(): string {
  return `.tmp-${hostTag()}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

const TEMP = /\.tmp-([0-9a-f]{8})-(\d+)-[0-9a-f]{8}$/;

/** Who writes a temp object, from its name; undefined for names without it (older versions). */
export function tempWriter(key: string): { hostTag: string; pid: number } | undefined {
  const match = TEMP.exec(key);
  return match ? { hostTag: match[1]!, pid: Number(match[2]) } : undefined;
}
