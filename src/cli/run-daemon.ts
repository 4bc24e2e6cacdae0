import { Daemon } from '../daemon/daemon.ts';
import type { DaemonPlan } from '../daemon/daemon-config.ts';
import { sleep } from '../util/backoff.ts';
import { describeDuration } from '../util/duration.ts';
import type { CommandContext } from './context.ts';
import type { ServeFlags } from './daemon-plan.ts';
import { claimHttpPort } from './http-port-claim.ts';
import { JobLines } from './job-lines.ts';

/** Runs the daemon until the signal fires, printing what it does; returns the exit status. */
export async function runDaemon(
  context: CommandContext,
  plan: DaemonPlan,
  flags: ServeFlags,
  signal: AbortSignal,
): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const startedAt = new Date();
  const portClaim = flags.http !== false ? await claimHttpPort(context, plan, flags, out) : undefined;
  try {
    return await runClaimed(context, plan, flags, signal, out, startedAt);
  } finally {
    await portClaim?.release();
  }
}

async function runClaimed(
  context: CommandContext,
  plan: DaemonPlan,
  flags: ServeFlags,
  signal: AbortSignal,
  out: (line: string) => void,
  startedAt: Date,
): Promise<number> {
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
  });
  await daemon.start();
  for (const cluster of plan.clusters) {
    out(
      `  cluster ${cluster.name}: profile ${cluster.profile}, RTO ${describeDuration(cluster.objectives.rtoMs)}, RPO ${describeDuration(cluster.objectives.rpoMs)}, repository ${cluster.repository.path}`,
    );
  }
  for (const warning of daemon.warnings) out(`  warning: ${warning}`);
  if (daemon.address) {
    const { address, port, family } = daemon.address;
    const scheme = plan.http.tls ? 'https' : 'http';
    const where = family === 'IPv6' ? `[${address}]` : address;
    const access = plan.http.tokens.length ? ` (${plan.http.tokens.length} tokens)` : '';
    out(`  dashboard: ${scheme}://${where}:${port}/${access}`);
    out(`  status: ${scheme}://${where}:${port}/api/status${access}`);
    out(`  metrics: ${scheme}://${where}:${port}/metrics (Prometheus; docs/metrics.md)`);
  }
  out('Ctrl-C stops (a running job finishes cleanly or is abandoned; a second Ctrl-C exits at once).');
  const jobLines = new JobLines(startedAt);
  while (!signal.aborted) {
    // The schedulers' own view: a full status() per cluster every 2 s (repository reads and a
    // server connection each) was most of an idle daemon's CPU with 20 clusters.
    for (const line of jobLines.next({ clusters: daemon.jobs() })) out(line);
    await sleep(2_000, signal).catch(() => undefined);
  }
  out('warden: stopping (letting the running job finish or abandon cleanly)');
  await daemon.stop();
  return 0;
}
