import { Command, Option } from 'commander';
import { EXIT, WardenError } from '../errors.ts';
import { abortedError } from '../util/abort.ts';
import type { AuditListFlags } from './commands/audit.ts';
import type { CheckFlags } from './commands/check.ts';
import type { MigrateFlags } from './commands/migrate.ts';
import type { CredentialsFlags } from './commands/credentials.ts';
import type { ExpireFlags } from './commands/expire.ts';
import type { RestoreFlags } from './commands/restore.ts';
import type { ServeFlags } from './daemon-plan.ts';
import type { DrillFlags } from './commands/drill.ts';
import { createContext, type CommandContext, type GlobalOptions } from './context.ts';
import type { KeygenFlags } from './commands/repo-keygen.ts';
import type { RepoCopyFlags } from './commands/repo-copy.ts';
import type { RepoSignFlags } from './commands/repo-sign.ts';
import type { SlotDropFlags } from './commands/slot-drop.ts';
import type { RuleFlags } from '../monitoring/rule-options.ts';
import type { CacheInvalidateFlags } from './commands/cache-invalidate.ts';
import type { PromoteFlags } from './commands/promote.ts';
import type { WalGetFlags } from './commands/wal-get.ts';
import type { RedisBackupFlags } from './commands/redis-backup.ts';
import type { RedisRestoreFlags } from './commands/redis-restore.ts';
import type { WalPrefetchFlags } from './commands/wal-prefetch.ts';
import { reportError } from './render.ts';
import { wardenVersion } from './version.ts';
import { commandPath, installHelp } from './help-text.ts';
import { closestName } from './suggest.ts';
import { auditedCommand, recordCommand, type AuditedCommand } from './command-audit.ts';

/** The command about to run, when the audit log records it (set by the program's preAction hook). */
let pendingAudit: AuditedCommand | undefined;

/**
 * What the first SIGINT/SIGTERM does to a command: `stop` aborts the signal it was given (it
 * stops, removes what it created and releases its locks, then exits 130); `exit` ends a command
 * that only reads at once. The second signal always ends the process at once.
 */
type OnInterrupt = 'stop' | 'exit';

