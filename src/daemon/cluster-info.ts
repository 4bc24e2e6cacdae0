import type { SigningPublicKey } from '../pipeline/signing/signing-keys.ts';
import { readSlot } from '../postgres/replication-slots.ts';
import { isClusterConnection, type ConnectionConfig } from '../postgres/connection-config.ts';
import { collectTopology, type ClusterTopology } from '../postgres/cluster-topology.ts';
import { listBackups, type BackupRecord } from '../repository/backup-catalog.ts';
import { backupChain } from '../repository/backup-chain.ts';
import { keyUses, type KeyUse } from '../repository/key-uses.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { LEGACY_SLOT } from '../repository/repository-meta.ts';
import { Repository } from '../repository/repository.ts';
import { readWalInventory, type WalInventory } from '../repository/wal-archive.ts';
import { restorableWindow, type RestorableWindow } from '../repository/restorable-window.ts';
import { toWardenError } from '../errors.ts';
import { listDrills, type DrillReport } from '../verify/drill.ts';
import { listVerifications, type VerificationReport } from '../verify/restore-check.ts';
import type { ClusterPlan } from './daemon-config.ts';
import { chooseObjectives, readRecordedObjectives, type ObjectivesChoice } from './recorded-objectives.ts';

/** One backup as `warden info` shows it. */
export interface BackupInfo {
  id: string;
  kind: BackupRecord['kind'];
  name?: string;
  parent?: string;
  /** Backups a restore of this one reads, full first; absent when a link is missing. */
  chain?: string[];
  chainComplete: boolean;
  timeline: number;
  startTime: string;
  endTime: string;
  startLsn: string;
  endLsn: string;
  /** Data directory bytes the archives hold, and what they take in the repository. */
  sizeBytes: number;
  storedBytes: number;
  /** The newest restore verification (scheduled, or a drill's) that restored this backup. */
  verification: { state: 'passed' | 'failed' | 'never'; at?: string; by?: 'verification' | 'drill' };
}

export interface ClusterInfo {
  name: string;
  repository: {
    location: string;
    systemId: string;
    serverVersion: string;
    walSegmentSize: number;
    createdAt: string;
    repositoryId?: string;
    slot: string;
  };
  objectives: ObjectivesChoice;
  backups: BackupInfo[];
  /** The restorable window as `backup list` computes it: ranges, and the WAL gaps between them. */
  window: RestorableWindow;
  wal: {
    segments: number;
    storedBytes: number;
    timelines: Array<{
      timeline: number;
      segments: number;
      storedBytes: number;
      first: string;
      last: string;
    }>;
    /** Segments still being received (`.partial`). */
    partials: number;
    streamState?: { flushedLsn: string; caughtUpAt: string };
  };
  keys: {
    /** Every age recipient any backup or WAL segment is encrypted to. */
    recipients: string[];
    signingKeys: Array<{ key: string; trustedHere: boolean }>;
    /** Backups and WAL ranges stored without encryption, or without a signature. */
    unencrypted: number;
    unsigned: number;
    passphraseKeys: string[];
    uses: KeyUse[];
  };
  /** The repository's replication slot on the server; `checked` false says why not. */
  slot: {
    checked: boolean;
    reason?: string;
    name: string;
    exists?: boolean;
    active?: boolean;
    restartLsn?: string;
    retainedBytes?: number;
    walStatus?: string;
    currentLsn?: string;
  };
  /** A cluster connection (several hosts, Patroni): its members as `status` shows them. */
  topology?: ClusterTopology;
  lastVerification?: {
    backupId?: string;
    startedAt: string;
    passed: boolean;
    failed: string[];
  };
  lastDrill?: {
    startedAt: string;
    passed: boolean;
    rtoMs: number;
    rpoMs?: number;
    objectives: { rtoMs: number; rpoMs: number };
    failures: string[];
  };
}

export interface InfoInputs {
  plan: ClusterPlan;
  store: ObjectStore;
  connection?: ConnectionConfig;
  /** Signing keys trusted here (to say which signatures are). */
  trusted?: ReadonlyMap<string, SigningPublicKey>;
}

/**
 * Everything about one cluster's repository in one view: backups with their chains and
 * verification, the window and its gaps, WAL volume, keys, slot, last verification and drill.
 * Reads what `backup list`, `repo keys` and `status` read; fails as they do when the repository
 * cannot be opened.
 */
