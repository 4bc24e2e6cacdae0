import { Command, Option } from 'commander';
import { WardenError } from '../errors.ts';
import type { ExpireFlags } from './commands/expire.ts';
import type { RestoreFlags } from './commands/restore.ts';
import type { ServeFlags } from './commands/serve.ts';
import { createContext, type CommandContext, type GlobalOptions } from './context.ts';
import type { KeygenFlags } from './commands/repo-keygen.ts';
import type { RepoCopyFlags } from './commands/repo-copy.ts';
import type { RepoSignFlags } from './commands/repo-sign.ts';
import type { SlotDropFlags } from './commands/slot-drop.ts';
import { reportError } from './render.ts';

/** First SIGINT/SIGTERM: stop gracefully through the signal. Second: exit at once. */
function shutdownSignal(): AbortSignal {
  const controller = new AbortController();
  let count = 0;
  const onSignal = () => {
    count += 1;
    if (count === 1) controller.abort();
    else process.exit(130);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return controller.signal;
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

async function execute(
  options: GlobalOptions,
  action: (context: CommandContext) => Promise<number>,
): Promise<void> {
  let code: number;
  try {
    code = await action(await createContext(options));
  } catch (error) {
    code = reportError(error, options.json === true);
  }
  process.exitCode = code;
}

export function buildProgram(): Command {
  const program = withGlobals(new Command('warden'))
    .description('Physical backups, continuous WAL and point-in-time restore for PostgreSQL')
    .showHelpAfterError()
    .action(async (options: GlobalOptions) =>
      execute(options, async (context) =>
        (await import('./commands/run.ts')).runEmbeddedCommand(context, shutdownSignal()),
      ),
    );

  const backup = withGlobals(program.command('backup').description('take a physical base backup now'))
    .option('--name <name>', 'descriptive name, kept until deleted (e.g. pre-v1.13.0-upgrade)')
    .option(
      '--incremental',
      'only what changed since the newest backup (PostgreSQL 17+ with summarize_wal = on); fails with the reason otherwise',
    )
    .addOption(new Option('--compression <kind>', 'compression').choices(['zstd', 'gzip', 'none']))
    .option('--server-compress', 'let the server compress (PostgreSQL 15+), saving client CPU')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & { name?: string; incremental?: boolean }>();
      await execute(options, async (context) =>
        (await import('./commands/backup.ts')).backupCommand(context, options),
      );
    });
  withGlobals(backup.command('list').description('list committed backups and the restorable window')).action(
    async (_options: GlobalOptions, command: Command) =>
      execute(command.optsWithGlobals(), async (context) =>
        (await import('./commands/backup-list.ts')).backupListCommand(context),
      ),
  );
  withGlobals(
    backup.command('show').argument('<id>', 'backup id or name').description('show one backup'),
  ).action(async (id: string, _options: GlobalOptions, command: Command) =>
    execute(command.optsWithGlobals(), async (context) =>
      (await import('./commands/backup-list.ts')).backupShowCommand(context, id),
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
      await execute(options, async (context) =>
        (await import('./commands/expire.ts')).backupDeleteCommand(context, id, options),
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
      await execute(options, async (context) =>
        (await import('./commands/expire.ts')).expireCommand(context, options),
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
      await execute(options, async (context) =>
        (await import('./commands/repo-keygen.ts')).repoKeygenCommand(context, options),
      );
    });
  withGlobals(
    repo.command('keys').description('which keys each backup and WAL range needs and was signed with'),
  ).action(async (_options: GlobalOptions, command: Command) =>
    execute(command.optsWithGlobals(), async (context) =>
      (await import('./commands/repo-keys.ts')).repoKeysCommand(context),
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
      await execute(options, async (context) =>
        (await import('./commands/repo-sign.ts')).repoSignCommand(context, options),
      );
    });
  withGlobals(repo.command('copy').description('copy committed backups and WAL to a second repository'))
    .requiredOption('--to <repo>', 'target repository: a directory or s3://bucket/prefix')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & RepoCopyFlags>();
      await execute(options, async (context) =>
        (await import('./commands/repo-copy.ts')).repoCopyCommand(context, options),
      );
    });

  const wal = program.command('wal').description('continuous WAL archiving');
  withGlobals(wal.command('stream').description('stream WAL into the repository until stopped')).action(
    async (_options: GlobalOptions, command: Command) =>
      execute(command.optsWithGlobals(), async (context) =>
        (await import('./commands/wal-stream.ts')).walStreamCommand(context, shutdownSignal()),
      ),
  );

  const slot = program.command('slot').description('replication slots: whose they are, what WAL they keep');
  withGlobals(
    slot.command('list').description("the cluster's slots: owner, active, retained WAL, wal_status"),
  ).action(async (_options: GlobalOptions, command: Command) =>
    execute(command.optsWithGlobals(), async (context) =>
      (await import('./commands/slot-list.ts')).slotListCommand(context),
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
      await execute(options, async (context) =>
        (await import('./commands/slot-drop.ts')).slotDropCommand(context, name, options),
      );
    });

  withGlobals(program.command('restore').description('restore into a new data directory'))
    .option('--to-time <time>', 'recover to this point in time (ISO 8601 with zone)')
    .option('--to-lsn <lsn>', 'recover to this WAL position')
    .option('--to-name <name>', 'recover to a named restore point (pg_create_restore_point)')
    .option('--latest', 'recover everything the repository holds')
    .option('--backup <id>', 'only this backup, consistent at its end')
    .option('--target-dir <dir>', 'new, empty directory for the restored cluster')
    .option('--port <port>', 'port for the restored instance (default: a free one)')
    .option('--start', 'start the instance and wait until it serves')
    .option('--dump <id>', 'restore a logical dump (with --target-database) instead of a backup')
    .option('--target-database <name>', 'new database to restore the dump into')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & RestoreFlags>();
      await execute(options, async (context) =>
        (await import('./commands/restore.ts')).restoreCommand(context, options),
      );
    });

  const dump = withGlobals(
    program
      .command('dump')
      .description('logical dump of one database (pg_dump custom format) into the repository'),
  )
    .option('--database <name>', 'database to dump')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & { database?: string }>();
      await execute(options, async (context) =>
        (await import('./commands/dump.ts')).dumpCommand(context, options, shutdownSignal()),
      );
    });
  withGlobals(dump.command('list').description('list committed logical dumps')).action(
    async (_options: GlobalOptions, command: Command) =>
      execute(command.optsWithGlobals(), async (context) =>
        (await import('./commands/dump.ts')).dumpListCommand(context),
      ),
  );

  withGlobals(
    program
      .command('verify')
      .description('check every object, backup and the WAL continuity of the repository'),
  ).action(async (_options: GlobalOptions, command: Command) =>
    execute(command.optsWithGlobals(), async (context) =>
      (await import('./commands/verify.ts')).verifyCommand(context, shutdownSignal()),
    ),
  );

  withGlobals(program.command('serve').description('the daemon: WAL stream, scheduled jobs, status API'))
    .option(
      '--profile <name>',
      'environment profile: dev, uat or prod (default prod; dev on the embedded default)',
    )
    .option('--http-port <port>', 'status API port (default 7480)')
    .option('--no-http', 'do not serve the status API')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & ServeFlags>();
      await execute(options, async (context) =>
        (await import('./commands/serve.ts')).serveCommand(context, options, shutdownSignal()),
      );
    });
  withGlobals(
    program
      .command('status')
      .description('protection status: WAL stream, window, backups, verification, drills'),
  )
    .option('--profile <name>', 'environment profile: dev, uat or prod')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & ServeFlags>();
      await execute(options, async (context) =>
        (await import('./commands/status.ts')).statusCommand(context, options),
      );
    });
  withGlobals(program.command('drill').description('DR drill: restore the latest point, measure RTO/RPO'))
    .option('--profile <name>', 'environment profile whose objectives apply: dev, uat or prod')
    .option('--rto <duration>', 'RTO objective, e.g. 15m (overrides the profile)')
    .option('--rpo <duration>', 'RPO objective, e.g. 1h (overrides the profile)')
    .action(async (_options: GlobalOptions, command: Command) => {
      const options = command.optsWithGlobals<GlobalOptions & ServeFlags>();
      await execute(options, async (context) =>
        (await import('./commands/drill.ts')).drillCommand(context, options, shutdownSignal()),
      );
    });

  program.exitOverride((error) => {
    if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') process.exit(0);
    throw new WardenError('WARDEN_E_USAGE', error.message);
  });
  return program;
}

export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (error) {
    process.exitCode = reportError(error, argv.includes('--json'));
  }
}
