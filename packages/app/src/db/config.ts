import { z } from 'zod';
import { DataLayerError } from '../errors.ts';
import { silentLogger, type Logger } from '../logger.ts';
import { checkMetricsOptions, type MetricsOptions } from '../metrics/metrics-options.ts';
import type { CredentialsProvider } from './credentials.ts';
import type { HostTarget } from './driver.ts';
import type { PoolSettings } from './pool.ts';
import { decodeUrlPart, parseTlsMode } from '../postgres/tls-mode.ts';
import { planTls } from '../postgres/tls-policy.ts';
import type { PatroniSource } from './patroni-topology.ts';
import type { HostInput, PoolRole, SslMode } from './types.ts';

export type Environment = 'dev' | 'uat' | 'prod';

export const POOL_ROLES: readonly PoolRole[] = ['read', 'write', 'batch'];

const MINUTE = 60_000;

/** Requirements §4: the production table. */
const PROD: Record<PoolRole, PoolSettings> = {
  read: pool(3, 10),
  write: pool(5, 15),
  batch: pool(2, 5),
};

function pool(minIdle: number, maxSize: number, overrides: Partial<PoolSettings> = {}): PoolSettings {
  return {
    minIdle,
    maxSize,
    idleTimeoutMs: MINUTE,
    connectionTimeoutMs: 20_000,
    maxLifetimeMs: 30 * MINUTE,
    leakDetectionThresholdMs: MINUTE,
    leakDetectionStacks: 'per-statement',
    validateAfterIdleMs: 500,
    validationTimeoutMs: 5_000,
    ...overrides,
  };
}

/**
 * Pool defaults per environment. `prod` is the requirements table; `uat` has the same sizes
 * (load tests there should predict production) but reports leaks after 30 s; `dev` keeps one
 * warm connection, small maxima, a 5 s connection timeout and 10 s leak detection so mistakes
 * surface on a laptop.
 */
export const POOL_DEFAULTS: Readonly<Record<Environment, Readonly<Record<PoolRole, PoolSettings>>>> = {
  prod: PROD,
  uat: {
    read: { ...PROD.read, leakDetectionThresholdMs: 30_000 },
    write: { ...PROD.write, leakDetectionThresholdMs: 30_000 },
    batch: { ...PROD.batch, leakDetectionThresholdMs: 30_000 },
  },
  dev: {
    read: pool(1, 4, { connectionTimeoutMs: 5_000, leakDetectionThresholdMs: 10_000 }),
    write: pool(1, 4, { connectionTimeoutMs: 5_000, leakDetectionThresholdMs: 10_000 }),
    batch: pool(0, 2, { connectionTimeoutMs: 5_000, leakDetectionThresholdMs: 10_000 }),
  },
};

/** Hosts from Patroni's `GET /cluster`, re-read while the database runs. */
export interface PatroniRouting extends PatroniSource {
  /** Mean time between periodic reads of `/cluster` (±20 % jitter); default 5000 ms. */
  refreshIntervalMs?: number;
}

/** What `createDatabase` accepts: `primary`, or `patroni`, or both. */
export interface DatabaseOptions {
  /**
   * The server that is primary at start. After a failover any configured host may be. Optional
   * with `patroni` (the first read of `/cluster` names the hosts then).
   */
  primary?: HostInput;
  replicas?: HostInput[];
  /** Selects pool defaults; default `prod`. */
  environment?: Environment;
  /** Per-role overrides of the environment defaults. */
  pools?: Partial<Record<PoolRole, Partial<PoolSettings>>>;
  logger?: Logger;
  /**
   * Take the members from Patroni and follow them: re-read every `refreshIntervalMs` and at once
   * when a write finds no primary; members Patroni drops are drained, new ones get pools.
   */
  patroni?: PatroniRouting;
  /**
   * How long a write whose failure proves it never ran (no primary reachable to open a session on,
   * or refused by a server in recovery, SQLSTATE 25006) is retried while a new primary is found;
   * default 10000 ms, 0 to fail at once. A write that may have run is never retried.
   */
  failoverWaitMs?: number;
  /** Reads avoid replicas that lag more than this; default 1000 ms. */
  maxReplicaLagMs?: number;
  /** Instances of the application sharing the servers, for the connection budget; default 1. */
  appInstances?: number;
  /** How often replicas and the primary's WAL position are polled; default 500 ms. */
  healthCheckIntervalMs?: number;
  /** How long a session's last write position is remembered for read-your-writes; default 5 min. */
  sessionTtlMs?: number;
  /** Seconds of socket idleness before TCP keepalive probes start; default 10 s. */
  keepAliveInitialDelayMs?: number;
  applicationName?: string;
  /** TLS for hosts that do not set their own; default `prefer` (verified TLS off loopback). */
  tls?: SslMode;
  /** CA for hosts that do not set their own. */
  tlsCa?: string;
  /**
   * Opt-in: exports every pool under HikariCP's metric names (`hikaricp_connections_*`, label
   * `pool`) to this prom-client registry. See docs/service-library.md#metrics.
   */
  metrics?: MetricsOptions;
  /**
   * User and password for every new connection, asked again for each one (rotated credentials
   * are used from the next connection on; `maxLifetimeMs` retires the old ones). Overrides the
   * hosts' own user and password. See docs/credential-rotation.md.
   */
  credentials?: CredentialsProvider;
}

