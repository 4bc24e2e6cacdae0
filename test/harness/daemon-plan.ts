import { resolveDaemonPlan, type DaemonPlan } from '../../src/daemon/daemon-config.ts';
import type { ConnectionConfig } from '../../src/postgres/connection-config.ts';
import { DEFAULT_RETENTION_POLICY } from '../../src/retention/retention-policy.ts';

/**
 * A daemon plan for one cluster with only the 6-hourly `backup` job, on an accelerated cron
 * schedule (croner's seconds field: `*\/3 * * * * *` is every 3 seconds), dev profile, status
 * API on a free port. Every other job is off.
 */
export function backupOnlyPlan(options: {
  connection: ConnectionConfig;
  repositoryPath: string;
  baseDir: string;
  schedule: string;
}): DaemonPlan {
  return resolveDaemonPlan({
    section: {
      profile: 'dev',
      http: { port: 0 },
      schedules: {
        'full-backup': null,
        backup: options.schedule,
        'logical-dump': null,
        retention: null,
        verification: null,
        drill: null,
      },
    },
    baseDir: options.baseDir,
    defaultCluster: {
      connection: options.connection,
      repository: { path: options.repositoryPath },
      slot: 'warden',
    },
    retention: DEFAULT_RETENTION_POLICY,
    flags: {},
    env: {},
  });
}
