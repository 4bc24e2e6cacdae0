import type { Logger } from 'pino';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { toWardenError } from '../errors.ts';
import { eventError, subjectOf, type ObservedOptions } from '../events/observed.ts';
import { silentLogger } from '../logger.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { describeDuration } from '../util/duration.ts';
import { writeHeartbeat } from '../postgres/heartbeat.ts';
import { listBackups } from '../repository/backup-catalog.ts';
import { Repository } from '../repository/repository.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { restorableWindow } from '../repository/restorable-window.ts';
import { formatLsn, parseLsn, type Lsn } from '../wal/lsn.ts';
import {
  runDrillMigration,
  skippedMigration,
  type DrillMigrationPlan,
  type DrillMigrationResult,
} from './drill-migration.ts';
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

export interface DrillOptions extends ObservedOptions {
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
  /** Run the pending migrations against the restored copy once it is up and checked (see runDrillMigration). */
  migration?: DrillMigrationPlan;
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
  /**
   * The simulated loss: when it happened and the WAL position the repository was durable up to
   * then. The restore stops there, whatever WAL arrives while the drill runs, so RPO is what a
   * real loss at that moment would have cost.
   */
  loss?: { at: string; durableLsn?: string };
  passed: boolean;
  failures: string[];
  verification: VerificationReport;
  /** The migration step, when the drill was asked to run one: would this deploy's migration succeed on production data? */
  migration?: DrillMigrationResult;
}

/**
 * A DR drill: pretends the primary is lost now, restores what the repository held at that moment
 * into a new instance, and measures RTO and RPO against the objectives. The source's newest
 * commit is a heartbeat written at the moment of the "loss"; the repository's durable WAL
 * position is read right after it, and the restore stops there (WAL a running stream delivers
 * later is not replayed). The restore's newest commit is the heartbeat it holds, so the
 * difference is the committed data a real loss at that moment would have cost.
 */
export async function runDrill(options: DrillOptions): Promise<DrillReport> {
  const events = options.events;
  if (!events) return drill(options);
  const subject = subjectOf(options, options.store);
  const objectives = {
    objectiveRtoSeconds: options.objectives.rtoMs / 1000,
    objectiveRpoSeconds: options.objectives.rpoMs / 1000,
  };
  let report: DrillReport;
  try {
    report = await drill(options);
  } catch (error) {
    const failure = { at: new Date().toISOString(), passed: false, error: eventError(error) };
    events.emit('drill.finished', { ...subject, ...failure, ...objectives });
    throw error;
  }
  const { rtoMs, rpoMs } = report.measured;
  events.emit('drill.finished', {
    ...subject,
    at: report.finishedAt,
    passed: report.passed,
    rtoSeconds: rtoMs / 1000,
    ...(rpoMs !== undefined ? { rpoSeconds: rpoMs / 1000 } : {}),
    ...objectives,
    ...(report.migration
      ? {
          migration: {
            passed: report.migration.status === 'passed',
            ...(report.migration.error ? { code: report.migration.error.code } : {}),
          },
        }
      : {}),
    // The drill's own verification publishes nothing (it is not the scheduled verification).
    ...(report.passed
      ? {}
      : { error: { code: 'WARDEN_E_DRILL_FAILED', message: report.failures.join('; ') } }),
  });
  return report;
}

