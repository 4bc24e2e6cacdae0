import path from 'node:path';
import pg from 'pg';
import { startEmbeddedCluster } from '../../embedded/embedded-cluster.ts';
import { EMBEDDED_DIR } from '../../embedded/embedded-state.ts';
import { ensureIdentityFile } from '../../pipeline/encryption/keyring.ts';
import { createLedger, randomTransfer } from '../../embedded/ledger.ts';
import { sleep } from '../../util/backoff.ts';
import type { SqlCheck } from '../../verify/restore-check.ts';
import type { CommandContext } from '../context.ts';
import { daemonPlanFor, runDaemon, type ServeFlags } from './serve.ts';

const WORKLOAD_INTERVAL_MS = 250;

/** What every verification and drill of the embedded ledger proves besides the built-in checks. */
const LEDGER_CHECKS: SqlCheck[] = [
  {
    name: 'ledger balances to zero',
    sql: 'SELECT coalesce(sum(balance), 0) FROM ledger_accounts',
    equals: 0,
  },
  { name: 'ledger has its accounts', sql: 'SELECT count(*) FROM ledger_accounts', min: 1 },
];

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
  out('warden: starting the embedded PostgreSQL (data in ./.warden/pgdata)');
  const cluster = await startEmbeddedCluster();
  const repositoryPath =
    context.config.sources.repository === 'default'
      ? path.resolve(EMBEDDED_DIR, 'repo')
      : context.config.repository.path;
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
  try {
    out(
      `  PostgreSQL ${cluster.instance.binaries.major} on 127.0.0.1:${cluster.connection.port} (user warden, password in .warden/credentials.json)`,
    );
    await workload.connect();
    await createLedger(workload);
    out('  ledger schema ready (ledger_accounts, ledger_transfers); writing a transfer every 250 ms');
    workloadRun = (async () => {
      while (!stopWorkload.signal.aborted) {
        await randomTransfer(workload).catch(() => undefined);
        await sleep(WORKLOAD_INTERVAL_MS, stopWorkload.signal).catch(() => undefined);
      }
    })();
    const plan = daemonPlanFor(context, flags, {
      connection: cluster.connection,
      repositoryPath,
      defaultProfile: 'dev',
    });
    for (const clusterPlan of plan.clusters)
      if (clusterPlan.checks.length === 0) clusterPlan.checks = LEDGER_CHECKS;
    out(`  warden serve: streaming WAL into ${repositoryPath}, heartbeat in warden_heartbeat`);
    out('try, in another terminal:');
    out('  npx warden status');
    out('  npx warden drill --rto 15m --rpo 1h');
    out(
      `  npx warden restore --to-time "$(date -u +%Y-%m-%dT%H:%M:%SZ)" --target-dir /tmp/warden-restored --start`,
    );
    return await runDaemon(context, plan, flags, signal);
  } finally {
    out('warden: stopping');
    stopWorkload.abort();
    await workloadRun?.catch(() => undefined);
    await workload.end().catch(() => undefined);
    await cluster.stop();
    out('warden: stopped cleanly');
  }
}
