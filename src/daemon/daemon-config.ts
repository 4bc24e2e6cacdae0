import path from 'node:path';
import { z } from 'zod';
import type { DrillMigrationPlan } from '../verify/drill-migration.ts';
import { WardenError } from '../errors.ts';
import { connectionFields, connectionFromSettings } from '../config/connection-settings.ts';
import { childLocation, type RepositoryLocation } from '../repository/open-object-store.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { parseDuration } from '../util/duration.ts';
import { isValidTimeZone, Schedule } from '../scheduler/schedule.ts';
import type { SqlCheck } from '../verify/restore-check.ts';
import { JOB_NAMES, PROFILE_NAMES, PROFILES, type JobName, type ProfileName } from './profiles.ts';
import type { RetentionPolicy } from '../retention/retention-policy.ts';
import { resolveHttpPlan, httpSectionSchema, type HttpPlan } from './http-config.ts';
import {
  notificationsSectionSchema,
  resolveNotificationsPlan,
  type NotificationsPlan,
} from '../notify/notify-config.ts';
import { dashboardSectionSchema, resolveDashboardPlan, type DashboardPlan } from './dashboard-config.ts';
import { DEFAULT_BACKUP_FROM, type BackupFrom } from '../backup/backup-from.ts';
import { backupSectionSchema, resolveBackupFrom } from '../backup/backup-from-config.ts';
import { cacheSectionSchema, resolveCachePlan, type CachePlan } from '../cache-coherence/cache-config.ts';
import { copyToSchema, resolveCopyTargets, type CopyTargetPlan } from '../daemon/copy-config.ts';
import {
  resolveStorageClassRules,
  storageClassesSchema,
  type StorageClassRule,
} from '../repository/storage-class-rules.ts';
import {
  redisBackupsSectionSchema,
  resolveRedisBackupPlans,
  type RedisBackupPlan,
} from './redis-backup-config.ts';

const sqlCheckSchema = z
  .object({
    name: z.string().min(1),
    sql: z.string().min(1),
    database: z.string().optional(),
    equals: z.union([z.string(), z.number(), z.boolean()]).optional(),
    min: z.number().optional(),
    max: z.number().optional(),
  })
  .strict();

const durationSchema = z.union([z.string(), z.number()]);

/** Settings a cluster may override; the same keys at the `daemon` level apply to every cluster. */
const overrides = {
  profile: z.string().optional(),
  timezone: z.string().optional(),
  schedules: z
    .object(Object.fromEntries(JOB_NAMES.map((name) => [name, z.string().nullable().optional()])))
    .strict()
    .optional(),
  objectives: z
    .object({ rto: durationSchema.optional(), rpo: durationSchema.optional() })
    .strict()
    .optional(),
  checks: z.array(sqlCheckSchema).optional(),
  walStreaming: z.boolean().optional(),
  heartbeat: z.boolean().optional(),
  verification: z
    .object({ scratchDir: z.string().optional(), port: z.number().int().min(1).max(65535).optional() })
    .strict()
    .optional(),
  /** The applications' cache Redis to invalidate after a failover or cut-over (docs/cache-coherence.md). */
  cache: cacheSectionSchema.optional(),
  /** Drills run the pending migrations on the restored copy (docs/drills.md). */
  drillMigration: z
    .object({
      command: z.array(z.string().min(1)).min(1),
      timeout: durationSchema.optional(),
      database: z.string().min(1).optional(),
    })
    .strict()
    .optional(),
  /** Where scheduled backups run: `from: standby` … (docs/standby-backups.md). */
  backup: backupSectionSchema.optional(),
  /** Second repositories every committed object is replicated to (docs/off-site-copies.md). */
  copyTo: copyToSchema.optional(),
  /** Age rules for the storage classes of the cluster's own S3 repository (docs/repository-s3.md). */
  storageClasses: storageClassesSchema.optional(),
  /** Redis deployments backed up into this cluster's repository, opt-in (docs/redis-backups.md). */
  redisBackups: redisBackupsSectionSchema.optional(),
};