async function drill(options: DrillOptions): Promise<DrillReport> {
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
  const lossAt = new Date();
  const durableLsn = await durableEnd(options.store, options.keys).catch((error: unknown) => {
    const wrapped = toWardenError(error);
    logger.warn({ code: wrapped.code }, 'drill: could not read the durable WAL position');
    return undefined;
  });
  const beforeRestoreMs = performance.now() - t0;
  let migration: DrillMigrationResult | undefined;
  const migrationPlan = options.migration;
  const verification = await verifyRestore({
    store: options.store,
    connection: options.connection,
    target: durableLsn === undefined ? { kind: 'latest' } : { kind: 'lsn', lsn: durableLsn, before: true },
    ...(options.checks ? { checks: options.checks } : {}),
    ...(options.scratch ? { scratch: options.scratch } : {}),
    ...(options.keys ? { keys: options.keys } : {}),
    logger,
    ...(options.signal ? { signal: options.signal } : {}),
    ...(migrationPlan
      ? {
          afterChecks: async ({ port }) => {
            logger.info('drill: running the pending migrations against the restored copy');
            migration = await runDrillMigration(
              migrationPlan,
              { source: options.connection, port },
              { logger, ...(options.signal ? { signal: options.signal } : {}) },
            );
          },
        }
      : {}),
  });
  if (migrationPlan && !migration) {
    // The copy never served with every check passed: there was nothing sound to migrate.
    migration = skippedMigration(migrationPlan, 'the restored copy did not pass its checks');
  }
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
  if (migration?.status === 'failed')
    failures.push(
      `migration on the restored copy failed (${migration.error?.code}): ${migration.error?.message}`,
    );
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
    loss: {
      at: lossAt.toISOString(),
      ...(durableLsn !== undefined ? { durableLsn: formatLsn(durableLsn) } : {}),
    },
    passed: failures.length === 0,
    failures,
    verification,
    ...(migration ? { migration } : {}),
  };
}

/** The end of the WAL the repository holds now, continuous from a backup: what a restore can reach. */
async function durableEnd(store: ObjectStore, keys: RepositoryKeys | undefined): Promise<Lsn | undefined> {
  const repository = await Repository.open(store, keys);
  const window = restorableWindow(
    await listBackups(repository),
    await readWalInventory(repository),
    repository.meta.walSegmentSize,
  );
  const newest = window.ranges.at(-1);
  return newest ? parseLsn(newest.latestLsn) : undefined;
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
    report.loss
      ? `simulated loss at ${report.loss.at}; restored backup ${report.verification.backupId ?? '-'} up to what the repository held then (WAL to ${report.loss.durableLsn ?? 'its end'})`
      : `restored backup ${report.verification.backupId ?? '-'} to the latest point`,
    `RTO ${verdict(report.measured.rtoMs, report.objectives.rtoMs)}`,
    `RPO ${verdict(report.measured.rpoMs, report.objectives.rpoMs)}`,
    `  newest commit on the source ${report.sourceNewest ?? '-'}, newest in the restore ${report.restoredNewest ?? '-'}`,
    'checks:',
    ...report.verification.checks.map(
      (c) =>
        `  ${c.status === 'passed' ? 'ok  ' : c.status === 'failed' ? 'FAIL' : 'skip'} ${c.name}${c.detail ? `: ${c.detail}` : ''}`,
    ),
    ...(report.migration ? renderMigration(report.migration) : []),
    ...(report.failures.length ? ['failures:', ...report.failures.map((f) => `  - ${f}`)] : []),
  ];
  return `${lines.join('\n')}\n`;
}

function renderMigration(m: DrillMigrationResult): string[] {
  const head =
    m.status === 'skipped'
      ? `migration on the restored copy: skipped (${m.reason ?? ''})`
      : `migration on the restored copy: ${m.status === 'passed' ? 'ok' : 'FAILED'} — ${m.program}, ${m.exitCode === undefined ? (m.error?.code ?? '') : m.exitCode === null ? `killed by ${m.signal}` : `exit ${m.exitCode}`}, ${describeDuration(m.durationMs)}${m.applied?.length ? `, applied versions ${m.applied.join(', ')}` : ''}`;
  const tail =
    m.status === 'failed' && m.outputTail
      ? [
          '  output (last lines):',
          ...m.outputTail
            .trimEnd()
            .split('\n')
            .slice(-10)
            .map((l) => `    ${l}`),
        ]
      : [];
  return [head, ...tail];
}
