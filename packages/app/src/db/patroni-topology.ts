import { z } from 'zod';
import { DataLayerError } from '../errors.ts';
import type { DatabaseOptions } from './config.ts';
import type { HostInput, SslMode } from './types.ts';

/** Where Patroni answers and how to reach its members' PostgreSQL. */
export interface PatroniSource {
  /** Patroni REST endpoints (`http://db1:8008`); asked in order, the first answer wins. */
  urls: readonly string[];
  /** What every member's connection shares (Patroni gives only host and port). */
  connection: { user?: string; password?: string; database?: string; tls?: SslMode; tlsCa?: string };
  /** Per endpoint; default 2000 ms. */
  timeoutMs?: number;
}

/** One member as Patroni's `GET /cluster` describes it (the fields used). */
export interface PatroniMember {
  name: string;
  role: string;
  state: string;
  host: string;
  port: number;
  timeline?: number;
  /** Replay lag in bytes as Patroni reports it; undefined when Patroni says `unknown`. */
  lagBytes?: number;
  noLoadBalance: boolean;
}

export interface PatroniTopology {
  /** Where the answer came from. */
  source: string;
  leader: PatroniMember;
  /** Members that may serve reads (running or streaming, not tagged `noloadbalance`), least lag first. */
  replicas: PatroniMember[];
}

const MAX_ANSWER_BYTES = 256 * 1024;
const LEADER_ROLES = new Set(['leader', 'master', 'primary']);
const REPLICA_ROLES = new Set(['replica', 'sync_standby', 'quorum_standby']);
const SERVING_STATES = new Set(['running', 'streaming']);

// Hostile input: only what routing needs is read, and each field is checked.
const memberSchema = z.object({
  name: z.string().min(1).max(256),
  role: z.string().max(64),
  state: z.string().max(64),
  host: z
    .string()
    .min(1)
    .max(255)
    .regex(/^[A-Za-z0-9.:_-]+$/, 'a host name or address'),
  port: z.number().int().min(1).max(65535),
  timeline: z.number().int().min(1).optional(),
  lag: z.union([z.number().int().min(0), z.string().max(32)]).optional(),
  tags: z.record(z.string(), z.unknown()).optional(),
});
const clusterSchema = z.object({ members: z.array(z.unknown()).max(1000) });

/** A validated `/cluster` answer: every usable member, its leader when one runs. */
export interface PatroniView {
  /** Where the answer came from. */
  source: string;
  /** The running leader, when Patroni names one (none during a failover). */
  leader: PatroniMember | undefined;
  /** Members that may serve reads (running or streaming, not tagged `noloadbalance`), least lag first. */
  replicas: PatroniMember[];
  /** Entries left out because they did not validate (a member being added may be incomplete). */
  ignored: number;
  /** Endpoints asked before `source` that failed or answered an invalid document, with why. */
  endpointFailures: string[];
}

/**
 * Validates the body of a Patroni `GET /cluster` answer. Throws (a plain Error naming what is
 * wrong) when the document cannot be trusted as a whole: not JSON, no `members` array, more than
 * one running leader, or two members at one address. Single entries that do not validate are
 * left out and counted.
 */
export function parsePatroniCluster(text: string, source: string): PatroniView {
  if (text.length > MAX_ANSWER_BYTES) throw new Error('answer too large');
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error('not JSON');
  }
  const parsed = clusterSchema.safeParse(body);
  if (!parsed.success) throw new Error('not a Patroni /cluster document');
  const members: PatroniMember[] = [];
  let ignored = 0;
  for (const entry of parsed.data.members) {
    const member = memberSchema.safeParse(entry);
    if (!member.success) {
      ignored += 1;
      continue;
    }
    const m = member.data;
    members.push({
      name: m.name,
      role: m.role,
      state: m.state,
      host: m.host,
      port: m.port,
      ...(m.timeline !== undefined ? { timeline: m.timeline } : {}),
      ...(typeof m.lag === 'number' ? { lagBytes: m.lag } : {}),
      noLoadBalance: m.tags?.noloadbalance === true,
    });
  }
  const addresses = new Set(members.map((m) => `${m.host}:${m.port}`));
  if (addresses.size !== members.length) throw new Error('two members at one address');
  const leaders = members.filter((m) => LEADER_ROLES.has(m.role) && SERVING_STATES.has(m.state));
  if (leaders.length > 1) throw new Error(`${leaders.length} running leaders`);
  const replicas = members
    .filter((m) => REPLICA_ROLES.has(m.role) && SERVING_STATES.has(m.state) && !m.noLoadBalance)
    .sort((a, b) => (a.lagBytes ?? Infinity) - (b.lagBytes ?? Infinity));
  return { source, leader: leaders[0], replicas, ignored, endpointFailures: [] };
}

