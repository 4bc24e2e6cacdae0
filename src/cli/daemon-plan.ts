import { LEDGER_CHECKS } from '../embedded/ledger-checks.ts';
import { resolveDaemonPlan, type DaemonPlan } from '../daemon/daemon-config.ts';
import type { ProfileName } from '../daemon/profiles.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { repositoryLocation, type RepositoryLocation } from '../repository/open-object-store.ts';
import type { CommandContext } from './context.ts';

// The daemon plan as the CLI composes it, shared by `serve`, the embedded default (`commands/embedded.ts`),
// `status` and `drill`: its own module so those commands do not import each other.

export interface ServeFlags {
  profile?: string;
  httpPort?: string;
  /** `--no-http` sets this to false. */
  http?: boolean;
  rto?: string;
  rpo?: string;
}

/**
 * The daemon plan for a command: config file's `daemon:` section, flags, and the one-liner
 * cluster. Each cluster's repository is a location (directory or S3) composed from the config.
 */
export function daemonPlanFor(
  context: CommandContext,
  flags: ServeFlags,
  override?: {
    connection?: ConnectionConfig;
    repository?: RepositoryLocation;
    defaultProfile?: ProfileName;
    /** The connection is the embedded default's (its ledger gets checked). */
    embedded?: boolean;
  },
): DaemonPlan {
  const { config } = context;
  let connection = override?.connection ?? config.cluster;
  let defaultProfile = override?.defaultProfile;
  let embedded = override?.embedded === true;
  if (!connection && !config.daemon.section?.clusters?.length) {
    try {
      // The running embedded default: its profile is dev, as for `npm start`.
      connection = context.cluster();
      defaultProfile ??= 'dev';
      embedded = true;
    } catch {
      connection = undefined;
    }
  }
  const plan = resolveDaemonPlan({
    ...(config.daemon.section ? { section: config.daemon.section } : {}),
    baseDir: config.daemon.baseDir,
    defaultCluster: {
      ...(connection ? { connection } : {}),
      repository: override?.repository ?? repositoryLocation(config.repository),
      ...(config.slot !== undefined ? { slot: config.slot } : {}),
      backupFrom: config.backupFrom,
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
  // The embedded default's ledger is checked by every verification and drill of it, scheduled
  // or by hand, unless the configuration names its own checks.
  if (embedded)
    for (const cluster of plan.clusters) if (cluster.checks.length === 0) cluster.checks = [...LEDGER_CHECKS];
  return plan;
}
