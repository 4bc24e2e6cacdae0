import { setTimeout as sleep } from 'node:timers/promises';
import { DataLayerError } from '../errors.ts';
import { silentLogger, type Logger } from '../logger.ts';
import type { MigrationClient } from './migration-client.ts';
import { readMigrationFiles, type MigrationFile } from './migration-files.ts';
import {
  DEFAULT_HISTORY_TABLE,
  ensureHistoryTable,
  readHistory,
  recordApplied,
} from './migration-history.ts';
import { planMigrations, type MigrationPlan } from './migration-plan.ts';
import { splitStatements } from './sql-statements.ts';

/** The advisory lock key `warden migrate` takes too ("wardenmi"), so a wrapped run and a direct one exclude each other. */
export const MIGRATION_LOCK_KEY = '8602282538778389865';
const LOCK_TIMEOUT_SQLSTATE = '55P03';

export interface MigrateOptions {
  /** A session of its own (see MigrationClient). */
  client: MigrationClient;
  /** The directory of `NNN_description.sql` files. */
  dir: string;
  /** Only plan: nothing is applied (the history table is not even created). */
  dryRun?: boolean;
  /** History table, optionally schema-qualified (default `warden_schema_history`). */
  table?: string;
  /** `lock_timeout` for each statement (default 5 s): a migration never queues behind traffic for long. */
  lockTimeoutMs?: number;
  /** `statement_timeout` (default 0: none). */
  statementTimeoutMs?: number;
  /** Attempts of a migration that failed on lock_timeout (default 5; waits 1, 2, 4, 8 s ±50 %). */
  attempts?: number;
  /** How long to wait for another runner's advisory lock (default 10 minutes). */
  waitForLockMs?: number;
  logger?: Logger;
}

export interface MigrateReport extends MigrationPlan {
  /** Applied by this run (none on a dry run). */
  appliedNow: Array<{ version: number; file: string; durationMs: number; attempts: number }>;
  dryRun: boolean;
}

/**
 * Applies the pending migrations of `dir` in version order, one deploy at a time (the session
 * advisory lock `warden migrate` uses too), each in its own transaction with its history row, so
 * a failed one leaves nothing of itself. A file marked `-- warden:no-transaction` runs statement
 * by statement outside a transaction (CREATE INDEX CONCURRENTLY); if one of its statements
 * fails, the earlier ones stay and the file is not recorded: write such files to be re-runnable
 * (IF NOT EXISTS). A statement that waits longer than `lockTimeoutMs` for a lock fails and the
 * migration is retried after a backoff, so it never holds up the application's queries for long.
 *
 * @example
 * const client = new pg.Client({ connectionString: process.env.DATABASE_URL });
 * await client.connect();
 * try {
 *   const report = await migrate({ client, dir: 'db/migrations' });
 *   console.log(`at version ${report.current}`);
 * } finally {
 *   await client.end();
 * }
 */
