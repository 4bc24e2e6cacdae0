import { WardenError } from '../errors.ts';
import type { ConnectionConfig, PatroniEndpoints } from '../postgres/connection-config.ts';
import {
  holderRepositoryId,
  readSlots,
  type ServerSlots,
  type SlotInfo,
} from '../postgres/replication-slots.ts';
import type { Repository } from '../repository/repository.ts';
import { derivedSlotName, LEGACY_SLOT, slotOwnerPrefix } from '../repository/repository-meta.ts';
import { readWalInventory, type WalInventory } from '../repository/wal-archive.ts';
import { formatLsn, parseLsn, type Lsn } from '../wal/lsn.ts';
import { PatroniClient, permanentSlots } from '../postgres/patroni-client.ts';
import { archivedEnd } from '../repository/archived-end.ts';

export interface RepositorySlot {
  name: string;
  /** The slot as the server has it; undefined when it does not exist (yet). */
  info?: SlotInfo;
  currentLsn: string;
  /** End of the repository's WAL (complete and partial segments, any timeline). */
  archiveEnd: Lsn;
}

/**
 * Finds the repository's own slot and checks that it is its own. A repository records its slot
 * in `warden-repo.json` (derived from its id at creation, or the `--slot` it was created with).
 * One written before slots were recorded adopts the slot `warden` when that slot stands where the
 * repository's WAL ends (so the repository that streamed through it last keeps it, and no
 * upgrade leaves a gap); else it gets a slot named after its id.
 *
 * What "owned by another repository" can be told from (PostgreSQL slots carry no comment):
 * - `--slot` naming another slot than the recorded one;
 * - a derived name (`warden_<16 hex digits>`) of another repository's id;
 * - an active slot whose walsender's application_name is another repository's (`warden:<id>`);
 * - a slot whose position lies beyond the end of this repository's WAL: only a consumer that
 *   archived WAL elsewhere (or nothing) can have moved it there; streaming through it would
 *   leave a hole. A slot this repository streamed through never passes what it made durable.
 * A freely named slot that another repository recorded too, and that has not moved since this
 * repository last used it, cannot be told apart: the first of the two to stream wins, and the
 * other then sees it moved.
 */
export async function resolveRepositorySlot(options: {
  connection: ConnectionConfig;
  repository: Repository;
  /** `--slot`, when given. */
  requested?: string;
  /** Patroni of the cluster, when `connection` is pinned to one of its members. */
  patroni?: PatroniEndpoints | undefined;
}): Promise<RepositorySlot> {
  const server = await readSlots(options.connection);
  // Patroni creates the permanent slots of its configuration itself, before Warden first streams.
  const patroni = options.patroni ?? options.connection.patroni;
  const patroniMade = patroni?.urls.length
    ? await new PatroniClient(patroni)
        .dynamicConfig()
        .then(permanentSlots)
        .catch(() => [])
    : [];
  return resolveFrom(server, options.repository, options.requested, patroniMade);
}

