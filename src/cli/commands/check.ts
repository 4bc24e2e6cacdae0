import path from 'node:path';
import { failFrom, ok, skip, type CheckResult } from '../../check/check-result.ts';
import { reportOf, runChecks, type CheckReport } from '../../check/run-checks.ts';
import { DEFAULT_WAL_TIMEOUT_MS } from '../../check/wal-round-trip-check.ts';
import { parseDuration } from '../../util/duration.ts';
import { abortedError } from '../../util/abort.ts';
import { createContext, type CommandContext, type GlobalOptions } from '../context.ts';
import { printJson } from '../render.ts';

export interface CheckFlags {
  restoreDir?: string;
  walTimeout?: string;
}

/** Every check after `configuration`, listed as skipped when the configuration does not load. */
const AFTER_CONFIGURATION = [
  'connection',
  'replication-role',
  'pg_hba-replication',
  'wal_level',
  'max_wal_senders',
  'max_replication_slots',
  'slot',
  'clock',
  'repository',
  'encryption',
  'decryption',
  'signing-key',
  'restore-space',
  'wal-archive',
];

/**
 * `warden check`: is everything in place for backups, the WAL stream and restores? One line per
 * check with the fix; exits with the status of the first failed check's code (0 when none failed,
 * warnings included). It loads the configuration itself, so a configuration that does not load
 * is its first failed line rather than an error.
 */
export async function checkCommand(
  options: GlobalOptions & CheckFlags,
  signal: AbortSignal,
): Promise<number> {
  const json = options.json === true;
  const walTimeoutMs =
    options.walTimeout !== undefined
      ? parseDuration(options.walTimeout, '--wal-timeout')
      : DEFAULT_WAL_TIMEOUT_MS;
  let context: CommandContext;
  try {
    context = await createContext(options);
  } catch (error) {
    return render(
      reportOf([
        failFrom('configuration', error),
        ...AFTER_CONFIGURATION.map((name) => skip(name, 'not run: the configuration does not load')),
      ]),
      json,
    );
  }
  const { config } = context;
  let connection;
  try {
    connection = context.cluster();
  } catch (error) {
    connection = { error };
  }
  const configuration = ok(
    'configuration',
    `loaded: cluster from ${config.sources.cluster ?? (connection && !('error' in connection) ? 'the embedded default' : 'nowhere')}, repository ${config.repository.path} (${config.sources.repository ?? 'default'}), encryption ${config.repository.encryption.mode}`,
  );
  const checks = await runChecks({
    config,
    store: context.store,
    connection,
    restoreDir: path.resolve(options.restoreDir ?? process.cwd()),
    walTimeoutMs,
    logger: context.logger,
    signal,
  });
  if (signal.aborted) throw abortedError('warden check');
  return render(reportOf([configuration, ...checks]), json);
}

const MARKS: Record<CheckResult['status'], string> = { ok: 'ok  ', warn: 'WARN', fail: 'FAIL', skip: 'skip' };

function render(report: CheckReport, json: boolean): number {
  if (json) {
    printJson(report);
    return report.exitCode;
  }
  const width = Math.max(...report.checks.map((c) => c.name.length));
  for (const check of report.checks) {
    const code = check.code ? ` [${check.code}]` : '';
    process.stdout.write(`  ${MARKS[check.status]}  ${check.name.padEnd(width)}  ${check.message}${code}\n`);
    if (check.fix && check.status !== 'ok')
      process.stdout.write(`        ${' '.repeat(width)}  fix: ${check.fix}\n`);
  }
  const count = (status: CheckResult['status']) => report.checks.filter((c) => c.status === status).length;
  process.stdout.write(
    `${report.ok ? 'check passed' : 'check FAILED'}: ${count('ok')} ok, ${count('warn')} warning(s), ${count('fail')} failed, ${count('skip')} skipped${report.ok ? '' : ` (exit ${report.exitCode})`}\n`,
  );
  return report.exitCode;
}
