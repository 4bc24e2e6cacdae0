import { WardenError } from '../errors.ts';
import type { PatroniEndpoints } from './connection-config.ts';

/** One member as Patroni's `GET /cluster` describes it (validated; unknown fields dropped). */
export interface PatroniMember {
  name: string;
  /** `leader`, `replica`, `sync_standby`, `standby_leader`, … as Patroni names it. */
  role: string;
  /** `running`, `streaming`, `stopped`, `starting`, … */
  state: string;
  host: string;
  port: number;
  timeline?: number;
  /** Replication lag in bytes as Patroni measures it (absent when unknown). */
  lagBytes?: number;
}

export interface PatroniClusterView {
  /** The REST endpoint that answered. */
  source: string;
  members: PatroniMember[];
  /** The member named in a pending scheduled switchover, when any. */
  scheduledSwitchover?: string;
}

const TIMEOUT_MS = 5_000;

/**
 * A client of the Patroni REST API, over the endpoints given (the first that answers wins: any
 * member can describe the whole cluster). Answers are validated: they come from the network.
 */
export class PatroniClient {
  constructor(private readonly endpoints: PatroniEndpoints) {}

  /** `GET /cluster`: every member with its role, state, timeline and lag. */
  async cluster(): Promise<PatroniClusterView> {
    const { body, source } = await this.getFromAny('/cluster');
    return { source, ...parseCluster(body, source) };
  }

  /** `GET /config`: the dynamic configuration (DCS), e.g. its permanent `slots`. */
  async dynamicConfig(): Promise<Record<string, unknown>> {
    const { body, source } = await this.getFromAny('/config');
    if (!isObject(body)) throw invalidAnswer(source, '/config', 'not a JSON object');
    return body;
  }

  /**
   * `POST /switchover` to the leader's endpoint (found in `/cluster`, matched to the configured
   * URLs by host and port when possible, else any endpoint: Patroni forwards nothing, but every
   * member accepts a switchover request and acts through the DCS).
   */
  async switchover(leader: string, candidate?: string): Promise<string> {
    const body = JSON.stringify(candidate ? { leader, candidate } : { leader });
    let lastError: unknown;
    for (const url of this.endpoints.urls) {
      try {
        const response = await fetch(new URL('/switchover', url), {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
          signal: AbortSignal.timeout(60_000),
        });
        const text = (await response.text()).slice(0, 500);
        if (response.ok) return text;
        // 412/400/503: Patroni's refusal (no candidate, not healthy, not the leader): a reason.
        throw new WardenError('WARDEN_E_SWITCHOVER_FAILED', `Patroni refused the switchover: ${text}`, {
          hint: 'Every member must be healthy and the candidate (if named) a streaming replica.',
          details: { endpoint: redactUrl(url), status: response.status },
        });
      } catch (error) {
        if (error instanceof WardenError) throw error;
        lastError = error;
      }
    }
    throw unreachable(this.endpoints.urls, lastError);
  }

  private async getFromAny(path: string): Promise<{ body: unknown; source: string }> {
    let lastError: unknown;
    for (const url of this.endpoints.urls) {
      try {
        const response = await fetch(new URL(path, url), { signal: AbortSignal.timeout(TIMEOUT_MS) });
        if (!response.ok) {
          lastError = new Error(`HTTP ${response.status}`);
          continue;
        }
        const text = await response.text();
        try {
          return { body: JSON.parse(text) as unknown, source: redactUrl(url) };
        } catch {
          throw invalidAnswer(redactUrl(url), path, 'not JSON');
        }
      } catch (error) {
        if (error instanceof WardenError) throw error;
        lastError = error;
      }
    }
    throw unreachable(this.endpoints.urls, lastError);
  }
}

/** Checks a `/cluster` answer field by field: a member without a name, host or port is refused. */
export function parseCluster(
  body: unknown,
  source: string,
): { members: PatroniMember[]; scheduledSwitchover?: string } {
  if (!isObject(body) || !Array.isArray(body.members))
    throw invalidAnswer(source, '/cluster', 'no members list');
  const members = body.members.map((raw, i): PatroniMember => {
    if (!isObject(raw)) throw invalidAnswer(source, '/cluster', `members[${i}] is not an object`);
    const { name, role, state, host, port, timeline, lag } = raw;
    if (typeof name !== 'string' || !name || name.length > 200)
      throw invalidAnswer(source, '/cluster', `members[${i}].name`);
    if (typeof host !== 'string' || !host || host.length > 255 || /[\s/@]/.test(host))
      throw invalidAnswer(source, '/cluster', `members[${i}].host`);
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535)
      throw invalidAnswer(source, '/cluster', `members[${i}].port`);
    return {
      name,
      role: typeof role === 'string' ? role : 'unknown',
      state: typeof state === 'string' ? state : 'unknown',
      host,
      port,
      ...(typeof timeline === 'number' && Number.isInteger(timeline) && timeline > 0 ? { timeline } : {}),
      ...(typeof lag === 'number' && Number.isFinite(lag) && lag >= 0 ? { lagBytes: lag } : {}),
    };
  });
  const scheduled = isObject(body.scheduled_switchover) ? body.scheduled_switchover.to : undefined;
  return { members, ...(typeof scheduled === 'string' ? { scheduledSwitchover: scheduled } : {}) };
}

/** Names of the physical slots in Patroni's dynamic configuration (`slots:`). */
export function permanentSlots(dynamic: Record<string, unknown>): string[] {
  const slots = dynamic.slots;
  if (typeof slots !== 'object' || slots === null || Array.isArray(slots)) return [];
  return Object.entries(slots)
    .filter(([, value]) => {
      const type =
        typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
      return type === undefined || type === 'physical';
    })
    .map(([name]) => name)
    .sort();
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A URL without user info (Patroni's REST credentials may be written into it). */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    return parsed.origin + (parsed.pathname === '/' ? '' : parsed.pathname);
  } catch {
    return '(invalid URL)';
  }
}

function invalidAnswer(source: string, path: string, problem: string): WardenError {
  return new WardenError('WARDEN_E_PATRONI_API', `Patroni at ${source} answered ${path} with ${problem}`, {
    hint: 'Check that the URL points at a Patroni REST API (port 8008 by default).',
    details: { endpoint: source, path, problem },
  });
}

function unreachable(urls: readonly string[], cause: unknown): WardenError {
  return new WardenError(
    'WARDEN_E_PATRONI_API',
    `no Patroni REST endpoint answered (${urls.map(redactUrl).join(', ')})`,
    {
      hint: 'Check patroni.urls and that Patroni runs; during a failover one member at least should answer.',
      details: { endpoints: urls.map(redactUrl), errno: (cause as { code?: string })?.code },
      cause,
    },
  );
}