async function resolveFrom(
  server: ServerSlots,
  repository: Repository,
  requested: string | undefined,
  patroniMade: readonly string[] = [],
): Promise<RepositorySlot> {
  const recorded = repository.meta.slot;
  if (requested !== undefined && recorded !== undefined && requested !== recorded) {
    throw new WardenError(
      'WARDEN_E_SLOT_NOT_OWNED',
      `repository ${repository.location} streams through slot ${recorded}, not ${requested}`,
      {
        hint: `Omit --slot: each repository uses the slot recorded in its warden-repo.json (${recorded}).`,
        details: { slot: requested, ownSlot: recorded, repository: repository.location },
      },
    );
  }
  const inventory = await readWalInventory(repository);
  const archiveEnd = walEnd(inventory, repository.meta.walSegmentSize);
  const find = (name: string) => server.slots.find((slot) => slot.name === name);
  let name = requested ?? recorded;
  if (name === undefined) {
    // Adopted only when the slot stands where this repository's WAL ends: the repository holds
    // the WAL just before the slot's position, and less than a segment after it (the tail a
    // stopped stream made durable but had not yet reported). Another repository's WAL starts
    // later or runs on past it.
    const legacy = find(LEGACY_SLOT);
    const at = legacy?.restartLsn ? parseLsn(legacy.restartLsn) : undefined;
    name =
      legacy?.type === 'physical' &&
      at !== undefined &&
      holdsLsn(inventory, at) &&
      archiveEnd - at <= BigInt(repository.meta.walSegmentSize)
        ? LEGACY_SLOT
        : derivedSlotName(repository.id);
  }
  const info = find(name);
  // A permanent slot Patroni made is adopted by a repository that has never streamed: it holds
  // no WAL a hole could open in, and nobody else consumed the slot (it is inactive).
  if (
    info?.restartLsn !== undefined &&
    !info.active &&
    patroniMade.includes(name) &&
    archiveEnd === 0n &&
    repository.meta.slotCreatedAt === undefined
  ) {
    await repository.recordSlot(name, info.restartLsn);
    return { name, info, currentLsn: server.currentLsn, archiveEnd };
  }
  // On a member Patroni promoted, its copy of a permanent slot stands where Patroni last advanced
  // it from the old leader's: up to the old leader's last records (a shutdown checkpoint), which
  // may be past what Warden had made durable. Within a segment of the repository's end that is
  // Patroni's doing, and the member still has that WAL; beyond, the gap check at resume names it.
  const advancedByPatroni =
    patroniMade.includes(name) &&
    info?.restartLsn !== undefined &&
    !info.active &&
    archiveEnd > 0n &&
    parseLsn(info.restartLsn) - archiveEnd <= BigInt(repository.meta.walSegmentSize);
  if (!advancedByPatroni) assertOwn(repository, name, info, archiveEnd);
  if (recorded === undefined) await repository.recordSlot(name);
  return { name, ...(info ? { info } : {}), currentLsn: server.currentLsn, archiveEnd };
}

function assertOwn(repository: Repository, name: string, info: SlotInfo | undefined, archiveEnd: Lsn): void {
  const ownId = repository.id;
  const notOwned = (message: string, details: Record<string, unknown>, hint?: string) =>
    new WardenError('WARDEN_E_SLOT_NOT_OWNED', message, {
      hint:
        hint ??
        'Each repository streams through its own slot: omit --slot, or see `warden slot list` for who uses which.',
      details: { slot: name, repository: repository.location, repositoryId: ownId, ...details },
    });
  const ownerPrefix = slotOwnerPrefix(name);
  if (ownerPrefix !== undefined && !ownId.startsWith(ownerPrefix)) {
    throw notOwned(
      `slot ${name} belongs to repository ${ownerPrefix}…, not to ${repository.location} (${ownId.slice(0, 16)}…)`,
      { ownerRepositoryId: ownerPrefix },
    );
  }
  if (!info) return;
  if (info.type !== 'physical') {
    throw notOwned(`slot ${name} is a ${info.type} slot, not a physical one Warden streams through`, {});
  }
  const holder = holderRepositoryId(info.holder);
  if (info.active && holder !== undefined && holder !== ownId) {
    throw notOwned(
      `slot ${name} is in use by repository ${holder.slice(0, 16)}… (pid ${info.activePid ?? '?'}), not by ${repository.location}`,
      { ownerRepositoryId: holder, pid: info.activePid },
    );
  }
  if (info.walStatus === 'lost') {
    throw new WardenError(
      'WARDEN_E_SLOT_INVALIDATED',
      `slot ${name} was invalidated by the server (wal_status lost): WAL after ${formatLsn(archiveEnd)} that ${repository.location} lacks is gone`,
      {
        hint: `Drop it (\`warden slot drop ${name} --force\`), start the stream again (it creates a new slot) and take a new full backup. Raise max_slot_wal_keep_size (or free disk) so it does not happen again.`,
        details: { slot: name, repository: repository.location, archivedUpTo: formatLsn(archiveEnd) },
      },
    );
  }
  // A slot this repository created and nobody has consumed since still stands where it was made.
  const untouched = info.restartLsn !== undefined && info.restartLsn === repository.meta.slotCreatedAt;
  if (!info.active && movedPast(info, archiveEnd) && !untouched) {
    throw notOwned(
      `slot ${name} is at ${info.restartLsn}, beyond the end of ${repository.location}'s WAL (${formatLsn(archiveEnd)}): another consumer advanced it, so it is not this repository's (streaming through it would leave a hole)`,
      { restartLsn: info.restartLsn, archivedUpTo: formatLsn(archiveEnd) },
      `Use the repository's own slot (omit --slot). If this repository did use ${name} and another repository or tool consumed it, the WAL between is lost to this repository: drop the slot (\`warden slot drop ${name} --force\`) and take a new full backup.`,
    );
  }
}

