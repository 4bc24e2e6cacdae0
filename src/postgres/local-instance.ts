import { execFile, type ExecFileOptions } from 'node:child_process';
import { appendFile, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { WardenError } from '../errors.ts';
import { chownTree, serverRunAs, type RunAs } from './os-user.ts';
import type { ServerBinaries } from './server-binaries.ts';

export interface InitOptions {
  superuser: string;
  /** Password for TCP (scram-sha-256) logins of the superuser. */
  password: string;
  /** Extra postgresql.conf settings. */
  settings?: Record<string, string | number>;
  /** Extra pg_hba.conf lines, placed before the defaults. */
  hbaLines?: string[];
}

export interface LocalInstanceOptions {
  binaries: ServerBinaries;
  dataDir: string;
  port: number;
  host?: string;
  /** Defaults to {@link serverRunAs}. */
  runAs?: RunAs | undefined;
}

/**
 * A PostgreSQL server process Warden runs on this machine: the embedded default, restored
 * instances, verification scratch instances and the test harness all use it.
 * Listens on TCP only (no Unix socket), so it never collides with a system server.
 */
export class LocalInstance {
  readonly dataDir: string;
  readonly port: number;
  readonly host: string;
  readonly binaries: ServerBinaries;
  private readonly runAs: RunAs | undefined;

  constructor(options: LocalInstanceOptions) {
    this.binaries = options.binaries;
    this.dataDir = path.resolve(options.dataDir);
    this.port = options.port;
    this.host = options.host ?? '127.0.0.1';
    this.runAs = 'runAs' in options ? options.runAs : serverRunAs();
  }

  get logFile(): string {
    return path.join(this.dataDir, 'warden-server.log');
  }

  /** Runs initdb into an empty or missing data directory. */
  async init(options: InitOptions): Promise<void> {
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    await chownTree(this.dataDir, this.runAs);
    const pwfile = path.join(path.dirname(this.dataDir), `.pw-${path.basename(this.dataDir)}`);
    await writeFile(pwfile, `${options.password}\n`, { mode: 0o600 });
    if (this.runAs) await chown(pwfile, this.runAs.uid, this.runAs.gid);
    try {
      await this.run('initdb', [
        '-D',
        this.dataDir,
        '-U',
        options.superuser,
        `--pwfile=${pwfile}`,
        '--auth-local=trust',
        '--auth-host=scram-sha-256',
        '--encoding=UTF8',
        '--locale=C',
        '--no-sync',
      ]);
    } finally {
      await rm(pwfile, { force: true });
    }
    const settings = { ...options.settings };
    await appendFile(
      path.join(this.dataDir, 'postgresql.conf'),
      `\n# added by warden\n${renderSettings(settings)}`,
    );
    if (options.hbaLines?.length) {
      const hbaPath = path.join(this.dataDir, 'pg_hba.conf');
      const existing = await readFile(hbaPath, 'utf8');
      await writeFile(hbaPath, `${options.hbaLines.join('\n')}\n${existing}`);
    }
  }

  /** Starts the server and waits until it accepts connections (after any recovery). */
  async start(options: { timeoutSeconds?: number } = {}): Promise<void> {
    const timeout = String(options.timeoutSeconds ?? 120);
    const serverOptions = `-p ${this.port} -c listen_addresses=${this.host} -c unix_socket_directories=''`;
    await this.run('pg_ctl', [
      'start',
      '-w',
      '-t',
      timeout,
      '-D',
      this.dataDir,
      '-l',
      this.logFile,
      '-o',
      serverOptions,
    ]).catch(async (cause) => {
      throw new WardenError('WARDEN_E_INSTANCE_START_FAILED', `PostgreSQL in ${this.dataDir} did not start`, {
        details: { dataDir: this.dataDir, port: this.port, log: await this.logTail() },
        hint: `See ${this.logFile}.`,
        cause,
      });
    });
  }

  async stop(options: { mode?: 'fast' | 'immediate' } = {}): Promise<void> {
    if (!this.isRunning()) return;
    await this.run('pg_ctl', [
      'stop',
      '-w',
      '-t',
      '60',
      '-D',
      this.dataDir,
      '-m',
      options.mode ?? 'fast',
    ]).catch(() => undefined);
  }

  isRunning(): boolean {
    return existsSync(path.join(this.dataDir, 'postmaster.pid'));
  }

  async logTail(lines = 30): Promise<string> {
    try {
      return (await readFile(this.logFile, 'utf8')).split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Runs one of the server's own tools as the server's OS user. */
  async run(tool: string, args: string[], options: ExecFileOptions = {}): Promise<string> {
    const file = path.join(this.binaries.bindir, tool);
    const execOptions: ExecFileOptions = {
      ...options,
      cwd: options.cwd ?? '/',
      env: { ...process.env, LC_ALL: 'C' },
    };
    if (this.runAs) Object.assign(execOptions, { uid: this.runAs.uid, gid: this.runAs.gid });
    return new Promise((resolve, reject) => {
      execFile(file, args, execOptions, (error, stdout, stderr) => {
        if (error) reject(Object.assign(error, { stderr: String(stderr) }));
        else resolve(String(stdout));
      });
    });
  }
}

export function renderSettings(settings: Record<string, string | number | boolean>): string {
  return Object.entries(settings)
    .map(
      ([key, value]) => `${key} = ${typeof value === 'string' ? `'${value.replaceAll("'", "''")}'` : value}`,
    )
    .join('\n')
    .concat('\n');
}
