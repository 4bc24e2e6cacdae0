import path from 'node:path';
import { WardenError } from '../../errors.ts';
import { removeIncompleteRestore } from '../../restore/target-dir.ts';
import { restore, type RestoreReport } from '../../restore/restore.ts';
import type { RestoreTarget } from '../../restore/restore-planner.ts';
import { formatLsn, parseLsn } from '../../wal/lsn.ts';
import { formatInZone, parseTargetTime } from '../../restore/target-time.ts';
import type { CommandContext } from '../context.ts';
import { walGetCommandLine } from '../wal-get-command-line.ts';
import { dumpRestoreCommand } from './dump.ts';
import { formatDuration, printJson, printSteps } from '../render.ts';

export interface RestoreFlags {
  toTime?: string;
  timezone?: string;
  toLsn?: string;
  toName?: string;
  latest?: boolean;
  backup?: string;
  targetDir?: string;
  port?: string;
  start?: boolean;
  dump?: string;
  targetDatabase?: string;
  cleanIncomplete?: boolean;
  standby?: boolean;
  primaryConninfo?: string;
  restoreCommand?: string;
  /** The standby's primary_slot_name (`--slot`, a global option). */
  slot?: string;
  config?: string;
}

/** `warden restore`: into a new data directory, optionally started. */
export async function restoreCommand(
  context: CommandContext,
  flags: RestoreFlags,
  signal?: AbortSignal,
): Promise<number> {
  if (flags.dump !== undefined || flags.targetDatabase !== undefined)
    return dumpRestoreCommand(context, flags, signal);
  if (!flags.targetDir)
    throw new WardenError('WARDEN_E_USAGE', '--target-dir is required', {
      hint: 'Name a new, empty directory.',
    });
  if (flags.cleanIncomplete && !chosenTargets(flags).length) return cleanOnly(context, flags.targetDir);
  if (flags.standby) return standbyCommand(context, flags, signal);
  if (flags.primaryConninfo !== undefined || flags.restoreCommand !== undefined)
    throw new WardenError('WARDEN_E_USAGE', '--primary-conninfo and --restore-command go with --standby');
  const target = parseTarget(flags);
  const resolved = describeTarget(target, flags.timezone);
  // Before the work: a target read in the wrong zone is seen before minutes of restoring.
  if (!context.json) process.stdout.write(`restoring to ${resolved.text}\n`);
  const report = await restore({
    store: context.store,
    target,
    targetDir: flags.targetDir,
    start: flags.start === true,
    ...(flags.port ? { port: parsePort(flags.port) } : {}),
    keys: await context.readKeys(),
    logger: context.logger,
    cleanIncomplete: flags.cleanIncomplete === true,
    ...(signal ? { signal } : {}),
  });
  const how = howToUse(report, context);
  if (context.json) {
    printJson({
      ...report,
      resolvedTarget: resolved.json,
      ...(report.port !== undefined && flags.start
        ? { connect: how.connect, stop: how.stop }
        : { start: how.start }),
    });
    return 0;
  }
  process.stdout.write(`restored backup ${report.backupId} into ${report.targetDir}\n`);
  printSteps(report.steps);
  process.stdout.write(`target: ${resolved.text}\n`);
  if (report.recovered) {
    const { recovered } = report;
    const commit = recovered.lastCommitTime
      ? `last commit ${recovered.lastCommitTime}${recovered.lastCommitLsn ? ` (LSN ${recovered.lastCommitLsn})` : ''}${flags.timezone && recovered.lastCommitTime ? ` = ${formatInZone(new Date(recovered.lastCommitTime), flags.timezone)}` : ''}`
      : 'no commit replayed';
    process.stdout.write(
      `recovered to: LSN ${recovered.lsn} (end of replay; timeline ${recovered.timeline} starts there), ${commit}\n`,
    );
  }
  if (report.port !== undefined && flags.start) {
    process.stdout.write(
      `instance serving on 127.0.0.1:${report.port}; restore took ${formatDuration(report.restoreMs)}\n`,
    );
    process.stdout.write(`connect: ${how.connect}\n`);
    process.stdout.write(`stop it:  ${how.stop}\n`);
  } else {
    process.stdout.write(
      `start it: ${how.start}  (${formatDuration(report.restoreMs)}); recovery to the target runs then\n`,
    );
  }
  return 0;
}

/** The resolved target, in UTC and in the zone given, for people and for `--json`. */
function describeTarget(
  target: RestoreTarget,
  timeZone: string | undefined,
): { text: string; json: Record<string, unknown> } {
  switch (target.kind) {
    case 'time': {
      const utc = target.time.toISOString();
      const inZone = timeZone ? formatInZone(target.time, timeZone) : undefined;
      return {
        text: `${utc} (UTC)${inZone ? ` = ${inZone}` : ''}`,
        json: { kind: 'time', utc, ...(timeZone ? { timeZone, inZone } : {}) },
      };
    }
    case 'lsn':
      return { text: `LSN ${formatLsn(target.lsn)}`, json: { kind: 'lsn', lsn: formatLsn(target.lsn) } };
    case 'name':
      return { text: `restore point "${target.name}"`, json: { kind: 'name', name: target.name } };
    case 'backup':
      return { text: `the end of backup ${target.id}`, json: { kind: 'backup', id: target.id } };
    case 'latest':
      return { text: 'the latest point the repository holds', json: { kind: 'latest' } };
  }
}

