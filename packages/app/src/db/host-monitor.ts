import type { Logger } from '../logger.ts';
import type { ConnectOptions, Connector, DbConnection, HostTarget } from './driver.ts';
import { formatLsn, parseLsnOrNull, type Lsn } from './lsn.ts';

/** What the monitor last learned about one server. */
export interface HostState {
  readonly key: string;
  /** `up` after the last check succeeded; `down` hosts get no reads until a check succeeds. */
  status: 'unknown' | 'up' | 'down';
  /** True for a replica, false for a primary, undefined until first reached. */
  inRecovery: boolean | undefined;
  /** Replay position (replica) or current WAL position (primary). */
  lsn: Lsn | null;
  /** Estimated replication delay (replicas); 0 when caught up with the primary. */
  lagMs: number | undefined;
  checkedAt: number | undefined;
  consecutiveFailures: number;
  nextCheckAt: number;
  lastError: string | undefined;
}

export interface HostMonitorOptions {
  hosts: readonly HostTarget[];
  connect: Connector;
  connectOptions: ConnectOptions;
  intervalMs: number;
  /**
   * A probe session older than this is replaced (0: never), as the pools retire theirs, so the
   * monitor too moves to rotated credentials and never pins a login that is being retired.
   */
  maxLifetimeMs?: number;
  logger: Logger;
}

// Down hosts are re-checked after 1 s, 2 s, 4 s, … capped at 30 s, each ±20 % jitter.
const BACKOFF_BASE_MS = 1_000;
const BACKOFF_MAX_MS = 30_000;
/** Primary WAL positions kept to date a replica's replay position. */
const HISTORY = 1_200;

const PROBE_SQL =
  'SELECT pg_is_in_recovery() AS in_recovery, ' +
  '(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn';

/**
 * Polls every configured server over one dedicated session each: is it up, is it a primary or a
 * replica, and how far has it replayed. Replica lag is measured in time against the history of
 * the primary's WAL position: a replica at position P lags by the time since the primary was
 * last seen at or before P (conservative by up to one interval), and by 0 once it has caught up.
 */
export class HostMonitor {
  private readonly states = new Map<string, HostState>();
  private readonly connections = new Map<string, DbConnection>();
  private readonly openedAt = new WeakMap<DbConnection, number>();
  private readonly history: Array<{ at: number; lsn: Lsn }> = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  private hosts: readonly HostTarget[];

  constructor(private readonly options: HostMonitorOptions) {
    this.hosts = options.hosts;
    for (const host of options.hosts) this.addState(host);
  }

  /**
   * Follows a membership change: new hosts are checked from the next round, removed ones are
   * forgotten and their health-check session closed.
   */
  setHosts(hosts: readonly HostTarget[]): void {
    const keep = new Set(hosts.map((h) => h.key));
    for (const key of [...this.states.keys()]) {
      if (keep.has(key)) continue;
      this.states.delete(key);
      const connection = this.connections.get(key);
      this.connections.delete(key);
      void connection?.close();
    }
    for (const host of hosts) if (!this.states.has(host.key)) this.addState(host);
    this.hosts = hosts;
  }

  private addState(host: HostTarget): void {
    this.states.set(host.key, {
      key: host.key,
      status: 'unknown',
      inRecovery: undefined,
      lsn: null,
      lagMs: undefined,
      checkedAt: undefined,
      consecutiveFailures: 0,
      nextCheckAt: 0,
      lastError: undefined,
    });
  }

  /** Runs a first round of checks, then polls every interval. Idempotent. */
  async start(): Promise<void> {
    if (this.timer || this.stopped) return;
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
    this.timer.unref();
    await this.tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    await this.running;
    await Promise.all([...this.connections.values()].map((c) => c.close()));
    this.connections.clear();
  }

  state(key: string): HostState | undefined {
    return this.states.get(key);
  }

  all(): HostState[] {
    return [...this.states.values()];
  }

