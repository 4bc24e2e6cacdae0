import { collectClusterStatus, type ClusterStatus } from '../../daemon/status.ts';
import { statusExit } from '../../daemon/status-findings.ts';
import { describeDuration } from '../../util/duration.ts';
import type { CommandContext } from '../context.ts';
import { formatBytes, printJson, table } from '../render.ts';
import { openObjectStore } from '../../repository/open-object-store.ts';
import { daemonPlanFor, type ServeFlags } from '../daemon-plan.ts';
import { renderTopology } from '../render-topology.ts';
import { compareCopy, type CopyComparison } from '../../copy/copy-comparison.ts';
import { isWardenError } from '../../errors.ts';

/**
 * `warden status`: protection status per cluster from the repository and the server (no daemon
 * needed). A probe: the exit status is the most severe finding's (docs/status.md), 0 when healthy.
 */
export async function statusCommand(context: CommandContext, flags: ServeFlags): Promise<number> {
  const plan = daemonPlanFor(context, flags);
  const clusters: Array<ClusterStatus & { copyComparison?: CopyComparison[] }> = [];
  for (const cluster of plan.clusters) {
    const store = await openObjectStore(cluster.repository);
    const status = await collectClusterStatus({
      plan: cluster,
      store,
      ...(cluster.connection ? { connection: cluster.connection } : {}),
    });
    const copyComparison = status.repository.reachable
      ? await compareCopies(store, cluster.copyTo, await context.readKeys().catch(() => undefined))
      : [];
    clusters.push(copyComparison.length ? { ...status, copyComparison } : status);
  }
  const exitCode = statusExit(clusters.flatMap((c) => c.findings));
  if (context.json) printJson({ format: 1, exitCode, clusters });
  else {
    for (const cluster of clusters) process.stdout.write(renderStatus(cluster));
    process.stdout.write(
      exitCode === 0
        ? 'healthy (exit 0)\n'
        : `UNHEALTHY (exit ${exitCode}: ${clusters.flatMap((c) => c.findings.map((f) => f.code)).join(', ')})\n`,
    );
  }
  return exitCode;
}

/** Each `copyTo` target against the repository, by commit markers (a running daemon shows its own lag in /api/status). */
async function compareCopies(
  store: Parameters<typeof compareCopy>[1],
  targets: ReturnType<typeof daemonPlanFor>['clusters'][number]['copyTo'],
  keys: Awaited<ReturnType<CommandContext['readKeys']>> | undefined,
): Promise<CopyComparison[]> {
  const comparisons: CopyComparison[] = [];
  for (const target of targets) {
    try {
      comparisons.push(
        await compareCopy(target.name, store, await openObjectStore(target.location), keys ? { keys } : {}),
      );
    } catch (error) {
      // No repository yet (nothing committed): nothing to compare.
      if (isWardenError(error, 'WARDEN_E_REPO_NOT_INITIALIZED')) continue;
      throw error;
    }
  }
  return comparisons;
}

export function renderCopy(c: CopyComparison): string {
  if (!c.reachable) return `  copy ${c.target}  UNREACHABLE: ${c.error?.message ?? ''}`;
  const m = c.missing!;
  if (m.backups + m.segments + m.dumps === 0) return `  copy ${c.target}  caught up (${c.location})`;
  const lag = c.lagSeconds === undefined ? '' : `, lag ${describeDuration(c.lagSeconds * 1000)}`;
  return `  copy ${c.target}  behind: ${m.backups} backup(s), ${m.segments} WAL segment(s), ${m.dumps} dump(s)${lag} (${c.location})`;
}

export function renderStatus(c: ClusterStatus & { copyComparison?: CopyComparison[] }): string {
  const lines: string[] = [];
  lines.push(
    `cluster ${c.name} (profile ${c.profile}; objectives RTO ${c.objectives.rto}, RPO ${c.objectives.rpo})`,
  );
  lines.push(`  objectives     from ${c.objectives.source}`);
  lines.push(
    `  server         ${c.server.checked ? `${c.server.target} ${c.server.reachable ? 'reachable' : `CANNOT CONNECT (${c.server.error?.code ?? ''}: ${c.server.error?.message ?? ''})`}` : 'not checked: no connection configured (--db, WARDEN_DB, config file, PG* variables)'}`,
  );
  lines.push(
    `  repository     ${c.repository.location}${c.repository.reachable ? '' : `  UNREACHABLE: ${c.repository.error?.message ?? ''}`}`,
  );
  if (c.topology) lines.push(...renderTopology(c.topology));
  for (const copy of c.copyComparison ?? []) lines.push(renderCopy(copy));
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
  // The wal-gaps check: each recorded gap, failing until a full backup after it completed.
  for (const g of c.walGaps)
    lines.push(
      `  WAL gap        ${g.state === 'unresolved' ? 'FAILING' : `resolved by full backup ${g.resolvedBy ?? '-'}`}: ${g.from}..${g.to} on timeline ${g.timeline} (${g.cause}, found ${g.detectedAt})`,
    );
  for (const u of c.unreadableGaps ?? [])
    lines.push(`  WAL gap        FAILING: record ${u.object} unreadable (${u.code})`);
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
        j.running
          ? 'running'
          : j.requested
            ? `requested: ${j.requested.reason}`
            : j.retry
              ? `retrying (${j.retry.error.code})`
              : (j.lastRun?.status ?? '-'),
      ]),
    )
      .split('\n')
      .map((line) => `    ${line}`)
      .join('\n'),
  );
  for (const finding of c.findings)
    lines.push(
      `  FAILED ${finding.code} (exit ${finding.exit}): ${finding.message}${finding.hint ? `\n         fix: ${finding.hint}` : ''}`,
    );
  for (const alert of c.alerts.slice(c.findings.length)) lines.push(`  ALERT: ${alert}`);
  return `${lines.join('\n')}\n`;
}
