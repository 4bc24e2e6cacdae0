import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LocalInstance } from '../postgres/local-instance.ts';
import { serverRunAs, type RunAs } from '../postgres/os-user.ts';
import { findServerBinaries } from '../postgres/server-binaries.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { freePort } from '../util/free-port.ts';
import { EMBEDDED_DIR, EMBEDDED_STATE_FILE, type EmbeddedState } from './embedded-state.ts';

export interface EmbeddedCluster {
  instance: LocalInstance;
  connection: ConnectionConfig;
  created: boolean;
  stop(): Promise<void>;
}

const SUPERUSER = 'warden';

/**
 * The embedded default: a local PostgreSQL under ./.warden/pgdata that Warden creates on first
 * run (with a generated 32-character password kept in ./.warden/credentials.json, mode 0600),
 * starts on a free loopback port, and stops on exit.
 */
export async function startEmbeddedCluster(baseDir = EMBEDDED_DIR): Promise<EmbeddedCluster> {
  const root = path.resolve(baseDir);
  const runAs = serverRunAs();
  await makeStateDirPrivate(root, runAs);
  const dataDir = path.join(root, 'pgdata');
  const credentialsFile = path.join(root, 'credentials.json');
  const binaries = await findServerBinaries();
  const port = await freePort();
  const instance = new LocalInstance({ binaries, dataDir, port, runAs });
  let created = false;
  let password: string;
  if (!existsSync(path.join(dataDir, 'PG_VERSION'))) {
    await rm(dataDir, { recursive: true, force: true });
    password = randomBytes(24).toString('base64url');
    await instance.init({
      superuser: SUPERUSER,
      password,
      settings: {
        wal_level: 'replica',
        max_wal_senders: 5,
        max_replication_slots: 5,
        shared_buffers: '64MB',
      },
      hbaLines: [
        'host all warden 127.0.0.1/32 scram-sha-256',
        'host replication warden 127.0.0.1/32 scram-sha-256',
      ],
    });
    await writeFile(credentialsFile, JSON.stringify({ user: SUPERUSER, password }), { mode: 0o600 });
    created = true;
  } else {
    password = (JSON.parse(await readFile(credentialsFile, 'utf8')) as { password: string }).password;
  }
  if (instance.isRunning()) {
    // A previous run died without stopping its server: stop that one first.
    await instance.stop({ mode: 'fast' });
    await rm(path.join(dataDir, 'postmaster.pid'), { force: true });
  }
  await instance.start();
  const connection: ConnectionConfig = {
    host: '127.0.0.1',
    port,
    user: SUPERUSER,
    password,
    database: 'postgres',
    tls: 'disable',
    applicationName: 'warden',
  };
  const state: EmbeddedState = { pid: process.pid, connection };
  await writeFile(path.resolve(EMBEDDED_STATE_FILE), JSON.stringify(state), { mode: 0o600 });
  await chmod(path.resolve(EMBEDDED_STATE_FILE), 0o600);
  return {
    instance,
    connection,
    created,
    async stop() {
      await rm(path.resolve(EMBEDDED_STATE_FILE), { force: true });
      await instance.stop({ mode: 'fast' });
    },
  };
}

/**
 * ./.warden holds the superuser password, the embedded cluster and the default repository: the
 * OS user running Warden only (0700), set each start so an older, umask-made 0755 is closed too.
 * When Warden runs as root, PostgreSQL runs as another user that must pass through to pgdata:
 * its group may traverse (0710), not list or read.
 */
export async function makeStateDirPrivate(root: string, runAs: RunAs | undefined): Promise<void> {
  await mkdir(root, { recursive: true, mode: 0o700 });
  if (runAs) await chown(root, -1, runAs.gid);
  await chmod(root, runAs ? 0o710 : 0o700);
}
