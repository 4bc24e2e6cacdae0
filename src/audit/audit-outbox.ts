import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { toWardenError } from '../errors.ts';
import type { Repository } from '../repository/repository.ts';
import { backoffDelay } from '../util/backoff.ts';
import { appendAudit } from './audit-log.ts';
import type { AuditEntry } from './audit-record.ts';

export interface AuditOutboxOptions {
  /** A local directory (created 0700); pending records are files in it until appended. */
  dir: string;
  /** The repository handle (with the signing key) of a cluster; undefined: nothing to record into. */
  repositoryOf: (cluster: string) => Promise<Repository | undefined>;
  logger: Logger;
  /** First retry delay after a failed append (default 1 s), doubling to `retryCapMs` (default 60 s). */
  retryBaseMs?: number;
  retryCapMs?: number;
}

interface Pending {
  cluster: string;
  entry: AuditEntry;
}

const NAME = /^\d{15}-\d{9}\.json$/;

/**
 * A durable queue in front of the audit log, for callers that must not wait for the repository
 * (an HTTP request). `record()` returns at once; each record is first written to a file of its own
 * (write-aside, fsync, rename) and then appended to its cluster's log in the order recorded, the
 * file removed once appended. While a repository is unreachable its records stay on disk and are
 * retried with backoff (1 s doubling to 60 s, ±50 %), and survive a restart of the daemon: a
 * record is never dropped silently. Delivery is at least once: a daemon killed between an append
 * and the file's removal appends that record again after its restart.
 */
export class AuditOutbox {
  private counter = 0;
  /** Files are written one after the other, so a drain never sees a later record without an earlier one. */
  private writes: Promise<void> = Promise.resolve();
  private draining: Promise<void> | undefined;
  private again = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Records whose file could not be written (a full or read-only disk): kept in memory, appended first. */
  private readonly unsaved: Pending[] = [];

  constructor(private readonly options: AuditOutboxOptions) {}

  /** Appends what a previous run left behind (idempotent). */
  start(): void {
    this.stopped = false;
    this.kick();
  }

  /** Queues one record per cluster; never throws and never waits for the repository. */
  record(clusters: readonly string[], entry: AuditEntry): void {
    for (const cluster of clusters) {
      const name = `${String(Date.now()).padStart(15, '0')}-${String(this.counter++ % 1e9).padStart(9, '0')}.json`;
      this.writes = this.writes.then(() => this.save(name, { cluster, entry }));
    }
    this.kick();
  }

  /** Records not yet in their repository's log. */
  async pending(): Promise<number> {
    await this.writes;
    return (await this.files()).length + this.unsaved.length;
  }

  /** Waits until every queued record was appended or failed this round (then stays on disk). */
  async flush(): Promise<void> {
    await this.writes;
    while (this.draining) await this.draining;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.flush();
  }

  private async save(name: string, pending: Pending): Promise<void> {
    const { dir } = this.options;
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const aside = path.join(dir, `.${name}.tmp`);
      const handle = await open(aside, 'w', 0o600);
      try {
        await handle.writeFile(JSON.stringify(pending));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(aside, path.join(dir, name));
    } catch (error) {
      this.unsaved.push(pending);
      this.options.logger.error(
        { dir, err: toWardenError(error).message },
        'the audit outbox could not save a record: it is kept in memory until appended',
      );
    }
  }

  private kick(): void {
    if (this.stopped) return;
    if (this.draining) {
      this.again = true;
      return;
    }
    this.draining = this.drain()
      .catch((error: unknown) => {
        this.options.logger.error(
          { err: toWardenError(error).message },
          'the audit outbox could not be read',
        );
      })
      .finally(() => {
        this.draining = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async drain(): Promise<void> {
    await this.writes;
    const blocked = new Set<string>();
    while (this.unsaved.length) {
      const next = this.unsaved[0]!;
      if (!(await this.append(next, blocked))) break;
      this.unsaved.shift();
    }
    for (const name of await this.files()) {
      const file = path.join(this.options.dir, name);
      const pending = await this.read(file);
      if (!pending) continue;
      if (blocked.has(pending.cluster)) continue;
      if (await this.append(pending, blocked)) await rm(file, { force: true });
    }
    if (blocked.size === 0) {
      this.attempt = 0;
      return;
    }
    const delay = backoffDelay(
      this.attempt++,
      this.options.retryBaseMs ?? 1_000,
      this.options.retryCapMs ?? 60_000,
    );
    clearTimeout(this.timer);
    if (!this.stopped) this.timer = setTimeout(() => this.kick(), delay).unref();
  }

  /** Appends one record; false (and its cluster blocked for this round, keeping order) when it could not. */
  private async append(pending: Pending, blocked: Set<string>): Promise<boolean> {
    try {
      const repository = await this.options.repositoryOf(pending.cluster);
      if (repository) await appendAudit(repository, pending.entry);
      else
        this.options.logger.info(
          { cluster: pending.cluster, action: pending.entry.action },
          'no repository to record this in yet',
        );
      return true;
    } catch (error) {
      blocked.add(pending.cluster);
      this.options.logger.warn(
        { cluster: pending.cluster, action: pending.entry.action, err: toWardenError(error).message },
        'the audit log could not record this yet: kept in the outbox, retried',
      );
      return false;
    }
  }

  private async files(): Promise<string[]> {
    try {
      return (await readdir(this.options.dir)).filter((name) => NAME.test(name)).sort();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  /** A pending file, checked (the directory is local but still input); a bad one is moved aside, loudly. */
  private async read(file: string): Promise<Pending | undefined> {
    try {
      const value = JSON.parse(await readFile(file, 'utf8')) as Partial<Pending>;
      const entry = value.entry as Partial<AuditEntry> | undefined;
      if (
        typeof value.cluster === 'string' &&
        entry &&
        typeof entry.action === 'string' &&
        (entry.outcome === 'succeeded' || entry.outcome === 'failed') &&
        typeof entry.actor === 'object'
      )
        return value as Pending;
    } catch {
      // Falls through: unreadable.
    }
    const aside = `${file}.unreadable`;
    await rename(file, aside).catch(() => undefined);
    this.options.logger.error(
      { file: aside },
      'an audit outbox file is unreadable: moved aside, not recorded',
    );
    return undefined;
  }
}
