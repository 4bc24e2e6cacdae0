import path from 'node:path';
import { z } from 'zod';
import { WardenError } from '../errors.ts';
import { splitCommand } from '../postgres/password-source.ts';
import { connectionFromUrl, parseTlsMode, type ConnectionConfig } from '../postgres/connection-config.ts';

/**
 * How to reach one PostgreSQL server, as written in warden.yaml (`cluster:` and each entry of
 * `daemon.clusters`). Either `url` or the separate fields (which override the URL's).
 */
export const connectionFields = {
  url: z.string().optional(),
  host: z.string().optional(),
  port: z.number().int().min(1).max(65535).optional(),
  user: z.string().optional(),
  password: z.string().optional(),
  /** File whose first line is the password (relative to the config file). */
  passwordFile: z.string().optional(),
  /** Program printing the password: a list of words, or one string split like a shell would. */
  passwordCommand: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
  database: z.string().optional(),
  tls: z.enum(['disable', 'allow', 'prefer', 'require', 'verify-ca', 'verify-full']).optional(),
  /** PEM file of the CA that signed the server certificate (relative to the config file). */
  tlsCa: z.string().optional(),
  /** Patroni REST endpoints: the authority on which member is the primary (docs/high-availability.md). */
  patroni: z
    .object({
      urls: z
        .array(
          z
            .string()
            .url()
            .regex(/^https?:\/\//i, 'an http:// or https:// URL'),
        )
        .min(1),
    })
    .strict()
    .optional(),
};

export type ConnectionSettings = {
  [K in keyof typeof connectionFields]?: z.infer<(typeof connectionFields)[K]>;
};

/** Password sources named on the command line (`--password-file`, `--password-command`). */
export interface PasswordFlags {
  passwordFile?: string;
  passwordCommand?: string;
}

/**
 * Resolves settings into a connection. `field` prefixes messages (`warden.yaml: cluster`), and
 * relative file names are resolved against `baseDir`. At most one password source may be named;
 * PGPASSWORD and the libpq password file are looked up later, per connection, when none is.
 */
export function connectionFromSettings(
  input: ConnectionSettings,
  field: string,
  baseDir: string,
  env: NodeJS.ProcessEnv,
): ConnectionConfig {
  const base = input.url ? connectionFromUrl(input.url, `${field}.url`) : undefined;
  const named = (['password', 'passwordFile', 'passwordCommand'] as const).filter(
    (key) => input[key] !== undefined,
  );
  if (named.length > 1) {
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `${field}: ${named.join(' and ')} are both set; name one password source`,
      { details: { field: `${field}.${named[1]}` } },
    );
  }
  const command = input.passwordCommand;
  const passwordCommand =
    command === undefined
      ? undefined
      : typeof command === 'string'
        ? splitCommand(command, `${field}.passwordCommand`)
        : command;
  const passwordFile = input.passwordFile ? path.resolve(baseDir, input.passwordFile) : undefined;
  const ownSource = named.length > 0;
  return {
    host: input.host ?? base?.host ?? '127.0.0.1',
    port: input.port ?? base?.port ?? 5432,
    user: input.user ?? base?.user ?? 'postgres',
    password: input.password ?? (ownSource ? undefined : (base?.password ?? (env.PGPASSWORD || undefined))),
    ...(passwordFile ? { passwordFile } : {}),
    ...(passwordCommand ? { passwordCommand } : {}),
    database: input.database ?? base?.database ?? 'postgres',
    tls: input.tls ? parseTlsMode(input.tls, `${field}.tls`) : (base?.tls ?? 'prefer'),
    tlsCa: input.tlsCa ? path.resolve(baseDir, input.tlsCa) : base?.tlsCa,
    applicationName: 'warden',
    // A host given on its own replaces the URL's host list.
    ...(base?.hosts && input.host === undefined && input.port === undefined ? { hosts: base.hosts } : {}),
    ...(base?.targetSessionAttrs ? { targetSessionAttrs: base.targetSessionAttrs } : {}),
    ...(input.patroni ? { patroni: { urls: input.patroni.urls } } : {}),
  };
}

/**
 * Applies `--password-file` / `--password-command` to a connection: they replace whatever
 * password source it had (a flag beats the environment and the config file).
 */
export function withPasswordFlags(
  connection: ConnectionConfig,
  flags: PasswordFlags,
  cwd: string,
): ConnectionConfig {
  if (flags.passwordFile && flags.passwordCommand) {
    throw new WardenError(
      'WARDEN_E_USAGE',
      '--password-file and --password-command are both given; use one',
      {
        details: { field: '--password-command' },
      },
    );
  }
  if (!flags.passwordFile && !flags.passwordCommand) return connection;
  const { password: _password, passwordFile: _file, passwordCommand: _command, ...rest } = connection;
  return {
    ...rest,
    ...(flags.passwordFile ? { passwordFile: path.resolve(cwd, flags.passwordFile) } : {}),
    ...(flags.passwordCommand
      ? { passwordCommand: splitCommand(flags.passwordCommand, '--password-command') }
      : {}),
  };
}
