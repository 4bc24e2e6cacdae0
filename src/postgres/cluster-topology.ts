import type pg from 'pg';
import { toWardenError } from '../errors.ts';
import { connect } from './connect.ts';
import { pinnedTo, type ConnectionConfig, type HostPort } from './connection-config.ts';
import { PatroniClient, permanentSlots, type PatroniMember } from './patroni-client.ts';

/** One member of a cluster as Warden sees it (and as Patroni does, when configured). */
export interface TopologyMember {
  /** Patroni's member name, or `host:port` without Patroni. */
  name: string;
  host: string;
  port: number;
  role: 'primary' | 'standby' | 'unknown';
  reachable: boolean;
  error?: { code: string; message: string };
  /** The timeline it writes (primary) or receives (standby). */
  timeline?: number;
  /** Its WAL position: written (primary) or replayed (standby). */
  lsn?: string;
  /** Standby: bytes of WAL the primary wrote that it has not replayed yet. */
  replayLagBytes?: number;
  /** Standby: as the primary's pg_stat_replication reports it (`async`, `sync`, `quorum`, `potential`). */
  syncState?: string;
  /** Whether the repository's slot exists on this member (checked when a slot name is given). */
  hasSlot?: boolean;
  /** Patroni's view of it: role and state as Patroni names them. */
  patroni?: { role: string; state: string; timeline?: number; lagBytes?: number };
}

/** A walsender on the primary: each replica, and Warden itself. */
export interface ReplicationConnection {
  applicationName: string;
  state: string;
  syncState: string;
  flushLsn?: string;
  replayLagBytes?: number;
}

export interface ClusterTopology {
  /** Who named the members: Patroni, or the host list of the connection. */
  source: 'patroni' | 'hosts';
  /** The member that is the primary now (its name), when one is. */
  primary?: string;
  members: TopologyMember[];
  /** The primary's walsenders (pg_stat_replication). */
  replication: ReplicationConnection[];
  /** With Patroni: the endpoint that answered, and the permanent slots of its dynamic configuration. */
  patroni?: { endpoint: string; permanentSlots: string[] };
  /** Why Patroni could not be asked (the members were then probed directly). */
  patroniError?: { code: string; message: string };
}

interface MemberFacts {
  in_recovery: boolean;
  lsn: string | null;
  timeline: number | null;
  has_slot: boolean;
}

/** The member's own facts on one short SQL session; the timeline from the WAL file name (exact after a promotion). */
const MEMBER_SQL = `
SELECT pg_is_in_recovery() AS in_recovery,
       (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn,
       CASE WHEN pg_is_in_recovery()
            THEN COALESCE((SELECT received_tli FROM pg_stat_wal_receiver), (SELECT timeline_id FROM pg_control_checkpoint()))
            ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END AS timeline,
       EXISTS (SELECT 1 FROM pg_replication_slots WHERE slot_name = $1) AS has_slot`;

const REPLICATION_SQL = `
SELECT application_name, state, sync_state, flush_lsn::text AS flush_lsn,
       pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint::text AS replay_lag
  FROM pg_stat_replication ORDER BY application_name`;

/**
 * Members, roles, timelines, lag and sync state of a cluster connection (several hosts and/or
 * Patroni). Each member is asked on a short session of its own; one that does not answer is
 * listed as unreachable, never guessed. `slot` (the repository's) is looked up on every member:
 * after a failover the new primary must have it (Patroni's permanent slots keep it there).
 */
