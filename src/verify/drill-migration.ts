import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Logger } from 'pino';
import { toWardenError, WardenError } from '../errors.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { resolvePassword } from '../postgres/password-source.ts';
import { onAbort } from '../util/abort.ts';

/** A drill's migration step: the team's migration command, run against the restored copy. */
export interface DrillMigrationPlan {
  /** Program and arguments, run without a shell: `['npx', 'node-pg-migrate', 'up']`. */
  command: readonly string[];
  /** How long it may run before it is stopped (SIGTERM, then SIGKILL 5 s later) and failed. */
  timeoutMs: number;
  /** Database it connects to (default: the cluster connection's). */
  database?: string;
  /** Working directory (default this process's). */
  cwd?: string;
}

export interface DrillMigrationResult {
  status: 'passed' | 'failed' | 'skipped';
  /** The program's name only: arguments may hold secrets (the same rule as `warden migrate`). */
  program: string;
  /** SHA-256 of the whole command line, to tell which command ran without storing it. */
  commandSha256: string;
  durationMs: number;
  exitCode?: number | null;
  signal?: string;
  /** The last lines of its standard output and error (merged, at most 4 KiB, the password masked). */
  outputTail?: string;
  /** Versions the native runner (`warden_schema_history`) recorded during the run, on the copy. */
  applied?: number[];
  /** Why it did not run (`skipped`). */
  reason?: string;
  error?: { code: string; message: string };
}

const TAIL_BYTES = 4096;
const KILL_GRACE_MS = 5_000;

/** The step of a drill whose copy never served with every check passed: nothing sound to migrate. */
export function skippedMigration(plan: DrillMigrationPlan, reason: string): DrillMigrationResult {
  return {
    status: 'skipped',
    program: path.basename(plan.command[0] ?? ''),
    commandSha256: commandHash(plan.command),
    durationMs: 0,
    reason,
  };
}

function commandHash(command: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify(command)).digest('hex');
}

/** What the command is told about the restored copy, in its environment (never its password). */
export interface ScratchTarget {
  /** The source's connection: its user (and password) log into the copy. */
  source: ConnectionConfig;
  port: number;
}

/**
 * Runs the pending migrations against a drill's restored copy: "would this deploy's migration
 * succeed on production data?". The command gets the copy in its environment — PGHOST, PGPORT,
 * PGUSER, PGDATABASE, PGSSLMODE and a DATABASE_URL without password; the password, when the
 * connection has one, in a PGPASSFILE (0600, removed afterwards) — and every other PG* variable
 * and DATABASE_URL of this process removed, so nothing it does can reach the source. Never
 * throws (but on cancellation): the outcome is the result.
 */