/**
 * How to reach and stop the restored instance, as the OS user that runs it: as root that is
 * another user (os-user.ts), and pg_ctl refuses to run as root. The role to log in as is one of
 * the source cluster's (the restore has its roles and passwords): the configured user if known.
 */
function howToUse(
  report: RestoreReport,
  context: CommandContext,
): { connect: string; stop: string; start: string } {
  const pgCtl = report.binDir ? path.join(report.binDir, 'pg_ctl') : 'pg_ctl';
  const dir = shellQuote(report.targetDir);
  const asServerUser = (command: string) =>
    report.serverUser ? `su ${report.serverUser} -s /bin/sh -c ${shellQuote(command)}` : command;
  const user = context.config.cluster?.user;
  return {
    connect: `psql "host=127.0.0.1 port=${report.port ?? 5432} user=${user ?? '<a role of the source cluster>'} dbname=postgres"`,
    stop: asServerUser(`${shellQuote(pgCtl)} stop -D ${dir}`),
    start: asServerUser(
      `${shellQuote(pgCtl)} start -D ${dir} -l ${shellQuote(path.join(report.targetDir, 'server.log'))}`,
    ),
  };
}

function shellQuote(text: string): string {
  return /^[\w./=:@%+-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/** `--clean-incomplete` with no point to restore to: only removes an incomplete restore. */
async function cleanOnly(context: CommandContext, targetDir: string): Promise<number> {
  const dir = path.resolve(targetDir);
  const removed = await removeIncompleteRestore(dir);
  if (context.json) printJson({ targetDir: dir, removed });
  else
    process.stdout.write(
      removed
        ? `removed the incomplete restore in ${dir}; it is as it was before that restore\n`
        : `${dir} holds no incomplete restore; nothing removed\n`,
    );
  return 0;
}

function chosenTargets(flags: RestoreFlags): unknown[] {
  return [flags.toTime, flags.toLsn, flags.toName, flags.latest, flags.backup].filter(
    (v) => v !== undefined && v !== false,
  );
}

function parseTarget(flags: RestoreFlags): RestoreTarget {
  const chosen = chosenTargets(flags);
  if (chosen.length !== 1) {
    throw new WardenError(
      'WARDEN_E_USAGE',
      'give exactly one of --to-time, --to-lsn, --to-name, --latest, --backup',
      {
        hint: 'e.g. warden restore --to-time "2026-11-22 10:15:00+00" --target-dir /srv/restored',
      },
    );
  }
  if (flags.timezone !== undefined && !flags.toTime)
    throw new WardenError('WARDEN_E_USAGE', '--timezone only applies to --to-time', {
      hint: 'Drop --timezone, or give the point with --to-time.',
    });
  if (flags.toTime) return { kind: 'time', time: parseTargetTime(flags.toTime, flags.timezone).time };
  if (flags.toLsn) return { kind: 'lsn', lsn: parseLsn(flags.toLsn) };
  if (flags.toName) return { kind: 'name', name: flags.toName };
  if (flags.backup) return { kind: 'backup', id: flags.backup };
  return { kind: 'latest' };
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw new WardenError('WARDEN_E_USAGE', `--port: "${value}" is not a port`);
  return port;
}

/**
 * `warden restore --standby`: the newest backup, made a standby that fetches its WAL through
 * `warden wal get` (restore_command) and then streams from `--primary-conninfo` (when given)
 * through `--slot` (when given). Not started: its server user starts it, or Patroni does.
 */
async function standbyCommand(
  context: CommandContext,
  flags: RestoreFlags,
  signal?: AbortSignal,
): Promise<number> {
  if (chosenTargets(flags).some((chosen) => chosen !== flags.latest) || flags.start)
    throw new WardenError('WARDEN_E_USAGE', '--standby restores the newest backup and is not started', {
      hint: 'Drop --to-time/--to-lsn/--to-name/--backup and --start: a standby follows its primary.',
    });
  const restoreCommand = flags.restoreCommand ?? (await walGetCommandLine(context, flags.config));
  const report = await restore({
    store: context.store,
    target: { kind: 'latest' },
    targetDir: flags.targetDir!,
    ...(flags.port ? { port: parsePort(flags.port) } : {}),
    keys: await context.readKeys(),
    logger: context.logger,
    cleanIncomplete: flags.cleanIncomplete === true,
    standby: {
      restoreCommand,
      ...(flags.primaryConninfo !== undefined ? { primaryConninfo: flags.primaryConninfo } : {}),
      ...(flags.slot !== undefined ? { slot: flags.slot } : {}),
    },
    ...(signal ? { signal } : {}),
  });
  const how = howToUse(report, context);
  if (context.json) {
    printJson({ ...report, restoreCommand, start: how.start });
    return 0;
  }
  process.stdout.write(`restored backup ${report.backupId} into ${report.targetDir} as a standby\n`);
  printSteps(report.steps);
  process.stdout.write(`restore_command: ${restoreCommand}\n`);
  process.stdout.write(`start it: ${how.start}  (it catches up from the repository, then streams)\n`);
  return 0;
}
