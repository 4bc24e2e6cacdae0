import path from 'node:path';
import type { DaemonPlan } from '../daemon/daemon-config.ts';
import { WardenError } from '../errors.ts';
import { freePort, portInUse } from '../util/free-port.ts';
import { alreadyRunning, claimOwnerRecord, liveOwnerRecord, type OwnerClaim } from '../util/owner-record.ts';
import { runtimeDir } from '../util/runtime-dir.ts';
import type { CommandContext } from './context.ts';
import type { ServeFlags } from './daemon-plan.ts';

/**
 * One daemon per HTTP port: a live `warden serve` recorded on a port asked for (`--http-port`,
 * `daemon.http.port`) is reported (WARDEN_E_ALREADY_RUNNING, exit 2) before anything starts.
 * On the default port, anything there (another Warden included: two embedded defaults in two
 * folders are two places) moves this daemon to a free port, as before; `--http-port` on a port
 * another program holds is WARDEN_E_PORT_IN_USE.
 */
export async function claimHttpPort(
  context: CommandContext,
  plan: DaemonPlan,
  flags: ServeFlags,
  out: (line: string) => void,
): Promise<OwnerClaim | undefined> {
  const what = (port: number) => `warden serve on port ${port}`;
  const asked = flags.httpPort !== undefined || context.config.daemon.section?.http?.port !== undefined;
  const record = await httpPortRecord(plan.http.port);
  const owner = await liveOwnerRecord(record);
  if (owner && asked) throw alreadyRunning(what(plan.http.port), owner, record);
  if (flags.httpPort !== undefined && (await portInUse(plan.http.port, plan.http.host))) {
    throw new WardenError(
      'WARDEN_E_PORT_IN_USE',
      `status API port ${plan.http.port} on ${plan.http.host} is in use by another program`,
      {
        hint: 'Stop what listens there, pick another --http-port, or leave it out to use the default (a free port if that one is taken).',
        details: { port: plan.http.port, host: plan.http.host },
      },
    );
  }
  if (flags.httpPort === undefined && (owner || (await portInUse(plan.http.port, plan.http.host)))) {
    const taken = plan.http.port;
    plan.http.port = await freePort(plan.http.host);
    const by = owner ? ` by warden (pid ${owner.pid}, since ${owner.startedAt})` : '';
    out(`  status API port ${taken} is taken${by}; using ${plan.http.port}`);
  }
  // Port 0 asks the kernel for any free port: nothing to share, nothing to record.
  if (plan.http.port === 0) return undefined;
  return claimOwnerRecord(await httpPortRecord(plan.http.port), what(plan.http.port), {
    cwd: process.cwd(),
  });
}

async function httpPortRecord(port: number): Promise<string> {
  return path.join(await runtimeDir(), `serve-http-${port}.json`);
}
