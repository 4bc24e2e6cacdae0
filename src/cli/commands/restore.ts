import path from 'node:path';
import { WardenError } from '../../errors.ts';
import { removeIncompleteRestore } from '../../restore/target-dir.ts';
import { restore } from '../../restore/restore.ts';
import type { RestoreTarget } from '../../restore/restore-planner.ts';
import { parseLsn } from '../../wal/lsn.ts';
import type { CommandContext } from '../context.ts';
import { dumpRestoreCommand } from './dump.ts';
import { formatDuration, printJson, printSteps } from '../render.ts';

export interface RestoreFlags {
  toTime?: string;
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
  const report = await restore({
    store: context.store,
    target: parseTarget(flags),
    targetDir: flags.targetDir,
    start: flags.start === true,
    ...(flags.port ? { port: parsePort(flags.port) } : {}),
    keys: await context.readKeys(),
    logger: context.logger,
    cleanIncomplete: flags.cleanIncomplete === true,
    ...(signal ? { signal } : {}),
  });
  if (context.json) {
    printJson(report);
    return 0;
  }
  process.stdout.write(`restored backup ${report.backupId} into ${report.targetDir}\n`);
  printSteps(report.steps);
  if (report.port !== undefined && flags.start) {
    process.stdout.write(
      `instance serving on 127.0.0.1:${report.port}; restore took ${formatDuration(report.restoreMs)}\n`,
    );
    process.stdout.write(`stop it with: pg_ctl stop -D ${report.targetDir}\n`);
  } else {
    process.stdout.write(
      `start it with: pg_ctl start -D ${report.targetDir}  (${formatDuration(report.restoreMs)})\n`,
    );
  }
  return 0;
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
  if (flags.toTime) {
    const time = new Date(flags.toTime);
    if (Number.isNaN(time.getTime())) {
      throw new WardenError('WARDEN_E_USAGE', `--to-time: "${flags.toTime}" is not a date-time`, {
        hint: 'Use ISO 8601 with a zone, e.g. 2026-11-22T10:15:00Z.',
      });
    }
    return { kind: 'time', time };
  }
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
