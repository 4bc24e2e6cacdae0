import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { daemonSectionSchema, type DaemonSection } from '../daemon/daemon-config.ts';
import { credentialsSectionSchema, type CredentialsSection } from '../credentials/credentials-config.ts';
import { WardenError } from '../errors.ts';
import { COMPRESSIONS, type Compression } from '../pipeline/compression.ts';
import { describeS3, resolveS3Repository, s3SectionSchema, type S3RepositoryConfig } from './s3-config.ts';
import { resolveRepositoryGroup, type RepositoryGroup } from '../repository/fs/repository-group.ts';
import {
  encryptionSchema,
  resolveEncryption,
  type EncryptionConfig,
  type EncryptionFlags,
} from './encryption-config.ts';
import { resolveSigning, signingSchema, type SigningConfig, type SigningFlags } from './signing-config.ts';
import {
  connectionFromEnv,
  connectionFromUrl,
  type ConnectionConfig,
} from '../postgres/connection-config.ts';
import type { BackupFrom } from '../backup/backup-from.ts';
import { backupSectionSchema, resolveBackupFrom } from '../backup/backup-from-config.ts';
import { warnOnce } from '../util/security-warning.ts';
import {
  connectionFields,
  connectionFromSettings,
  withPasswordFlags,
  type PasswordFlags,
} from './connection-settings.ts';
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
    ...connectionFields,
    slot: z
      .string()
      .regex(/^[a-z0-9_]{1,63}$/, 'lower-case letters, digits and _ only')
      .optional(),
    /** Where `warden backup` and scheduled backups run (docs/standby-backups.md). */
    backup: backupSectionSchema.optional(),
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
        group: z.union([z.string().min(1), z.number().int().min(0)]).optional(),
        compression: z.enum(COMPRESSIONS as unknown as [Compression, ...Compression[]]).optional(),
        compressionLevel: z.number().int().min(0).max(22).optional(),
        serverCompression: z.boolean().optional(),
        s3: s3SectionSchema.optional(),
        encryption: encryptionSchema.optional(),
        signing: signingSchema.optional(),
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
    /** `warden credentials`: roles and Redis users whose passwords Warden rotates (docs/credential-rotation.md). */
    credentials: credentialsSectionSchema.optional(),
  })
  .strict();

export type ConfigFile = z.infer<typeof fileSchema>;

export interface WardenConfig {
  /** Undefined when nothing names a cluster (the embedded default then applies). */
  cluster?: ConnectionConfig;
  /** `--slot`/WARDEN_SLOT/cluster.slot; unset: each repository's own slot (warden-repo.json). */
  slot?: string;
  /** WARDEN_BACKUP_FROM/cluster.backup.from (default primary); `--from` overrides it per command. */
  backupFrom: BackupFrom;
  repository: {
    path: string;
    compression: Compression;
    compressionLevel?: number;
    serverCompression: boolean;
    /** Set when the repository is an S3 bucket; `path` is then its `s3://bucket/prefix`. */
    s3?: S3RepositoryConfig;
    /**
     * A directory repository is private to the OS user running Warden (0700/0600); with a group
     * it is also readable by that group (0750/0640, owned by the group).
     */
    group?: RepositoryGroup;
    encryption: EncryptionConfig;
    /** Signing key and trusted keys (docs/security.md). */
    signing: SigningConfig;
  };
  /** Retention policy for `warden expire` (defaults: GFS 7/4/12, full 90 days, incremental 7 days). */
  retention: RetentionPolicy;
  /** The `daemon:` section as written, and the directory its relative paths are resolved against. */
  daemon: { section?: DaemonSection; baseDir: string };
  /** The `credentials:` section as written (resolved by src/credentials/credentials-config.ts). */
  credentials?: CredentialsSection;
  /** Where each value came from, for `--json` diagnostics. */
  sources: Record<string, 'flag' | 'env' | 'file' | 'default'>;
}

