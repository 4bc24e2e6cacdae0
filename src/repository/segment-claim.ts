import os from 'node:os';
import { sleep } from '../util/backoff.ts';
import type { ObjectStore } from './object-store.ts';
import { processAlive } from './repository-lock.ts';

/**
 * How long a claim of another host may stand before a writer takes it over: far longer than
 * storing one segment takes (a compressed 16 MiB object and a record), so only a writer killed
 * mid-way leaves one this old. Claims of this host are judged by whether their process lives.
 */
const STALE_CLAIM_MS = 120_000;
/** How often a writer that found the claim taken looks again (the holder needs ~100 ms). */
const POLL_MS = 100;

/**
 * The claims this process holds now. A claim of this process that is not among them is one whose
 * release failed (the repository was unreachable when the writer let go): stale at once, not
 * after STALE_CLAIM_MS, or the stream resuming after an outage would stall on its own leftover.
 */
const heldHere = new Set<string>();

interface ClaimBody {
  pid: number;
  host: string;
  at: string;
}

/**
 * One writer at a time for one archived segment (`wal/<TLI>/<segment>.claim`): the WAL receiver
 * and `warden wal push` (archive_command) may both archive the same segment, and a segment is two
 * objects (data, then its record). Without the claim, one writer's data could end up beside the
 * other's record: the stored bytes are encrypted with a fresh file key each time, so the record's
 * checksum would not match. The claim is created exclusively; a writer finding it taken waits for
 * it to go (then reads what the holder archived) or to turn stale (its holder died mid-write).
 *
 * Returns the release function once this caller holds the claim.
 */
export async function claimSegment(
  store: ObjectStore,
  claimKey: string,
  signal?: AbortSignal,
): Promise<() => Promise<void>> {
  const body: ClaimBody = { pid: process.pid, host: os.hostname(), at: new Date().toISOString() };
  for (;;) {
    if (await store.createExclusive(claimKey, Buffer.from(JSON.stringify(body)))) {
      const key = heldKey(store, claimKey);
      heldHere.add(key);
      return async () => {
        heldHere.delete(key);
        await store.delete(claimKey);
      };
    }
    const held = await readClaim(store, claimKey);
    if (held === 'absent') continue;
    const age = held ? Date.now() - Date.parse(held.at) : Infinity;
    const sameHost =
      held !== undefined && held.host === os.hostname() && Number.isSafeInteger(held.pid) && held.pid > 0;
    // Left by this process (its release failed) or by a process of this host that is gone (killed
    // mid-write): stale at once. Another host's claim can only age out.
    const leftHere =
      sameHost &&
      ((held!.pid === process.pid && !heldHere.has(heldKey(store, claimKey))) || !processAlive(held!.pid));
    if (leftHere || !(age < STALE_CLAIM_MS)) {
      // Its holder died between claiming and releasing: what it wrote is rewritten by this caller.
      await store.delete(claimKey);
      continue;
    }
    await sleep(POLL_MS, signal);
  }
}

function heldKey(store: ObjectStore, claimKey: string): string {
  return `${store.location}\n${claimKey}`;
}

async function readClaim(store: ObjectStore, key: string): Promise<ClaimBody | undefined | 'absent'> {
  let data: Buffer;
  try {
    data = await store.getBuffer(key);
  } catch {
    return (await store.stat(key)) ? undefined : 'absent';
  }
  try {
    const parsed = JSON.parse(data.toString('utf8')) as Partial<ClaimBody>;
    return typeof parsed.at === 'string' && !Number.isNaN(Date.parse(parsed.at))
      ? (parsed as ClaimBody)
      : undefined;
  } catch {
    return undefined; // unreadable: treated as stale
  }
}
