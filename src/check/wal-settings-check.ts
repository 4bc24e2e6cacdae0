import { holderName } from '../postgres/replication-slots.ts';
import { fail, ok, warn, type CheckResult } from './check-result.ts';
import type { ServerSnapshot } from './server-snapshot.ts';

/**
 * WAL senders Warden may use at once: the stream and a backup (a one-off backup without a stream
 * needs two as well: BASE_BACKUP and the connection holding its temporary slot).
 */
export const SENDERS_NEEDED = 2;
/** Slots: the repository's own (once a stream runs) and one temporary slot for a one-off backup. */
export const SLOTS_NEEDED = 2;

const RESTART = 'then restart PostgreSQL';

/** The repository this check is for, so its own stream and slot count as Warden's, not as taken. */
export interface OwnUse {
  repositoryId?: string;
  slot?: string;
}

/** `wal_level`, `max_wal_senders` and `max_replication_slots` judged against what Warden uses. */
export function checkWalSettings(snapshot: ServerSnapshot, own: OwnUse = {}): CheckResult[] {
  return [walLevel(snapshot), walSenders(snapshot, own), replicationSlots(snapshot, own)];
}

function walLevel(snapshot: ServerSnapshot): CheckResult {
  if (snapshot.walLevel !== 'minimal') return ok('wal_level', `wal_level = ${snapshot.walLevel}`);
  return fail(
    'wal_level',
    'WARDEN_E_WAL_LEVEL_MINIMAL',
    'wal_level = minimal: physical backups and WAL streaming need replica',
    {
      fix: `ALTER SYSTEM SET wal_level = replica; ALTER SYSTEM SET max_wal_senders = 10; ${RESTART}.`,
      details: { walLevel: snapshot.walLevel },
    },
  );
}

function walSenders(snapshot: ServerSnapshot, own: OwnUse): CheckResult {
  const mine = own.repositoryId ? holderName(own.repositoryId) : undefined;
  const others = snapshot.walSenders.filter((name) => name !== mine).length;
  const free = snapshot.maxWalSenders - others;
  const details = { maxWalSenders: snapshot.maxWalSenders, usedByOthers: others, needed: SENDERS_NEEDED };
  const fix = `ALTER SYSTEM SET max_wal_senders = ${Math.max(10, others + SENDERS_NEEDED)}; ${RESTART}.`;
  const text = `max_wal_senders = ${snapshot.maxWalSenders}, ${others} used by other clients`;
  if (free >= SENDERS_NEEDED)
    return ok('max_wal_senders', `${text}: ${free} for Warden (needs ${SENDERS_NEEDED})`, details);
  return fail(
    'max_wal_senders',
    'WARDEN_E_NO_WAL_SENDERS',
    `${text}: ${Math.max(free, 0)} left for Warden, which needs ${SENDERS_NEEDED} (the WAL stream and a backup at once)`,
    { fix, details },
  );
}

function replicationSlots(snapshot: ServerSnapshot, own: OwnUse): CheckResult {
  const ownExists = own.slot !== undefined && snapshot.slots.includes(own.slot);
  const others = snapshot.slots.length - (ownExists ? 1 : 0);
  const free = snapshot.maxReplicationSlots - others;
  const details = {
    maxReplicationSlots: snapshot.maxReplicationSlots,
    usedByOthers: others,
    needed: SLOTS_NEEDED,
  };
  const fix = `ALTER SYSTEM SET max_replication_slots = ${Math.max(10, others + SLOTS_NEEDED)}; ${RESTART}.`;
  const text = `max_replication_slots = ${snapshot.maxReplicationSlots}, ${others} taken by others`;
  if (free >= SLOTS_NEEDED)
    return ok('max_replication_slots', `${text}: ${free} for Warden (needs ${SLOTS_NEEDED})`, details);
  // One slot still lets the stream run (backups then wait for it), or one-off backups without it.
  if (free === 1)
    return warn(
      'max_replication_slots',
      `${text}: 1 left for Warden, which needs ${SLOTS_NEEDED} (the repository's slot and a one-off backup's temporary slot)`,
      { fix, details },
    );
  return fail(
    'max_replication_slots',
    'WARDEN_E_NO_REPLICATION_SLOTS',
    `${text}: none left for Warden's slot`,
    { fix, details },
  );
}