export async function runDrillMigration(
  plan: DrillMigrationPlan,
  target: ScratchTarget,
  options: { logger: Logger; signal?: AbortSignal },
): Promise<DrillMigrationResult> {
  const [program, ...args] = plan.command;
  const commandSha256 = commandHash(plan.command);
  const base = { program: path.basename(program ?? ''), commandSha256 };
  const started = performance.now();
  const elapsed = () => Math.round(performance.now() - started);
  const database = plan.database ?? target.source.database;
  const copy: ConnectionConfig = {
    ...target.source,
    host: '127.0.0.1',
    port: target.port,
    tls: 'disable',
    database,
  };
  let passDir: string | undefined;
  try {
    if (!program) throw new WardenError('WARDEN_E_USAGE', 'no migration command given');
    const password = await resolvePassword(target.source);
    const env = scratchEnvironment(process.env, copy);
    if (password) {
      passDir = await mkdtemp(path.join(os.tmpdir(), 'warden-drill-pgpass-'));
      env.PGPASSFILE = path.join(passDir, 'pgpass');
      await writeFile(env.PGPASSFILE, `${pgpassLine(copy, password)}\n`, { mode: 0o600 });
    }
    const before = await appliedVersions(copy);
    const run = await runBounded(program, args, {
      env,
      cwd: plan.cwd,
      timeoutMs: plan.timeoutMs,
      signal: options.signal,
    });
    const outputTail = mask(run.tail, password);
    const after = await appliedVersions(copy).catch(() => undefined);
    const applied = after?.filter((v) => !before?.includes(v));
    const common = {
      ...base,
      durationMs: elapsed(),
      exitCode: run.exitCode,
      ...(run.signal ? { signal: run.signal } : {}),
      outputTail,
      ...(applied && (before !== undefined || applied.length) ? { applied } : {}),
    };
    if (options.signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'drill cancelled');
    if (run.timedOut) {
      const error = new WardenError(
        'WARDEN_E_DRILL_MIGRATION_TIMEOUT',
        `the migration command ${base.program} did not finish within ${Math.round(plan.timeoutMs / 1000)} s on the restored copy`,
      );
      return { ...common, status: 'failed', error: { code: error.code, message: error.message } };
    }
    if (run.exitCode !== 0) {
      const how =
        run.exitCode === null ? `was killed by ${run.signal}` : `exited with status ${run.exitCode}`;
      const error = new WardenError(
        'WARDEN_E_DRILL_MIGRATION_FAILED',
        `the migration command ${base.program} ${how} on the restored copy`,
      );
      return { ...common, status: 'failed', error: { code: error.code, message: error.message } };
    }
    return { ...common, status: 'passed' };
  } catch (error) {
    const wrapped = toWardenError(error);
    if (wrapped.code === 'WARDEN_E_ABORTED') throw wrapped;
    const code = wrapped.code === 'WARDEN_E_INTERNAL' ? 'WARDEN_E_DRILL_MIGRATION_FAILED' : wrapped.code;
    options.logger.warn({ code }, `drill: the migration step failed: ${wrapped.message}`);
    return { ...base, status: 'failed', durationMs: elapsed(), error: { code, message: wrapped.message } };
  } finally {
    if (passDir) await rm(passDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/**
 * This process's environment without anything that could point a PostgreSQL client elsewhere
 * (PG*, DATABASE_URL), plus the copy's coordinates.
 */
export function scratchEnvironment(parent: NodeJS.ProcessEnv, copy: ConnectionConfig): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(parent))
    if (!/^PG/.test(key) && key !== 'DATABASE_URL') env[key] = value;
  const user = encodeURIComponent(copy.user);
  const database = encodeURIComponent(copy.database);
  return {
    ...env,
    PGHOST: '127.0.0.1',
    PGPORT: String(copy.port),
    PGUSER: copy.user,
    PGDATABASE: copy.database,
    PGSSLMODE: 'disable',
    DATABASE_URL: `postgres://${user}@127.0.0.1:${copy.port}/${database}?sslmode=disable`,
    WARDEN_DRILL: '1',
  };
}

function pgpassLine(copy: ConnectionConfig, password: string): string {
  const field = (value: string) => value.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return ['127.0.0.1', String(copy.port), '*', field(copy.user), field(password)].join(':');
}

function mask(text: string, password: string | undefined): string {
  return password ? text.split(password).join('***') : text;
}

/** The native runner's applied versions on the copy; undefined when it keeps no history there. */
async function appliedVersions(copy: ConnectionConfig): Promise<number[] | undefined> {
  const client = await connect({ ...copy, applicationName: 'warden drill' });
  try {
    // The history table of @warden/app/migrate (docs/migrations.md).
    const { rows: found } = await client.query<{ t: string | null }>(
      "SELECT to_regclass('warden_schema_history')::text AS t",
    );
    if (!found[0]?.t) return undefined;
    const { rows } = await client.query<{ v: string }>(
      'SELECT version::text AS v FROM warden_schema_history ORDER BY version',
    );
    return rows.map((r) => Number(r.v));
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface BoundedRun {
  exitCode: number | null;
  signal?: string;
  timedOut: boolean;
  tail: string;
}

/** Runs a program in a process group of its own, killed whole at the deadline or on cancel. */
function runBounded(
  program: string,
  args: readonly string[],
  options: {
    env: NodeJS.ProcessEnv;
    cwd: string | undefined;
    timeoutMs: number;
    signal: AbortSignal | undefined;
  },
): Promise<BoundedRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      env: options.env,
      ...(options.cwd ? { cwd: options.cwd } : {}),
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own group: a wrapper script's children are stopped with it.
      detached: true,
    });
    let tail = Buffer.alloc(0);
    const keep = (chunk: Buffer) => {
      tail = Buffer.concat([tail, chunk]);
      if (tail.length > TAIL_BYTES * 2) tail = tail.subarray(tail.length - TAIL_BYTES);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = () => {
      signalGroup(child.pid, 'SIGTERM');
      killTimer = setTimeout(() => signalGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
    };
    const deadline = setTimeout(() => {
      timedOut = true;
      stop();
    }, options.timeoutMs);
    const removeStopListener = onAbort(options.signal, stop);
    const finish = () => {
      clearTimeout(deadline);
      clearTimeout(killTimer);
      removeStopListener();
    };
    child.once('error', (error: NodeJS.ErrnoException) => {
      finish();
      reject(
        new WardenError(
          'WARDEN_E_DRILL_MIGRATION_FAILED',
          `cannot run the migration command ${path.basename(program)} (${error.code ?? error.message})`,
          {
            details: { program: path.basename(program), errno: error.code },
            cause: error,
          },
        ),
      );
    });
    child.once('close', (exitCode, signal) => {
      finish();
      const text = tail.subarray(Math.max(0, tail.length - TAIL_BYTES)).toString('utf8');
      resolve({ exitCode, ...(signal ? { signal } : {}), timedOut, tail: text });
    });
  });
}

function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}
