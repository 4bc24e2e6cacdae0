import type { Logger } from 'pino';
import { toWardenError, WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import { collectTopology, type TopologyMember } from '../postgres/cluster-topology.ts';
import { pinnedTo, type ConnectionConfig } from '../postgres/connection-config.ts';
import type { BackupOrigin } from '../repository/backup-catalog.ts';
import type { BackupFrom } from './backup-from.ts';
import { checkStandbySource } from './standby-source.ts';

export interface ChosenSource {
  /** The standby to run BASE_BACKUP on; undefined: the primary (the cluster connection). */
  connection?: ConnectionConfig;
  origin: BackupOrigin;
  /** Standby: the timeline it streams (the primary's, checked). */
  timeline?: number;
}

/** A member that was looked at and not taken, with the reason's code. */
interface Passed {
  member: string;
  role: string;
  patroni?: string;
  lagBytes?: number;
  reason: string;
  code?: string;
}

/**
 * Resolves `--from` to the server BASE_BACKUP runs on. `standby` asks the cluster's topology
 * (Patroni's `/cluster` when configured, else each host of the URL: in recovery? WAL receiver?
 * lag?) and takes the least-behind standby that passes checkStandbySource; a member name must be
 * a running standby of the cluster. A standby that does not qualify is never replaced by the
 * primary behind the user's back: only `standby-or-primary` falls back, and says so.
 */
export async function chooseBackupSource(
  primary: ConnectionConfig,
  from: BackupFrom,
  logger: Logger = silentLogger,
): Promise<ChosenSource> {
  switch (from.kind) {
    case 'primary':
      return { origin: { role: 'primary' } };
    case 'url': {
      const facts = await checkStandbySource(primary, from.connection);
      return {
        connection: from.connection,
        origin: { role: 'standby', host: from.connection.host, port: from.connection.port },
        timeline: facts.timeline,
      };
    }
    case 'member':
      return chooseMember(primary, from.name);
    case 'standby':
      try {
        return await chooseStandby(primary);
      } catch (error) {
        if (!from.orPrimary || toWardenError(error).code !== 'WARDEN_E_NO_STANDBY') throw error;
        const fallback = (error as Error).message;
        logger.warn(
          { reason: fallback },
          'no standby qualifies: backing up from the primary (standby-or-primary)',
        );
        return { origin: { role: 'primary', fallback } };
      }
  }
}

async function chooseStandby(primary: ConnectionConfig): Promise<ChosenSource> {
  const topology = await collectTopology(primary);
  const passed: Passed[] = [];
  const candidates: TopologyMember[] = [];
  for (const member of topology.members) {
    const why = notAStandby(member);
    if (why) passed.push(seen(member, why.reason, why.code));
    else candidates.push(member);
  }
  // The least behind first: its backup ends nearest the primary's present. Unknown lag last.
  candidates.sort(
    (a, b) =>
      (a.replayLagBytes ?? Number.MAX_SAFE_INTEGER) - (b.replayLagBytes ?? Number.MAX_SAFE_INTEGER) ||
      a.name.localeCompare(b.name),
  );
  for (const member of candidates) {
    try {
      return await checked(primary, member);
    } catch (error) {
      const wrapped = toWardenError(error);
      passed.push(seen(member, wrapped.message, wrapped.code));
    }
  }
  throw new WardenError(
    'WARDEN_E_NO_STANDBY',
    `no standby of the cluster qualifies for a backup (${
      passed.map((p) => `${p.member}: ${p.reason}`).join('; ') || 'the cluster has no member'
    })`,
    {
      hint: 'Back up from the primary (--from primary), repair a standby’s replication, or configure backup.from: standby-or-primary to fall back to the primary.',
      details: {
        members: passed,
        source: topology.source,
        ...(topology.patroniError ? { patroniError: topology.patroniError } : {}),
      },
    },
  );
}

async function chooseMember(primary: ConnectionConfig, name: string): Promise<ChosenSource> {
  const topology = await collectTopology(primary);
  const member = topology.members.find((m) => m.name === name);
  const members = topology.members.map((m) => seen(m, m.reachable ? m.role : 'unreachable'));
  if (!member)
    throw new WardenError(
      'WARDEN_E_MEMBER_UNKNOWN',
      `the cluster has no member "${name}" (members: ${topology.members.map((m) => m.name).join(', ') || 'none'})`,
      {
        hint:
          topology.source === 'patroni'
            ? 'Name a member as Patroni does (patronictl list), or use --from standby.'
            : 'Without Patroni members are named host:port as in the connection URL; or use --from standby.',
        details: {
          name,
          members,
          source: topology.source,
          ...(topology.patroniError ? { patroniError: topology.patroniError } : {}),
        },
      },
    );
  const why = notAStandby(member);
  if (why)
    throw new WardenError(
      'WARDEN_E_MEMBER_NOT_STANDBY',
      `cannot back up from member ${name}: ${why.reason}`,
      {
        hint: 'Name a running replica, use --from standby to pick one, or --from primary.',
        details: { name, members },
      },
    );
  return checked(primary, member);
}

/** Why a member of the topology cannot be a backup source, or undefined when it may be. */
function notAStandby(member: TopologyMember): { reason: string; code?: string } | undefined {
  if (!member.reachable)
    return {
      reason: `unreachable (${member.error?.code ?? 'no answer'})`,
      ...(member.error ? { code: member.error.code } : {}),
    };
  if (member.role !== 'standby') return { reason: `it is the ${member.role}, not a standby` };
  // Patroni's own view: a replica it reports stopped, starting or rebuilding is not one to read.
  if (member.patroni && !['running', 'streaming'].includes(member.patroni.state))
    return { reason: `Patroni reports it ${member.patroni.state}` };
  return undefined;
}

async function checked(primary: ConnectionConfig, member: TopologyMember): Promise<ChosenSource> {
  const connection = pinnedTo(primary, member);
  const facts = await checkStandbySource(primary, connection);
  return {
    connection,
    origin: {
      role: 'standby',
      member: member.name,
      host: member.host,
      port: member.port,
      ...(member.replayLagBytes !== undefined ? { replayLagBytes: member.replayLagBytes } : {}),
    },
    timeline: facts.timeline,
  };
}

function seen(member: TopologyMember, reason: string, code?: string): Passed {
  return {
    member: member.name,
    role: member.reachable ? member.role : 'unreachable',
    ...(member.patroni ? { patroni: `${member.patroni.role}/${member.patroni.state}` } : {}),
    ...(member.replayLagBytes !== undefined ? { lagBytes: member.replayLagBytes } : {}),
    reason,
    ...(code ? { code } : {}),
  };
}