function shutdownSignal(onInterrupt: OnInterrupt): AbortSignal {
  const controller = new AbortController();
  let count = 0;
  const onSignal = () => {
    count += 1;
    if (count === 1 && onInterrupt === 'stop') controller.abort();
    else exitNow();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
}

/**
 * Ends the process at once, whatever it waits for: by SIGINT's default action, which a shell
 * reports as status 130. process.exit() first waits for the thread pool, and a file read that
 * hangs in the kernel (a stalled mount, a pipe nobody writes) would hold it forever.
 */
function exitNow(): never {
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  process.kill(process.pid, 'SIGINT');
  return process.exit(EXIT.interrupted);
}

function withGlobals(command: Command): Command {
  return command
    .option('--config <file>', 'YAML config file (default ./warden.yaml if present)')
    .option(
      '--db <url>',
      'cluster connection URL (else WARDEN_DB, PG* variables, config, or the running embedded default)',
    )
    .option('--password-file <file>', 'file whose first line is the cluster password (safer than a URL)')
    .option(
      '--password-command <cmd>',
      'program that prints the cluster password (run without a shell, e.g. "vault kv get -field=pw secret/pg")',
    )
    .option('--repo <dir>', 'repository directory or s3://bucket/prefix (default ./.warden/repo)')
    .option(
      '--repo-group <group>',
      'let this OS group read the repository directory (modes 0750/0640; default: owner only, 0700/0600)',
    )
    .option(
      '--slot <name>',
      "physical replication slot (default: the repository's own, recorded in warden-repo.json)",
    )
    .option('--recipient <age1...>', 'encrypt new objects to this age public key (repeatable)', collect)
    .option('--recipients-file <file>', 'encrypt to the age1... public keys in this file')
    .option(
      '--identity <file>',
      'age identity file (AGE-SECRET-KEY-1...) to decrypt with (repeatable)',
      collect,
    )
    .option('--passphrase-file <file>', 'passphrase mode: the repository key is protected by this passphrase')
    .option('--no-encryption', 'store objects unencrypted (encryption is on by default)')
    .option('--signing-key <file>', 'Ed25519 key that signs new records (default ./.warden/signing-key)')
    .option('--trust-key <wardensig1...>', 'accept records signed by this public key (repeatable)', collect)
    .option('--trusted-keys-file <file>', 'accept records signed by the wardensig1... keys in this file')
    .option('--allow-unsigned', 'accept unsigned records (repositories from before signing), with a warning')
    .option('--json', 'machine-readable output');
}

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/**
 * Runs one command with signal handling installed. A command that fails after it was told to
 * stop was interrupted, whatever it failed with while stopping: WARDEN_E_ABORTED, exit 130.
 * One that finishes anyway (a stream stopped as asked, a backup committed just before) keeps
 * its own status.
 */
async function execute(
  options: GlobalOptions,
  action: (context: CommandContext, signal: AbortSignal) => Promise<number>,
  onInterrupt: OnInterrupt = 'stop',
): Promise<void> {
  const signal = shutdownSignal(onInterrupt);
  let code: number;
  let context: CommandContext | undefined;
  let failure: unknown;
  try {
    context = await createContext(options);
    code = await action(context, signal);
  } catch (error) {
    failure = signal.aborted ? abortedError('the command', error) : error;
    code = reportError(failure, options.json === true);
  }
  if (pendingAudit && context)
    await recordCommand(context, pendingAudit, {
      exitCode: code,
      ...(failure !== undefined ? { error: failure } : {}),
    });
  process.exitCode = code;
}

/** As `execute`, for a command that loads its configuration itself (`check` reports a bad one as a check). */
async function executeLoadingConfig(
  options: GlobalOptions,
  action: (signal: AbortSignal) => Promise<number>,
): Promise<void> {
  const signal = shutdownSignal('stop');
  let code: number;
  try {
    code = await action(signal);
  } catch (error) {
    code = reportError(signal.aborted ? abortedError('the command', error) : error, options.json === true);
  }
  process.exitCode = code;
}

export function buildProgram(): Command {
  const program = withGlobals(new Command('warden'))
    .description('Physical backups, continuous WAL and point-in-time restore for PostgreSQL')
    .version(wardenVersion(), '-V, --version', 'print the version')
    .action(async (options: GlobalOptions, command: Command) => {
      if (command.args.length) return helpOrUnknown(command);
      return execute(options, async (context, signal) =>
        (await import('./commands/embedded.ts')).runEmbeddedCommand(context, signal),
      );
    });

  const backup = withGlobals(program.command('backup').description('take a physical base backup now'))
    .option('--name <name>', 'descriptive name, kept until deleted (e.g. pre-v1.13.0-upgrade)')
    .option(
      '--incremental',
      'only what changed since the newest backup (PostgreSQL 17+ with summarize_wal = on); fails with the reason otherwise',
    )
    .addOption(new Option('--compression <kind>', 'compression').choices(['zstd', 'gzip', 'none']))
    .option('--server-compress', 'let the server compress (PostgreSQL 15+), saving client CPU')
    .option(
      '--from <where>',
      "where BASE_BACKUP runs: primary, standby (the least-behind streaming standby), standby-or-primary, a member name, or a standby's postgres:// URL (default: WARDEN_BACKUP_FROM, cluster.backup.from, else primary)",
    )
    .action(async (_options: GlobalOptions, command: Command) => {
      if (command.args.length) return helpOrUnknown(command);
      const options = command.optsWithGlobals<
        GlobalOptions & { name?: string; incremental?: boolean; from?: string }
      >();
      await execute(options, async (context, signal) =>
        (await import('./commands/backup.ts')).backupCommand(context, options, signal),
      );
    });
  withGlobals(backup.command('list').description('list committed backups and the restorable window')).action(
    async (_options: GlobalOptions, command: Command) =>
      execute(
        command.optsWithGlobals(),
        async (context) => (await import('./commands/backup-list.ts')).backupListCommand(context),
        'exit',
      ),
  );
  withGlobals(
    backup.command('show').argument('<id>', 'backup id or name').description('show one backup'),
  ).action(async (id: string, _options: GlobalOptions, command: Command) =>
    execute(
      command.optsWithGlobals(),
      async (context) => (await import('./commands/backup-list.ts')).backupShowCommand(context, id),
      'exit',
    ),
  );

  withGlobals(
    backup
      .command('delete')
      .argument('<id>', 'backup id or name')
      .description('delete one backup (the only way a named backup goes)'),
  )
    .option('--force', 'also delete the newest restorable backup')
    .action(async (id: string, _options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & { force?: boolean }>();
      await execute(options, async (context, signal) =>
        (await import('./commands/backup-delete.ts')).backupDeleteCommand(context, id, options, signal),
      );
    });

  withGlobals(program.command('expire').description('delete backups and WAL the retention policy lets go'))
    .option('--dry-run', 'only show what would go and what stays, and why')
    .option('--keep-daily <n>', 'newest backup of each of the last N days (GFS)')
    .option('--keep-weekly <n>', 'newest backup of each of the last N weeks (GFS)')
    .option('--keep-monthly <n>', 'newest backup of each of the last N months (GFS)')
    .option('--keep-last <n>', 'newest N backups')
    .option('--max-age-full <duration>', 'every full backup younger than this (e.g. 90d)')
    .option('--max-age-incremental <duration>', 'every incremental backup younger than this (e.g. 7d)')
    .option('--recovery-window <duration>', 'restorable to any second in the last DURATION (e.g. 7d)')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & ExpireFlags>();
      await execute(options, async (context, signal) =>
        (await import('./commands/expire.ts')).expireCommand(context, options, signal),
      );
    });

  const repo = program.command('repo').description('repository keys');
  withGlobals(
    repo
      .command('keygen')
      .description('print a new age identity (or, with --signing, a signing key) and its public key'),
  )
    .option('-o, --output <file>', 'write the key to this file (mode 0600) instead of stdout')
    .option('--signing', 'an Ed25519 signing key (WARDEN-SIGNING-KEY-1..., public wardensig1...)')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & KeygenFlags>();
      await execute(
        options,
        async (context) => (await import('./commands/repo-keygen.ts')).repoKeygenCommand(context, options),
        'exit',
      );
    });
  withGlobals(
    repo.command('keys').description('which keys each backup and WAL range needs and was signed with'),
  ).action(async (_options: GlobalOptions, command: Command) =>
    execute(
      command.optsWithGlobals(),
      async (context) => (await import('./commands/repo-keys.ts')).repoKeysCommand(context),
      'exit',
    ),
  );
  withGlobals(
    repo
      .command('sign')
      .description('sign the records of a repository written before signing, after checking their objects'),
  )
    .option('--yes', 'sign (without it: only show what would be signed)')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & RepoSignFlags>();
      // Each signature is one atomic write: nothing to undo, so the first signal ends it.
      await execute(
        options,
        async (context) => (await import('./commands/repo-sign.ts')).repoSignCommand(context, options),
        'exit',
      );
    });
  withGlobals(repo.command('copy').description('copy committed backups and WAL to a second repository'))
    .requiredOption('--to <repo>', 'target repository: a directory or s3://bucket/prefix')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & RepoCopyFlags>();
      await execute(options, async (context, signal) =>
        (await import('./commands/repo-copy.ts')).repoCopyCommand(context, options, signal),
      );
    });

  const wal = program.command('wal').description('continuous WAL archiving');
  withGlobals(wal.command('stream').description('stream WAL into the repository until stopped'))
    .option(
      '--continue-after-gap',
      'when the server no longer has WAL the repository lacks: record the gap and stream on from the server (default: record it and exit 5)',
    )
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & { continueAfterGap?: boolean }>();
      await execute(options, async (context, signal) =>
        (await import('./commands/wal-stream.ts')).walStreamCommand(context, signal, {
          continueAfterGap: options.continueAfterGap === true,
        }),
      );
    });

  withGlobals(
    wal
      .command('get')
      .argument('<file>', 'the WAL file PostgreSQL asks for (%f)')
      .argument('<path>', 'where to write it (%p)')
      .description('restore_command: fetch one WAL file from the repository (exit 1: not there)'),
  )
    .option('--prefetch <n>', 'segments a background prefetcher keeps ready ahead (default 8, 0: none)')
    .option('--spool-dir <dir>', 'where prefetched segments wait (default: pg_wal/warden-spool)')
    .option('--prefetch-idle <seconds>', 'the prefetcher stops after this long unused (default 10)')
    .action(async (file: string, target: string, _options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & WalGetFlags>();
      await execute(
        options,
        async (context) =>
          (await import('./commands/wal-get.ts')).walGetCommand(context, file, target, options),
        'exit',
      );
    });
  // Started detached by `wal get`'s fast path (bin/wal-get-fast.js) with its own flags.
  withGlobals(
    wal
      .command('prefetch', { hidden: true })
      .argument('<file>', "the segment the starting call asked for (also in the spool's want file)")
      .description("wal get's background prefetcher"),
  )
    .requiredOption('--spool <dir>', 'the spool directory to fill')
    .option('--prefetch <n>', 'segments kept ready ahead')
    .option('--spool-dir <dir>', 'ignored (wal get chose the spool)')
    .option('--prefetch-idle <seconds>', 'stop after this long unused')
    .action(async (file: string, _options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & WalPrefetchFlags>();
      await execute(options, async (context, signal) =>
        (await import('./commands/wal-prefetch.ts')).walPrefetchCommand(context, file, options, signal),
      );
    });
  withGlobals(
    wal
      .command('push')
      .argument('<path>', 'the WAL file PostgreSQL finished (%p)')
      .description(
        'archive_command: archive one WAL file (idempotent; a different file of that name is refused)',
      ),
  ).action(async (file: string, _options: GlobalOptions, command: Command) => {
    const options = command.optsWithGlobals<GlobalOptions>();
    await execute(options, async (context, signal) =>
      (await import('./commands/wal-push.ts')).walPushCommand(context, file, signal),
    );
  });

  const slot = program.command('slot').description('replication slots: whose they are, what WAL they keep');
  withGlobals(
    slot.command('list').description("the cluster's slots: owner, active, retained WAL, wal_status"),
  ).action(async (_options: GlobalOptions, command: Command) =>
    execute(
      command.optsWithGlobals(),
      async (context) => (await import('./commands/slot-list.ts')).slotListCommand(context),
      'exit',
    ),
  );
  withGlobals(
    slot
      .command('drop')
      .argument('<name>', 'slot name')
      .description('drop a slot; refuses while the repository lacks WAL it holds'),
  )
    .option('--force', 'drop it anyway (the message says which WAL is then lost)')
    .action(async (name: string, _options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & SlotDropFlags>();
      // One statement on the server: nothing to undo, so the first signal ends it.
      await execute(
        options,
        async (context) => (await import('./commands/slot-drop.ts')).slotDropCommand(context, name, options),
        'exit',
      );
    });

  withGlobals(program.command('restore').description('restore into a new data directory'))
    .option(
      '--to-time <time>',
      'recover to this point in time (ISO 8601 with zone, e.g. 2026-11-22T10:15:00Z)',
    )
    .option('--timezone <zone>', 'IANA zone to read a --to-time without one in (e.g. Europe/Berlin)')
    .option('--to-lsn <lsn>', 'recover to this WAL position')
    .option('--to-name <name>', 'recover to a named restore point (pg_create_restore_point)')
    .option('--latest', 'recover everything the repository holds')
    .option('--backup <id>', 'only this backup, consistent at its end')
    .option('--target-dir <dir>', 'new, empty directory for the restored cluster')
    .option(
      '--clean-incomplete',
      'first remove an interrupted restore found in --target-dir (alone: only remove it)',
    )
    .option('--port <port>', 'port for the restored instance (default: a free one)')
    .option(
      '--standby',
      'make it a standby: standby.signal, restore_command = warden wal get (with --slot: primary_slot_name)',
    )
    .option(
      '--primary-conninfo <conninfo>',
      'with --standby: the primary to stream from (no password: use ~/.pgpass or passfile=)',
    )
    .option(
      '--restore-command <command>',
      'with --standby: the restore_command to write instead of warden wal get',
    )
    .option('--start', 'start the instance and wait until it serves')
    .option('--dump <id>', 'restore a logical dump (with --target-database) instead of a backup')
    .option('--target-database <name>', 'new database to restore the dump into')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & RestoreFlags>();
      await execute(options, async (context, signal) =>
        (await import('./commands/restore.ts')).restoreCommand(context, options, signal),
      );
    });

  const dump = withGlobals(
    program
      .command('dump')
      .description('logical dump of one database (pg_dump custom format) into the repository'),
  )
    .option('--database <name>', 'database to dump')
    .action(async (_options: GlobalOptions, command: Command) => {
      if (command.args.length) return helpOrUnknown(command);
      const options = command.optsWithGlobals<GlobalOptions & { database?: string }>();
      await execute(options, async (context, signal) =>
        (await import('./commands/dump.ts')).dumpCommand(context, options, signal),
      );
    });
  withGlobals(dump.command('list').description('list committed logical dumps')).action(
    async (_options: GlobalOptions, command: Command) =>
      execute(
        command.optsWithGlobals(),
        async (context) => (await import('./commands/dump.ts')).dumpListCommand(context),
        'exit',
      ),
  );

  withGlobals(
    program
      .command('verify')
      .description('check every object, backup and the WAL continuity of the repository'),
  ).action(async (_options: GlobalOptions, command: Command) =>
    execute(command.optsWithGlobals(), async (context, signal) =>
      (await import('./commands/verify.ts')).verifyCommand(context, signal),
    ),
  );

  const cache = program.command('cache').description("the applications' caches (docs/cache-coherence.md)");
  withGlobals(
    cache
      .command('invalidate')
      .description('after a restore cut-over: bump the generation, clear the prefixes, tell every instance'),
  )
    .requiredOption('--reason <text>', 'what changed (logged and sent with the message)')
    .option('--cluster <name>', 'the cluster whose cache: section applies (when several have one)')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & CacheInvalidateFlags>();
      await execute(
        options,
        async (context) =>
          (await import('./commands/cache-invalidate.ts')).cacheInvalidateCommand(context, options),
        'exit',
      );
    });

  withGlobals(program.command('serve').description('the daemon: WAL stream, scheduled jobs, status API'))
    .option(
      '--profile <name>',
      'environment profile: dev, uat or prod (default prod; dev on the embedded default)',
    )
    .option('--http-port <port>', 'status API port (default 7480)')
    .option('--no-http', 'do not serve the status API')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & ServeFlags>();
      await execute(options, async (context, signal) =>
        (await import('./commands/serve.ts')).serveCommand(context, options, signal),
      );
    });
  withGlobals(
    program
      .command('check')
      .description(
        'is everything in place? configuration, connection and TLS, privileges, settings, slot, repository, keys, clock, free space, a WAL round trip',
      ),
  )
    .option(
      '--restore-dir <dir>',
      'where restores would go: its free space is checked (default: the current directory)',
    )
    .option('--wal-timeout <duration>', 'how long the WAL round trip waits for its segment (default 60s)')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & CheckFlags>();
      await executeLoadingConfig(options, async (signal) =>
        (await import('./commands/check.ts')).checkCommand(options, signal),
      );
    });
  withGlobals(
    program
      .command('status')
      .description('protection status: WAL stream, window, backups, verification, drills'),
  )
    .option(
      '--profile <name>',
      'judge by this profile: dev, uat or prod (default: the config, else what the daemon recorded in the repository)',
    )
    .option('--rto <duration>', 'RTO objective, e.g. 15m (overrides the profile)')
    .option('--rpo <duration>', 'RPO objective, e.g. 1h (overrides the profile)')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & ServeFlags>();
      await execute(
        options,
        async (context) => (await import('./commands/status.ts')).statusCommand(context, options),
        'exit',
      );
    });
  withGlobals(
    program
      .command('info')
      .description('one view per cluster: backups, chains, window, WAL, keys, slot, verification, drill'),
  ).action(async (_options: GlobalOptions, command: Command) => {
    const options = command.optsWithGlobals<GlobalOptions & ServeFlags>();
    await execute(
      options,
      async (context) => (await import('./commands/info.ts')).infoCommand(context, options),
      'exit',
    );
  });
  withGlobals(
    program
      .command('switchover')
      .description('hand the lead to another member through Patroni; check the stream followed'),
  )
    .option('--candidate <name>', 'the Patroni member to lead (Patroni picks when absent)')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & { candidate?: string }>();
      await execute(options, async (context, signal) =>
        (await import('./commands/switchover.ts')).switchoverCommand(context, options, signal),
      );
    });
  withGlobals(
    program
      .command('promote')
      .argument('<name>', 'the standby to promote (host:port as in the host list)')
      .description(
        'guarded promotion for bare streaming replication: refuses unless the old primary is fenced',
      ),
  )
    .option('--old-primary-fenced', 'the old primary is stopped for good (you did it and checked)')
    .option('--fencing-command <command>', 'program that fences the old primary; must exit 0 first')
    .option(
      '--max-lag-bytes <n>',
      'how far the candidate may be behind the most advanced standby (default 0)',
    )
    .action(async (name: string, _options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & PromoteFlags>();
      await execute(
        options,
        async (context) => (await import('./commands/promote.ts')).promoteCommand(context, name, options),
        'exit',
      );
    });
  withGlobals(
    program
      .command('drill')
      .argument('[migration...]', 'with --migrate: the migration command and its arguments, after --')
      .description('DR drill: restore the latest point, measure RTO/RPO'),
  )
    .option('--profile <name>', 'environment profile whose objectives apply: dev, uat or prod')
    .option('--rto <duration>', 'RTO objective, e.g. 15m (overrides the profile)')
    .option('--rpo <duration>', 'RPO objective, e.g. 1h (overrides the profile)')
    .option('--migrate', 'run the migration command after -- against the restored copy once it is checked')
    .option('--migrate-timeout <duration>', 'how long the migration step may run (default 10m)')
    .option('--migrate-database <name>', "database the migration connects to (default the connection's)")
    .action(async (migration: string[], _options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & DrillFlags>();
      await execute(options, async (context, signal) =>
        (await import('./commands/drill.ts')).drillCommand(context, options, signal, migration),
      );
    });

  const monitoring = program
    .command('monitoring')
    .description('Prometheus alerting rules and Grafana dashboards for Warden and its databases');
  monitoring
    .command('rules')
    .description('print Prometheus alerting rules (YAML) for PostgreSQL, Redis, the host, pools and backups')
    .option(
      '--hold-scale <factor>',
      'multiply every hold time (for:) by this factor in (0, 1], e.g. 0.01 for a demo',
    )
    .option('--backup-max-age <duration>', 'alert when the newest physical backup is older (default 9h)')
    .option('--slot-retained-max <size>', "alert when Warden's slot holds more WAL (default 10GiB)")
    .option('--failure-memory <duration>', 'how long a failed backup keeps its alert firing (default 1h)')
    .option('--runbook-base <url>', 'where docs/alerts.md is published (default docs/alerts.md)')
    .option('--json', 'errors as JSON')
    .action(async (_flags: unknown, command: Command) => {
      // Needs no context: the rules describe metrics, not a cluster or a repository.
      const flags = command.optsWithGlobals<RuleFlags & { json?: boolean }>();
      try {
        process.exitCode = (await import('./commands/monitoring-rules.ts')).monitoringRulesCommand(flags);
      } catch (error) {
        process.exitCode = reportError(error, flags.json === true);
      }
    });
  monitoring
    .command('dashboards')
    .description('write Grafana dashboards (JSON): overview, backups, PostgreSQL, Redis, data layer')
    .requiredOption('--out <dir>', 'directory to write the dashboard files into (created if missing)')
    .option('--json', 'machine-readable output')
    .action(async (_flags: unknown, command: Command) => {
      const flags = command.optsWithGlobals<{ out: string; json?: boolean }>();
      try {
        process.exitCode = await (
          await import('./commands/monitoring-dashboards.ts')
        ).monitoringDashboardsCommand(flags);
      } catch (error) {
        process.exitCode = reportError(error, flags.json === true);
      }
    });

  program
    .command('completion')
    .argument('<shell>', 'bash or zsh')
    .description('print a shell completion script (e.g. source <(warden completion bash))')
    .action(async (shell: string) => {
      // Needs no context (no config, cluster or repository): it only describes the program.
      try {
        process.exitCode = (await import('./commands/completion.ts')).completionCommand(program, shell);
      } catch (error) {
        process.exitCode = reportError(error, false);
      }
    });

  const migrate = withGlobals(
    program
      .command('migrate')
      .argument('[command...]', 'the migration command and its arguments, after --')
      .description(
        'run a migration guarded: one deploy at a time, the state before it restorable, the outcome recorded',
      ),
  )
    .option('--lock-timeout <duration>', "how long to wait for another deploy's migration (default 10m)")
    .option(
      '--protect <how>',
      'restore-point (default: a named backup when the WAL cannot reach one) or backup',
    )
    .option(
      '--protect-timeout <duration>',
      'how long the WAL up to the restore point may take to be durable (default 2m)',
    )
    .option(
      '--rollback-to-new-instance',
      'on failure, restore the state from before into --target-dir and start it',
    )
    .option('--target-dir <dir>', 'new, empty directory for --rollback-to-new-instance')
    .option('--port <port>', 'port for the rolled-back instance (default: a free one)')
    .action(async (migration: string[], _options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & MigrateFlags>();
      await execute(options, async (context, signal) =>
        (await import('./commands/migrate.ts')).migrateCommand(context, migration, options, signal),
      );
    });

  withGlobals(
    migrate
      .command('status')
      .description('which schema version the database is on, and the last guarded migrations'),
  ).action(async (_options: GlobalOptions, command: Command) =>
    execute(
      command.optsWithGlobals(),
      async (context) => (await import('./commands/migrate.ts')).migrateStatusCommand(context),
      'exit',
    ),
  );

  const redis = program
    .command('redis')
    .description('Redis backups: RDB snapshots into the repository (docs/redis-backups.md)');
  const withRedis = (command: Command) =>
    withGlobals(command)
      .option(
        '--redis <url>',
        'redis://host:port of the server, or of any cluster node (else WARDEN_REDIS_URL)',
      )
      .option(
        '--redis-password-file <file>',
        'file whose first line is the Redis password (else WARDEN_REDIS_PASSWORD)',
      );
  withRedis(
    redis.command('backup').description('an RDB snapshot of a standalone Redis or of every cluster master'),
  )
    .option('--cluster', 'the URL names a Redis Cluster node: back up every master and the slot map')
    .option(
      '--diskless',
      'ask masters with repl-diskless-sync to stream the snapshot without writing it to their disk',
    )
    .option('--max-rdb-size <size>', 'refuse a snapshot larger than this (default 64GiB)')
    .option('--name <name>', "this Redis's name in listings and retention (default: its address)")
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & RedisBackupFlags>();
      await execute(options, async (context, signal) =>
        (await import('./commands/redis-backup.ts')).redisBackupCommand(context, options, signal),
      );
    });
  withGlobals(redis.command('list').description('committed Redis backups')).action(
    async (_options: GlobalOptions, command: Command) =>
      execute(
        command.optsWithGlobals(),
        async (context) => (await import('./commands/redis-backup.ts')).redisListCommand(context),
        'exit',
      ),
  );
  withGlobals(
    redis
      .command('restore')
      .argument('<id>', 'Redis backup id')
      .description(
        'write dump.rdb files for new instances (--target-dir) or load the keys into an empty Redis (--to)',
      ),
  )
    .option(
      '--target-dir <dir>',
      'new or empty directory: dump.rdb, or one directory per cluster shard with the slot map',
    )
    .option('--to <url>', 'a running, empty standalone Redis or cluster node to load every key into')
    .option(
      '--redis-password-file <file>',
      "file whose first line is the target's password (else WARDEN_REDIS_PASSWORD)",
    )
    .action(async (id: string, _options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & RedisRestoreFlags>();
      await execute(options, async (context, signal) =>
        (await import('./commands/redis-restore.ts')).redisRestoreCommand(context, id, options, signal),
      );
    });
  withGlobals(
    redis
      .command('expire')
      .description('delete the Redis backups retention lets go (per Redis; the newest always stays)'),
  )
    .option('--keep-last <n>', 'keep the newest N backups of each Redis (default 7)')
    .option('--max-age <duration>', 'also keep every backup younger than this (e.g. 30d)')
    .option('--dry-run', 'only say what would be deleted')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<
        GlobalOptions & { keepLast?: string; maxAge?: string; dryRun?: boolean }
      >();
      await execute(options, async (context) =>
        (await import('./commands/redis-backup.ts')).redisExpireCommand(context, options),
      );
    });

  const credentials = program
    .command('credentials')
    .description('database and Redis passwords: rotation without downtime, connection details');
  const roleOption = () =>
    new Option('--role <name>', 'application role (credentials.postgres.<name> in warden.yaml)');
  const sinkOption = () =>
    new Option(
      '--sink-file <file>',
      'write the new secret to this file (atomically, mode 0600) instead of the configured sink',
    );
  withGlobals(
    credentials.command('setup').description('create the owner role and its two login roles where missing'),
  )
    .addOption(roleOption())
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & CredentialsFlags>();
      await execute(options, async (context) =>
        (await import('./commands/credentials.ts')).credentialsSetupCommand(context, options),
      );
    });
  withGlobals(
    credentials
      .command('rotate')
      .description(
        "give the inactive login a new password, hand it to the sink, make it active (or a Redis ACL user's)",
      ),
  )
    .addOption(roleOption())
    .addOption(sinkOption())
    .option(
      '--lock-timeout <duration>',
      'how long to wait for another rotation of the same role (default 30s)',
    )
    .option(
      '--redis <url>',
      'rotate a Redis ACL user instead: redis://[admin@]host:port (password in WARDEN_REDIS_PASSWORD)',
    )
    .option('--user <name>', 'the Redis ACL user whose password is rotated')
    .option(
      '--grace <duration>',
      'Redis: how long both passwords stay valid after the sink took the new one (default 0)',
    )
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & CredentialsFlags>();
      await execute(options, async (context) =>
        (await import('./commands/credentials.ts')).credentialsRotateCommand(context, options),
      );
    });
  withGlobals(
    credentials.command('show').description('connection details, the password redacted unless --reveal'),
  )
    .addOption(roleOption())
    .addOption(sinkOption())
    .option('--reveal', "print the password (from the configuration or the role's sink file)")
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & CredentialsFlags>();
      await execute(
        options,
        async (context) =>
          (await import('./commands/credentials.ts')).credentialsShowCommand(context, options),
        'exit',
      );
    });
  withGlobals(
    program
      .command('shell')
      .argument('[psql-args...]', 'arguments for psql, after --')
      .description(
        "open psql connected as Warden connects (or as a role's active login); the password never on a command line",
      ),
  )
    .addOption(roleOption())
    .addOption(sinkOption())
    .action(async (psqlArgs: string[], _options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & CredentialsFlags>();
      await execute(options, async (context) =>
        (await import('./commands/shell.ts')).shellCommand(context, options, psqlArgs),
      );
    });

  const audit = program.command('audit').description("the repository's tamper-evident audit log");
  withGlobals(audit.command('list').description('who did what, when, with what outcome'))
    .option('--since <time>', 'only records from this time on (ISO 8601 with zone)')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & AuditListFlags>();
      await execute(
        options,
        async (context) => (await import('./commands/audit.ts')).auditListCommand(context, options),
        'exit',
      );
    });
  withGlobals(
    audit
      .command('verify')
      .description('check the hash chain and the signed head: edits, deletions, reordering, truncation'),
  ).action(async (_options: GlobalOptions, command: Command) =>
    execute(
      command.optsWithGlobals(),
      async (context) => (await import('./commands/audit.ts')).auditVerifyCommand(context),
      'exit',
    ),
  );

  program.hook('preAction', (_program, actionCommand) => {
    pendingAudit = auditedCommand(actionCommand);
  });
  installHelp(program, GLOBAL_FLAGS);
  // Commands with both an action and subcommands see a mistyped subcommand as an operand.
  for (const command of [program, backup, dump]) command.allowExcessArguments(true);
  const strict = (command: Command) => {
    command.configureOutput({ outputError: () => undefined });
    command.exitOverride((error) => {
      if (error.exitCode === 0) process.exit(0);
      // A group (`warden repo`) without its subcommand has printed its help already.
      const message = error.code === 'commander.help' ? 'which one? a subcommand is needed' : error.message;
      throw usageError(command, message.replace(/^error: /, ''));
    });
    command.commands.forEach(strict);
  };
  strict(program);
  return program;
}

