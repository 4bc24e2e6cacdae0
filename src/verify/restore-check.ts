import { existsSync } from 'node:fs';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { mkdtemp, rm, statfs, chown } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type pg from 'pg';
import type { Logger } from 'pino';
import { toWardenError, WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { LocalInstance } from '../postgres/local-instance.ts';
import { serverRunAs } from '../postgres/os-user.ts';
import { findServerBinaries, majorOfVersion } from '../postgres/server-binaries.ts';
import { listBackups, type BackupRecord } from '../repository/backup-catalog.ts';
import { backupChain, completeChains } from '../repository/backup-chain.ts';
import { verifyBackupAgainstManifest } from './repository-verify.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { waitForPromotion } from '../restore/recovery-wait.ts';
import { restore } from '../restore/restore.ts';
import type { RestoreTarget } from '../restore/restore-planner.ts';
import { sleep } from '../util/backoff.ts';
import { freePort, portInUse } from '../util/free-port.ts';
import { readHeartbeat } from '../daemon/heartbeat.ts';

/** A user-defined post-restore check: the first column of the first row against an expectation. */
export interface SqlCheck {
  name: string;
  sql: string;
  /** Database to run in (default: the source connection's). */
  database?: string;
  equals?: string | number | boolean;
  min?: number;
  max?: number;
}

export interface CheckResult {
  name: string;
  status: 'passed' | 'failed' | 'skipped';
  durationMs: number;
  detail?: string;
  error?: { code: string; message: string };
}

export interface ScratchOptions {
  /** Parent directory of scratch instances (default the OS temp directory). */
  scratchDir?: string;
  /** Port for the scratch instance (default a free one); a configured port that is taken fails the run. */
  port?: number;
}

export interface VerificationReport {
  format: 1;
  backupId?: string;
  target: { kind: 'latest' } | { kind: 'time'; time: string };
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

export interface RestoreCheckOptions {
  store: ObjectStore;
  /** The source's connection: its credentials log into the restored copy. */
  connection: ConnectionConfig;
  target: { kind: 'latest' } | { kind: 'time'; time: Date };
  checks?: readonly SqlCheck[];
  scratch?: ScratchOptions;
  /** Identities for encrypted objects; checked before the scratch copy is written. */
  keys?: RepositoryKeys;
  logger?: Logger;
  signal?: AbortSignal;
}

/** Free space needed for a scratch restore, relative to the backup's raw size. */
const SPACE_FACTOR = 1.2;

/**
 * Restores a backup into a scratch instance and proves it usable: the restore itself (every
 * object's checksum), the backup manifest (pg_verifybackup, before the instance starts and
 * changes files), recovery reaching the target, amcheck on every B-tree index (when the
 * extension is available) and the configured SQL checks. The scratch instance and its files are
 * always removed. Failures are results, not exceptions; only a cancelled run throws.
 */
export async function verifyRestore(options: RestoreCheckOptions): Promise<VerificationReport> {
  const logger = options.logger ?? silentLogger;
  const started = performance.now();
  const startedAt = new Date();
  const checks: CheckResult[] = [];
  const target: VerificationReport['target'] =
    options.target.kind === 'latest'
      ? { kind: 'latest' }
      : { kind: 'time', time: options.target.time.toISOString() };
  const scratchParent = path.resolve(options.scratch?.scratchDir ?? os.tmpdir());
  let scratchRoot: string | undefined;
  let instance: LocalInstance | undefined;
  let backupId: string | undefined;
  let port: number | undefined;
  let restoredHeartbeat: string | undefined;
  let readyMs: number;
  const step = async (name: string, fn: () => Promise<string | undefined>): Promise<boolean> => {
    if (options.signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'verification cancelled');
    const t = performance.now();
    try {
      const detail = await fn();
      checks.push({ name, status: 'passed', durationMs: ms(t), ...(detail ? { detail } : {}) });
      return true;
    } catch (error) {
      if (options.signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'verification cancelled');
      const wrapped = toWardenError(error);
      checks.push({
        name,
        status: 'failed',
        durationMs: ms(t),
        detail: wrapped.message,
        error: { code: wrapped.code, message: wrapped.message },
      });
      logger.warn({ check: name, code: wrapped.code }, `verification check failed: ${wrapped.message}`);
      return false;
    }
  };
  try {
    const runAs = serverRunAs();
    // With a trust set, a record not signed by a trusted key fails here, before any scratch file exists.
    const { backup, chain } = await chooseBackup(options.store, options.target, options.keys);
    backupId = backup.id;
    // The scratch instance runs the backup's own major version (a 17 data directory needs 17).
    const binaries = await findServerBinaries(process.env, { major: majorOfVersion(backup.serverVersion) });
    await checkFreeSpace(scratchParent, backup, chain);
    port = await choosePort(options.scratch?.port);
    scratchRoot = await mkdtemp(path.join(scratchParent, 'warden-scratch-'));
    if (runAs) await chown(scratchRoot, runAs.uid, runAs.gid);
    const dataDir = path.join(scratchRoot, 'data');
    const restoreTarget: RestoreTarget =
      options.target.kind === 'latest' ? { kind: 'latest' } : { kind: 'time', time: options.target.time };
    const restored = await step('restore', async () => {
      const report = await restore({
        store: options.store,
        target: restoreTarget,
        targetDir: dataDir,
        port,
        ...(options.keys ? { keys: options.keys } : {}),
      });
      backupId = report.backupId;
      return `backup ${report.backupId}, ${report.walSegments} WAL segment(s)`;
    });
    if (restored) {
      await step('manifest', () =>
        verifyManifest(binaries.bindir, dataDir, runAs, options.store, chain, options.keys),
      );
      instance = new LocalInstance({ binaries, dataDir, port, runAs });
      const serving = await step('recovery reached target', async () => {
        await instance!.start({ timeoutSeconds: 3600 });
        await waitForPromotion(instance!);
        return withScratch(options.connection, port!, undefined, async (client) => {
          // recovery.signal goes a moment before the end-of-recovery checkpoint finishes promotion.
          const deadline = Date.now() + 120_000;
          let inRecovery = true;
          while (inRecovery && Date.now() < deadline) {
            const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
            inRecovery = rows[0]?.r !== false;
            if (inRecovery) await sleep(100);
          }
          if (inRecovery)
            throw new WardenError('WARDEN_E_RECOVERY_FAILED', 'the restored instance is still in recovery');
          const beat = await readHeartbeat(client);
          restoredHeartbeat = beat?.toISOString();
          if (beat && target.kind === 'time' && beat.getTime() > Date.parse(target.time)) {
            throw new WardenError(
              'WARDEN_E_RECOVERY_FAILED',
              `recovery went past the target: heartbeat ${beat.toISOString()} is after ${target.time}`,
            );
          }
          return `promoted${beat ? `, newest heartbeat ${beat.toISOString()}` : ''}`;
        });
      });
      if (serving) {
        await step('amcheck', () => runAmcheck(options.connection, port!));
        for (const check of options.checks ?? [])
          await step(`sql: ${check.name}`, () => runSqlCheck(options.connection, port!, check));
      } else {
        skipRest(checks, options.checks);
      }
    } else {
      for (const name of ['manifest', 'recovery reached target', 'amcheck'])
        checks.push({ name, status: 'skipped', durationMs: 0, detail: 'restore failed' });
      skipRest(checks, options.checks);
    }
    readyMs = ms(started);
  } catch (error) {
    if (isAborted(error)) throw error;
    const wrapped = toWardenError(error);
    checks.push({
      name: 'prepare',
      status: 'failed',
      durationMs: ms(started),
      detail: wrapped.message,
      error: { code: wrapped.code, message: wrapped.message },
    });
    readyMs = ms(started);
  } finally {
    await instance?.stop({ mode: 'immediate' }).catch(() => undefined);
    if (scratchRoot) await rm(scratchRoot, { recursive: true, force: true }).catch(() => undefined);
  }
  return {
    format: 1,
    ...(backupId ? { backupId } : {}),
    target,
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    readyMs,
    passed: checks.length > 0 && checks.every((c) => c.status !== 'failed'),
    checks,
    ...(port !== undefined ? { port } : {}),
    ...(restoredHeartbeat ? { restoredHeartbeat } : {}),
  };
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

async function chooseBackup(
  store: ObjectStore,
  target: RestoreCheckOptions['target'],
  keys: RepositoryKeys | undefined,
): Promise<{ backup: BackupRecord; chain: BackupRecord[] }> {
  const backups = await listBackups(await Repository.open(store, keys));
  const restorable = completeChains(backups);
  const eligible =
    target.kind === 'latest'
      ? restorable
      : restorable.filter((b) => Date.parse(b.endTime) <= target.time.getTime());
  const backup = eligible.at(-1);
  if (!backup) throw new WardenError('WARDEN_E_NO_BACKUP', 'the repository holds no backup to verify');
  return { backup, chain: backupChain(backup, backups) };
}

/** The restored size is at most the full backup plus every incremental on it. */
async function checkFreeSpace(
  dir: string,
  backup: BackupRecord,
  chain: readonly BackupRecord[],
): Promise<void> {
  const raw = chain.flatMap((b) => b.archives).reduce((n, a) => n + a.rawSize, 0);
  const needed = Math.ceil(raw * SPACE_FACTOR);
  const fs = await statfs(dir);
  const free = fs.bavail * fs.bsize;
  if (free < needed) {
    throw new WardenError(
      'WARDEN_E_INSUFFICIENT_SPACE',
      `${dir} has ${free} bytes free; restoring backup ${backup.id} needs ${needed}`,
      {
        hint: 'Free space, or set daemon.verification.scratchDir to a larger disk.',
        details: { dir, free, needed, backup: backup.id },
      },
    );
  }
}

/**
 * A configured port is used as configured or refused: it was set for a reason (a firewall or
 * SELinux port policy, or a leftover scratch instance of a killed run still listening there),
 * and silently moving elsewhere would hide that. Unconfigured, any free port does.
 */
async function choosePort(requested: number | undefined): Promise<number> {
  if (requested === undefined) return freePort();
  if (await portInUse(requested)) {
    throw new WardenError('WARDEN_E_PORT_IN_USE', `scratch port ${requested} on 127.0.0.1 is in use`, {
      hint: 'Stop what listens there, or change daemon.verification.port (unset, a free port is used).',
      details: { port: requested, field: 'daemon.verification.port' },
    });
  }
  return requested;
}

/** pg_verifybackup where installed; else each manifest entry's size (the npm server package lacks the tool). */
/**
 * pg_verifybackup on the restored files when the server's own tool (same major) is installed
 * and the restore came from one full backup; otherwise the same check Warden makes itself on
 * the stored archives of every backup the restore read (size and CRC-32C of each file against
 * that backup's manifest): an incremental chain has no single manifest describing the result.
 */
async function verifyManifest(
  bindir: string,
  dataDir: string,
  runAs: ReturnType<typeof serverRunAs>,
  store: ObjectStore,
  chain: readonly BackupRecord[],
  keys: RepositoryKeys | undefined,
): Promise<string> {
  const manifestPath = path.join(dataDir, 'backup_manifest');
  if (chain.length === 1 && existsSync(path.join(bindir, 'pg_verifybackup'))) {
    const tool = new LocalInstance({
      binaries: { bindir, major: 0, source: 'system' },
      dataDir,
      port: 0,
      runAs,
    });
    try {
      await tool.run('pg_verifybackup', ['--manifest-path', manifestPath, dataDir]);
    } catch (error) {
      throw new WardenError(
        'WARDEN_E_VERIFICATION_FAILED',
        `pg_verifybackup: ${(error as { stderr?: string }).stderr?.trim() ?? String(error)}`,
      );
    }
    return 'pg_verifybackup: files and WAL match backup_manifest';
  }
  let files = 0;
  for (const backup of chain) {
    const { problems, manifestFiles } = await verifyBackupAgainstManifest(store, backup, keys);
    if (problems.length) {
      throw new WardenError(
        'WARDEN_E_VERIFICATION_FAILED',
        `backup ${backup.id}: ${problems.map((p) => `${p.object}: ${p.message}`).join('; ')}`,
        { details: { problems } },
      );
    }
    files += manifestFiles;
  }
  return `${files} file(s) in ${chain.length} backup(s) match their backup_manifest (size and CRC-32C, checked by Warden)`;
}

async function withScratch<T>(
  source: ConnectionConfig,
  port: number,
  database: string | undefined,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connect({
    ...source,
    host: '127.0.0.1',
    port,
    tls: 'disable',
    database: database ?? source.database,
    applicationName: 'warden verify',
  });
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function runAmcheck(source: ConnectionConfig, port: number): Promise<string> {
  const databases = await withScratch(source, port, undefined, async (client) => {
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datallowconn AND datname <> 'template0' ORDER BY datname",
    );
    const available = await client.query("SELECT 1 FROM pg_available_extensions WHERE name = 'amcheck'");
    return available.rowCount ? rows.map((r) => r.datname) : undefined;
  });
  if (!databases) return 'skipped: the amcheck extension is not installed on this server';
  let indexes = 0;
  for (const database of databases) {
    await withScratch(source, port, database, async (client) => {
      await client.query('CREATE EXTENSION IF NOT EXISTS amcheck');
      const { rows } = await client.query<{ oid: number; name: string }>(
        `SELECT c.oid::int AS oid, c.oid::regclass::text AS name
           FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam
          WHERE am.amname = 'btree' AND c.relpersistence <> 't' AND i.indisready AND i.indisvalid`,
      );
      for (const row of rows) {
        try {
          await client.query('SELECT bt_index_check($1::oid, true)', [row.oid]);
        } catch (error) {
          throw new WardenError(
            'WARDEN_E_VERIFICATION_FAILED',
            `amcheck: index ${row.name} in ${database}: ${(error as Error).message}`,
            {
              details: { database, index: row.name, sqlstate: (error as { code?: string }).code },
            },
          );
        }
      }
      indexes += rows.length;
    });
  }
  return `${indexes} B-tree index(es) in ${databases.length} database(s) intact`;
}

async function runSqlCheck(source: ConnectionConfig, port: number, check: SqlCheck): Promise<string> {
  return withScratch(source, port, check.database, async (client) => {
    const { rows, fields } = await client.query(check.sql);
    const column = fields[0]?.name;
    const value: unknown = column ? rows[0]?.[column] : undefined;
    const shown = value === null || value === undefined ? 'NULL' : String(value);
    const failures: string[] = [];
    if (check.equals !== undefined && !sameValue(value, check.equals))
      failures.push(`expected ${String(check.equals)}`);
    const numeric = Number(value);
    if (check.min !== undefined && !(numeric >= check.min)) failures.push(`expected >= ${check.min}`);
    if (check.max !== undefined && !(numeric <= check.max)) failures.push(`expected <= ${check.max}`);
    if (failures.length) {
      throw new WardenError(
        'WARDEN_E_VERIFICATION_FAILED',
        `${check.name}: got ${shown}, ${failures.join(', ')}`,
        {
          details: { check: check.name, value: shown },
        },
      );
    }
    return `got ${shown}`;
  });
}

function sameValue(actual: unknown, expected: string | number | boolean): boolean {
  if (typeof expected === 'number') return Number(actual) === expected;
  if (typeof expected === 'boolean') return actual === expected || String(actual) === String(expected);
  return String(actual) === expected;
}

function skipRest(checks: CheckResult[], sqlChecks: readonly SqlCheck[] | undefined): void {
  if (!checks.some((c) => c.name === 'amcheck'))
    checks.push({ name: 'amcheck', status: 'skipped', durationMs: 0, detail: 'instance not serving' });
  for (const check of sqlChecks ?? [])
    checks.push({
      name: `sql: ${check.name}`,
      status: 'skipped',
      durationMs: 0,
      detail: 'instance not serving',
    });
}

function isAborted(error: unknown): boolean {
  return error instanceof WardenError && error.code === 'WARDEN_E_ABORTED';
}

function ms(since: number): number {
  return Math.round(performance.now() - since);
}
