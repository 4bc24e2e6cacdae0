import path from 'node:path';
import type { Command } from 'commander';
import { appendAudit } from '../audit/audit-log.ts';
import { currentActor } from '../audit/audit-actor.ts';
import { isWardenError, toWardenError } from '../errors.ts';
import { Repository } from '../repository/repository.ts';
import type { CommandContext } from './context.ts';
import { commandPath } from './help-text.ts';

/**
 * Commands that change or read protected data, recorded in the repository's audit log. Listing
 * and status commands only read metadata and are not; `wal get`/`wal push` run once per segment
 * and are PostgreSQL's own archiving, so their record is the server's log.
 */
const AUDITED: ReadonlySet<string> = new Set([
  'backup',
  'backup delete',
  'restore',
  'expire',
  'dump',
  'verify',
  'drill',
  'wal stream',
  'slot drop',
  'repo sign',
  'repo copy',
  'switchover',
  'promote',
  'migrate',
  'credentials rotate',
  'redis backup',
  'redis restore',
  'redis expire',
]);

/** What `execute` needs to record the command it runs: set by the program's preAction hook. */
export interface AuditedCommand {
  action: string;
  /** Positional arguments (a backup id, a slot name): never a secret; options are not recorded. */
  target?: string;
  startedAt: number;
}

export function auditedCommand(command: Command): AuditedCommand | undefined {
  const action = commandPath(command) || 'serve-embedded';
  if (!AUDITED.has(action)) return undefined;
  const args = command.args.filter((arg) => typeof arg === 'string');
  // A wrapped migration command's arguments may carry a password (`flyway -password=…`): only
  // its program's name is recorded (the migration's own record keeps a hash of the whole line),
  // for `migrate` and for a drill's migration step (`drill --migrate -- …`).
  const target =
    action === 'migrate'
      ? path.basename(args[0] ?? '')
      : action === 'drill'
        ? args.length
          ? `migration ${path.basename(args[0]!)}`
          : ''
        : action === 'credentials rotate'
          ? rotatedName(command.opts<{ role?: string; user?: string }>())
          : args.join(' ');
  return { action, ...(target ? { target } : {}), startedAt: Date.now() };
}

/** What a rotation rotated: the role or Redis user's name (never the secret, which no flag holds). */
function rotatedName(options: { role?: string; user?: string }): string {
  if (options.role !== undefined) return `role ${options.role}`;
  return options.user !== undefined ? `redis user ${options.user}` : '';
}

/**
 * Appends the command's record to the audit log of the repository it worked on. A repository
 * that does not exist has nothing to protect yet (a command that failed before creating it).
 * A record that cannot be written is said on stderr: the command's own outcome stands, and
 * `warden audit verify` shows the log as it is.
 */
export async function recordCommand(
  context: CommandContext,
  command: AuditedCommand,
  outcome: { exitCode: number; error?: unknown },
): Promise<void> {
  try {
    // The repository first: a command that created none (or none exists) records nothing and
    // must not create a signing key as a side effect.
    const meta = await Repository.open(context.store);
    const repository = await Repository.open(meta.store, { signingKey: await context.signingKey() });
    const failed = outcome.exitCode !== 0 || outcome.error !== undefined;
    await appendAudit(repository, {
      actor: currentActor(),
      action: command.action,
      outcome: failed ? 'failed' : 'succeeded',
      ...(outcome.error !== undefined ? { code: toWardenError(outcome.error).code } : {}),
      ...(command.target ? { target: command.target } : {}),
      durationMs: Date.now() - command.startedAt,
    });
  } catch (error) {
    if (isWardenError(error, 'WARDEN_E_REPO_NOT_INITIALIZED')) return;
    process.stderr.write(
      `warning: the audit log could not record this command: ${toWardenError(error).message}\n`,
    );
  }
}