export interface ConfigInputs {
  flags: EncryptionFlags &
    PasswordFlags &
    SigningFlags & {
      config?: string;
      db?: string;
      repo?: string;
      repoGroup?: string;
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
  if (file.path) warnSecretsInReadableFile(file.path, file.config);
  const dbUrl = flags.db ?? env.WARDEN_DB;
  const baseDir = file.path ? path.dirname(file.path) : cwd;
  let cluster: ConnectionConfig | undefined;
  if (dbUrl) {
    cluster = connectionFromUrl(dbUrl, flags.db ? '--db' : 'WARDEN_DB');
    sources.cluster = flags.db ? 'flag' : 'env';
    if (flags.db && cluster.password !== undefined) warnPasswordOnCommandLine();
  } else if (file.config.cluster) {
    cluster = connectionFromSettings(file.config.cluster, `${file.path ?? 'config'}: cluster`, baseDir, env);
    sources.cluster = 'file';
  } else {
    cluster = connectionFromEnv(env);
    if (cluster) sources.cluster = 'env';
  }
  if (flags.passwordFile || flags.passwordCommand) {
    cluster = withPasswordFlags(
      cluster ?? connectionFromSettings({}, '--password-file', cwd, env),
      flags,
      cwd,
    );
    sources.password = 'flag';
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
  const s3 = resolveS3Repository(
    repoPath,
    sources.repository === 'default',
    file.config.repository?.s3,
    env,
    baseDir,
  );
  const level = file.config.repository?.compressionLevel;
  const group = repositoryGroup(flags.repoGroup, env.WARDEN_REPO_GROUP, file.config.repository?.group);
  const slot = pick<string | undefined>(
    'slot',
    flags.slot,
    env.WARDEN_SLOT,
    file.config.cluster?.slot,
    undefined,
  );
  const backupFrom = resolveBackupFrom(
    env,
    file.config.cluster?.backup?.from,
    `${file.path ?? 'config'}: cluster.backup.from`,
  );
  sources.backupFrom = backupFrom.source;
  return Object.freeze({
    ...(cluster ? { cluster } : {}),
    ...(slot !== undefined ? { slot } : {}),
    backupFrom: backupFrom.from,
    repository: {
      path: s3 ? describeS3(s3) : path.resolve(file.path ? path.dirname(file.path) : cwd, repoPath),
      ...(s3 ? { s3 } : {}),
      ...(group ? { group } : {}),
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
      signing: resolveSigning(
        flags,
        env,
        file.config.repository?.signing,
        file.path ? path.dirname(file.path) : cwd,
        cwd,
      ),
    },
    retention: retentionFromFile(file.config.retention, file.path ?? 'config'),
    daemon: {
      ...(file.config.daemon ? { section: file.config.daemon } : {}),
      baseDir: file.path ? path.dirname(file.path) : cwd,
    },
    ...(file.config.credentials ? { credentials: file.config.credentials } : {}),
    sources,
  });
}

/** `--repo-group` > WARDEN_REPO_GROUP > `repository.group`: the group that may read directory repositories. */
function repositoryGroup(
  flag: string | undefined,
  fromEnv: string | undefined,
  fromFile: string | number | undefined,
): RepositoryGroup | undefined {
  if (flag) return resolveRepositoryGroup(flag, '--repo-group');
  if (fromEnv) return resolveRepositoryGroup(fromEnv, 'WARDEN_REPO_GROUP');
  if (fromFile !== undefined) return resolveRepositoryGroup(String(fromFile), 'repository.group');
  return undefined;
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

/**
 * A password or secret key written into a config file that other local users may read is as
 * exposed as one on the command line: warn, naming the field, never the value.
 */
function warnSecretsInReadableFile(file: string, config: ConfigFile): void {
  if ((statSync(file).mode & 0o044) === 0) return;
  const fields = [
    ...(config.cluster?.password !== undefined ? ['cluster.password'] : []),
    ...(config.cluster?.url && connectionFromUrl(config.cluster.url, `${file}: cluster.url`).password
      ? ['cluster.url']
      : []),
    ...(config.repository?.s3?.secretAccessKey !== undefined ? ['repository.s3.secretAccessKey'] : []),
    ...(config.daemon?.clusters ?? []).flatMap((entry, i) => [
      ...(entry.password !== undefined ? [`daemon.clusters.${i}.password`] : []),
      ...(entry.url && connectionFromUrl(entry.url, `${file}: daemon.clusters.${i}.url`).password
        ? [`daemon.clusters.${i}.url`]
        : []),
    ]),
  ];
  if (fields.length === 0) return;
  warnOnce(
    `secret-in-readable-file:${file}`,
    'WARDEN_W_SECRET_IN_READABLE_FILE',
    `${file} holds a secret (${fields.join(', ')}) and other local users may read it: chmod 0600 ${file}, ` +
      'or use passwordFile / passwordCommand (and the AWS credential chain) instead',
  );
}

/**
 * A password in `--db` can be read by every local user (`ps`, /proc/<pid>/cmdline) for as long as
 * the process runs, which for `serve` is always.
 */
function warnPasswordOnCommandLine(): void {
  warnOnce(
    'password-on-command-line',
    'WARDEN_W_PASSWORD_ON_COMMAND_LINE',
    'the --db URL holds a password, which every local user can read in the process list; use ' +
      '--password-file FILE, --password-command CMD, PGPASSWORD, ~/.pgpass (PGPASSFILE), or ' +
      'cluster.passwordFile / passwordCommand in warden.yaml instead',
  );
}
