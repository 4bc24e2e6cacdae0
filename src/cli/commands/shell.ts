import { spawn } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { findClientTool, libpqEnv } from '../../postgres/client-tool.ts';
import type { CommandContext } from '../context.ts';
import { connectionDetails, type CredentialsFlags } from './credentials.ts';

/**
 * `warden shell [--role NAME] [-- psql arguments]`: psql connected as Warden would connect (the
 * cluster's own login, or a role's active login). The password goes in a temporary password
 * file (mode 0600, in a private directory, removed when psql exits), never in argv or the
 * environment; PGPASSWORD inherited from the caller is dropped so the file is what libpq uses.
 */
export async function shellCommand(
  context: CommandContext,
  flags: CredentialsFlags,
  args: string[],
): Promise<number> {
  const details = await connectionDetails(context, flags, true);
  const psql = await findClientTool('psql');
  const cluster = context.cluster();
  const env = await libpqEnv(
    { ...cluster, host: details.host, port: details.port, user: details.user, password: '' },
    process.env,
    psql.major,
  );
  delete env.PGPASSWORD;
  env.PGDATABASE = details.database;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-shell-'));
  try {
    if (details.password !== undefined) {
      const file = path.join(dir, 'pgpass');
      const handle = await open(file, 'wx', 0o600);
      try {
        await handle.writeFile(`${pgpassLine(details.host, details.port, details.user, details.password)}\n`);
      } finally {
        await handle.close();
      }
      env.PGPASSFILE = file;
    }
    return await runInteractive(psql.path, args, env);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** One libpq password-file line for this host, port and user (any database: `\c` keeps working). */
function pgpassLine(host: string, port: number, user: string, password: string): string {
  const escape = (field: string) => field.replaceAll('\\', '\\\\').replaceAll(':', '\\:');
  return [escape(host), String(port), '*', escape(user), escape(password)].join(':');
}

/**
 * psql owns the terminal: Ctrl-C cancels its query, so Warden ignores SIGINT meanwhile (the
 * terminal sends it to both) and forwards SIGTERM; the temp file is removed once psql exits.
 */
function runInteractive(program: string, args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const previous = { SIGINT: process.listeners('SIGINT'), SIGTERM: process.listeners('SIGTERM') };
  process.removeAllListeners('SIGINT');
  process.removeAllListeners('SIGTERM');
  return new Promise<number>((resolve, reject) => {
    const child = spawn(program, args, { stdio: 'inherit', env });
    const ignore = () => undefined;
    const forward = () => child.kill('SIGTERM');
    process.on('SIGINT', ignore);
    process.on('SIGTERM', forward);
    const restore = () => {
      process.off('SIGINT', ignore);
      process.off('SIGTERM', forward);
      for (const listener of previous.SIGINT) process.on('SIGINT', listener);
      for (const listener of previous.SIGTERM) process.on('SIGTERM', listener);
    };
    child.on('error', (error) => {
      restore();
      reject(error);
    });
    child.on('close', (code, signal) => {
      restore();
      resolve(code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 1));
    });
  });
}
