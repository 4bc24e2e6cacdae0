import { WardenError } from '../errors.ts';
import type { RespReply } from './resp-reply.ts';

export const SLOT_COUNT = 16384;

/** One master of a Redis Cluster and the slot ranges it serves (inclusive). */
export interface ShardMaster {
  /** The node id (40 hex digits). */
  id: string;
  host: string;
  port: number;
  slots: Array<[number, number]>;
}

/**
 * Reads `CLUSTER SLOTS` (every version since 3.0; `CLUSTER SHARDS` only since 7.0) into the
 * masters and their slot ranges. The reply comes from the network and names hosts Warden then
 * connects to, so it is checked whole: ranges inside 0..16383, no slot twice, every slot served
 * (a cluster with unserved slots is failing and its backup would miss keys), node ids and ports
 * well-formed, host names plain.
 */
export function parseClusterSlots(reply: RespReply, peer: string): ShardMaster[] {
  if (!Array.isArray(reply)) throw invalid(peer, 'CLUSTER SLOTS did not answer with an array');
  const masters = new Map<string, ShardMaster>();
  for (const entry of reply) {
    if (!Array.isArray(entry) || entry.length < 3)
      throw invalid(peer, 'a CLUSTER SLOTS entry is not [start, end, master, ...]');
    const [start, end, node] = entry;
    if (!isSlot(start) || !isSlot(end) || start > end)
      throw invalid(peer, `slot range ${String(start)}-${String(end)} is not within 0-${SLOT_COUNT - 1}`);
    if (!Array.isArray(node) || node.length < 3) throw invalid(peer, 'a slot range names no master');
    const host = text(node[0]);
    const port = node[1];
    const id = text(node[2]);
    if (host === undefined || !validHost(host))
      throw invalid(peer, `master host ${JSON.stringify(host?.slice(0, 80))} is not a host name or address`);
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
      throw invalid(peer, `master port ${String(port)} is not a TCP port`);
    if (id === undefined || !/^[0-9a-f]{40}$/.test(id))
      throw invalid(peer, 'a master node id is not 40 hex digits');
    const master = masters.get(id) ?? { id, host, port, slots: [] };
    if (master.host !== host || master.port !== port)
      throw invalid(peer, `node ${id} is named at two addresses`);
    master.slots.push([start, end]);
    masters.set(id, master);
  }
  const result = [...masters.values()];
  validateSlotCoverage(
    result.map((m) => m.slots),
    peer,
  );
  for (const master of result) master.slots.sort((a, b) => a[0] - b[0]);
  return result.sort((a, b) => a.slots[0]![0] - b.slots[0]![0]);
}

/** Every slot exactly once across `ranges` (per shard); else WARDEN_E_REDIS_SLOT_MAP naming the problem. */
export function validateSlotCoverage(
  shards: ReadonlyArray<ReadonlyArray<readonly [number, number]>>,
  where: string,
): void {
  const ranges = shards.flat().map((r) => [r[0], r[1]] as const);
  for (const [start, end] of ranges) {
    if (!isSlot(start) || !isSlot(end) || start > end)
      throw invalid(where, `slot range ${String(start)}-${String(end)} is not within 0-${SLOT_COUNT - 1}`);
  }
  ranges.sort((a, b) => a[0] - b[0]);
  let next = 0;
  for (const [start, end] of ranges) {
    if (start < next) throw invalid(where, `slot ${start} is served twice`);
    if (start > next) throw invalid(where, `slots ${next}-${start - 1} are served by no master`);
    next = end + 1;
  }
  if (next !== SLOT_COUNT) throw invalid(where, `slots ${next}-${SLOT_COUNT - 1} are served by no master`);
}

function isSlot(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0 && value < SLOT_COUNT;
}

function text(value: RespReply | undefined): string | undefined {
  return Buffer.isBuffer(value) ? value.toString('utf8') : undefined;
}

/** A DNS name or an IPv4/IPv6 address: nothing that could change what a URL or path means. */
function validHost(host: string): boolean {
  return host.length > 0 && host.length <= 253 && /^[A-Za-z0-9.:_-]+$/.test(host);
}

function invalid(peer: string, problem: string): WardenError {
  return new WardenError('WARDEN_E_REDIS_SLOT_MAP', `the slot map from ${peer} is not usable: ${problem}`, {
    details: { peer, problem },
  });
}
