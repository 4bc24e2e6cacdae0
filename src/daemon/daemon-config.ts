import path from 'node:path';
import { z } from 'zod';
import { WardenError } from '../errors.ts';
import { connectionFields, connectionFromSettings } from '../config/connection-settings.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { parseDuration } from '../scheduler/duration.ts';
import { isValidTimeZone, Schedule } from '../scheduler/schedule.ts';
import type { SqlCheck } from '../verify/restore-check.ts';
import { JOB_NAMES, PROFILE_NAMES, PROFILES, type JobName, type ProfileName } from './profiles.ts';
import type { RetentionPolicy } from '../retention/retention-policy.ts';
import { resolveHttpPlan, httpSectionSchema, type HttpPlan } from './http-config.ts';

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
};

/** The `daemon:` section of warden.yaml. */
export const daemonSectionSchema = z
  .object({
    ...overrides,
    http: httpSectionSchema.optional(),
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
  repositoryPath: string;
  /** Set only when configured; unset: the repository's own slot (warden-repo.json). */
  slot?: string;
  profile: ProfileName;
  timezone: string;
  schedules: Record<JobName, Schedule | null>;
  objectives: { rtoMs: number; rpoMs: number };
  retention: RetentionPolicy;
  checks: SqlCheck[];
  walStreaming: boolean;
  heartbeat: boolean;
  verification: { scratchDir?: string; port?: number };
}

export interface DaemonPlan {
  http: HttpPlan;
  clusters: ClusterPlan[];
}

export const DAEMON_DEFAULTS = {
  profile: 'prod' as ProfileName,
  timezone: 'UTC',
} as const;

export interface DaemonInputs {
  section?: DaemonSection;
  /** Directory relative repository paths are resolved against (the config file's). */
  baseDir: string;
  /** The single cluster of `--db`/`--repo`/`cluster:` when `daemon.clusters` is absent. */
  defaultCluster: { connection?: ConnectionConfig; repositoryPath: string; slot?: string };
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
    const repositoryPath = raw?.repository
      ? path.resolve(inputs.baseDir, raw.repository)
      : section.clusters && section.clusters.length > 1
        ? path.join(inputs.defaultCluster.repositoryPath, name)
        : inputs.defaultCluster.repositoryPath;
    const verification = pick('verification') ?? {};
    return {
      name,
      ...(connection ? { connection } : {}),
      repositoryPath,
      ...((raw?.slot ?? inputs.defaultCluster.slot) !== undefined
        ? { slot: raw?.slot ?? inputs.defaultCluster.slot }
        : {}),
      profile: profileName as ProfileName,
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
    };
  });
  return {
    http: resolveHttpPlan(section.http, inputs.baseDir, inputs.flags.httpPort),
    clusters,
  };
}
