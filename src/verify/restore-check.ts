import { chown, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import { elapsedMs, eventError, subjectOf, type ObservedOptions } from '../events/observed.ts';
import { silentLogger } from '../logger.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { LocalInstance } from '../postgres/local-instance.ts';
import { serverRunAs } from '../postgres/os-user.ts';
import { findServerBinaries, majorOfVersion, type ServerBinaries } from '../postgres/server-binaries.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { BackupRecord } from '../repository/backup-catalog.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { restore } from '../restore/restore.ts';
import { formatLsn } from '../wal/lsn.ts';
import { CheckRecorder, msSince, type CheckResult } from './check-recorder.ts';
import { runAmcheck, runSqlCheck, type SqlCheck } from './scratch-checks.ts';
import { verifyManifest } from './scratch-manifest.ts';
import { checkFreeSpace, chooseBackup, choosePort, type VerifyTarget } from './scratch-preflight.ts';
import { awaitRecoveredScratch } from './scratch-recovery.ts';

// Importers take the report's vocabulary from here, beside the function that produces it.
export type { CheckResult } from './check-recorder.ts';
export type { SqlCheck } from './scratch-checks.ts';

export interface ScratchOptions {
  /** Parent directory of scratch instances (default the OS temp directory). */
  scratchDir?: string;
  /** Port for the scratch instance (default a free one); a configured port that is taken fails the run. */
  port?: number;
}

export interface VerificationReport {
  format: 1;
  backupId?: string;
  target:
    { kind: 'latest' } | { kind: 'time'; time: string } | { kind: 'lsn'; lsn: string; before?: boolean };
  startedAt: string;
  finishedAt: string;
  /** From start until the restored instance served and every check had run (cleanup excluded). */
  readyMs: number;
  passed: boolean;
  checks: CheckResult[];
  port?: number;
  /** Newest heartbeat found in the restore (what the drill measures RPO with). */
  restoredHeartbeat?: string;
}

export interface RestoreCheckOptions extends ObservedOptions {
  store: ObjectStore;
  /** The source's connection: its credentials log into the restored copy. */
  connection: ConnectionConfig;
  /** `lsn` with `before`: what the repository held when it was durable up to that position. */
  target: VerifyTarget;
  checks?: readonly SqlCheck[];
  scratch?: ScratchOptions;
  /** Identities for encrypted objects; checked before the scratch copy is written. */
  keys?: RepositoryKeys;
  logger?: Logger;
  signal?: AbortSignal;
  /**
   * Runs on the restored instance once it serves and every check passed, before it is removed
   * (a drill's migration step); not counted in `readyMs`. It must not throw but on cancellation.
   */
  afterChecks?: (scratch: { port: number }) => Promise<void>;
}

/**
 * Restores a backup into a scratch instance and proves it usable: the restore itself (every
 * object's checksum), the backup manifest (pg_verifybackup, before the instance starts and
 * changes files), recovery reaching the target, amcheck on every B-tree index (when the
 * extension is available) and the configured SQL checks. The scratch instance and its files are
 * always removed. Failures are results, not exceptions; only a cancelled run throws.
 */
export async function verifyRestore(options: RestoreCheckOptions): Promise<VerificationReport> {
  const events = options.events;
  if (!events) return verifyUnobserved(options);
  const subject = subjectOf(options, options.store);
  const started = performance.now();
  let report: VerificationReport;
  try {
    report = await verifyUnobserved(options);
  } catch (error) {
    // Only a cancelled run throws; it is a verification that did not pass.
    const at = new Date().toISOString();
    const failure = { at, durationMs: elapsedMs(started), passed: false, error: eventError(error) };
    events.emit('verification.finished', { ...subject, ...failure });
    throw error;
  }
  const failed = report.checks.find((check) => check.status === 'failed');
  events.emit('verification.finished', {
    ...subject,
    at: report.finishedAt,
    durationMs: elapsedMs(started),
    passed: report.passed,
    ...(report.backupId ? { backupId: report.backupId } : {}),
    ...(failed?.error ? { error: failed.error } : {}),
  });
  return report;
}

/** What a run has made or learned so far: the report needs it and cleanup removes it, whatever failed. */
interface ScratchState {
  backupId?: string;
  port?: number;
  scratchRoot?: string;
  instance?: LocalInstance;
  restoredHeartbeat?: string;
}

/** A prepared scratch place: the backup to restore, the binaries of its major, a port and a data directory. */
interface Scratch {
  chain: BackupRecord[];
  binaries: ServerBinaries;
  runAs: ReturnType<typeof serverRunAs>;
  port: number;
  dataDir: string;
}

async function verifyUnobserved(options: RestoreCheckOptions): Promise<VerificationReport> {
  const started = performance.now();
  const startedAt = new Date();
  const recorder = new CheckRecorder(options.logger ?? silentLogger, options.signal);
  const target = describeTarget(options.target);
  const state: ScratchState = {};
  let readyMs: number | undefined;
  try {
    const scratch = await prepareScratch(options, state);
    readyMs = await restoreAndCheck(options, scratch, state, recorder, target, started);
    readyMs ??= msSince(started);
  } catch (error) {
    if (isAborted(error)) throw error;
    recorder.fail('prepare', error, started);
    readyMs ??= msSince(started);
  } finally {
    await removeScratch(state);
  }
  return {
    format: 1,
    ...(state.backupId ? { backupId: state.backupId } : {}),
    target,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    readyMs,
    passed: recorder.checks.length > 0 && recorder.allPassed,
    checks: recorder.checks,
    ...(state.port !== undefined ? { port: state.port } : {}),
    ...(state.restoredHeartbeat ? { restoredHeartbeat: state.restoredHeartbeat } : {}),
  };
}

/** The target as the JSON report states it. */
function describeTarget(target: VerifyTarget): VerificationReport['target'] {
  if (target.kind === 'latest') return { kind: 'latest' };
  if (target.kind === 'lsn')
    return { kind: 'lsn', lsn: formatLsn(target.lsn), ...(target.before ? { before: true } : {}) };
  return { kind: 'time', time: target.time.toISOString() };
}

/**
 * Chooses the backup and readies an empty scratch directory. With a trust set, a record not
 * signed by a trusted key fails here, before any scratch file exists.
 */
async function prepareScratch(options: RestoreCheckOptions, state: ScratchState): Promise<Scratch> {
  const runAs = serverRunAs();
  const { backup, chain } = await chooseBackup(options.store, options.target, options.keys);
  state.backupId = backup.id;
  // The scratch instance runs the backup's own major version (a 17 data directory needs 17).
  const binaries = await findServerBinaries(process.env, { major: majorOfVersion(backup.serverVersion) });
  const scratchParent = path.resolve(options.scratch?.scratchDir ?? os.tmpdir());
  await checkFreeSpace(scratchParent, backup, chain);
  const port = await choosePort(options.scratch?.port);
  state.port = port;
  const scratchRoot = await mkdtemp(path.join(scratchParent, 'warden-scratch-'));
  state.scratchRoot = scratchRoot;
  if (runAs) await chown(scratchRoot, runAs.uid, runAs.gid);
  return { chain, binaries, runAs, port, dataDir: path.join(scratchRoot, 'data') };
}

/**
 * The checks in order, each run only when the one it depends on passed (the others are
 * recorded as skipped). Returns the time to ready once every check ran on a serving instance.
 */
async function restoreAndCheck(
  options: RestoreCheckOptions,
  scratch: Scratch,
  state: ScratchState,
  recorder: CheckRecorder,
  target: VerificationReport['target'],
  started: number,
): Promise<number | undefined> {
  const restored = await recorder.run('restore', () => restoreIntoScratch(options, scratch, state));
  if (!restored) {
    for (const name of ['manifest', 'recovery reached target', 'amcheck'])
      recorder.skip(name, 'restore failed');
    skipSqlChecks(recorder, options.checks);
    return undefined;
  }
  const { binaries, dataDir, port, runAs } = scratch;
  await recorder.run('manifest', () =>
    verifyManifest(binaries.bindir, dataDir, runAs, options.store, scratch.chain, options.keys),
  );
  const instance = new LocalInstance({ binaries, dataDir, port, runAs });
  state.instance = instance;
  const serving = await recorder.run('recovery reached target', () =>
    awaitRecoveredScratch(
      instance,
      options.connection,
      port,
      target.kind === 'time' ? target.time : undefined,
      (beat) => {
        state.restoredHeartbeat = beat?.toISOString();
      },
    ),
  );
  if (!serving) {
    recorder.skip('amcheck', 'instance not serving');
    skipSqlChecks(recorder, options.checks);
    return undefined;
  }
  await recorder.run('amcheck', () => runAmcheck(options.connection, port));
  for (const check of options.checks ?? [])
    await recorder.run(`sql: ${check.name}`, () => runSqlCheck(options.connection, port, check));
  const readyMs = msSince(started);
  if (options.afterChecks && recorder.allPassed) await options.afterChecks({ port });
  return readyMs;
}

async function restoreIntoScratch(
  options: RestoreCheckOptions,
  scratch: Scratch,
  state: ScratchState,
): Promise<string> {
  const report = await restore({
    store: options.store,
    target: options.target,
    targetDir: scratch.dataDir,
    port: scratch.port,
    ...(options.keys ? { keys: options.keys } : {}),
    ...(options.signal ? { signal: options.signal } : {}),
  });
  state.backupId = report.backupId;
  return `backup ${report.backupId}, ${report.walSegments} WAL segment(s)`;
}

function skipSqlChecks(recorder: CheckRecorder, sqlChecks: readonly SqlCheck[] | undefined): void {
  for (const check of sqlChecks ?? []) recorder.skip(`sql: ${check.name}`, 'instance not serving');
}

/** The scratch instance and its files always go, whatever happened. */
async function removeScratch(state: ScratchState): Promise<void> {
  await state.instance?.stop({ mode: 'immediate' }).catch(() => undefined);
  if (state.scratchRoot) await rm(state.scratchRoot, { recursive: true, force: true }).catch(() => undefined);
}

function isAborted(error: unknown): boolean {
  return error instanceof WardenError && error.code === 'WARDEN_E_ABORTED';
}

/** Stores a report as `verifications/<backup-id>/<time>.json`; returns the key. */
export async function recordVerification(store: ObjectStore, report: VerificationReport): Promise<string> {
  const key = `verifications/${report.backupId ?? 'none'}/${report.startedAt.replace(/[:.]/g, '-')}.json`;
  await store.putBuffer(key, Buffer.from(`${JSON.stringify(report, null, 2)}\n`));
  return key;
}

/** Every recorded verification, oldest first. */
export async function listVerifications(store: ObjectStore): Promise<VerificationReport[]> {
  const keys = (await store.list('verifications/')).filter((key) => key.endsWith('.json'));
  const reports: VerificationReport[] = [];
  for (const key of keys)
    reports.push(JSON.parse((await store.getBuffer(key)).toString('utf8')) as VerificationReport);
  return reports.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}