export async function collectTopology(
  config: ConnectionConfig,
  options: { slot?: string; timeoutMs?: number } = {},
): Promise<ClusterTopology> {
  const timeoutMs = options.timeoutMs ?? 5_000;
  let patroniMembers: PatroniMember[] | undefined;
  let patroni: ClusterTopology['patroni'];
  let patroniError: ClusterTopology['patroniError'];
  if (config.patroni?.urls.length) {
    const client = new PatroniClient(config.patroni);
    try {
      const view = await client.cluster();
      patroniMembers = view.members;
      const dynamic = await client.dynamicConfig();
      patroni = { endpoint: view.source, permanentSlots: permanentSlots(dynamic) };
    } catch (error) {
      const wrapped = toWardenError(error);
      patroniError = { code: wrapped.code, message: wrapped.message };
    }
  }
  const hosts: Array<HostPort & { name: string; patroni?: PatroniMember }> = patroniMembers
    ? patroniMembers.map((m) => ({ host: m.host, port: m.port, name: m.name, patroni: m }))
    : (config.hosts ?? [{ host: config.host, port: config.port }]).map((h) => ({
        ...h,
        name: `${h.host}:${h.port}`,
      }));

  const members: TopologyMember[] = [];
  let replication: ReplicationConnection[] = [];
  for (const host of hosts) {
    const member: TopologyMember = {
      name: host.name,
      host: host.host,
      port: host.port,
      role: 'unknown',
      reachable: false,
      ...(host.patroni
        ? {
            patroni: {
              role: host.patroni.role,
              state: host.patroni.state,
              ...(host.patroni.timeline !== undefined ? { timeline: host.patroni.timeline } : {}),
              ...(host.patroni.lagBytes !== undefined ? { lagBytes: host.patroni.lagBytes } : {}),
            },
          }
        : {}),
    };
    members.push(member);
    let client: pg.Client | undefined;
    try {
      client = await connect(
        { ...pinnedTo(config, host), applicationName: 'warden topology' },
        { connectTimeoutMs: timeoutMs },
      );
      const facts = (await client.query<MemberFacts>(MEMBER_SQL, [options.slot ?? ''])).rows[0]!;
      member.reachable = true;
      member.role = facts.in_recovery ? 'standby' : 'primary';
      if (facts.lsn) member.lsn = facts.lsn;
      if (facts.timeline !== null) member.timeline = Number(facts.timeline);
      if (options.slot) member.hasSlot = facts.has_slot;
      if (!facts.in_recovery) {
        const rows = (
          await client.query<{
            application_name: string;
            state: string;
            sync_state: string;
            flush_lsn: string | null;
            replay_lag: string | null;
          }>(REPLICATION_SQL)
        ).rows;
        replication = rows.map((r) => ({
          applicationName: r.application_name,
          state: r.state,
          syncState: r.sync_state,
          ...(r.flush_lsn ? { flushLsn: r.flush_lsn } : {}),
          ...(r.replay_lag !== null ? { replayLagBytes: Number(r.replay_lag) } : {}),
        }));
      }
    } catch (error) {
      const wrapped = toWardenError(error);
      member.error = { code: wrapped.code, message: wrapped.message };
    } finally {
      await client?.end().catch(() => undefined);
    }
  }
  const primary = members.find((m) => m.role === 'primary');
  if (primary?.lsn) {
    for (const standby of members.filter((m) => m.role === 'standby' && m.lsn)) {
      standby.replayLagBytes = Math.max(0, lsnDiff(primary.lsn, standby.lsn!));
      // Patroni names each replica's walsender after the member.
      const sender = replication.find((r) => r.applicationName === standby.name);
      if (sender) standby.syncState = sender.syncState;
    }
  }
  return {
    source: patroniMembers ? 'patroni' : 'hosts',
    ...(primary ? { primary: primary.name } : {}),
    members,
    replication,
    ...(patroni ? { patroni } : {}),
    ...(patroniError ? { patroniError } : {}),
  };
}

/** What keeps the repository's slot through a failover, or why it would not survive one. */
export function slotSurvival(
  topology: ClusterTopology,
  slot: string,
): { ok: boolean; problems: string[]; notes: string[] } {
  const problems: string[] = [];
  const notes: string[] = [];
  const permanent = topology.source === 'patroni' && topology.patroni?.permanentSlots.includes(slot) === true;
  if (topology.source === 'patroni' && topology.patroni && !permanent)
    problems.push(
      `slot ${slot} is not in Patroni's permanent slots: Patroni drops it, and a new primary lacks it`,
    );
  for (const member of topology.members) {
    if (!member.reachable || member.hasSlot !== false) continue;
    // Patroni up to 3.1 keeps a permanent *physical* slot on the leader only and creates it on a
    // member when it is promoted (its dcs get_replication_slots gives replicas permanent logical
    // slots alone); later versions keep a copy on every replica. The slot survives either way:
    // with the older scheme the new leader's copy starts at its promotion, so WAL the stream had
    // not made durable by then must still be in that member's pg_wal (wal_keep_size).
    if (permanent && member.role === 'standby')
      notes.push(
        `slot ${slot} has no copy on standby ${member.name} yet: Patroni creates it there when that member is promoted`,
      );
    else problems.push(`slot ${slot} is missing on ${member.role} ${member.name}`);
  }
  return { ok: problems.length === 0, problems, notes };
}

function lsnDiff(a: string, b: string): number {
  const parse = (lsn: string) => {
    const [hi = '0', lo = '0'] = lsn.split('/');
    return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
  };
  return Number(parse(a) - parse(b));
}
