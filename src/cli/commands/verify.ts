import { ERROR_CODES } from '../../errors.ts';
import { verifyRepository, type VerifyReport } from '../../verify/repository-verify.ts';
import type { CommandContext } from '../context.ts';
import { printLeftovers } from './expire.ts';
import { formatBytes, formatDuration, printJson, printSteps } from '../render.ts';

/**
 * `warden verify`: checks every object, backup and the WAL continuity of the repository.
 * Exit status 0 when clean, 5 (WARDEN_E_REPO_VERIFY_PROBLEMS) when problems were found.
 */
export async function verifyCommand(context: CommandContext, signal?: AbortSignal): Promise<number> {
  const report = await verifyRepository({
    store: context.store,
    keys: await context.readKeys(),
    logger: context.logger,
    ...(signal ? { signal } : {}),
  });
  const status = report.ok ? 0 : ERROR_CODES.WARDEN_E_REPO_VERIFY_PROBLEMS.exit;
  if (context.json) {
    printJson(report);
    return status;
  }
  renderReport(report);
  return status;
}

function renderReport(report: VerifyReport): void {
  const out = (line = '') => process.stdout.write(`${line}\n`);
  const c = report.checked;
  out(`verify ${report.repository}`);
  printSteps(report.steps);
  out(
    `checked ${c.objects} object(s), ${formatBytes(c.bytes)}: ${c.backups} backup(s) with ${c.manifestFiles} manifest file(s), ${c.walSegments} WAL segment(s), ${c.dumps} dump(s) in ${formatDuration(report.durationMs)}`,
  );
  for (const backup of report.backups) {
    const to = backup.restorableTo;
    const verdict = !backup.restorable
      ? `UNRESTORABLE${backup.walContinuousTo ? `, WAL continuous to ${backup.walContinuousTo}` : ''}`
      : to?.gapAfter
        ? `restorable up to ${to.time} (LSN ${to.lsn}), then a WAL gap to ${to.gapAfter.to}`
        : `restorable${to ? ` up to ${to.time}` : ''}, WAL continuous to ${to?.lsn ?? backup.walContinuousTo}`;
    out(`  backup ${backup.id}${backup.name ? ` (${backup.name})` : ''}: ${verdict}`);
  }
  const modes = report.modes;
  if (modes?.looseCount) {
    out(`warning: ${modes.looseCount} repository entries are open to more users than ${modes.policy}:`);
    for (const entry of modes.loose) out(`  ${entry.mode} ${entry.kind.padEnd(9)} ${entry.key}`);
    if (modes.looseCount > modes.loose.length) out(`  ... and ${modes.looseCount - modes.loose.length} more`);
    out(`  fix: ${modes.fix}`);
  }
  printLeftovers(report.leftovers, '`warden expire` removes them', out);
  for (const gap of report.walGaps)
    out(
      `recorded WAL gap ${gap.from}..${gap.to} on timeline ${gap.timeline} (${gap.cause}, found ${gap.detectedAt}): ${gap.state === 'unresolved' ? 'UNRESOLVED, take a new full backup' : `resolved by full backup ${gap.resolvedBy ?? '-'}${gap.state === 'obsolete' ? ', WAL before it expired' : ''}`}`,
    );
  if (report.ok) {
    out('no problems found');
    return;
  }
  out();
  out(`${report.problems.length} problem(s):`);
  for (const problem of report.problems) {
    out(`  ${problem.kind.padEnd(17)} ${problem.object}`);
    out(`      ${problem.message}`);
    out(`      breaks: ${problem.breaks}`);
  }
  process.stderr.write(
    `error WARDEN_E_REPO_VERIFY_PROBLEMS: ${report.problems.length} problem(s) in ${report.repository}\n`,
  );
}
