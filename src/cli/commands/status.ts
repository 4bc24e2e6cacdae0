import { collectClusterStatus, type ClusterStatus } from '../../daemon/status.ts';
import { ERROR_CODES } from '../../errors.ts';
import { describeDuration } from '../../scheduler/duration.ts';
import type { CommandContext } from '../context.ts';
import { formatBytes, printJson, table } from '../render.ts';
import { daemonPlanFor, storeFor, type ServeFlags } from './serve.ts';

/**
 * `warden status`: protection status per cluster from the repository and the server (no daemon
 * needed). Exits 7 when the latest verification or drill failed, so a probe can alert on it.
 */
export async function statusCommand(context: CommandContext, flags: ServeFlags): Promise<number> {
  const plan = daemonPlanFor(context, flags);
  const clusters: ClusterStatus[] = [];
  for (const cluster of plan.clusters) {
    clusters.push(
      await collectClusterStatus({
        plan: cluster,
        store: storeFor(context, cluster.repositoryPath),
        ...(cluster.connection ? { connection: cluster.connection } : {}),
      }),
    );
  }
  const failed = clusters.some((c) => c.lastVerification?.passed === false || c.lastDrill?.passed === false);
  if (context.json) printJson({ clusters });
  else for (const cluster of clusters) process.stdout.write(renderStatus(cluster));
  return failed ? ERROR_CODES.WARDEN_E_DRILL_FAILED.exit : 0;
}

export function renderStatus(c: ClusterStatus): string {
  const lines: string[] = [];
  lines.push(
    `cluster ${c.name} (profile ${c.profile}; objectives RTO ${c.objectives.rto}, RPO ${c.objectives.rpo})`,
  );
  lines.push(
    `  repository     ${c.repository.location}${c.repository.reachable ? '' : `  UNREACHABLE: ${c.repository.error?.message ?? ''}`}`,
  );
  const lag = c.walStream.lagBytes !== undefined ? `, lag ${c.walStream.lagBytes} bytes` : '';
  lines.push(
    `  WAL stream     ${c.walStream.state}${c.walStream.holder ? ` (${c.walStream.holder})` : ''}${c.walStream.flushedLsn ? `, durable to ${c.walStream.flushedLsn}` : ''}${lag}${c.walStream.waitingFor ? `; waiting for ${c.walStream.waitingFor}` : ''}`,
  );
  const slot = c.walStream.slot;
  if (slot)
    lines.push(
      `  slot           ${slot.name}${slot.active === undefined ? ' (not on the server)' : `, ${slot.active ? 'active' : 'inactive'}, keeps ${formatBytes(slot.retainedBytes ?? 0)} of WAL, wal_status ${slot.walStatus ?? '-'}`}`,
    );
  lines.push(
    `  RPO exposure   ${c.rpoExposureSeconds === undefined ? 'unknown' : `${describeDuration(c.rpoExposureSeconds * 1000)} (${c.rpoExposureSource})`}`,
  );
  const w = c.restorableWindow;
  const ranges = w?.ranges ?? [];
  if (ranges.length === 0)
    lines.push(`  restorable     nothing yet${w?.gaps.length ? ` (${w.gaps.length} gap(s))` : ''}`);
  // Each range on its own line: with a gap, older backups still restore up to it.
  for (const [i, r] of ranges.entries())
    lines.push(
      `  ${i === 0 ? 'restorable    ' : '              '} ${r.earliest} .. ${r.latest}${r.gapAfter ? `, then WAL gap ${r.gapAfter.from}..${r.gapAfter.to}` : ''}`,
    );
  const full = c.lastBackup.full;
  lines.push(
    `  last backup    ${full ? `full ${full.id} at ${full.endTime}` : '-'}${c.lastBackup.incremental ? `; incremental ${c.lastBackup.incremental.id} at ${c.lastBackup.incremental.endTime}` : ''}${c.lastBackup.named ? `; named: ${c.lastBackup.named.name} (${c.lastBackup.named.id})` : ''}`,
  );
  const v = c.lastVerification;
  lines.push(
    `  verification   ${v ? `${v.passed ? 'passed' : `FAILED (${v.failed.map((name) => [name, ...v.errors.filter((e) => e.check === name).map((e) => e.code)].join(': ')).join(', ')})`} at ${v.startedAt}, backup ${v.backupId ?? '-'}` : 'never'}`,
  );
  const d = c.lastDrill;
  lines.push(
    `  last drill     ${
      d
        ? `${d.passed ? 'passed' : 'FAILED'} at ${d.startedAt}: RTO ${describeDuration(d.rtoMs)} / ${describeDuration(d.objectives.rtoMs)}, RPO ${d.rpoMs === undefined ? '-' : describeDuration(d.rpoMs)} / ${describeDuration(d.objectives.rpoMs)}`
        : 'never'
    }`,
  );
  lines.push('  jobs:');
  lines.push(
    table(
      ['job', 'schedule', 'next run', 'last run', 'result'],
      c.jobs.map((j) => [
        j.name,
        `${j.schedule} ${j.timezone}`,
        j.nextRun ?? '-',
        j.lastRun?.finishedAt ?? '-',
        j.retry ? `retrying (${j.retry.error.code})` : (j.lastRun?.status ?? '-'),
      ]),
    )
      .split('\n')
      .map((line) => `    ${line}`)
      .join('\n'),
  );
  for (const alert of c.alerts) lines.push(`  ALERT: ${alert}`);
  return `${lines.join('\n')}\n`;
}
