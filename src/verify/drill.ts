import type { Logger } from 'pino';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { toWardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { describeDuration } from '../scheduler/duration.ts';
import { writeHeartbeat } from '../daemon/heartbeat.ts';
import {
  verifyRestore,
  type ScratchOptions,
  type SqlCheck,
  type VerificationReport,
} from './restore-check.ts';

export interface Objectives {
  rtoMs: number;
  rpoMs: number;
}

export interface DrillOptions {
  store: ObjectStore;
  connection: ConnectionConfig;
  objectives: Objectives;
  checks?: readonly SqlCheck[];
  scratch?: ScratchOptions;
  /** Cluster name and profile, for the report. */
  cluster?: string;
  profile?: string;
  /** Identities for the encrypted objects the drill restores. */
  keys?: RepositoryKeys;
  logger?: Logger;
  signal?: AbortSignal;
}

export interface DrillReport {
  format: 1;
  cluster?: string;
  profile?: string;
  startedAt: string;
  finishedAt: string;
  objectives: Objectives;
  measured: {
    /** From the simulated loss until the restored instance served and passed every check. */
    rtoMs: number;
    /** Newest commit on the source at the loss minus the newest one present in the restore. */
    rpoMs?: number;
  };
  /** The source's heartbeat at the simulated loss (its newest committed transaction). */
  sourceNewest?: string;
  /** The newest heartbeat the restore holds. */
  restoredNewest?: string;
  passed: boolean;
  failures: string[];
  verification: VerificationReport;
}

/**
 * A DR drill: pretends the primary is lost now, restores the latest point into a new instance,
 * and measures RTO and RPO against the objectives. The source's newest commit is a heartbeat
 * written at the moment of the "loss"; the restore's newest is the heartbeat it holds, so the
 * difference is exactly the committed data the repository did not have.
 */
export async function runDrill(options: DrillOptions): Promise<DrillReport> {
  const logger = options.logger ?? silentLogger;
  const startedAt = new Date();
  const t0 = performance.now();
  const failures: string[] = [];
  let sourceNewest: Date | undefined;
  try {
    const client = await connect({ ...options.connection, applicationName: 'warden drill' });
    try {
      sourceNewest = await writeHeartbeat(client);
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (error) {
    const wrapped = toWardenError(error);
    failures.push(`source heartbeat unavailable (${wrapped.code}): RPO cannot be measured`);
    logger.warn({ code: wrapped.code }, 'drill: could not write the heartbeat on the source');
  }
  const beforeRestoreMs = performance.now() - t0;
  const verification = await verifyRestore({
    store: options.store,
    connection: options.connection,
    target: { kind: 'latest' },
    ...(options.checks ? { checks: options.checks } : {}),
    ...(options.scratch ? { scratch: options.scratch } : {}),
    ...(options.keys ? { keys: options.keys } : {}),
    logger,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  // RTO stops when the instance served and passed its checks, not when the scratch copy is removed.
  const rtoMs = Math.round(beforeRestoreMs) + verification.readyMs;
  const restoredNewest = verification.restoredHeartbeat
    ? new Date(verification.restoredHeartbeat)
    : undefined;
  const rpoMs =
    sourceNewest && restoredNewest
      ? Math.max(0, sourceNewest.getTime() - restoredNewest.getTime())
      : undefined;
  if (!verification.passed) {
    for (const check of verification.checks.filter((c) => c.status === 'failed'))
      failures.push(`check ${check.name} failed: ${check.detail ?? ''}`);
  }
  if (rtoMs > options.objectives.rtoMs)
    failures.push(
      `RTO ${describeDuration(rtoMs)} exceeds the objective ${describeDuration(options.objectives.rtoMs)}`,
    );
  if (rpoMs === undefined) {
    if (sourceNewest && verification.passed)
      failures.push(
        'the restore holds no heartbeat: the repository has no WAL since Warden started writing it',
      );
  } else if (rpoMs > options.objectives.rpoMs) {
    failures.push(
      `RPO ${describeDuration(rpoMs)} exceeds the objective ${describeDuration(options.objectives.rpoMs)}`,
    );
  }
  return {
    format: 1,
    ...(options.cluster ? { cluster: options.cluster } : {}),
    ...(options.profile ? { profile: options.profile } : {}),
    startedAt: startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    objectives: options.objectives,
    measured: { rtoMs, ...(rpoMs !== undefined ? { rpoMs } : {}) },
    ...(sourceNewest ? { sourceNewest: sourceNewest.toISOString() } : {}),
    ...(restoredNewest ? { restoredNewest: restoredNewest.toISOString() } : {}),
    passed: failures.length === 0,
    failures,
    verification,
  };
}

/** Keeps the evidence: `drills/<time>.json` and a readable `drills/<time>.txt`. */
export async function recordDrill(store: ObjectStore, report: DrillReport): Promise<string> {
  const base = `drills/${report.startedAt.replace(/[:.]/g, '-')}`;
  await store.putBuffer(`${base}.json`, Buffer.from(`${JSON.stringify(report, null, 2)}\n`));
  await store.putBuffer(`${base}.txt`, Buffer.from(renderDrillSummary(report)));
  return `${base}.json`;
}

export async function listDrills(store: ObjectStore): Promise<DrillReport[]> {
  const keys = (await store.list('drills/')).filter((key) => key.endsWith('.json'));
  const reports: DrillReport[] = [];
  for (const key of keys)
    reports.push(JSON.parse((await store.getBuffer(key)).toString('utf8')) as DrillReport);
  return reports.sort((a, b) => a.startedAt.localeCompare(b.startedAt));
}

export function renderDrillSummary(report: DrillReport): string {
  const verdict = (measured: number | undefined, objective: number) =>
    measured === undefined
      ? 'not measured'
      : `${describeDuration(measured)} (objective ${describeDuration(objective)}) ${measured <= objective ? 'met' : 'MISSED'}`;
  const lines = [
    `Warden DR drill ${report.passed ? 'PASSED' : 'FAILED'}${report.cluster ? ` — cluster ${report.cluster}` : ''}${report.profile ? ` (${report.profile})` : ''}`,
    `started ${report.startedAt}, finished ${report.finishedAt}`,
    `restored backup ${report.verification.backupId ?? '-'} to the latest point`,
    `RTO ${verdict(report.measured.rtoMs, report.objectives.rtoMs)}`,
    `RPO ${verdict(report.measured.rpoMs, report.objectives.rpoMs)}`,
    `  newest commit on the source ${report.sourceNewest ?? '-'}, newest in the restore ${report.restoredNewest ?? '-'}`,
    'checks:',
    ...report.verification.checks.map(
      (c) =>
        `  ${c.status === 'passed' ? 'ok  ' : c.status === 'failed' ? 'FAIL' : 'skip'} ${c.name}${c.detail ? `: ${c.detail}` : ''}`,
    ),
    ...(report.failures.length ? ['failures:', ...report.failures.map((f) => `  - ${f}`)] : []),
  ];
  return `${lines.join('\n')}\n`;
}
