import path from 'node:path';
import { z } from 'zod';
import { WardenError } from '../errors.ts';
import type { SecretSink } from './secret-sink.ts';

/** How long a sink command may take (a Kubernetes or secrets-manager API call) unless configured. */
const DEFAULT_SINK_TIMEOUT_MS = 60_000;

const sinkSchema = z.union([
  z.object({ file: z.string().min(1) }).strict(),
  z
    .object({
      command: z.array(z.string().min(1)).min(1),
      timeoutSeconds: z.number().int().min(1).max(3600).optional(),
    })
    .strict(),
]);

/** A PostgreSQL role name as the server accepts it: 1–63 bytes, no NUL (quoted wherever used). */
const roleName = z
  .string()
  .min(1)
  .refine((name) => Buffer.byteLength(name) <= 63 && !name.includes('\0'), 'at most 63 bytes, no NUL');

/** `credentials:` in warden.yaml. */
export const credentialsSectionSchema = z
  .object({
    postgres: z
      .record(
        z.string().min(1),
        z
          .object({
            owner: roleName.optional(),
            logins: z.tuple([roleName, roleName]).optional(),
            sink: sinkSchema.optional(),
          })
          .strict(),
      )
      .optional(),
    redis: z
      .record(
        z.string().min(1),
        z.object({ url: z.string().min(1).optional(), sink: sinkSchema.optional() }).strict(),
      )
      .optional(),
  })
  .strict();

export type CredentialsSection = z.infer<typeof credentialsSectionSchema>;

/**
 * The alternating-users scheme for one application role: `owner` (NOLOGIN) owns the objects
 * and holds the privileges; `logins` are the two roles that log in, members of it, one active.
 */
export interface PgRoleScheme {
  readonly name: string;
  readonly owner: string;
  readonly logins: readonly [string, string];
}

export function pgRoleScheme(name: string, section: CredentialsSection | undefined): PgRoleScheme {
  const configured = section?.postgres?.[name];
  const owner = configured?.owner ?? name;
  const logins = configured?.logins ?? ([`${owner}_a`, `${owner}_b`] as const);
  const field = `credentials.postgres.${name}`;
  for (const role of [owner, ...logins]) {
    const checked = roleName.safeParse(role);
    if (!checked.success)
      throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: role name "${role}" is at most 63 bytes`, {
        details: { field },
      });
  }
  if (new Set([owner, ...logins]).size !== 3)
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `${field}: the owner and the two logins must be three different roles`,
      {
        details: { field },
      },
    );
  return { name, owner, logins: [logins[0], logins[1]] };
}

/**
 * The sink for a rotation: `--sink-file` first, else the configured one. Relative paths are
 * resolved against the config file's directory (a flag's against the working directory).
 */
export function resolveSink(
  flagFile: string | undefined,
  configured: z.infer<typeof sinkSchema> | undefined,
  dirs: { cwd: string; configDir: string },
  field: string,
): SecretSink {
  if (flagFile) return { kind: 'file', path: path.resolve(dirs.cwd, flagFile) };
  if (!configured)
    throw new WardenError(
      'WARDEN_E_USAGE',
      `no sink for the new secret: pass --sink-file or set ${field}.sink`,
      {
        hint: 'A rotated password must go somewhere the application reads it from (a file, or a command such as one that updates a Kubernetes Secret).',
        details: { field: `${field}.sink` },
      },
    );
  if ('file' in configured) return { kind: 'file', path: path.resolve(dirs.configDir, configured.file) };
  return {
    kind: 'command',
    argv: configured.command,
    timeoutMs: (configured.timeoutSeconds ?? DEFAULT_SINK_TIMEOUT_MS / 1000) * 1000,
  };
}