export async function collectClusterInfo(inputs: InfoInputs): Promise<ClusterInfo> {
  const { plan, store } = inputs;
  const repository = await Repository.open(store);
  const backups = await listBackups(repository);
  const inventory = await readWalInventory(repository);
  const verifications = await listVerifications(store);
  const drills = await listDrills(store);
  const recorded = await readRecordedObjectives(store);
  const slotName = plan.slot ?? repository.meta.slot ?? LEGACY_SLOT;
  const uses = keyUses(repository, backups, inventory, inputs.trusted ?? new Map());
  const drill = drills.at(-1);
  const verification = verifications.at(-1);
  return {
    name: plan.name,
    repository: {
      location: store.location,
      systemId: repository.meta.systemId,
      serverVersion: repository.meta.serverVersion,
      walSegmentSize: repository.meta.walSegmentSize,
      createdAt: repository.meta.createdAt,
      ...(repository.meta.repositoryId ? { repositoryId: repository.meta.repositoryId } : {}),
      slot: slotName,
    },
    objectives: chooseObjectives(plan, {
      ...(recorded ? { daemon: recorded } : {}),
      ...(drill ? { drill } : {}),
    }),
    backups: backups.map((b) => backupInfo(b, backups, verifications, drills)),
    window: restorableWindow(backups, inventory, repository.meta.walSegmentSize),
    wal: walVolume(inventory),
    keys: {
      recipients: [...new Set(uses.flatMap((use) => use.recipients))].sort(),
      signingKeys: [...new Set(uses.flatMap((use) => (use.signedBy ? [use.signedBy] : [])))].map((key) => ({
        key,
        trustedHere: inputs.trusted?.has(key) ?? false,
      })),
      unencrypted: uses.filter((use) => use.recipients.length === 0).length,
      unsigned: uses.filter((use) => use.signature === 'unsigned').length,
      passphraseKeys: (await store.list('keys/')).filter((key) => key.endsWith('.age')),
      uses,
    },
    slot: await slotState(inputs.connection, slotName),
    ...(inputs.connection && isClusterConnection(inputs.connection)
      ? { topology: await collectTopology(inputs.connection, { slot: slotName }) }
      : {}),
    ...(verification
      ? {
          lastVerification: {
            ...(verification.backupId ? { backupId: verification.backupId } : {}),
            startedAt: verification.startedAt,
            passed: verification.passed,
            failed: verification.checks.filter((c) => c.status === 'failed').map((c) => c.name),
          },
        }
      : {}),
    ...(drill
      ? {
          lastDrill: {
            startedAt: drill.startedAt,
            passed: drill.passed,
            rtoMs: drill.measured.rtoMs,
            ...(drill.measured.rpoMs !== undefined ? { rpoMs: drill.measured.rpoMs } : {}),
            objectives: drill.objectives,
            failures: drill.failures,
          },
        }
      : {}),
  };
}

function backupInfo(
  backup: BackupRecord,
  all: readonly BackupRecord[],
  verifications: readonly VerificationReport[],
  drills: readonly DrillReport[],
): BackupInfo {
  let chain: string[] | undefined;
  try {
    chain = backupChain(backup, all).map((b) => b.id);
  } catch {
    chain = undefined;
  }
  const restores = [
    ...verifications.map((report) => ({ report, by: 'verification' as const })),
    ...drills.map((d) => ({ report: d.verification, by: 'drill' as const })),
  ]
    .filter(({ report }) => report.backupId === backup.id)
    .sort((a, b) => a.report.startedAt.localeCompare(b.report.startedAt));
  const newest = restores.at(-1);
  return {
    id: backup.id,
    kind: backup.kind,
    ...(backup.name ? { name: backup.name } : {}),
    ...(backup.parent ? { parent: backup.parent } : {}),
    ...(chain ? { chain } : {}),
    chainComplete: chain !== undefined,
    timeline: backup.timeline,
    startTime: backup.startTime,
    endTime: backup.endTime,
    startLsn: backup.startLsn,
    endLsn: backup.endLsn,
    sizeBytes: backup.archives.reduce((n, a) => n + a.rawSize, 0),
    storedBytes: backup.archives.reduce((n, a) => n + a.size, 0),
    verification: newest
      ? { state: newest.report.passed ? 'passed' : 'failed', at: newest.report.startedAt, by: newest.by }
      : { state: 'never' },
  };
}

function walVolume(inventory: WalInventory): ClusterInfo['wal'] {
  const timelines = [...inventory.segments.entries()]
    .sort(([a], [b]) => a - b)
    .map(([timeline, records]) => ({
      timeline,
      segments: records.length,
      storedBytes: records.reduce((n, r) => n + r.size, 0),
      first: records[0]!.segment,
      last: records.at(-1)!.segment,
    }));
  const state = inventory.streamState;
  return {
    segments: timelines.reduce((n, t) => n + t.segments, 0),
    storedBytes: timelines.reduce((n, t) => n + t.storedBytes, 0),
    timelines,
    partials: inventory.partials.length,
    ...(state ? { streamState: { flushedLsn: state.flushedLsn, caughtUpAt: state.caughtUpAt } } : {}),
  };
}

async function slotState(
  connection: ConnectionConfig | undefined,
  name: string,
): Promise<ClusterInfo['slot']> {
  if (!connection)
    return {
      checked: false,
      reason: 'no connection configured (--db, WARDEN_DB, config file, PG* variables)',
      name,
    };
  try {
    const { currentLsn, slot } = await readSlot(connection, name);
    if (!slot) return { checked: true, name, exists: false, currentLsn };
    return {
      checked: true,
      name,
      exists: true,
      active: slot.active,
      ...(slot.restartLsn ? { restartLsn: slot.restartLsn } : {}),
      ...(slot.retainedBytes !== undefined ? { retainedBytes: slot.retainedBytes } : {}),
      ...(slot.walStatus ? { walStatus: slot.walStatus } : {}),
      currentLsn,
    };
  } catch (error) {
    const wrapped = toWardenError(error, 'WARDEN_E_SERVER_ERROR');
    return { checked: false, reason: `server not reachable: ${wrapped.code}: ${wrapped.message}`, name };
  }
}