/** The `daemon:` section of warden.yaml. */
export const daemonSectionSchema = z
  .object({
    ...overrides,
    http: httpSectionSchema.optional(),
    /** Warden's own alerts to webhooks (docs/notifications.md). */
    notifications: notificationsSectionSchema.optional(),
    dashboard: dashboardSectionSchema.optional(),
    clusters: z
      .array(
        z
          .object({
            name: z.string().regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, 'lower-case letters, digits, - and _ only'),
            // url, or host/port/user/database with passwordFile / passwordCommand, tls, tlsCa
            ...connectionFields,
            repository: z.string().optional(),
            slot: z.string().optional(),
            ...overrides,
          })
          .strict(),
      )
      .optional(),
  })
  .strict();

export type DaemonSection = z.infer<typeof daemonSectionSchema>;
type Overrides = Partial<Pick<DaemonSection, keyof typeof overrides>>;

/** Everything the daemon needs about one protected cluster, fully resolved. */
export interface ClusterPlan {
  name: string;
  /** Undefined only for the embedded default before it starts. */
  connection?: ConnectionConfig;
  /** The cluster's repository: a directory or an S3 bucket. */
  repository: RepositoryLocation;
  /** Set only when configured; unset: the repository's own slot (warden-repo.json). */
  slot?: string;
  profile: ProfileName;
  /**
   * What set the profile or the objectives (`--profile`, `WARDEN_PROFILE`, a config field);
   * undefined when both are defaults, so a reader may take the ones a daemon recorded instead.
   */
  objectivesFrom?: string;
  timezone: string;
  schedules: Record<JobName, Schedule | null>;
  objectives: { rtoMs: number; rpoMs: number };
  retention: RetentionPolicy;
  checks: SqlCheck[];
  walStreaming: boolean;
  heartbeat: boolean;
  verification: { scratchDir?: string; port?: number };
  /** Set when a `cache:` section applies to this cluster. */
  cache?: CachePlan;
  /** Set when drills run the pending migrations on the restored copy. */
  drillMigration?: DrillMigrationPlan;
  /** Where its backups run (WARDEN_BACKUP_FROM > cluster entry > daemon > `cluster:` > primary). */
  backupFrom: BackupFrom;
  /** Off-site copies (`copyTo`); empty when none. */
  copyTo: CopyTargetPlan[];
  /** Storage-class age rules of the cluster's own repository; empty when none. */
  storageClasses: StorageClassRule[];
  /** Scheduled Redis backups into this cluster's repository (none unless configured). */
  redisBackups?: RedisBackupPlan[];
}

export interface DaemonPlan {
  http: HttpPlan;
  /** History sampling and the Alertmanager source of the dashboard (defaults when absent). */
  dashboard?: DashboardPlan;
  clusters: ClusterPlan[];
  /** Alert conditions and webhooks; defaults (no webhook) when the section is absent. */
  notifications?: NotificationsPlan;
}

/** How long a drill's migration step may run by default. */
export const DRILL_MIGRATION_TIMEOUT = '10m';

export const DAEMON_DEFAULTS = {
  profile: 'prod' as ProfileName,
  timezone: 'UTC',
} as const;

export interface DaemonInputs {
  section?: DaemonSection;
  /** Directory relative repository paths are resolved against (the config file's). */
  baseDir: string;
  /** The single cluster of `--db`/`--repo`/`cluster:` when `daemon.clusters` is absent. */
  defaultCluster: {
    connection?: ConnectionConfig;
    repository: RepositoryLocation;
    slot?: string;
    /** `cluster.backup.from` (or WARDEN_BACKUP_FROM) as loadConfig resolved it. */
    backupFrom?: BackupFrom;
  };
  retention: RetentionPolicy;
  /** Profile when nothing names one (the embedded default uses dev). */
  defaultProfile?: ProfileName;
  flags: { profile?: string; rto?: string; rpo?: string; httpPort?: number };
  env: NodeJS.ProcessEnv;
}

/**
 * Resolves profiles, schedules and objectives per cluster. Precedence: flag > environment
 * (WARDEN_PROFILE) > cluster entry > daemon section > profile default. Errors name the field.
 */
