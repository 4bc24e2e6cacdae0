import { idleSlotWarning, resolveRepositorySlot } from '../backup/repository-slot.ts';
import { isClusterConnection, type ConnectionConfig } from '../postgres/connection-config.ts';
import { collectTopology, slotSurvival } from '../postgres/cluster-topology.ts';
import { WardenError } from '../errors.ts';
import { holderRepositoryId } from '../postgres/replication-slots.ts';
import type { Repository } from '../repository/repository.ts';
import { failFrom, ok, warn, type CheckResult } from './check-result.ts';

const NAME = 'slot';

function mib(bytes: number | undefined): string {
  return `${((bytes ?? 0) / 1048576).toFixed(1)} MiB`;
}

/**
 * The repository's own slot (repository-slot.ts): that it is its own (not another repository's,
 * not consumed by someone else, not invalidated), and what WAL it makes the server keep — an
 * inactive slot fills the server's disk until the stream runs again.
 */
export async function checkSlot(options: {
  connection: ConnectionConfig;
  repository: Repository;
  requested?: string;
}): Promise<CheckResult> {
  let slot;
  try {
    slot = await resolveRepositorySlot(options);
  } catch (error) {
    return failFrom(NAME, error);
  }
  // In a cluster the slot must be kept by Patroni (and be on the members), or a failover loses it.
  let notes: string[] = [];
  if (isClusterConnection(options.connection)) {
    const survival = slotSurvival(await collectTopology(options.connection, { slot: slot.name }), slot.name);
    if (!survival.ok)
      return failFrom(
        NAME,
        new WardenError('WARDEN_E_SLOT_NOT_PERMANENT', `${survival.problems.join('; ')}`, {
          hint: `Add it to Patroni's permanent slots: patronictl edit-config, slots: { ${slot.name}: { type: physical } } (docs/high-availability.md).`,
          details: { slot: slot.name, problems: survival.problems },
        }),
      );
    notes = survival.notes;
  }
  const state = slotState(slot, options.repository);
  // A standby without its copy of a permanent slot (older Patroni): worth knowing, not a failure.
  if (notes.length && state.status === 'ok')
    return warn(NAME, `${state.message}; ${notes.join('; ')}`, {
      fix: 'Keep wal_keep_size large enough to cover a failover while the stream catches up, or run a Patroni that keeps permanent slots on replicas (docs/high-availability.md).',
      details: { ...state.details, notes },
    });
  return state;
}

/** The slot's own state: missing, about to be invalidated, idle, someone else's, or streaming. */
function slotState(
  slot: Awaited<ReturnType<typeof resolveRepositorySlot>>,
  repository: Repository,
): CheckResult {
  const info = slot.info;
  const details = {
    slot: slot.name,
    ...(info ? { active: info.active, retainedBytes: info.retainedBytes, walStatus: info.walStatus } : {}),
  };
  if (!info)
    return ok(
      NAME,
      `${slot.name} does not exist yet (\`warden wal stream\` creates it); one-off backups use a temporary slot`,
      details,
    );
  if (info.walStatus === 'unreserved')
    return warn(
      NAME,
      `${slot.name} keeps ${mib(info.retainedBytes)} of WAL, more than max_slot_wal_keep_size: the server is about to invalidate it`,
      {
        fix: 'Let the stream catch up (`warden wal stream`), or raise max_slot_wal_keep_size.',
        details,
      },
    );
  const idle = idleSlotWarning(slot);
  if (idle)
    return warn(NAME, idle, {
      fix: `Run \`warden wal stream\` (or \`warden serve\`), or \`warden slot drop ${slot.name}\` if this repository no longer streams.`,
      details,
    });
  if (info.active) {
    const own = holderRepositoryId(info.holder) === repository.id;
    if (!own)
      return warn(
        NAME,
        `${slot.name} is in use by another connection (pid ${info.activePid ?? '?'}${info.holder ? `, ${info.holder}` : ''})`,
        {
          fix: 'See `warden slot list`: this repository streams through it only once that connection ends.',
          details,
        },
      );
    return ok(
      NAME,
      `${slot.name} is in use by this repository's WAL stream (pid ${info.activePid ?? '?'}), keeps ${mib(info.retainedBytes)} of WAL`,
      details,
    );
  }
  return ok(NAME, `${slot.name} is inactive and keeps no WAL`, details);
}
