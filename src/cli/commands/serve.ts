import { Daemon } from '../../daemon/daemon.ts';
import { FsObjectStore } from '../../repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../../repository/object-store.ts';
import { resolveDaemonPlan, type DaemonPlan } from '../../daemon/daemon-config.ts';
import type { ProfileName } from '../../daemon/profiles.ts';
import type { ConnectionConfig } from '../../postgres/connection-config.ts';
import { describeDuration } from '../../scheduler/duration.ts';
import { freePort, portInUse } from '../../util/free-port.ts';
import { sleep } from '../../util/backoff.ts';
import type { CommandContext } from '../context.ts';
import { runEmbeddedCommand } from './run.ts';

export interface ServeFlags {
  profile?: string;
  httpPort?: string;
  /** `--no-http` sets this to false. */
  http?: boolean;
  rto?: string;
  rpo?: string;
}

/** The configured repository (directory or S3) for its path; another cluster's directory otherwise. */
export function storeFor(context: CommandContext, repositoryPath: string): ObjectStore {
  return repositoryPath === context.config.repository.path
    ? context.store
    : new FsObjectStore(
        repositoryPath,
        context.config.repository.group ? { group: context.config.repository.group } : {},
      );
}

/** The daemon plan for a command: config file's `daemon:` section, flags, and the one-liner cluster. */
export function daemonPlanFor(
  context: CommandContext,
  flags: ServeFlags,
  override?: { connection?: ConnectionConfig; repositoryPath?: string; defaultProfile?: ProfileName },
): DaemonPlan {
  const { config } = context;
  let connection = override?.connection ?? config.cluster;
  let defaultProfile = override?.defaultProfile;
  if (!connection && !config.daemon.section?.clusters?.length) {
    try {
      // The running embedded default: its profile is dev, as for `npm start`.
      connection = context.cluster();
      defaultProfile ??= 'dev';
    } catch {
      connection = undefined;
    }
  }
  return resolveDaemonPlan({
    ...(config.daemon.section ? { section: config.daemon.section } : {}),
    baseDir: config.daemon.baseDir,
    defaultCluster: {
      ...(connection ? { connection } : {}),
      repositoryPath: override?.repositoryPath ?? config.repository.path,
      ...(config.slot !== undefined ? { slot: config.slot } : {}),
    },
    retention: config.retention,
    ...(defaultProfile ? { defaultProfile } : {}),
    flags: {
      ...(flags.profile ? { profile: flags.profile } : {}),
      ...(flags.rto ? { rto: flags.rto } : {}),
      ...(flags.rpo ? { rpo: flags.rpo } : {}),
      ...(flags.httpPort !== undefined ? { httpPort: Number(flags.httpPort) } : {}),
    },
    env: process.env,
  });
}

/**
 * `warden serve`: the daemon for the configured clusters; with none configured, the embedded
 * default (a local PostgreSQL with a ledger workload) under the dev profile.
 */
export async function serveCommand(
  context: CommandContext,
  flags: ServeFlags,
  signal: AbortSignal,
): Promise<number> {
  if (!context.config.cluster && !context.config.daemon.section?.clusters?.length) {
    return runEmbeddedCommand(context, signal, flags);
  }
  return runDaemon(context, daemonPlanFor(context, flags), flags, signal);
}

/** Runs the daemon until the signal fires, printing what it does; returns the exit status. */
export async function runDaemon(
  context: CommandContext,
  plan: DaemonPlan,
  flags: ServeFlags,
  signal: AbortSignal,
): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  if (
    flags.httpPort === undefined &&
    flags.http !== false &&
    (await portInUse(plan.http.port, plan.http.host))
  ) {
    const taken = plan.http.port;
    plan.http.port = await freePort(plan.http.host);
    out(`  status API port ${taken} is taken; using ${plan.http.port}`);
  }
  const daemon = new Daemon({
    plan,
    compression: context.config.repository.compression,
    // Encrypt to the configured recipients; verification restores and drills decrypt with the
    // identities this machine has (none in public-key-only setups: those jobs then fail clearly).
    // Writer keys first: a signing key created now is then trusted by this daemon's own checks.
    keys: await (async () => {
      const write = await context.writeKeys();
      return { ...(await context.readKeys()), ...write };
    })(),
    logger: context.logger,
    http: flags.http !== false,
    openStore: (repositoryPath) => storeFor(context, repositoryPath),
  });
  await daemon.start();
  for (const cluster of plan.clusters) {
    out(
      `  cluster ${cluster.name}: profile ${cluster.profile}, RTO ${describeDuration(cluster.objectives.rtoMs)}, RPO ${describeDuration(cluster.objectives.rpoMs)}, repository ${cluster.repositoryPath}`,
    );
  }
  for (const warning of daemon.warnings) out(`  warning: ${warning}`);
  if (daemon.address) {
    const { address, port, family } = daemon.address;
    const scheme = plan.http.tls ? 'https' : 'http';
    const where = family === 'IPv6' ? `[${address}]` : address;
    const access = plan.http.tokens.length ? ` (${plan.http.tokens.length} tokens)` : '';
    out(`  status: ${scheme}://${where}:${port}/api/status${access}`);
  }
  out('Ctrl-C stops (a running job finishes cleanly or is abandoned; a second Ctrl-C exits at once).');
  const seen = new Set<string>();
  while (!signal.aborted) {
    const status = await daemon.status().catch(() => undefined);
    for (const cluster of status?.clusters ?? []) {
      for (const job of cluster.jobs) {
        const run = job.lastRun;
        const key = `${cluster.name}/${job.name}/${run?.finishedAt ?? ''}`;
        if (!run || seen.has(key)) continue;
        seen.add(key);
        out(
          `  ${run.finishedAt} ${cluster.name} ${job.name}: ${run.status}${run.detail ? ` — ${run.detail}` : ''}`,
        );
      }
    }
    await sleep(2_000, signal).catch(() => undefined);
  }
  out('warden: stopping (letting the running job finish or abandon cleanly)');
  await daemon.stop();
  return 0;
}
