/**
 * Timeline history files (`00000002.history`), as PostgreSQL writes and reads them in
 * src/backend/access/transam/timeline.c: one line per ancestor timeline,
 * `parentTLI <tab> switchpoint <tab> reason`, oldest first; blank lines and `#` comments ignored.
 * Timeline 1 has no history file.
 */
import { WardenError } from '../errors.ts';
import { formatLsn, type Lsn } from './lsn.ts';

export interface TimelineHistoryEntry {
  /** An ancestor timeline of the file's own timeline. */
  timeline: number;
  /** The LSN at which `timeline` ended: positions before it belong to `timeline`. */
  switchLsn: Lsn;
  /** Free text PostgreSQL wrote at promotion (e.g. `no recovery target specified`). */
  reason: string;
}

const HISTORY_NAME_PATTERN = /^([0-9A-F]{8})\.history$/;
const LINE_PATTERN = /^(\d+)\s+([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})(?:\s+(.*?))?\s*$/;

/**
 * @example historyFileName(2) // '00000002.history'
 */
export function historyFileName(tli: number): string {
  if (!Number.isInteger(tli) || tli < 1 || tli > 0xffff_ffff) {
    throw new WardenError('WARDEN_E_USAGE', `invalid timeline ${tli}: expected 1 to 4294967295`, {
      details: { timeline: tli },
    });
  }
  return `${tli.toString(16).toUpperCase().padStart(8, '0')}.history`;
}

/** The timeline of a history file name, or `undefined` if `name` is not one. */
export function parseHistoryFileName(name: string): number | undefined {
  const match = HISTORY_NAME_PATTERN.exec(name);
  if (!match) return undefined;
  const tli = Number.parseInt(match[1] ?? '', 16);
  return tli === 0 ? undefined : tli;
}

/**
 * Parses a history file's text. Like PostgreSQL's `readTimeLineHistory`, rejects lines without a
 * numeric timeline and switchpoint, and timelines that do not increase (`WARDEN_E_WAL_FORMAT`).
 */
export function parseTimelineHistory(text: string): TimelineHistoryEntry[] {
  const entries: TimelineHistoryEntry[] = [];
  const lines = text.split('\n');
  for (const [index, raw] of lines.entries()) {
    const line = raw.trimStart();
    if (line === '' || line.startsWith('#')) continue;
    const match = LINE_PATTERN.exec(line);
    if (!match) {
      throw new WardenError(
        'WARDEN_E_WAL_FORMAT',
        `syntax error in timeline history line ${index + 1}: ${raw}`,
        {
          hint: 'Expected "<parent timeline> <tab> <switchpoint X/Y> <tab> <reason>".',
          details: { line: index + 1 },
        },
      );
    }
    const timeline = Number(match[1]);
    const previous = entries.at(-1);
    if (timeline < 1 || timeline > 0xffff_ffff || (previous && timeline <= previous.timeline)) {
      throw new WardenError(
        'WARDEN_E_WAL_FORMAT',
        `invalid timeline ${match[1]} in timeline history line ${index + 1}: timeline IDs must increase`,
        { details: { line: index + 1 } },
      );
    }
    const switchLsn = (BigInt(`0x${match[2]}`) << 32n) | BigInt(`0x${match[3]}`);
    entries.push({ timeline, switchLsn, reason: match[4] ?? '' });
  }
  return entries;
}

/** Writes entries in PostgreSQL's format (the inverse of {@link parseTimelineHistory}). */
export function formatTimelineHistory(history: readonly TimelineHistoryEntry[]): string {
  return history.map((e) => `${e.timeline}\t${formatLsn(e.switchLsn)}\t${e.reason}\n`).join('');
}

/**
 * The timeline that wrote `lsn` when following `currentTli`'s history (PostgreSQL's
 * `tliOfPointInHistory`): the first ancestor whose switchpoint lies after `lsn`, else
 * `currentTli` itself. A record starting exactly at a switchpoint belongs to the newer timeline.
 *
 * @example timelineOfLsn(parseTimelineHistory('1\t0/3000000\tx\n'), 2, parseLsn('0/2FFFFFF')) // 1
 */
export function timelineOfLsn(
  history: readonly TimelineHistoryEntry[],
  currentTli: number,
  lsn: Lsn,
): number {
  const last = history.at(-1);
  if (last && last.timeline >= currentTli) {
    throw new WardenError(
      'WARDEN_E_WAL_FORMAT',
      `timeline history of timeline ${currentTli} lists timeline ${last.timeline}, which is not an ancestor`,
      { details: { currentTli, timeline: last.timeline } },
    );
  }
  for (const entry of history) {
    if (lsn < entry.switchLsn) return entry.timeline;
  }
  return currentTli;
}
