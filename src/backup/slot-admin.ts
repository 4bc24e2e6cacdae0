import { WardenError } from '../errors.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { ReplicationClient } from '../postgres/replication-client.ts';
import { holderRepositoryId, readSlots, type SlotInfo } from '../postgres/replication-slots.ts';
import type { Repository } from '../repository/repository.ts';
import { LEGACY_SLOT, slotOwnerPrefix } from '../repository/repository-meta.ts';
import { formatLsn, parseLsn } from '../wal/lsn.ts';
import { repositoryWalEnd } from './repository-slot.ts';

export interface SlotListEntry extends SlotInfo {
  /** Who the slot is known to belong to: `this repository`, `repository <id>…`, a holder, or unknown. */
  owner: string;
  /** Whether it is the slot of the repository the command was given. */
  own: boolean;
}

/** Describes whose a slot is, as far as the server and this repository can tell. */
function ownerOf(slot: SlotInfo, repository: Repository | undefined): { owner: string; own: boolean } {
  if (slot.temporary && slot.name.startsWith('warden_tmp_')) {
    const holder = holderRepositoryId(slot.holder);
    return {
      owner: `backup of repository ${holder ? `${holder.slice(0, 16)}…` : '?'} (temporary)`,
      own: false,
    };
  }
  if (repository && slot.name === repository.meta.slot) return { owner: 'this repository', own: true };
  const holder = holderRepositoryId(slot.holder);
  if (slot.active && holder) {
    return repository && holder === repository.id
      ? { owner: 'this repository', own: true }
      : { owner: `repository ${holder.slice(0, 16)}…`, own: false };
  }
  const prefix = slotOwnerPrefix(slot.name);
  if (prefix) return { owner: `repository ${prefix}…`, own: false };
  if (slot.name === LEGACY_SLOT)
    return { owner: 'Warden before per-repository slots (unclaimed)', own: false };
  if (slot.active && slot.holder) return { owner: `not Warden (${slot.holder})`, own: false };
  return { owner: 'unknown', own: false };
}

/**
 * Every replication slot of the cluster, with its owner when known.
 *
 * @example
 * const { slots } = await listSlots(connectionFromUrl(url), await Repository.open(store));
 * for (const s of slots) console.log(s.name, s.owner, s.active, s.retainedBytes, s.walStatus);
 */
export async function listSlots(
  connection: ConnectionConfig,
  repository: Repository | undefined,
): Promise<{ currentLsn: string; slots: SlotListEntry[] }> {
  const server = await readSlots(connection);
  return {
    currentLsn: server.currentLsn,
    slots: server.slots.map((slot) => ({ ...slot, ...ownerOf(slot, repository) })),
  };
}

export interface SlotDropReport {
  slot: string;
  owner: string;
  /** WAL the server may now remove that the repository had not archived (forced drops only). */
  lost?: { from: string; to: string; bytes: number };
}

/**
 * Drops a slot. Refuses (WARDEN_E_SLOT_HOLDS_WAL) while it is active, while it holds WAL the
 * repository has not archived, or when it is not the repository's, unless `force`; the message
 * says what would be lost.
 *
 * @example
 * const report = await dropSlot({ connection, repository, name: 'warden', force: true });
 * if (report.lost) console.log(`WAL ${report.lost.from}..${report.lost.to} was never archived`);
 */
export async function dropSlot(options: {
  connection: ConnectionConfig;
  repository: Repository | undefined;
  name: string;
  force?: boolean;
}): Promise<SlotDropReport> {
  const { repository, name } = options;
  const listed = await listSlots(options.connection, repository);
  const slot = listed.slots.find((s) => s.name === name);
  if (!slot) {
    throw new WardenError('WARDEN_E_SLOT_NOT_FOUND', `the server has no replication slot ${name}`, {
      hint: 'See `warden slot list`.',
      details: { slot: name },
    });
  }
  if (slot.active) {
    throw new WardenError(
      'WARDEN_E_SLOT_HOLDS_WAL',
      `slot ${name} is in use (pid ${slot.activePid ?? '?'}, ${slot.owner}); stop its consumer first`,
      { details: { slot: name, pid: slot.activePid, owner: slot.owner } },
    );
  }
  const current = parseLsn(listed.currentLsn);
  let lost: SlotDropReport['lost'];
  let refusal: string | undefined;
  if (slot.walStatus !== 'lost' && slot.restartLsn) {
    const restart = parseLsn(slot.restartLsn);
    if (slot.own && repository) {
      const archived = await repositoryWalEnd(repository);
      const from = archived > restart ? archived : restart;
      if (from < current) {
        lost = { from: formatLsn(from), to: formatLsn(current), bytes: Number(current - from) };
        refusal = `slot ${name} holds WAL ${lost.from}..${lost.to} (${lost.bytes} bytes) that ${repository.location} has not archived: dropping it lets the server remove that WAL and leaves a gap in the repository`;
      }
    } else if (restart < current) {
      lost = { from: formatLsn(restart), to: formatLsn(current), bytes: Number(current - restart) };
      refusal = `slot ${name} is not ${repository ? `${repository.location}'s` : 'a repository given with --repo'} (owner: ${slot.owner}); it holds WAL ${lost.from}..${lost.to} (${lost.bytes} bytes) its consumer may still need`;
    }
  }
  if (refusal && !options.force) {
    throw new WardenError('WARDEN_E_SLOT_HOLDS_WAL', refusal, {
      hint: slot.own
        ? 'Let `warden wal stream` catch up (on an idle server it then holds nothing more), or pass --force to drop it anyway and take a new full backup.'
        : 'Make sure nothing needs it, then pass --force.',
      details: { slot: name, owner: slot.owner, ...lost },
    });
  }
  const client = await ReplicationClient.connect({
    ...options.connection,
    applicationName: 'warden slot drop',
  });
  try {
    await client.dropSlot(name);
  } finally {
    await client.close();
  }
  return { slot: name, owner: slot.owner, ...(lost ? { lost } : {}) };
}
