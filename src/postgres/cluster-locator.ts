import type pg from 'pg';
import { isWardenError, WardenError } from '../errors.ts';
import { describeConnection, pinnedTo, type ConnectionConfig, type HostPort } from './connection-config.ts';
import { PatroniClient, type PatroniMember } from './patroni-client.ts';

/** What a connection to a cluster wants: the primary, any standby, or one member by name. */
export type MemberWanted = 'primary' | 'standby' | 'any' | { name: string };

export interface LocatedMember extends HostPort {
  /** Patroni's member name, when Patroni named it. */
  name?: string;
  role: 'primary' | 'standby';
}

/** Opens a plain SQL session to exactly one server (connect.ts passes its own single-host connect). */
export type OpenSession = (config: ConnectionConfig, timeoutMs: number) => Promise<pg.Client>;

/** A member's answer to the probe: in recovery or not, or why it could not say. */
interface Probe extends HostPort {
  inRecovery?: boolean;
  error?: { code: string; message: string };
}

/**
 * Finds the member of a cluster a connection should go to, and returns the connection pinned to
 * it. Patroni (when configured) is the authority on who leads; its answer is checked against the
 * member itself (a stale view must not send the WAL stream to a standby). Without Patroni, or
 * when no Patroni endpoint answers, the hosts are probed in order as libpq does for
 * `target_session_attrs`. None fits: WARDEN_E_NO_PRIMARY (retryable: a failover is under way).
 */
export async function locateMember(
  config: ConnectionConfig,
  open: OpenSession,
  wanted: MemberWanted = wantedByAttrs(config),
  probeTimeoutMs = 5_000,
): Promise<{ connection: ConnectionConfig; member: LocatedMember }> {
  const tried: Probe[] = [];
  if (config.patroni?.urls.length) {
    let members: PatroniMember[] | undefined;
    try {
      members = (await new PatroniClient(config.patroni).cluster()).members;
    } catch (error) {
      if (!isWardenError(error, 'WARDEN_E_PATRONI_API') || !config.hosts?.length) throw error;
    }
    if (members) {
      for (const member of orderByPatroni(members, wanted)) {
        const probe = await probeMember(open, config, member, probeTimeoutMs);
        tried.push(probe);
        const found = fits(probe, wanted);
        if (found) return { connection: pinnedTo(config, member), member: { ...found, name: member.name } };
      }
      throw noMember(config, wanted, tried);
    }
  }
  const hosts = config.hosts?.length ? config.hosts : [{ host: config.host, port: config.port }];
  for (const host of hosts) {
    const probe = await probeMember(open, config, host, probeTimeoutMs);
    tried.push(probe);
    const found = fits(probe, wanted);
    if (found) return { connection: pinnedTo(config, host), member: found };
  }
  if (wanted === 'standby' && config.targetSessionAttrs === 'prefer-standby') {
    const any = tried.find((p) => p.inRecovery !== undefined);
    if (any) return { connection: pinnedTo(config, any), member: { ...any, role: 'primary' } };
  }
  throw noMember(config, wanted, tried);
}

export function wantedByAttrs(config: ConnectionConfig): MemberWanted {
  switch (config.targetSessionAttrs) {
    case 'any':
      return 'any';
    case 'standby':
    case 'read-only':
    case 'prefer-standby':
      return 'standby';
    default:
      return 'primary';
  }
}

/** Patroni's candidates first: its leader for a primary, its replicas for a standby. */
function orderByPatroni(members: PatroniMember[], wanted: MemberWanted): PatroniMember[] {
  const running = members.filter((m) => m.state === 'running' || m.state === 'streaming');
  if (typeof wanted === 'object') return members.filter((m) => m.name === wanted.name);
  if (wanted === 'primary') return running.filter((m) => m.role === 'leader');
  if (wanted === 'standby') return running.filter((m) => m.role !== 'leader');
  return running;
}

function fits(probe: Probe, wanted: MemberWanted): LocatedMember | undefined {
  if (probe.inRecovery === undefined) return undefined;
  const role = probe.inRecovery ? 'standby' : 'primary';
  const member = { host: probe.host, port: probe.port, role } as const;
  if (wanted === 'any' || typeof wanted === 'object') return member;
  return wanted === role ? member : undefined;
}

/**
 * Asks one member whether it is in recovery, on a short SQL session. A wrong password or a
 * refused role is not "this member is down": it is thrown, the configuration is wrong.
 */
async function probeMember(
  open: OpenSession,
  config: ConnectionConfig,
  host: HostPort,
  timeoutMs: number,
): Promise<Probe> {
  let client: pg.Client | undefined;
  try {
    client = await open({ ...pinnedTo(config, host), applicationName: 'warden locate' }, timeoutMs);
    const { rows } = await client.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
    return { ...host, inRecovery: rows[0]?.r === true };
  } catch (error) {
    if (
      isWardenError(error) &&
      ['WARDEN_E_AUTH_FAILED', 'WARDEN_E_TLS_UNAVAILABLE', 'WARDEN_E_SECRET_UNAVAILABLE'].includes(error.code)
    )
      throw error;
    const code = isWardenError(error) ? error.code : 'WARDEN_E_DB_UNREACHABLE';
    return { ...host, error: { code, message: error instanceof Error ? error.message : String(error) } };
  } finally {
    await client?.end().catch(() => undefined);
  }
}

function noMember(config: ConnectionConfig, wanted: MemberWanted, tried: Probe[]): WardenError {
  const what = typeof wanted === 'object' ? `member "${wanted.name}"` : wanted === 'any' ? 'member' : wanted;
  const seen = tried.map((p) => ({
    member: `${p.host}:${p.port}`,
    ...(p.inRecovery !== undefined ? { role: p.inRecovery ? 'standby' : 'primary' } : {}),
    ...(p.error ? { error: p.error.code } : {}),
  }));
  return new WardenError(
    'WARDEN_E_NO_PRIMARY',
    `no ${what} found in the cluster of ${describeConnection(config)} (${
      seen.map((s) => `${s.member}: ${s.role ?? s.error}`).join(', ') || 'Patroni names none'
    })`,
    {
      hint:
        wanted === 'primary'
          ? 'A failover or switchover may be under way: Warden tries again. If it lasts, check the cluster manager.'
          : 'Check the member names and that the members run.',
      details: { wanted: typeof wanted === 'object' ? wanted.name : wanted, members: seen },
    },
  );
}
