import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { daemonSectionSchema, type DaemonSection } from '../daemon/daemon-config.ts';
import { WardenError } from '../errors.ts';
import { COMPRESSIONS, type Compression } from '../pipeline/compression.ts';
import { describeS3, resolveS3Repository, s3SectionSchema, type S3RepositoryConfig } from './s3-config.ts';
import {
  encryptionSchema,
  resolveEncryption,
  type EncryptionConfig,
  type EncryptionFlags,
} from './encryption-config.ts';
import {
  connectionFromEnv,
  connectionFromUrl,
  parseTlsMode,
  type ConnectionConfig,
} from '../postgres/connection-config.ts';
import {
  DEFAULT_RETENTION_POLICY,
  parseDuration,
  type RetentionPolicy,
} from '../retention/retention-policy.ts';

/** Defaults, declared once. */
export const DEFAULTS = {
  configFile: 'warden.yaml',
  repositoryPath: './.warden/repo',
  compression: 'zstd' as Compression,
  tls: 'prefer',
} as const;

const connectionSchema = z
  .object({
    url: z.string().optional(),
    host: z.string().optional(),
    port: z.number().int().min(1).max(65535).optional(),
    user: z.string().optional(),
    password: z.string().optional(),
    passwordFile: z.string().optional(),
    database: z.string().optional(),
    tls: z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
    tlsCa: z.string().optional(),
    slot: z
      .string()
      .regex(/^[a-z0-9_]{1,63}$/, 'lower-case letters, digits and _ only')
      .optional(),
  })
  .strict();

/** `7d`, `36h`, `2w`, or 0 for off (checked by parseDuration when resolving). */
const durationField = z.union([z.string(), z.literal(0)]);

const fileSchema = z
  .object({
    cluster: connectionSchema.optional(),
    repository: z
      .object({
        path: z.string().optional(),
        compression: z.enum(COMPRESSIONS as unknown as [Compression, ...Compression[]]).optional(),
        compressionLevel: z.number().int().min(0).max(22).optional(),
        serverCompression: z.boolean().optional(),
        s3: s3SectionSchema.optional(),
        encryption: encryptionSchema.optional(),
      })
      .strict()
      .optional(),
    retention: z
      .object({
        gfs: z
          .object({
            daily: z.number().int().min(0).optional(),
            weekly: z.number().int().min(0).optional(),
            monthly: z.number().int().min(0).optional(),
          })
          .strict()
          .optional(),
        maxAge: z
          .object({ full: durationField.optional(), incremental: durationField.optional() })
          .strict()
          .optional(),
        keepLast: z.number().int().min(0).optional(),
        recoveryWindow: durationField.optional(),
      })
      .strict()
      .optional(),
    /** `warden serve`: profiles, schedules, objectives, checks, clusters (src/daemon/daemon-config.ts). */
    daemon: daemonSectionSchema.optional(),
  })
  .strict();

export type ConfigFile = z.infer<typeof fileSchema>;

export interface WardenConfig {
  /** Undefined when nothing names a cluster (the embedded default then applies). */
  cluster?: ConnectionConfig;
  /** `--slot`/WARDEN_SLOT/cluster.slot; unset: each repository's own slot (warden-repo.json). */
  slot?: string;
  repository: {
    path: string;
    compression: Compression;
    compressionLevel?: number;
    serverCompression: boolean;
    /** Set when the repository is an S3 bucket; `path` is then its `s3://bucket/prefix`. */
    s3?: S3RepositoryConfig;
    encryption: EncryptionConfig;
  };
  /** Retention policy for `warden expire` (defaults: GFS 7/4/12, full 90 days, incremental 7 days). */
  retention: RetentionPolicy;
  /** The `daemon:` section as written, and the directory its relative paths are resolved against. */
  daemon: { section?: DaemonSection; baseDir: string };
  /** Where each value came from, for `--json` diagnostics. */
  sources: Record<string, 'flag' | 'env' | 'file' | 'default'>;
}