  /** Runs one round now (or joins the running one). */
  tick(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.running ??= this.round().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** Takes a host out of rotation after a failed query, until a health check succeeds. */
  markDown(key: string, reason: string): void {
    const state = this.states.get(key);
    if (!state || state.status === 'down') return;
    this.fail(state, reason);
  }

  /** Records a replay position learned outside the poll (a read-your-writes check). */
  noteReplayed(key: string, lsn: Lsn): void {
    const state = this.states.get(key);
    if (state && state.inRecovery && (state.lsn === null || lsn > state.lsn)) {
      state.lsn = lsn;
      state.lagMs = this.lagOf(lsn, Date.now());
    }
  }

  private async round(): Promise<void> {
    const now = Date.now();
    const due = this.hosts.filter((h) => (this.states.get(h.key)?.nextCheckAt ?? 0) <= now);
    const results = await Promise.all(due.map((host) => this.probe(host)));
    const at = Date.now();
    for (const result of results) {
      if (result && !result.inRecovery && result.lsn !== null) this.record(at, result.lsn);
    }
    for (const state of this.states.values()) {
      if (state.inRecovery && state.lsn !== null && state.status === 'up')
        state.lagMs = this.lagOf(state.lsn, at);
    }
  }

  private async probe(host: HostTarget): Promise<{ inRecovery: boolean; lsn: Lsn | null } | undefined> {
    const state = this.states.get(host.key);
    if (!state) return undefined;
    try {
      let connection = this.connections.get(host.key);
      const lifetime = this.options.maxLifetimeMs ?? 0;
      if (connection && lifetime > 0 && Date.now() - (this.openedAt.get(connection) ?? 0) > lifetime) {
        void connection.close();
        connection = undefined;
      }
      if (!connection || connection.broken) {
        connection = await this.options.connect(host, this.options.connectOptions);
        if (this.stopped) {
          await connection.close();
          return undefined;
        }
        if (!this.states.has(host.key)) {
          // Removed from the membership while connecting.
          await connection.close();
          return undefined;
        }
        this.connections.set(host.key, connection);
        this.openedAt.set(connection, Date.now());
      }
      const { rows } = await withTimeout(
        connection.query<{ in_recovery: boolean; lsn: string | null }>(PROBE_SQL),
        Math.max(1_000, this.options.intervalMs * 2),
      );
      const row = rows[0];
      if (!row) throw new Error('probe returned no row');
      const lsn = parseLsnOrNull(row.lsn);
      const wasDown = state.status === 'down';
      if (state.inRecovery !== undefined && state.inRecovery !== row.in_recovery) {
        this.options.logger.warn({ host: host.key, inRecovery: row.in_recovery }, 'server changed role');
      }
      Object.assign(state, {
        status: 'up',
        inRecovery: row.in_recovery,
        lsn,
        checkedAt: Date.now(),
        consecutiveFailures: 0,
        nextCheckAt: 0,
        lastError: undefined,
      });
      if (wasDown) this.options.logger.info({ host: host.key }, 'server passed its health check again');
      return { inRecovery: row.in_recovery, lsn };
    } catch (error) {
      const connection = this.connections.get(host.key);
      this.connections.delete(host.key);
      void connection?.close();
      this.fail(state, error instanceof Error ? error.message : String(error));
      return undefined;
    }
  }

  private fail(state: HostState, reason: string): void {
    state.consecutiveFailures += 1;
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (state.consecutiveFailures - 1));
    state.nextCheckAt = Date.now() + backoff * (0.8 + Math.random() * 0.4);
    state.lastError = reason;
    state.checkedAt = Date.now();
    if (state.status !== 'down') {
      this.options.logger.warn(
        { host: state.key, reason },
        'server failed its health check; taken out of rotation',
      );
    }
    state.status = 'down';
  }

  private record(at: number, lsn: Lsn): void {
    const last = this.history.at(-1);
    if (last && lsn < last.lsn) this.history.length = 0; // a new primary: positions restart from its timeline
    this.history.push({ at, lsn });
    if (this.history.length > HISTORY) this.history.shift();
  }

  /** Position of the primary at its last check. */
  primaryLsn(): Lsn | undefined {
    return this.history.at(-1)?.lsn;
  }

  private lagOf(replayed: Lsn, now: number): number | undefined {
    const latest = this.history.at(-1);
    if (!latest) return undefined;
    if (replayed >= latest.lsn) return 0;
    for (let i = this.history.length - 1; i >= 0; i -= 1) {
      const sample = this.history[i];
      if (sample && sample.lsn <= replayed) return now - sample.at;
    }
    return now - (this.history[0]?.at ?? now);
  }

  describe(key: string): Record<string, unknown> {
    const s = this.states.get(key);
    if (!s) return {};
    return {
      status: s.status,
      inRecovery: s.inRecovery,
      lsn: s.lsn === null ? null : formatLsn(s.lsn),
      lagMs: s.lagMs,
    };
  }
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