/**
 * `GET /cluster` from the first endpoint (in order) that answers a valid document. No endpoint
 * answering one is `WARDEN_E_DB_UNREACHABLE` (`details.source: 'patroni'`, each endpoint's
 * failure in `details.failures`).
 */
export async function readPatroniView(source: PatroniSource): Promise<PatroniView> {
  const failures: string[] = [];
  for (const url of source.urls) {
    try {
      const view = parsePatroniCluster(await fetchCluster(url, source.timeoutMs ?? 2000), url);
      return { ...view, endpointFailures: failures };
    } catch (error) {
      failures.push(`${redactUrl(url)}: ${(error as Error).message}`);
    }
  }
  throw new DataLayerError('WARDEN_E_DB_UNREACHABLE', 'no Patroni endpoint answered GET /cluster', {
    details: { source: 'patroni', failures },
    hint: 'Check the Patroni REST URLs (restapi.listen) and that they are reachable from here.',
  });
}

/**
 * Reads the cluster's members from Patroni's `GET /cluster`. Members whose entry does not
 * validate are ignored (a member being added may be incomplete); no leader is
 * `WARDEN_E_NO_PRIMARY`; no endpoint answering a valid document is `WARDEN_E_DB_UNREACHABLE`
 * (`details.source: 'patroni'`).
 */
export async function readPatroniTopology(source: PatroniSource): Promise<PatroniTopology> {
  const view = await readPatroniView(source);
  if (!view.leader) {
    throw new DataLayerError(
      'WARDEN_E_NO_PRIMARY',
      `Patroni at ${redactUrl(view.source)} reports no running leader`,
      {
        details: { source: 'patroni', replicas: view.replicas.map((m) => `${m.name}:${m.role}:${m.state}`) },
      },
    );
  }
  return { source: view.source, leader: view.leader, replicas: view.replicas };
}

/**
 * `createDatabase` options whose hosts come from Patroni: the leader as primary, the serving
 * replicas (least lag first) as replicas. The router's own lag-aware routing and failover then
 * apply: a replica Patroni promotes later is adopted by the health check.
 *
 * @example
 * const db = createDatabase({
 *   ...(await optionsFromPatroni({ urls: ['http://db1:8008', 'http://db2:8008'], connection: { user: 'app', database: 'app' } })),
 *   maxReplicaLagMs: 1000,
 * });
 */
export async function optionsFromPatroni(
  source: PatroniSource,
): Promise<Required<Pick<DatabaseOptions, 'primary' | 'replicas'>>> {
  return hostsOf(await readPatroniTopology(source), source.connection);
}

/** The leader and the serving replicas of a topology as `createDatabase` hosts. */
export function hostsOf(
  topology: PatroniTopology,
  connection: PatroniSource['connection'],
): Required<Pick<DatabaseOptions, 'primary' | 'replicas'>> {
  const host = (m: PatroniMember): HostInput => ({ ...connection, host: m.host, port: m.port });
  return { primary: host(topology.leader), replicas: topology.replicas.map(host) };
}

async function fetchCluster(url: string, timeoutMs: number): Promise<string> {
  const base = new URL(url);
  if (base.protocol !== 'http:' && base.protocol !== 'https:') throw new Error('not an http(s) URL');
  // https is verified against the system CAs (and NODE_EXTRA_CA_CERTS); there is no switch to turn
  // verification off, as for PostgreSQL.
  const response = await fetch(new URL('/cluster', base), {
    signal: AbortSignal.timeout(timeoutMs),
    headers: { accept: 'application/json' },
    redirect: 'error',
  });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return readCapped(response);
}

/** The body, refused once it passes MAX_ANSWER_BYTES (without reading the rest). */
async function readCapped(response: Response): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (declared > MAX_ANSWER_BYTES) {
    await response.body?.cancel();
    throw new Error('answer too large');
  }
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.byteLength;
    if (size > MAX_ANSWER_BYTES) throw new Error('answer too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** A URL for messages: credentials (`http://user:pw@…`) never reach a log. */
function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username || u.password) {
      u.username = '';
      u.password = '';
    }
    return u.toString().replace(/\/$/, '');
  } catch {
    return '(invalid URL)';
  }
}