export async function migrate(options: MigrateOptions): Promise<MigrateReport> {
  const { client } = options;
  const logger = options.logger ?? silentLogger;
  const table = historyTable(options.table);
  const files = await readMigrationFiles(options.dir);
  if (options.dryRun) {
    const applied = (await tableExists(client, table)) ? await readHistory(client, table) : [];
    return { ...planMigrations(files, applied), appliedNow: [], dryRun: true };
  }
  await takeLock(client, options.waitForLockMs ?? 600_000);
  try {
    await ensureHistoryTable(client, table);
    const plan = planMigrations(files, await readHistory(client, table));
    await client.query(`SET lock_timeout = ${Math.round(options.lockTimeoutMs ?? 5_000)}`);
    await client.query(`SET statement_timeout = ${Math.round(options.statementTimeoutMs ?? 0)}`);
    const appliedNow: MigrateReport['appliedNow'] = [];
    for (const file of plan.pending) {
      const result = await applyWithRetries(client, table, file, options.attempts ?? 5, logger);
      appliedNow.push({ version: file.version, file: file.file, ...result });
      logger.info(
        { version: file.version, file: file.file, durationMs: result.durationMs },
        'migration applied',
      );
    }
    const applied = await readHistory(client, table);
    return { current: applied.at(-1)?.version ?? 0, applied, pending: [], appliedNow, dryRun: false };
  } finally {
    await client.query('SELECT pg_advisory_unlock($1::bigint)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
  }
}

/** Which version the database is on, and what `dir` would apply (`warden migrate status`). */
export async function migrationStatus(
  options: Pick<MigrateOptions, 'client' | 'dir' | 'table'>,
): Promise<MigrationPlan> {
  return migrate({ ...options, dryRun: true });
}

async function applyWithRetries(
  client: MigrationClient,
  table: string,
  file: MigrationFile,
  attempts: number,
  logger: Logger,
): Promise<{ durationMs: number; attempts: number }> {
  for (let attempt = 1; ; attempt += 1) {
    const started = Date.now();
    try {
      await applyOne(client, table, file, started);
      return { durationMs: Date.now() - started, attempts: attempt };
    } catch (error) {
      const sqlstate = (error as { code?: string }).code;
      if (sqlstate !== LOCK_TIMEOUT_SQLSTATE || attempt >= attempts || !file.transactional)
        throw new DataLayerError(
          'WARDEN_E_MIGRATION_FAILED',
          `${file.file} failed: ${(error as Error).message}`,
          {
            hint:
              sqlstate === LOCK_TIMEOUT_SQLSTATE
                ? 'A lock it needs stayed held by other sessions: retry when traffic is lower, or raise lockTimeoutMs.'
                : file.transactional
                  ? 'Nothing of this migration was applied; fix it and run again.'
                  : 'It ran outside a transaction: statements before the failing one stay applied.',
            details: { version: file.version, file: file.file, ...(sqlstate ? { sqlstate } : {}), attempt },
            cause: error,
          },
        );
      // Waits 1, 2, 4, 8 s (±50 %) between attempts.
      const delay = 1_000 * 2 ** (attempt - 1) * (0.5 + Math.random());
      logger.warn(
        { file: file.file, attempt, retryInMs: Math.round(delay) },
        'migration waited too long for a lock; retrying',
      );
      await sleep(delay);
    }
  }
}

async function applyOne(
  client: MigrationClient,
  table: string,
  file: MigrationFile,
  started: number,
): Promise<void> {
  if (!file.transactional) {
    for (const statement of splitStatements(file.sql)) await client.query(statement);
    await recordApplied(client, table, { ...file, durationMs: Date.now() - started });
    return;
  }
  await client.query('BEGIN');
  try {
    // Simple protocol: the file's statements run as they are, in this transaction.
    await client.query(file.sql);
    await recordApplied(client, table, { ...file, durationMs: Date.now() - started });
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

async function takeLock(client: MigrationClient, waitMs: number): Promise<void> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const { rows } = await client.query<{ locked: boolean }>(
      'SELECT pg_try_advisory_lock($1::bigint) AS locked',
      [MIGRATION_LOCK_KEY],
    );
    if (rows[0]?.locked) return;
    if (Date.now() > deadline)
      throw new DataLayerError('WARDEN_E_MIGRATION_LOCKED', 'another migration holds the lock', {
        hint: 'Wait for the other deploy, or raise waitForLockMs.',
      });
    await sleep(500);
  }
}

async function tableExists(client: MigrationClient, table: string): Promise<boolean> {
  const { rows } = await client.query<{ found: string | null }>('SELECT to_regclass($1)::text AS found', [
    table,
  ]);
  return rows[0]?.found != null;
}

/** An identifier or schema.identifier of plain characters: it is put into SQL text. */
function historyTable(table: string | undefined): string {
  const name = table ?? DEFAULT_HISTORY_TABLE;
  if (!/^[a-z_][a-z0-9_]{0,62}(\.[a-z_][a-z0-9_]{0,62})?$/.test(name))
    throw new DataLayerError(
      'WARDEN_E_CONFIG_INVALID',
      `table: "${name}" is not a plain (schema.)table name`,
      {
        details: { field: 'table' },
      },
    );
  return name;
}
