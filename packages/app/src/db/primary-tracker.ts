import { DataLayerError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { DbConnection, HostTarget } from './driver.ts';
import type { HostMonitor } from './host-monitor.ts';

export interface PrimaryTrackerOptions {
  /** The primary named in the configuration, if any (Patroni-routed databases learn it later). */
  readonly initial: string | undefined;
  readonly monitor: HostMonitor;
  /** The members now (they change when Patroni's membership does). */
  readonly hosts: () => readonly HostTarget[];
  /** Opens a session to one member (errors already typed). */
  readonly open: (host: HostTarget) => Promise<DbConnection>;
  /** Asks Patroni who leads now (a no-op without Patroni). */
  readonly refresh: () => void;
  /** The primary changed: the write sessions point at the old one. */
  readonly onSwitch: () => void;
  /** The primary failed or turned read-only: its write sessions must go. */
  readonly dropSessions: () => void;
  readonly logger: Logger;
}

/**
 * Which member is the primary: adopted from the health checks, from Patroni's leader, or from
 * the first member that accepts writes when a write session is opened. The router asks it; it
 * tells the router (through the callbacks) when write sessions must be dropped.
 */
export class PrimaryTracker {
  private current: string | undefined;
  private readonly options: PrimaryTrackerOptions;

  constructor(options: PrimaryTrackerOptions) {
    this.options = options;
    this.current = options.initial;
  }

  /** The primary's `host:port`, or undefined while none is known. */
  get key(): string | undefined {
    return this.current;
  }

  /** Whether the health checks last saw the known primary up and out of recovery. */
  confirmed(): boolean {
    const known = this.current === undefined ? undefined : this.options.monitor.state(this.current);
    return known?.status === 'up' && known.inRecovery === false;
  }

  /** Makes `key` the primary (a no-op when it already is). */
  switchTo(key: string): void {
    if (key === this.current) return;
    const previous = this.current;
    this.current = key;
    this.options.logger.warn({ previous, primary: key }, 'primary changed');
    this.options.onSwitch();
  }

  /** The known primary left the membership: none is known until one is found. */
  forget(): void {
    this.current = undefined;
  }

  /** Adopts a primary the health checks found when the known one is gone or in recovery. */
  follow(): void {
    if (this.confirmed()) return;
    const found = this.options.monitor.all().find((s) => s.status === 'up' && s.inRecovery === false);
    if (found) this.switchTo(found.key);
  }

  /** The primary failed or turned read-only: drop its write sessions so new ones look for the new primary. */
  lost(error: unknown): void {
    this.options.logger.warn(
      { host: this.current, err: error instanceof Error ? error.message : String(error) },
      'primary lost',
    );
    this.options.dropSessions();
    void this.options.monitor.tick().then(() => this.follow());
    this.options.refresh();
  }

  /**
   * Opens a session to whichever member accepts writes (libpq's
   * `target_session_attrs=read-write`): the known primary first, then the others.
   */
  async openWritable(): Promise<DbConnection> {
    const monitor = this.options.monitor;
    const rank = (key: string) =>
      key === this.current ? 0 : monitor.state(key)?.inRecovery === false ? 1 : 2;
    const hosts = [...this.options.hosts()].sort((a, b) => rank(a.key) - rank(b.key));
    const tried: Record<string, string> = {};
    for (const host of hosts) {
      let connection: DbConnection | undefined;
      try {
        connection = await this.options.open(host);
        const { rows } = await connection.query<{ in_recovery: boolean }>(
          'SELECT pg_is_in_recovery() AS in_recovery',
        );
        if (rows[0]?.in_recovery === false) {
          this.switchTo(host.key);
          return connection;
        }
        tried[host.key] = 'in recovery';
      } catch (error) {
        tried[host.key] = error instanceof DataLayerError ? error.code : 'failed';
      }
      await connection?.close();
    }
    // No member accepts writes: ask Patroni who leads now (a promoted member may be new to us).
    this.options.refresh();
    throw new DataLayerError('WARDEN_E_NO_PRIMARY', 'no configured server accepts writes right now', {
      hint: 'A failover may be in progress; retry shortly.',
      details: { tried },
    });
  }
}
