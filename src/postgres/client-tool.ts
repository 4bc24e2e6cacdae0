import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { WardenError } from '../errors.ts';
import { isClusterConnection, type ConnectionConfig } from './connection-config.ts';
import { locate } from './connect.ts';
import { resolvePassword } from './password-source.ts';
import { clientTool, findServerBinaries } from './server-binaries.ts';
import { planTls } from './tls-policy.ts';

const execFileAsync = promisify(execFile);

/** A PostgreSQL client program (pg_dump, pg_restore) and its version. */
export interface ClientTool {
  name: string;
  path: string;
  /** `pg_dump (PostgreSQL) 15.20 (Debian 15.20-0+deb12u1)` */
  version: string;
  major: number;
}

/**
 * Finds a client program: only in `WARDEN_PG_BINDIR` when that is set (an explicit choice),
 * else beside the server binaries Warden uses, else on `PATH`. Fails with WARDEN_E_TOOL_MISSING
 * naming where it looked.
 */
export async function findClientTool(
  name: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ClientTool> {
  const searched: string[] = [];
  const candidates: string[] = [];
  if (env.WARDEN_PG_BINDIR) {
    candidates.push(path.join(env.WARDEN_PG_BINDIR, name));
  } else {
    const server = await findServerBinaries(env).catch(() => undefined);
    const beside = server && clientTool(server, name);
    if (beside) candidates.push(beside);
    for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean))
      candidates.push(path.join(dir, name));
  }
  for (const candidate of candidates) {
    searched.push(candidate);
    if (!existsSync(candidate)) continue;
    const version = await versionOf(candidate);
    if (version) return { name, path: candidate, ...version };
  }
  throw new WardenError('WARDEN_E_TOOL_MISSING', `${name} was not found`, {
    hint: env.WARDEN_PG_BINDIR
      ? `WARDEN_PG_BINDIR=${env.WARDEN_PG_BINDIR} has no usable ${name}; point it at a PostgreSQL bin directory.`
      : `Install the PostgreSQL client programs (apt-get install postgresql-client), or set WARDEN_PG_BINDIR.`,
    details: { tool: name, searched: searched.slice(0, 20) },
  });
}

async function versionOf(file: string): Promise<{ version: string; major: number } | undefined> {
  try {
    const { stdout } = await execFileAsync(file, ['--version'], { timeout: 30_000 });
    const match = /\(PostgreSQL\)\s+(\d+)(?:\.\d+)?/.exec(stdout);
    return match ? { version: stdout.trim(), major: Number(match[1]) } : undefined;
  } catch {
    return undefined;
  }
}

/** Major version from `server_version_num` (150020 → 15). */
export function serverMajor(serverVersionNum: number): number {
  return Math.floor(serverVersionNum / 10000);
}

/**
 * The libpq environment for a client program to reach `connection`: the password (looked up as
 * for Warden's own connections) goes in PGPASSWORD, never on the command line. TLS follows
 * `planTls`: verified TLS is libpq's verify-full (verify-ca when the host name is not checked).
 * The trust anchors are the configured CA, else the system store (`sslrootcert=system`, libpq
 * 16+; older tools fall back to libpq's ~/.postgresql/root.crt).
 */
export async function libpqEnv(
  target: ConnectionConfig,
  env: NodeJS.ProcessEnv = process.env,
  toolMajor?: number,
): Promise<NodeJS.ProcessEnv> {
  // A cluster: the tool gets the member Warden located (the primary), not the first host.
  const connection = isClusterConnection(target) ? (await locate(target)).connection : target;
  const plan = planTls(connection.host, connection.port, connection.tls, connection.tlsCa);
  const sslmode =
    plan.kind === 'plain'
      ? 'disable'
      : plan.kind === 'probe'
        ? 'prefer'
        : plan.verifyHost
          ? 'verify-full'
          : 'verify-ca';
  const rootCert = connection.tlsCa ?? (plan.kind === 'tls' && (toolMajor ?? 0) >= 16 ? 'system' : undefined);
  const password = await resolvePassword(connection, { env });
  return {
    ...env,
    PGHOST: connection.host,
    PGPORT: String(connection.port),
    PGUSER: connection.user,
    PGSSLMODE: sslmode,
    PGAPPNAME: connection.applicationName,
    PGCONNECT_TIMEOUT: '15',
    ...(password !== undefined ? { PGPASSWORD: password } : {}),
    ...(rootCert ? { PGSSLROOTCERT: rootCert } : {}),
    LC_ALL: 'C',
  };
}

/** Fails with WARDEN_E_TOOL_TOO_OLD when the tool is older than the server (or than `atLeast`). */
export function assertToolNewEnough(
  tool: ClientTool,
  serverVersionNum: number,
  atLeast?: { major: number; what: string },
): void {
  const server = serverMajor(serverVersionNum);
  if (tool.major < server) {
    throw new WardenError(
      'WARDEN_E_TOOL_TOO_OLD',
      `${tool.name} ${tool.major} is older than the server (PostgreSQL ${server})`,
      {
        hint: `Install ${tool.name} ${server} or newer, or point WARDEN_PG_BINDIR at one.`,
        details: { tool: tool.path, toolMajor: tool.major, serverMajor: server, version: tool.version },
      },
    );
  }
  if (atLeast && tool.major < atLeast.major) {
    throw new WardenError(
      'WARDEN_E_TOOL_TOO_OLD',
      `${tool.name} ${tool.major} is older than ${atLeast.what} (${atLeast.major})`,
      {
        hint: `Install ${tool.name} ${atLeast.major} or newer, or point WARDEN_PG_BINDIR at one.`,
        details: { tool: tool.path, toolMajor: tool.major, required: atLeast.major, version: tool.version },
      },
    );
  }
}

/** The last few KiB a child wrote to stderr (its error message). */
export function collectTail(child: ChildProcess, limit = 8192): () => string {
  let text = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-limit);
  });
  return () => text.trim();
}