export interface ResolvedConfig {
  readonly hosts: readonly HostTarget[];
  readonly initialPrimary: HostTarget | undefined;
  readonly replicas: readonly HostTarget[];
  readonly environment: Environment;
  readonly pools: Readonly<Record<PoolRole, PoolSettings>>;
  readonly logger: Logger;
  readonly maxReplicaLagMs: number;
  readonly appInstances: number;
  readonly healthCheckIntervalMs: number;
  readonly sessionTtlMs: number;
  readonly keepAliveInitialDelayMs: number;
  readonly applicationName: string;
  readonly metrics: MetricsOptions | undefined;
  readonly patroni: Readonly<Required<Pick<PatroniRouting, 'refreshIntervalMs'>> & PatroniSource> | undefined;
  readonly failoverWaitMs: number;
  /** The HostTarget of a member Patroni names (its connection settings, the database's TLS defaults). */
  readonly memberTarget: (host: string, port: number) => HostTarget;
  readonly credentials: CredentialsProvider | undefined;
}

const sslModeSchema = z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']);

const hostSchema = z.union([
  z.string().min(1),
  z
    .object({
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535).optional(),
      user: z.string().min(1).optional(),
      password: z.string().optional(),
      database: z.string().min(1).optional(),
      tls: sslModeSchema.optional(),
      tlsCa: z.string().optional(),
    })
    .strict(),
]);

const ms = z.number().int().min(0);
const poolSchema = z
  .object({
    minIdle: z.number().int().min(0),
    maxSize: z.number().int().min(1),
    idleTimeoutMs: ms,
    connectionTimeoutMs: z.number().int().min(1),
    maxLifetimeMs: ms,
    leakDetectionThresholdMs: ms,
    leakDetectionStacks: z.enum(['per-statement', 'every-checkout', 'off']),
    validateAfterIdleMs: ms,
    validationTimeoutMs: z.number().int().min(1),
  })
  .partial()
  .strict();