export interface ConfigInputs {
  flags: EncryptionFlags & {
    config?: string;
    db?: string;
    repo?: string;
    compression?: string;
    serverCompress?: boolean;
    slot?: string;
  };
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/**
 * Resolves the effective configuration. Precedence: CLI flag > environment > config file >
 * default. Errors name the field path. The result is frozen.
 */
export function loadConfig({ flags, env, cwd }: ConfigInputs): WardenConfig {
  const file = readConfigFile(flags.config ?? env.WARDEN_CONFIG, cwd);
  const sources: WardenConfig['sources'] = {};
  const pick = <T>(
    name: string,
    flag: T | undefined,
    fromEnv: T | undefined,
    fromFile: T | undefined,
    fallback: T,
  ): T => {
    if (flag !== undefined) return ((sources[name] = 'flag'), flag);
    if (fromEnv !== undefined) return ((sources[name] = 'env'), fromEnv);
    if (fromFile !== undefined) return ((sources[name] = 'file'), fromFile);
    sources[name] = 'default';
    return fallback;
  };
  const dbUrl = flags.db ?? env.WARDEN_DB;
  let cluster: ConnectionConfig | undefined;
  if (dbUrl) {
    cluster = connectionFromUrl(dbUrl, flags.db ? '--db' : 'WARDEN_DB');
    sources.cluster = flags.db ? 'flag' : 'env';
  } else if (file.config.cluster) {
    cluster = connectionFromFile(file.config.cluster, file.path ?? 'config', env);
    sources.cluster = 'file';
  } else {
    cluster = connectionFromEnv(env);
    if (cluster) sources.cluster = 'env';
  }
  const compression = pick(
    'compression',
    flags.compression,
    env.WARDEN_COMPRESSION,
    file.config.repository?.compression,
    DEFAULTS.compression,
  );
  if (!(COMPRESSIONS as readonly string[]).includes(compression)) {
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `compression: "${compression}" is not one of ${COMPRESSIONS.join(', ')}`,
      {
        details: { field: 'repository.compression' },
      },
    );
  }
  const repoPath = pick(
    'repository',
    flags.repo,
    env.WARDEN_REPO,
    file.config.repository?.path,
    DEFAULTS.repositoryPath,
  );
  const s3 = resolveS3Repository(repoPath, sources.repository === 'default', file.config.repository?.s3, env);
  const level = file.config.repository?.compressionLevel;
  const slot = pick<string | undefined>(
    'slot',
    flags.slot,
    env.WARDEN_SLOT,
    file.config.cluster?.slot,
    undefined,
  );
  return Object.freeze({
    ...(cluster ? { cluster } : {}),
    ...(slot !== undefined ? { slot } : {}),
    repository: {
      path: s3 ? describeS3(s3) : path.resolve(file.path ? path.dirname(file.path) : cwd, repoPath),
      ...(s3 ? { s3 } : {}),
      compression: compression as Compression,
      ...(level !== undefined ? { compressionLevel: level } : {}),
      serverCompression: flags.serverCompress ?? file.config.repository?.serverCompression ?? false,
      encryption: resolveEncryption(
        flags,
        env,
        file.config.repository?.encryption,
        file.path ? path.dirname(file.path) : cwd,
        cwd,
      ),
    },
    retention: retentionFromFile(file.config.retention, file.path ?? 'config'),
    daemon: {
      ...(file.config.daemon ? { section: file.config.daemon } : {}),
      baseDir: file.path ? path.dirname(file.path) : cwd,
    },
    sources,
  });
}

function retentionFromFile(input: ConfigFile['retention'], file: string): RetentionPolicy {
  const defaults = DEFAULT_RETENTION_POLICY;
  const duration = (value: string | 0 | undefined, field: string, fallback: number | undefined) =>
    value === undefined ? fallback : parseDuration(String(value), `${file}: retention.${field}`);
  const policy: RetentionPolicy = {
    gfs: { ...defaults.gfs!, ...input?.gfs },
    maxAge: {
      fullMs: duration(input?.maxAge?.full, 'maxAge.full', defaults.maxAge?.fullMs),
      incrementalMs: duration(
        input?.maxAge?.incremental,
        'maxAge.incremental',
        defaults.maxAge?.incrementalMs,
      ),
    },
    ...(input?.keepLast ? { keepLast: input.keepLast } : {}),
  };
  const window = duration(input?.recoveryWindow, 'recoveryWindow', undefined);
  if (window) policy.recoveryWindowMs = window;
  return policy;
}

function readConfigFile(explicit: string | undefined, cwd: string): { path?: string; config: ConfigFile } {
  const candidate = explicit ? path.resolve(cwd, explicit) : path.join(cwd, DEFAULTS.configFile);
  if (!existsSync(candidate)) {
    if (explicit) {
      throw new WardenError('WARDEN_E_CONFIG_INVALID', `config file ${candidate} does not exist`, {
        details: { field: '--config' },
      });
    }
    return { config: {} };
  }
  let raw: unknown;
  try {
    raw = parseYaml(readFileSync(candidate, 'utf8'));
  } catch (cause) {
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `${candidate}: not valid YAML (${(cause as Error).message})`,
      { cause },
    );
  }
  const parsed = fileSchema.safeParse(raw ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const field = issue.path.join('.') || '(root)';
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${candidate}: ${field}: ${issue.message}`, {
      details: { field, file: candidate },
    });
  }
  return { path: candidate, config: parsed.data };
}

function connectionFromFile(
  input: NonNullable<ConfigFile['cluster']>,
  file: string,
  env: NodeJS.ProcessEnv,
): ConnectionConfig {
  const base = input.url ? connectionFromUrl(input.url, `${file}: cluster.url`) : undefined;
  const password =
    input.password ??
    (input.passwordFile ? readFileSync(input.passwordFile, 'utf8').trim() : undefined) ??
    base?.password ??
    env.PGPASSWORD;
  return {
    host: input.host ?? base?.host ?? '127.0.0.1',
    port: input.port ?? base?.port ?? 5432,
    user: input.user ?? base?.user ?? 'postgres',
    password,
    database: input.database ?? base?.database ?? 'postgres',
    tls: input.tls ? parseTlsMode(input.tls, 'cluster.tls') : (base?.tls ?? 'prefer'),
    tlsCa: input.tlsCa ?? base?.tlsCa,
    applicationName: 'warden',
  };
}
