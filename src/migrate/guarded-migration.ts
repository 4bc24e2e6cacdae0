import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Logger } from 'pino';
import { currentActor } from '../audit/audit-actor.ts';
import { WardenError } from '../errors.ts';
import type { Compression } from '../pipeline/compression.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { takeMigrationLock } from './migration-lock.ts';
import { recordMigration, type MigrationRecord } from './migration-record.ts';
import { protectCurrentState, type ProtectPolicy } from './protect-point.ts';
import { rollbackCommand } from './rollback-command.ts';

export interface GuardedMigrationOptions {
  connection: ConnectionConfig;
  store: ObjectStore;
  /** Write keys: recipients and the signing key (the record and a backup are written with them). */
  keys: RepositoryKeys;
  compression: Compression;
  /** The team's migration command, run without a shell: `['flyway', 'migrate']`. */
  command: string[];
  /** How long to wait for another deploy's migration (default 10 minutes). */
  lockTimeoutMs: number;
  /** How long the WAL up to the restore point may take to be durable. */
  protectTimeoutMs: number;
  policy: ProtectPolicy;
  logger: Logger;
  /** Progress lines for a person (waiting for the lock, the restore point, the outcome). */
  say: (line: string) => void;
  signal?: AbortSignal;
}

/**
 * `warden migrate -- <command>`: one deploy at a time (a session advisory lock on the cluster,
 * waited for), the state before it made restorable (see protectCurrentState), the command run
 * with its output streamed, and its outcome recorded in the repository with the exact restore
 * command back to the state before it. The command decides what is left to do: a second deploy
 * that waited runs it too, and a migration tool finds nothing pending.
 */
export async function runGuardedMigration(options: GuardedMigrationOptions): Promise<MigrationRecord> {
  const [program, ...args] = options.command;
  if (!program)
    throw new WardenError('WARDEN_E_USAGE', 'no migration command given', {
      hint: 'Put the command after `--`: warden migrate -- flyway migrate',
    });
  const session = await connect({ ...options.connection, applicationName: 'warden migrate' });
  // A lost session would drop the lock while the migration runs: say so rather than carry on unaware.
  session.on('error', (error) =>
    options.logger.error({ err: error.message }, 'the migration lock session failed'),
  );
  try {
    const { waitedMs } = await takeMigrationLock(session, {
      timeoutMs: options.lockTimeoutMs,
      ...(options.signal ? { signal: options.signal } : {}),
      onWaiting: (holder) => options.say(`waiting for another migration to finish (${holder})`),
    });
    const id = migrationId(new Date());
    const name = `warden-migrate-${id}`;
    const point = await protectCurrentState({
      connection: options.connection,
      store: options.store,
      keys: options.keys,
      compression: options.compression,
      policy: options.policy,
      name,
      timeoutMs: options.protectTimeoutMs,
      logger: options.logger,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    options.say(
      point.kind === 'restore-point'
        ? `restore point ${point.name} at ${point.lsn}, durable in the repository through ${point.via}`
        : `named backup ${point.name} (${point.id}) taken: ${point.why}`,
    );
    const startedAt = new Date();
    options.say(`running: ${program}${args.length ? ' …' : ''}`);
    const exit = await runCommand(program, args);
    const finishedAt = new Date();
    const record: MigrationRecord = {
      format: 1,
      id,
      actor: currentActor(),
      program: path.basename(program),
      argvSha256: createHash('sha256').update(JSON.stringify(options.command)).digest('hex'),
      startedAt: startedAt.toISOString(),
      finishedAt: finishedAt.toISOString(),
      durationMs: finishedAt.getTime() - startedAt.getTime(),
      waitedForLockMs: waitedMs,
      protectedBy: point,
      exitCode: exit.code,
      ...(exit.signal ? { signal: exit.signal } : {}),
      outcome: exit.code === 0 ? 'succeeded' : 'failed',
      rollback: rollbackCommand(point, options.store.location),
    };
    await recordMigration(await Repository.open(options.store, options.keys), record);
    return record;
  } finally {
    // Ending the session releases the advisory lock.
    await session.end().catch(() => undefined);
  }
}

/** `20261206T031500Z-1a2b`: sortable, and unique among deploys racing in the same second. */
function migrationId(now: Date): string {
  const stamp = now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
  return `${stamp}-${randomBytes(2).toString('hex')}`;
}

/** Runs the command with this process's stdio (its output streams as it comes), without a shell. */
function runCommand(program: string, args: string[]): Promise<{ code: number | null; signal?: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, { stdio: 'inherit' });
    child.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        new WardenError('WARDEN_E_USAGE', `cannot run ${program}: ${error.code ?? error.message}`, {
          hint: 'Check the command after `--` (it runs without a shell: give the program and its arguments).',
          details: { program },
        }),
      ),
    );
    child.once('exit', (code, signal) => resolve({ code, ...(signal ? { signal } : {}) }));
  });
}
