import { z } from 'zod';
import { WardenError } from '../../errors.ts';
import { silentLogger, type Logger } from '../../logger.ts';
import type { HostTarget } from './driver.ts';
import type { PoolSettings } from './pool.ts';
import { decodeUrlPart, parseTlsMode } from '../../postgres/connection-config.ts';
import { planTls } from '../../postgres/tls-policy.ts';
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

/** What `createDatabase` accepts. Only `primary` is required. */
export interface DatabaseOptions {
  /** The server that is primary at start. After a failover any configured host may be. */
  primary: HostInput;
  replicas?: HostInput[];
  /** Selects pool defaults; default `prod`. */
  environment?: Environment;
  /** Per-role overrides of the environment defaults. */
  pools?: Partial<Record<PoolRole, Partial<PoolSettings>>>;
  logger?: Logger;
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
}

export interface ResolvedConfig {
  readonly hosts: readonly HostTarget[];
  readonly initialPrimary: HostTarget;
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

const optionsSchema = z
  .object({
    primary: hostSchema,
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
  })
  .strict();

/** Validates options and resolves every default; errors name the field path. */
export function resolveConfig(options: DatabaseOptions): ResolvedConfig {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.length ? issue.path.join('.') : '(options)';
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: ${issue?.message ?? 'invalid'}`, {
      details: { field },
    });
  }
  const environment = options.environment ?? 'prod';
  const pools = {} as Record<PoolRole, PoolSettings>;
  for (const role of POOL_ROLES) {
    const merged = { ...POOL_DEFAULTS[environment][role], ...options.pools?.[role] };
    if (merged.minIdle > merged.maxSize) {
      throw new WardenError('WARDEN_E_CONFIG_INVALID', `pools.${role}.minIdle: must not exceed maxSize`, {
        details: { field: `pools.${role}.minIdle` },
      });
    }
    pools[role] = Object.freeze(merged);
  }
  const tlsDefaults = { tls: options.tls ?? 'prefer', tlsCa: options.tlsCa } as const;
  const initialPrimary = toTarget(options.primary, 'primary', tlsDefaults);
  const replicas = (options.replicas ?? []).map((input, i) => toTarget(input, `replicas.${i}`, tlsDefaults));
  const hosts = [initialPrimary, ...replicas];
  const keys = new Set(hosts.map((h) => h.key));
  if (keys.size !== hosts.length) {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', 'replicas: a host is listed twice', {
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
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: not a valid postgres:// URL`, {
      details: { field },
    });
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: URL must start with postgres://`, {
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
