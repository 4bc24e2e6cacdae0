import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LocalInstance } from '../postgres/local-instance.ts';
import { serverRunAs, type RunAs } from '../postgres/os-user.ts';
import { findServerBinaries } from '../postgres/server-binaries.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { freePort } from '../util/free-port.ts';
import { claimOwnerRecord, type OwnerClaim } from '../util/owner-record.ts';
import type { ProcessIdentity } from '../util/process-identity.ts';
import { EMBEDDED_DIR, EMBEDDED_STATE_NAME, type EmbeddedState } from './embedded-state.ts';

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
export async function startEmbeddedCluster(
  baseDir = EMBEDDED_DIR,
  /** Called once this process owns the state folder, before the (slow) start. */
  onOwned?: () => void,
): Promise<EmbeddedCluster> {
  const root = path.resolve(baseDir);
  const runAs = serverRunAs();
  await makeStateDirPrivate(root, runAs);
  // One owner per state folder, claimed before anything in it is touched: a second run while
  // the first lives stops here (WARDEN_E_ALREADY_RUNNING) instead of stopping the first's server.
  const claim = await claimOwnerRecord(
    path.join(root, EMBEDDED_STATE_NAME),
    `the embedded default in ${root}`,
  );
  try {
    onOwned?.();
    return await startClaimed(root, runAs, claim);
  } catch (error) {
    await claim.release();
    throw error;
  }
}

async function startClaimed(
  root: string,
  runAs: RunAs | undefined,
  claim: OwnerClaim,
): Promise<EmbeddedCluster> {
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
    // The claim succeeded, so the run that started this server is provably dead (or there
    // was none on record): the server is an orphan of this folder. Stop it first.
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
  const state: Omit<EmbeddedState, keyof ProcessIdentity> = { connection };
  await claim.update(state);
  await chmod(claim.file, 0o600);
  return {
    instance,
    connection,
    created,
    async stop() {
      await claim.release();
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