/** The long names of the options every command takes, shown once under `warden --help`. */
const GLOBAL_FLAGS: ReadonlySet<string> = new Set(
  withGlobals(new Command()).options.map((option) => option.long ?? option.flags),
);

function usageError(command: Command, message: string): WardenError {
  const path = commandPath(command);
  return new WardenError('WARDEN_E_USAGE', message, {
    hint: `\`warden ${path ? `${path} ` : ''}--help\` shows the usage and examples.`,
  });
}

/**
 * `warden help [command…]` prints that command's help; any other word where a command belongs
 * is refused with the nearest command's name, instead of being taken as an argument.
 */
function helpOrUnknown(command: Command): void {
  const [first, ...rest] = command.args;
  if (!command.parent && first === 'help') {
    let target: Command = command;
    for (const name of rest) {
      const sub = target.commands.find((c) => c.name() === name);
      if (!sub) throw unknownCommand(target, name);
      target = sub;
    }
    target.outputHelp();
    return;
  }
  throw unknownCommand(command, first!);
}

function unknownCommand(parent: Command, typed: string): WardenError {
  const names = parent.commands.map((c) => c.name());
  if (!parent.parent) names.push('help');
  const suggestion = closestName(typed, names);
  const where = commandPath(parent);
  return new WardenError(
    'WARDEN_E_USAGE',
    `unknown command '${where ? `${where} ` : ''}${typed}'${suggestion ? `, did you mean '${suggestion}'?` : ''}`,
    {
      hint: `\`warden ${where ? `${where} ` : ''}--help\` lists the commands: ${names.join(', ')}.`,
      details: { command: typed, ...(suggestion ? { suggestion } : {}) },
    },
  );
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    process.exitCode = reportError(error, argv.includes('--json'));
  }
}
