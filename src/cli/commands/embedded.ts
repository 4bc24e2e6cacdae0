import path from 'node:path';
import pg from 'pg';
import { startEmbeddedCluster } from '../../embedded/embedded-cluster.ts';
import { EMBEDDED_DIR } from '../../embedded/embedded-state.ts';
import { ensureIdentityFile } from '../../pipeline/encryption/keyring.ts';
import { createLedger, randomTransfer } from '../../embedded/ledger.ts';
import { repositoryLocation, type RepositoryLocation } from '../../repository/open-object-store.ts';
import { sleep } from '../../util/backoff.ts';
import { WardenError } from '../../errors.ts';
import type { CommandContext } from '../context.ts';
import { daemonPlanFor, type ServeFlags } from '../daemon-plan.ts';
import { runDaemon } from '../run-daemon.ts';

const WORKLOAD_INTERVAL_MS = 250;

/**
 * The main job on the embedded default (`npm start`, `warden serve` with no cluster): start a
 * local PostgreSQL, seed a ledger with a light write workload, and run the daemon over it with
 * the dev profile — WAL streaming, heartbeat, scheduled backups, verification and drills (a
 * fresh repository catches up the missed slots once, so the first start takes a backup,
 * verifies it and runs a drill). Ctrl-C stops everything cleanly.
 */
export async function runEmbeddedCommand(
  context: CommandContext,
  signal: AbortSignal,
  flags: ServeFlags = {},
): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const cluster = await startEmbeddedCluster(EMBEDDED_DIR, () =>
    out('warden: starting the embedded PostgreSQL (data in ./.warden/pgdata)'),
  );
  // Nothing names a repository: a directory beside the embedded cluster.
  const { group } = context.config.repository;
  const repository: RepositoryLocation =
    context.config.sources.repository === 'default'
      ? { path: path.resolve(EMBEDDED_DIR, 'repo'), ...(group ? { group } : {}) }
      : repositoryLocation(context.config.repository);
  // Zero configuration still encrypts: the first run creates an identity beside the cluster (0600).
  const encryption = context.config.repository.encryption;
  if (encryption.mode === 'age') {
    const { identity, created } = await ensureIdentityFile(encryption.defaultIdentityFile);
    if (created)
      out(
        `  created encryption key ${path.relative(process.cwd(), encryption.defaultIdentityFile)} (public key ${identity.label}); keep a copy elsewhere: restores need it`,
      );
  }
  const workload = new pg.Client({ ...cluster.connection, ssl: false });
  const stopWorkload = new AbortController();
  let workloadRun: Promise<void> | undefined;
  // The server can end under us (pg_ctl stop, an administrator's kill: SQLSTATE 57P01). Without
  // a listener the client's 'error' event would end the process with a stack trace; instead
  // the daemon stops as on Ctrl-C and the command fails with what happened.
  let serverLost: unknown;
  const lost = new AbortController();
  workload.on('error', (error) => {
    serverLost ??= error;
    lost.abort();
  });
  const stopped = AbortSignal.any([signal, lost.signal]);
  try {
    out(
      `  PostgreSQL ${cluster.instance.binaries.major} on 127.0.0.1:${cluster.connection.port} (user warden, password in .warden/credentials.json)`,
    );
    await workload.connect();
    await createLedger(workload);
    out('  ledger schema ready (ledger_accounts, ledger_transfers); writing a transfer every 250 ms');
    workloadRun = (async () => {
      while (!stopWorkload.signal.aborted && !lost.signal.aborted) {
        await randomTransfer(workload).catch(() => undefined);
        await sleep(WORKLOAD_INTERVAL_MS, stopWorkload.signal).catch(() => undefined);
      }
    })();
    const plan = daemonPlanFor(context, flags, {
      connection: cluster.connection,
      repository,
      defaultProfile: 'dev',
      embedded: true,
    });
    out(`  warden serve: streaming WAL into ${repository.path}, heartbeat in warden_heartbeat`);
    out('try, in another terminal:');
    out('  npx warden status');
    out('  npx warden drill --rto 15m --rpo 1h');
    out(
      `  npx warden restore --to-time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --target-dir /tmp/warden-restored --start`,
    );
    const status = await runDaemon(context, plan, flags, stopped);
    if (serverLost !== undefined) throw embeddedServerLost(serverLost, cluster.instance.dataDir);
    return status;
  } finally {
    out('warden: stopping');
    stopWorkload.abort();
    await workloadRun?.catch(() => undefined);
    await workload.end().catch(() => undefined);
    await cluster.stop();
    out('warden: stopped cleanly');
  }
}

/** The embedded server went away while the daemon ran: a clean error naming why, not a crash. */
function embeddedServerLost(cause: unknown, dataDir: string): WardenError {
  const sqlstate = (cause as { code?: unknown }).code;
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new WardenError(
    'WARDEN_E_DB_UNREACHABLE',
    `the embedded PostgreSQL stopped while the daemon ran (${typeof sqlstate === 'string' ? `${sqlstate}: ` : ''}${reason})`,
    {
      hint: `Something other than this Warden stopped the server in ${dataDir} (pg_ctl stop, a kill, a shutdown); start warden again.`,
      details: { dataDir, ...(typeof sqlstate === 'string' ? { sqlstate } : {}) },
      cause,
    },
  );
}
