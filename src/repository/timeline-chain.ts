import type { SegmentRecord, WalInventory } from './wal-archive.ts';
import { parseLsn, type Lsn } from '../wal/lsn.ts';

/** One timeline's share of a recovery path: WAL in [from, to) is replayed from this timeline. */
export interface ChainLink {
  timeline: number;
  from: Lsn;
  /** Switch point to the next timeline; absent for the newest one. */
  to?: Lsn;
}

/**
 * The path recovery follows to reach `timeline`: its ancestors from its history file, each up to
 * the point where the next timeline branched off. Without a history file, the timeline alone.
 */
export function timelineChain(inventory: WalInventory, timeline: number): ChainLink[] {
  const entries = inventory.historyEntries?.get(timeline) ?? [];
  const chain: ChainLink[] = [];
  let from = 0n;
  for (const entry of entries) {
    chain.push({ timeline: entry.timeline, from, to: entry.switchLsn });
    from = entry.switchLsn;
  }
  chain.push({ timeline, from });
  return chain;
}

export function linkOf(chain: readonly ChainLink[], timeline: number): ChainLink | undefined {
  return chain.find((link) => link.timeline === timeline);
}

/** Whether WAL at `lsn` on `timeline` lies on the chain (the backup belongs to this history). */
export function onChain(chain: readonly ChainLink[], timeline: number, lsn: Lsn): boolean {
  const link = linkOf(chain, timeline);
  return link !== undefined && lsn >= link.from && (link.to === undefined || lsn <= link.to);
}

/** Archived segments that recovery along the chain can read, in LSN order. */
export function chainSegments(
  inventory: WalInventory,
  chain: readonly ChainLink[],
  segmentSize: number,
): SegmentRecord[] {
  const size = BigInt(segmentSize);
  const segments: SegmentRecord[] = [];
  for (const link of chain) {
    for (const record of inventory.segments.get(link.timeline) ?? []) {
      const start = parseLsn(record.startLsn);
      if (start + size > link.from && (link.to === undefined || start < link.to)) segments.push(record);
    }
  }
  return segments.sort(
    (a, b) => compareLsn(parseLsn(a.startLsn), parseLsn(b.startLsn)) || a.timeline - b.timeline,
  );
}

/** Bytes of WAL available along the chain: each piece clipped to its timeline's span. */
export function chainPieces(
  inventory: WalInventory,
  chain: readonly ChainLink[],
  segmentSize: number,
): Array<{ start: Lsn; end: Lsn; timeline: number }> {
  const pieces: Array<{ start: Lsn; end: Lsn; timeline: number }> = [];
  const clip = (link: ChainLink, start: Lsn, end: Lsn) => {
    const from = start > link.from ? start : link.from;
    const to = link.to !== undefined && end > link.to ? link.to : end;
    if (to > from) pieces.push({ start: from, end: to, timeline: link.timeline });
  };
  for (const record of chainSegments(inventory, chain, segmentSize)) {
    const link = linkOf(chain, record.timeline)!;
    const start = parseLsn(record.startLsn);
    clip(link, start, start + BigInt(record.validBytes));
  }
  for (const partial of inventory.partials) {
    const link = linkOf(chain, partial.timeline);
    if (link) clip(link, partial.startLsn, partial.startLsn + BigInt(partial.validBytes));
  }
  return pieces.sort((a, b) => compareLsn(a.start, b.start));
}

function compareLsn(a: Lsn, b: Lsn): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