const patroniSchema = z
  .object({
    urls: z
      .array(
        z
          .string()
          .url()
          .regex(/^https?:\/\//i, 'an http(s) URL'),
      )
      .min(1),
    connection: z
      .object({
        user: z.string().min(1).optional(),
        password: z.string().optional(),
        database: z.string().min(1).optional(),
        tls: sslModeSchema.optional(),
        tlsCa: z.string().optional(),
      })
      .strict(),
    timeoutMs: z.number().int().min(1).optional(),
    refreshIntervalMs: z.number().int().min(100).optional(),
  })
  .strict();

const optionsSchema = z
  .object({
    primary: hostSchema.optional(),
    patroni: patroniSchema.optional(),
    failoverWaitMs: ms.optional(),
    replicas: z.array(hostSchema).optional(),
    environment: z.enum(['dev', 'uat', 'prod']).optional(),
    pools: z.object({ read: poolSchema, write: poolSchema, batch: poolSchema }).partial().strict().optional(),
    logger: z.custom<Logger>((value) => typeof value === 'object' && value !== null).optional(),
    maxReplicaLagMs: ms.optional(),
    appInstances: z.number().int().min(1).optional(),
    healthCheckIntervalMs: z.number().int().min(10).optional(),
    sessionTtlMs: z.number().int().min(1).optional(),
    keepAliveInitialDelayMs: ms.optional(),
    applicationName: z.string().optional(),
    tls: sslModeSchema.optional(),
    tlsCa: z.string().optional(),
    metrics: z.custom<MetricsOptions>((value) => typeof value === 'object' && value !== null).optional(),
    credentials: z
      .custom<CredentialsProvider>(
        (value) => typeof value === 'function',
        'must be a function returning a promise of { user, password }',
      )
      .optional(),
  })
  .strict();

/** Validates options and resolves every default; errors name the field path. */
export function resolveConfig(options: DatabaseOptions): ResolvedConfig {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.length ? issue.path.join('.') : '(options)';
    throw new DataLayerError('WARDEN_E_CONFIG_INVALID', `${field}: ${issue?.message ?? 'invalid'}`, {
      details: { field },
    });
  }
  const environment = options.environment ?? 'prod';
  const pools = {} as Record<PoolRole, PoolSettings>;
  for (const role of POOL_ROLES) {
    const merged = { ...POOL_DEFAULTS[environment][role], ...options.pools?.[role] };
    if (merged.minIdle > merged.maxSize) {
      throw new DataLayerError('WARDEN_E_CONFIG_INVALID', `pools.${role}.minIdle: must not exceed maxSize`, {
        details: { field: `pools.${role}.minIdle` },
      });
    }
    pools[role] = Object.freeze(merged);
  }
  if (options.primary === undefined && options.patroni === undefined) {
    throw new DataLayerError('WARDEN_E_CONFIG_INVALID', 'primary: required unless patroni is given', {
      details: { field: 'primary' },
    });
  }
  const tlsDefaults = { tls: options.tls ?? 'prefer', tlsCa: options.tlsCa } as const;
  const initialPrimary =
    options.primary === undefined ? undefined : toTarget(options.primary, 'primary', tlsDefaults);
  const replicas = (options.replicas ?? []).map((input, i) => toTarget(input, `replicas.${i}`, tlsDefaults));
  const hosts = initialPrimary ? [initialPrimary, ...replicas] : replicas;
  const patroni = options.patroni;
  const memberTarget = (host: string, port: number): HostTarget =>
    toTarget({ ...patroni?.connection, host, port }, 'patroni.connection', tlsDefaults);
  // An impossible TLS combination (disable with a CA) fails here, not at the first member.
  if (patroni) memberTarget('127.0.0.1', 5432);
  const keys = new Set(hosts.map((h) => h.key));
  if (keys.size !== hosts.length) {
    throw new DataLayerError('WARDEN_E_CONFIG_INVALID', 'replicas: a host is listed twice', {
      details: { field: 'replicas' },
    });
  }
  return Object.freeze({
    hosts,
    initialPrimary,
    replicas,
    environment,
    pools: Object.freeze(pools),
    logger: options.logger ?? silentLogger,
    maxReplicaLagMs: options.maxReplicaLagMs ?? 1_000,
    appInstances: options.appInstances ?? 1,
    healthCheckIntervalMs: options.healthCheckIntervalMs ?? 500,
    sessionTtlMs: options.sessionTtlMs ?? 5 * MINUTE,
    keepAliveInitialDelayMs: options.keepAliveInitialDelayMs ?? 10_000,
    applicationName: options.applicationName ?? 'warden',
    metrics: options.metrics === undefined ? undefined : checkMetricsOptions(options.metrics, 'metrics'),
    patroni: patroni
      ? Object.freeze({ ...patroni, refreshIntervalMs: patroni.refreshIntervalMs ?? 5_000 })
      : undefined,
    failoverWaitMs: options.failoverWaitMs ?? 10_000,
    memberTarget,
    credentials: options.credentials,
  });
}

/**
 * One host, its TLS decided on its own (primary and replicas may differ: a replica on this
 * machine, the primary across the network). An impossible combination fails here, at startup.
 */
function toTarget(
  input: HostInput,
  field: string,
  defaults: { tls: SslMode; tlsCa: string | undefined },
): HostTarget {
  if (typeof input !== 'string') {
    const port = input.port ?? 5432;
    return target(
      {
        host: input.host,
        port,
        user: input.user ?? 'postgres',
        password: input.password,
        database: input.database ?? 'postgres',
        tls: input.tls ?? defaults.tls,
        tlsCa: input.tlsCa ?? defaults.tlsCa,
      },
      field,
    );
  }
  let url: URL;
  try {
    url = new URL(input);
  } catch {
    throw new DataLayerError('WARDEN_E_CONFIG_INVALID', `${field}: not a valid postgres:// URL`, {
      details: { field },
    });
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new DataLayerError('WARDEN_E_CONFIG_INVALID', `${field}: URL must start with postgres://`, {
      details: { field },
    });
  }
  const host = decodeUrlPart(url.hostname, field, 'host').replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
  const sslmode = url.searchParams.get('sslmode');
  return target(
    {
      host,
      port: url.port ? Number(url.port) : 5432,
      user: decodeUrlPart(url.username, field, 'user name') || 'postgres',
      password: url.password ? decodeUrlPart(url.password, field, 'password') : undefined,
      database: decodeUrlPart(url.pathname.slice(1), field, 'database name') || 'postgres',
      tls: sslmode === null ? defaults.tls : (sslmode as SslMode),
      tlsCa: url.searchParams.get('sslrootcert') ?? defaults.tlsCa,
    },
    field,
  );
}

function target(
  parts: Omit<HostTarget, 'key' | 'tls'> & { tls: SslMode | string },
  field: string,
): HostTarget {
  const tls = parseTlsMode(parts.tls, `${field}.tls`);
  // Validates the combination now (disable with a CA is refused) rather than at first connect.
  planTls(parts.host, parts.port, tls, parts.tlsCa, `${field}.tls`);
  return Object.freeze({ ...parts, key: `${parts.host}:${parts.port}`, tls });
}