export function resolveDaemonPlan(inputs: DaemonInputs): DaemonPlan {
  const section = inputs.section ?? {};
  const entries = section.clusters?.length
    ? section.clusters.map((entry, i) => ({
        entry: entry as Overrides,
        field: `daemon.clusters.${i}`,
        raw: entry,
      }))
    : [{ entry: {} as Overrides, field: 'daemon', raw: undefined }];
  const clusters = entries.map(({ entry, field, raw }): ClusterPlan => {
    const pick = <K extends keyof Overrides>(key: K): Overrides[K] =>
      entry[key] ?? (section as Overrides)[key];
    const profileName =
      inputs.flags.profile ??
      inputs.env.WARDEN_PROFILE ??
      pick('profile') ??
      inputs.defaultProfile ??
      DAEMON_DEFAULTS.profile;
    const profileField = inputs.flags.profile
      ? '--profile'
      : inputs.env.WARDEN_PROFILE
        ? 'WARDEN_PROFILE'
        : `${field}.profile`;
    if (!(PROFILE_NAMES as readonly string[]).includes(profileName)) {
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `${profileField}: unknown profile "${profileName}" (one of ${PROFILE_NAMES.join(', ')})`,
        { details: { field: profileField, value: profileName } },
      );
    }
    const profile = PROFILES[profileName as ProfileName];
    const timezone = pick('timezone') ?? DAEMON_DEFAULTS.timezone;
    if (!isValidTimeZone(timezone)) {
      const tzField = entry.timezone ? `${field}.timezone` : 'daemon.timezone';
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `${tzField}: "${timezone}" is not an IANA time zone (e.g. UTC, Europe/Berlin)`,
        {
          details: { field: tzField, value: timezone },
        },
      );
    }
    const schedules = {} as Record<JobName, Schedule | null>;
    for (const job of JOB_NAMES) {
      const own = entry.schedules?.[job];
      const shared = section.schedules?.[job];
      const pattern = own !== undefined ? own : shared !== undefined ? shared : profile.schedules[job];
      const where = own !== undefined ? `${field}.schedules.${job}` : `daemon.schedules.${job}`;
      schedules[job] = pattern === null ? null : new Schedule(pattern, timezone, where);
    }
    const objectives = { ...section.objectives, ...entry.objectives };
    const rto = inputs.flags.rto ?? objectives.rto ?? profile.objectives.rto;
    const rpo = inputs.flags.rpo ?? objectives.rpo ?? profile.objectives.rpo;
    const objectivesFrom = [
      inputs.flags.profile || inputs.env.WARDEN_PROFILE || pick('profile') ? profileField : undefined,
      inputs.flags.rto ? '--rto' : undefined,
      inputs.flags.rpo ? '--rpo' : undefined,
      !inputs.flags.rto && !inputs.flags.rpo && (objectives.rto !== undefined || objectives.rpo !== undefined)
        ? `${entry.objectives ? field : 'daemon'}.objectives`
        : undefined,
    ]
      .filter((from) => from !== undefined)
      .join(', ');
    const name = raw?.name ?? 'default';
    let connection = inputs.defaultCluster.connection;
    if (raw?.url || raw?.host) {
      connection = connectionFromSettings(raw, field, inputs.baseDir, inputs.env);
    }
    if (section.clusters?.length && !connection) {
      throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}.url: required for each cluster (or host)`, {
        details: { field: `${field}.url` },
      });
    }
    // A cluster entry's `repository:` is a directory (relative to the config file); without one,
    // several clusters each get their own under the configured repository.
    const defaultRepository = inputs.defaultCluster.repository;
    const repository: RepositoryLocation = raw?.repository
      ? {
          path: path.resolve(inputs.baseDir, raw.repository),
          ...(defaultRepository.group ? { group: defaultRepository.group } : {}),
        }
      : section.clusters && section.clusters.length > 1
        ? childLocation(defaultRepository, name)
        : defaultRepository;
    const verification = pick('verification') ?? {};
    const drillMigration = pick('drillMigration');
    const cacheSection = pick('cache');
    const cache = cacheSection
      ? resolveCachePlan(cacheSection, entry.cache ? `${field}.cache` : 'daemon.cache', inputs.baseDir)
      : undefined;
    const backupSection = pick('backup');
    const backupFrom =
      inputs.env.WARDEN_BACKUP_FROM || backupSection?.from !== undefined
        ? resolveBackupFrom(
            inputs.env,
            backupSection?.from,
            entry.backup?.from !== undefined ? `${field}.backup.from` : 'daemon.backup.from',
          ).from
        : (inputs.defaultCluster.backupFrom ?? DEFAULT_BACKUP_FROM);
    const copyField = entry.copyTo ? `${field}.copyTo` : 'daemon.copyTo';
    const copyTo = resolveCopyTargets(pick('copyTo'), copyField, inputs.baseDir, inputs.env);
    for (const [i, target] of copyTo.entries()) {
      if (target.location.path === repository.path) {
        throw new WardenError(
          'WARDEN_E_CONFIG_INVALID',
          `${copyField}.${i}.repository: is the cluster's own repository (${repository.path})`,
          { details: { field: `${copyField}.${i}.repository` } },
        );
      }
    }
    const classesField = entry.storageClasses ? `${field}.storageClasses` : 'daemon.storageClasses';
    const storageClasses = resolveStorageClassRules(pick('storageClasses'), classesField);
    if (storageClasses.length && !repository.s3) {
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `${classesField}: only for an S3 repository (a directory has no storage classes)`,
        { details: { field: classesField } },
      );
    }
    const redisSection = pick('redisBackups');
    const redisBackups = redisSection
      ? resolveRedisBackupPlans(
          redisSection,
          entry.redisBackups ? `${field}.redisBackups` : 'daemon.redisBackups',
          timezone,
          inputs.baseDir,
        )
      : undefined;
    return {
      name,
      ...(connection ? { connection } : {}),
      copyTo,
      storageClasses,
      repository,
      ...((raw?.slot ?? inputs.defaultCluster.slot) !== undefined
        ? { slot: raw?.slot ?? inputs.defaultCluster.slot }
        : {}),
      profile: profileName as ProfileName,
      ...(objectivesFrom ? { objectivesFrom } : {}),
      timezone,
      schedules,
      objectives: {
        rtoMs: parseDuration(
          rto,
          inputs.flags.rto
            ? '--rto'
            : entry.objectives?.rto !== undefined
              ? `${field}.objectives.rto`
              : 'daemon.objectives.rto',
        ),
        rpoMs: parseDuration(
          rpo,
          inputs.flags.rpo
            ? '--rpo'
            : entry.objectives?.rpo !== undefined
              ? `${field}.objectives.rpo`
              : 'daemon.objectives.rpo',
        ),
      },
      retention: inputs.retention,
      checks: (pick('checks') ?? []) as SqlCheck[],
      walStreaming: pick('walStreaming') ?? true,
      heartbeat: pick('heartbeat') ?? true,
      verification: {
        ...(verification.scratchDir
          ? { scratchDir: path.resolve(inputs.baseDir, verification.scratchDir) }
          : {}),
        ...(verification.port ? { port: verification.port } : {}),
      },
      ...(cache ? { cache } : {}),
      ...(drillMigration
        ? {
            drillMigration: {
              command: drillMigration.command,
              timeoutMs: parseDuration(
                drillMigration.timeout ?? DRILL_MIGRATION_TIMEOUT,
                entry.drillMigration ? `${field}.drillMigration.timeout` : 'daemon.drillMigration.timeout',
              ),
              ...(drillMigration.database ? { database: drillMigration.database } : {}),
              // A relative program or script is found from the config file's directory.
              cwd: inputs.baseDir,
            },
          }
        : {}),
      backupFrom,
      ...(redisBackups?.length ? { redisBackups } : {}),
    };
  });
  return {
    http: resolveHttpPlan(section.http, inputs.baseDir, inputs.flags.httpPort),
    dashboard: resolveDashboardPlan(section.dashboard),
    clusters,
    notifications: resolveNotificationsPlan(section.notifications ?? {}, inputs.baseDir, inputs.env),
  };
}
