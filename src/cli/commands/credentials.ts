import type pg from 'pg';
import { pgRoleScheme, resolveSink, type PgRoleScheme } from '../../credentials/credentials-config.ts';
import { setUpRoles } from '../../credentials/pg-login-roles.ts';
import { activeLogin, rotatePgRole } from '../../credentials/pg-rotate.ts';
import { parseRedisUrl, rotateRedisUser } from '../../credentials/redis-rotate.ts';
import { readSinkSecret } from '../../credentials/role-credentials.ts';
import type { SecretSink } from '../../credentials/secret-sink.ts';
import { WardenError } from '../../errors.ts';
import { connect } from '../../postgres/connect.ts';
import type { ConnectionConfig } from '../../postgres/connection-config.ts';
import { resolvePassword } from '../../postgres/password-source.ts';
import { parseDuration } from '../../util/duration.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../render.ts';

export interface CredentialsFlags {
  role?: string;
  redis?: string;
  user?: string;
  sinkFile?: string;
  lockTimeout?: string;
  grace?: string;
  reveal?: boolean;
}

/** `warden credentials setup --role NAME`: creates the owner and the two logins where missing. */
export async function credentialsSetupCommand(
  context: CommandContext,
  flags: CredentialsFlags,
): Promise<number> {
  const scheme = schemeOf(context, flags);
  const report = await withClient(context.cluster(), (client) => setUpRoles(client, scheme));
  if (context.json) printJson({ role: scheme.name, owner: scheme.owner, logins: scheme.logins, ...report });
  else {
    process.stdout.write(
      `role ${scheme.name}: owner ${scheme.owner} (NOLOGIN), logins ${scheme.logins.join(' and ')}\n` +
        (report.created.length ? `  created: ${report.created.join(', ')}\n` : '') +
        (report.existing.length ? `  already there: ${report.existing.join(', ')}\n` : '') +
        `  next: grant privileges to ${scheme.owner}, then \`warden credentials rotate --role ${scheme.name}\`\n`,
    );
  }
  return 0;
}

/**
 * `warden credentials rotate --role NAME` (PostgreSQL) or `--redis URL --user NAME` (Redis ACL
 * user). The report names the logins and the sink, never the secret.
 */
export async function credentialsRotateCommand(
  context: CommandContext,
  flags: CredentialsFlags,
): Promise<number> {
  if (flags.redis !== undefined || flags.user !== undefined) return rotateRedis(context, flags);
  const scheme = schemeOf(context, flags);
  const sink = sinkFor(
    context,
    flags,
    `credentials.postgres.${scheme.name}`,
    context.config.credentials?.postgres?.[scheme.name]?.sink,
  );
  const lockTimeoutMs = durationFlag(flags.lockTimeout ?? '30s', '--lock-timeout');
  const report = await withClient(context.cluster(), (client) =>
    rotatePgRole(client, scheme, sink, { lockTimeoutMs }),
  );
  if (context.json) printJson(report);
  else
    process.stdout.write(
      `rotated ${report.role}: ${report.active} is now active with a new password (sent to ${report.sink})\n` +
        (report.previous
          ? `  ${report.previous} keeps its password and its sessions until the next rotation\n`
          : ''),
    );
  return 0;
}

async function rotateRedis(context: CommandContext, flags: CredentialsFlags): Promise<number> {
  const user = flags.user;
  if (!user)
    throw new WardenError('WARDEN_E_USAGE', '--user: the Redis ACL user to rotate is required with --redis');
  const configured = context.config.credentials?.redis?.[user];
  const url = flags.redis ?? configured?.url;
  if (!url)
    throw new WardenError('WARDEN_E_USAGE', `--redis: required (or set credentials.redis.${user}.url)`);
  const target = parseRedisUrl(url, process.env.WARDEN_REDIS_PASSWORD);
  if (flags.redis && new URL(flags.redis).password)
    process.stderr.write(
      'warning: a password in --redis is visible to other users of this machine; use WARDEN_REDIS_PASSWORD\n',
    );
  const sink = sinkFor(context, flags, `credentials.redis.${user}`, configured?.sink);
  const graceMs = durationFlag(flags.grace ?? '0', '--grace');
  const report = await rotateRedisUser(target, user, sink, { graceMs });
  if (context.json) printJson(report);
  else
    process.stdout.write(
      `rotated Redis user ${report.user} on ${report.nodes.length} node(s) (new password sent to ${report.sink}; the old one removed)\n` +
        (report.persisted
          ? ''
          : '  note: the servers have no ACL file: the change is in memory only (ACL SAVE needs aclfile)\n'),
    );
  return 0;
}

