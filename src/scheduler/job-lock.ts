import { createHash } from 'node:crypto';
import type pg from 'pg';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';

/** Decides which of several daemons runs a job slot. */
export interface JobLock {
  /** A release function when this daemon got the job, undefined when another daemon holds it. */
  tryAcquire(job: string): Promise<(() => Promise<void>) | undefined>;
  close(): Promise<void>;
}

/** Advisory lock class id for Warden jobs ('WD' in ASCII): keeps clear of application locks. */
const LOCK_CLASS = 0x5744;

/**
 * PostgreSQL advisory locks on the protected cluster, held on one dedicated session: a daemon that
 * dies loses its locks with its session, so no stale lock ever needs a person to remove it.
 * The key is the job name hashed, scoped by the repository so two repositories of one cluster
 * do not block each other.
 */
export class AdvisoryJobLock implements JobLock {
  private client: pg.Client | undefined;

  constructor(
    private readonly connection: ConnectionConfig,
    private readonly scope: string,
  ) {}

  async tryAcquire(job: string): Promise<(() => Promise<void>) | undefined> {
    const client = await this.session();
    const key = lockKey(`${this.scope}\0${job}`);
    try {
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1, $2) AS ok', [
        LOCK_CLASS,
        key,
      ]);
      if (!rows[0]?.ok) return undefined;
    } catch (error) {
      await this.reset();
      throw error;
    }
    return async () => {
      await client.query('SELECT pg_advisory_unlock($1, $2)', [LOCK_CLASS, key]).catch(() => this.reset());
    };
  }

  async close(): Promise<void> {
    await this.reset();
  }

  private async session(): Promise<pg.Client> {
    if (!this.client) {
      this.client = await connect({ ...this.connection, applicationName: 'warden daemon lock' });
      this.client.on('error', () => void this.reset());
    }
    return this.client;
  }

  private async reset(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}

function lockKey(text: string): number {
  return createHash('sha256').update(text).digest().readInt32BE(0);
}