function movedPast(info: SlotInfo, archiveEnd: Lsn): boolean {
  return info.restartLsn !== undefined && parseLsn(info.restartLsn) > archiveEnd;
}

/**
 * Whether the repository holds the WAL just before `lsn` (a segment, complete or partial, that
 * runs up to or across it): a slot at `lsn` then continues the repository's WAL. A repository
 * whose WAL merely starts at `lsn` does not qualify.
 */
function holdsLsn(inventory: WalInventory, lsn: Lsn): boolean {
  const covers = (start: Lsn, validBytes: number) => start < lsn && lsn <= start + BigInt(validBytes);
  for (const records of inventory.segments.values()) {
    if (records.some((record) => covers(parseLsn(record.startLsn), record.validBytes))) return true;
  }
  return inventory.partials.some((p) => covers(p.startLsn, p.validBytes));
}

/** The highest LSN up to which the repository holds WAL on any timeline (0 when it has none). */
export async function repositoryWalEnd(repository: Repository): Promise<Lsn> {
  return walEnd(await readWalInventory(repository), repository.meta.walSegmentSize);
}

function walEnd(inventory: WalInventory, segmentSize: number): Lsn {
  const timelines = new Set([...inventory.segments.keys(), ...inventory.partials.map((p) => p.timeline)]);
  let end = 0n;
  for (const timeline of timelines) {
    const timelineEnd = archivedEnd(inventory, timeline, segmentSize);
    if (timelineEnd > end) end = timelineEnd;
  }
  return end;
}

/** An error for a slot another connection holds (`wal stream` waits; a backup fails at once). */
export function slotBusy(repository: Repository, slot: RepositorySlot): WardenError {
  const pid = slot.info?.activePid;
  return new WardenError(
    'WARDEN_E_SLOT_BUSY',
    `slot ${slot.name} of ${repository.location} is in use by another connection (pid ${pid ?? '?'}${slot.info?.holder ? `, ${slot.info.holder}` : ''})`,
    {
      hint: `Find the holder with \`warden slot list\` (or pg_stat_replication). A stream of this repository stopped moments ago keeps the slot until the server notices (wal_sender_timeout, 60 s by default): retry then.`,
      details: {
        slot: slot.name,
        repository: repository.location,
        pid,
        ...(slot.info?.holder ? { holder: slot.info.holder } : {}),
      },
    },
  );
}

/**
 * A warning when the repository's slot is inactive and makes the server keep WAL (nobody
 * consumes it: the primary's disk fills until the stream runs again or the slot is dropped).
 */
export function idleSlotWarning(slot: RepositorySlot): string | undefined {
  const info = slot.info;
  if (!info || info.active || info.temporary || !info.retainedBytes || info.retainedBytes <= 0)
    return undefined;
  const mib = (info.retainedBytes / 1048576).toFixed(1);
  return `slot ${slot.name} of this repository is inactive and keeps ${mib} MiB of WAL on the server (wal_status ${info.walStatus ?? '?'}); run \`warden wal stream\` (or \`warden serve\`) to consume it, or \`warden slot drop ${slot.name}\` if this repository no longer streams`;
}