/**
 * `warden credentials show [--role NAME] [--reveal]`: where to connect and as whom. The password
 * is printed only with `--reveal`; it is read from the configuration or the role's sink file,
 * never asked for on the command line.
 */
export async function credentialsShowCommand(
  context: CommandContext,
  flags: CredentialsFlags,
): Promise<number> {
  const details = await connectionDetails(context, flags, flags.reveal === true);
  const shown = {
    ...details,
    password: flags.reveal ? details.password : details.password === undefined ? undefined : '[redacted]',
  };
  if (context.json) printJson(shown);
  else {
    const rows: Array<[string, string | number | undefined]> = [
      ['host', shown.host],
      ['port', shown.port],
      ['database', shown.database],
      ['user', shown.user],
      ['password', shown.password === undefined ? '(none configured)' : shown.password],
    ];
    if (shown.role) rows.push(['role', `${shown.role} (owner ${shown.owner}, active login ${shown.user})`]);
    for (const [name, value] of rows) process.stdout.write(`${name.padEnd(9)} ${String(value)}\n`);
    if (!flags.reveal && shown.password !== undefined)
      process.stdout.write('(--reveal prints the password)\n');
  }
  return 0;
}

export interface ConnectionDetails {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string | undefined;
  role?: string;
  owner?: string;
}

/**
 * The connection an operator gets: the cluster's own, or with `--role` its active login and the
 * password from the role's sink file. `withPassword: false` skips reading the secret at all.
 */
export async function connectionDetails(
  context: CommandContext,
  flags: CredentialsFlags,
  withPassword: boolean,
): Promise<ConnectionDetails> {
  const cluster = context.cluster();
  const base = { host: cluster.host, port: cluster.port, database: cluster.database };
  if (flags.role === undefined) {
    const password = withPassword ? await resolvePassword(cluster) : await hasPassword(cluster);
    return { ...base, user: cluster.user, password };
  }
  const scheme = schemeOf(context, flags);
  const active = await withClient(cluster, (client) => activeLogin(client, scheme));
  if (!active)
    throw new WardenError(
      'WARDEN_E_ROLES_NOT_SET_UP',
      `role ${scheme.name} has not been rotated yet: no login is active`,
      {
        hint: `Run \`warden credentials rotate --role ${scheme.name}\`.`,
        details: { missing: [] },
      },
    );
  const sink = sinkFor(
    context,
    flags,
    `credentials.postgres.${scheme.name}`,
    context.config.credentials?.postgres?.[scheme.name]?.sink,
  );
  const password = withPassword
    ? (await readSinkSecret(sink, active)).password
    : sink.kind === 'file'
      ? '[in the sink file]'
      : undefined;
  return { ...base, user: active, password, role: scheme.name, owner: scheme.owner };
}

/** Whether a password is configured, without running a password command to find out. */
async function hasPassword(cluster: ConnectionConfig): Promise<string | undefined> {
  if (cluster.password !== undefined || cluster.passwordFile || cluster.passwordCommand)
    return '[configured]';
  return (await resolvePassword(cluster)) === undefined ? undefined : '[configured]';
}

function schemeOf(context: CommandContext, flags: CredentialsFlags): PgRoleScheme {
  if (!flags.role)
    throw new WardenError('WARDEN_E_USAGE', '--role: which application role (e.g. --role app)');
  return pgRoleScheme(flags.role, context.config.credentials);
}

function sinkFor(
  context: CommandContext,
  flags: CredentialsFlags,
  field: string,
  configured: Parameters<typeof resolveSink>[1],
): SecretSink {
  return resolveSink(
    flags.sinkFile,
    configured,
    { cwd: process.cwd(), configDir: context.config.daemon.baseDir },
    field,
  );
}

async function withClient<T>(
  connection: ConnectionConfig,
  fn: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = await connect(connection);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

function durationFlag(value: string, flag: string): number {
  try {
    return parseDuration(value, flag);
  } catch {
    throw new WardenError('WARDEN_E_USAGE', `${flag}: "${value}" is not a duration (e.g. 30s, 10m)`);
  }
}
