import type { Logger } from 'pino';
import { isWardenError, WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import { isClusterConnection, type ConnectionConfig } from '../postgres/connection-config.ts';
import { locate } from '../postgres/connect.ts';
import { ReplicationClient, quoteIdent } from '../postgres/replication-client.ts';
import { holderName } from '../postgres/replication-slots.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { LEGACY_SLOT, META_KEY } from '../repository/repository-meta.ts';
import { acquireLock } from '../repository/repository-lock.ts';
import {
  archiveSealedSegment,
  archiveSegment,
  historyKey,
  historyRecordKey,
  readHistory,
  readPartialSegment,
  removePartialTemps,
  readWalInventory,
  storeHistory,
  type PartialSegment,
  writeStreamState,
  type StreamState,
} from '../repository/wal-archive.ts';
import { onAbort } from '../util/abort.ts';
import { backoffDelay, sleep } from '../util/backoff.ts';
import { formatLsn, parseLsn, parseSegmentSize, segmentStart, type Lsn } from '../wal/lsn.ts';
import {
  CopyMessage,
  decodeKeepalive,
  decodeXLogData,
  encodeStatusUpdate,
  pgTimeToDate,
} from '../postgres/replication-messages.ts';
import { SegmentWriter } from './segment-writer.ts';
import { scanPartial } from '../wal/partial-format.ts';
import { resolveRepositorySlot, slotBusy } from './repository-slot.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { TrustPolicy } from '../pipeline/signing/record-signature.ts';
import { recordWalGap, type WalGapCause, type WalGapRecord } from '../repository/wal-gap-incidents.ts';
import { gapAtResume } from './wal-gap-detection.ts';
import { eventError, subjectOf, type ObservedOptions } from '../events/observed.ts';
import type { EventSubject, WardenEventMap } from '../events/warden-events.ts';
import { parseTimelineHistory } from '../wal/timeline-history.ts';
import { walGapError } from './wal-gap-incident.ts';

export interface WalReceiverOptions extends ObservedOptions {
  connection: ConnectionConfig;
  store: ObjectStore;
  /**
   * Physical replication slot asked for (`--slot`); by default the repository's own (recorded in
   * warden-repo.json, see repository-slot.ts). Created when missing so the server keeps WAL while
   * Warden is down; refused when it is another repository's.
   */
  slotName?: string;
  /**
   * Stream through a TEMPORARY slot that `client` created (a backup's WAL catch-up): no slot is
   * looked up or created, and the receiver cannot reconnect (the slot dies with the connection).
   */
  temporarySlot?: { client: ReplicationClient; name: string };
  /**
   * Connection attempts before giving up (a one-shot command's catch-up); endless when unset
   * (`wal stream`, the daemon).
   */
  maxAttempts?: number;
  /** `recipients` to encrypt archived segments to (age); none: stored unencrypted. */
  keys?: RepositoryKeys;
  logger?: Logger;
  /** Catch-up mode: return once everything before this LSN is durable. */
  stopAtLsn?: Lsn;
  signal?: AbortSignal;
  /** Called after each flush with the durable position (used for metrics and tests). */
  onFlush?: (flushedLsn: Lsn, timeline: number) => void;
  /**
   * What to do when resuming would leave a WAL gap (always recorded in the repository first,
   * see wal-gap-incidents.ts): stop with `WARDEN_E_WAL_GAP` (default, `wal stream`), or go on
   * from the server's position (`--continue-after-gap`, the daemon, a backup's catch-up); an
   * invalidated slot is then dropped and created again.
   */
  continueAfterGap?: boolean;
  /** Called with each gap recorded (the daemon takes a new full backup at once). */
  onGap?: (gap: WalGapRecord) => void;
}

export type WalReceiverState = 'idle' | 'connecting' | 'streaming' | 'reconnecting' | 'stopped' | 'failed';

export interface WalReceiverStatus {
  state: WalReceiverState;
  /** The slot streamed through, once known. */
  slot?: string;
  /** While reconnecting: what the receiver waits for and when it tries again. */
  waitingFor?: string;
  timeline?: number;
  /** The member streamed from (`host:port`), once connected; it changes with the primary. */
  server?: string;
  flushedLsn?: string;
  lastMessageAt?: string;
  caughtUpAt?: string;
  lastError?: { code: string; message: string };
}

const STATUS_INTERVAL_MS = 10_000;
const FLUSH_INTERVAL_MS = 100;
/**
 * How often the caught-up point is recorded (at most; an object store's longer sync interval
 * wins, its partial segment is not durable more often anyway) and how long a quiet stream waits
 * before asking the server where it is: together they keep the restorable window's end within
 * about a second of the durable point on quiet and busy servers alike.
 */
const STATE_WRITE_INTERVAL_MS = 500;
const PROBE_INTERVAL_MS = 500;
/** A session that streamed this long counts as healthy: the reconnect backoff starts over. */
export const HEALTHY_SESSION_MS = 30_000;
/** Errors that say the configuration is wrong: retrying cannot help. */
const FATAL_CODES = new Set([
  'WARDEN_E_REPO_CLUSTER_MISMATCH',
  'WARDEN_E_AUTH_FAILED',
  'WARDEN_E_ROLE_NOT_REPLICATION',
  'WARDEN_E_TLS_UNAVAILABLE',
  'WARDEN_E_REPO_LOCKED',
  'WARDEN_E_REPO_FORMAT',
  'WARDEN_E_ABORTED',
  'WARDEN_E_SLOT_NOT_OWNED',
  'WARDEN_E_SLOT_INVALIDATED',
  'WARDEN_E_WAL_GAP',
  'WARDEN_E_TIMELINE_COLLISION',
]);

/**
 * Continuous WAL receiver (START_REPLICATION PHYSICAL on a slot). Bytes are appended to the
 * repository's partial segment and fsynced before the flush position is reported to the
 * server, so the slot never lets the server drop WAL that is not yet safe. Complete segments are
 * compressed and archived with a checksum record. Reconnects with backoff; follows timeline
 * switches and archives their history files.
 */
export class WalReceiver {
  private readonly logger: Logger;
  private current: WalReceiverStatus = { state: 'idle' };
  /** Aborts when another process takes the `wal-stream` lock over: the stream must stop. */
  private lockLost: AbortSignal | undefined;
  /** Highest position made durable in this process (a session that moved it was healthy). */
  private highestFlushed: Lsn = 0n;
  /** When the current session started streaming (undefined while it is not streaming). */
  private streamingSince: number | undefined;
  private readonly subject: EventSubject;
  /** The stream state last published, so each change is published once. */
  private published: WardenEventMap['wal.stream']['state'] | undefined;
  /** The connection of the current session, pinned to one member of a cluster. */
  private connection: ConnectionConfig;
  /** The newest timeline streamed in this process, for `timeline.changed`. */
  private lastTimeline: number | undefined;

  constructor(private readonly options: WalReceiverOptions) {
    this.logger = options.logger ?? silentLogger;
    this.subject = subjectOf(options, options.store);
    this.connection = options.connection;
  }

  /** Publishes a change of the stream's state (a repeated state is not published again). */
  private publishState(state: WardenEventMap['wal.stream']['state'], error?: unknown): void {
    if (!this.options.events || (state === this.published && error === undefined)) return;
    this.published = state;
    this.options.events.emit('wal.stream', {
      ...this.subject,
      state,
      at: new Date().toISOString(),
      ...(error !== undefined ? { error: eventError(error) } : {}),
    });
  }

  status(): WalReceiverStatus {
    return { ...this.current };
  }

  /** Runs until aborted (or, in catch-up mode, until `stopAtLsn` is durable). */
  async run(): Promise<void> {
    const lock = await acquireLock(
      this.options.store,
      'wal-stream',
      `WAL receiver, slot ${this.options.temporarySlot?.name ?? this.options.slotName ?? "(the repository's own)"}`,
    );
    this.lockLost = lock.signal;
    const events = this.options.events;
    if (events) {
      const name = 'wal-stream';
      events.emit('lock.acquired', { ...this.subject, lock: name, at: new Date().toISOString() });
      lock.signal.addEventListener(
        'abort',
        () =>
          events.emit('lock.lost', {
            ...this.subject,
            lock: name,
            at: new Date().toISOString(),
            reason: eventError(lock.signal.reason).message,
          }),
        { once: true },
      );
    }
    this.publishState('starting');
    // A temporary slot dies with its connection: there is nothing to reconnect to.
    const maxAttempts = this.options.temporarySlot ? 1 : this.options.maxAttempts;
    try {
      for (let attempt = 0; ; attempt += 1) {
        if (this.options.signal?.aborted) break;
        const flushedBefore = this.highestFlushed;
        this.streamingSince = undefined;
        try {
          lock.assertHeld();
          this.current.state = 'connecting';
          const done = await this.session();
          if (done) break;
        } catch (error) {
          if (this.options.signal?.aborted) break;
          // A lost lock (WARDEN_E_REPO_LOCKED) is fatal, whatever the stream failed with.
          const reason: unknown = lock.signal.aborted ? lock.signal.reason : error;
          const wrapped = isWardenError(reason)
            ? reason
            : new WardenError('WARDEN_E_PROTOCOL', String(reason), { cause: reason });
          this.current.lastError = { code: wrapped.code, message: wrapped.message };
          this.publishState('failed', wrapped);
          if (FATAL_CODES.has(wrapped.code)) {
            this.current.state = 'failed';
            throw wrapped;
          }
          // A session that made new WAL durable, or streamed for a while, was healthy: this
          // interruption is a new incident, not the next failure of a series.
          const streamedFor = this.streamingSince === undefined ? 0 : Date.now() - this.streamingSince;
          if (this.highestFlushed > flushedBefore || streamedFor >= HEALTHY_SESSION_MS) attempt = 0;
          if (maxAttempts !== undefined && attempt + 1 >= maxAttempts) {
            this.current.state = 'failed';
            throw maxAttempts > 1
              ? new WardenError(wrapped.code, `${wrapped.message} (gave up after ${maxAttempts} attempts)`, {
                  ...(wrapped.hint ? { hint: wrapped.hint } : {}),
                  details: { ...wrapped.details, attempts: maxAttempts },
                  cause: wrapped,
                })
              : wrapped;
          }
          // Backoff schedule: 0.5 s, 1 s, 2 s, ... capped at 30 s, each with ±50 % jitter; for a
          // cluster (several hosts, Patroni) capped at 2 s, so the stream follows a new primary
          // within seconds of its election, however long the failover took.
          const delay = backoffDelay(
            attempt,
            500,
            isClusterConnection(this.options.connection) ? 2_000 : 30_000,
          );
          this.current.state = 'reconnecting';
          this.current.waitingFor = `${wrapped.code === 'WARDEN_E_SLOT_BUSY' ? 'the slot to be released' : 'the server'}; next attempt in ${(delay / 1000).toFixed(1)} s`;
          this.logger.warn(
            { code: wrapped.code, delayMs: delay, attempt },
            `WAL stream interrupted: ${wrapped.message}; reconnecting in ${(delay / 1000).toFixed(1)} s`,
          );
          try {
            await sleep(delay, this.options.signal);
          } catch {
            break; // stopped while waiting: as clean a stop as one while streaming
          }
        }
      }
    } finally {
      if (this.published !== 'failed') this.publishState('stopped');
      // A receiver that gave up says so (status, the daemon's findings); a clean stop is stopped.
      if (this.current.state !== 'failed') this.current.state = 'stopped';
      await lock.release();
    }
  }

  /** One connection's worth of streaming. Returns true when the receiver should stop. */
  private async session(): Promise<boolean> {
    const temporary = this.options.temporarySlot;
    // The walsender's application_name names the repository, so another repository (and
    // `warden slot list`) can tell whose the active slot is. A new repository is created first.
    // A cluster's primary is found once per session: the slot is looked up on the same member.
    const located = isClusterConnection(this.options.connection)
      ? await locate(this.options.connection, 'primary')
      : undefined;
    const connection = located?.connection ?? this.options.connection;
    if (located)
      this.logger.info(
        { server: `${connection.host}:${connection.port}`, member: located.member.name },
        "the cluster's primary located: streaming from it",
      );
    this.connection = connection;
    const repositoryId = temporary ? undefined : await this.repositoryId();
    const client =
      temporary?.client ??
      (await ReplicationClient.connect({
        ...connection,
        applicationName: holderName(repositoryId!),
      }));
    this.current.server = `${connection.host}:${connection.port}`;
    // A stop (or a lost lock) while the connection was being opened ends it at once.
    const destroy = () => client.destroy();
    const removeStopListener = onAbort(this.options.signal, destroy);
    const removeLockListener = onAbort(this.lockLost, destroy);
    try {
      const identity = await client.identifySystem();
      const segmentSize = parseSegmentSize(await client.show('wal_segment_size'));
      const repository = await Repository.openFor(
        this.options.store,
        {
          systemId: identity.systemId,
          walSegmentSize: segmentSize,
          serverVersion: await client.show('server_version'),
        },
        this.options.keys,
      );
      await this.archiveHistories(client, repository, identity.timeline);
      const own = temporary
        ? { name: temporary.name }
        : await this.ownSlot(client, repository, identity.timeline, parseLsn(identity.xlogpos));
      const slotName = own.name;
      this.current.slot = slotName;
      const slot = await client.readSlot(slotName);
      const slotLsn = slot?.restartLsn ? parseLsn(slot.restartLsn) : parseLsn(identity.xlogpos);
      const cutShort = new Set<string>();
      let { timeline, startLsn } = await this.startPoint(
        repository,
        identity.timeline,
        slotLsn,
        segmentSize,
        new Set(),
        cutShort,
      );
      if (!temporary && timeline < identity.timeline) {
        const forked = await this.pastTheFork(client, repository, identity.timeline, timeline, startLsn);
        if (forked) ({ timeline, startLsn } = forked);
      }
      // A backup's temporary slot starts a new WAL range by design (see startPoint), and so does
      // the first stream of a repository that only had backups: no incident.
      if (!temporary) {
        const gap = gapAtResume(await readWalInventory(repository), timeline, startLsn, segmentSize);
        if (gap && own.firstStream)
          this.logger.info(
            { from: formatLsn(gap.from), to: formatLsn(gap.to) },
            "the repository's first WAL stream: its WAL continues from here, a new range",
          );
        else if (gap) {
          const cause: WalGapCause =
            own.cause ??
            (cutShort.has(`${gap.timeline}:${segmentStart(gap.from, segmentSize)}`)
              ? 'partial-cut-short'
              : 'server-removed-wal');
          await this.gapFound(repository, { ...gap, cause, slot: slotName });
        }
      }
      this.logger.info(
        {
          server: this.current.server,
          timeline,
          from: formatLsn(startLsn),
          serverTimeline: identity.timeline,
        },
        'WAL stream starts',
      );
      this.current.state = 'streaming';
      this.publishState('streaming');
      delete this.current.waitingFor;
      this.streamingSince = Date.now();
      this.timelineReached(timeline);
      for (;;) {
        const next = await this.streamTimeline(client, repository, timeline, startLsn, slotName);
        if (next === 'stop') return true;
        await this.archiveHistories(client, repository, next.timeline);
        this.logger.info(
          { from: timeline, to: next.timeline, at: formatLsn(next.switchLsn) },
          'timeline switch',
        );
        timeline = next.timeline;
        startLsn = segmentStart(next.switchLsn, segmentSize);
        this.timelineReached(timeline);
      }
    } finally {
      removeStopListener();
      removeLockListener();
      await client.close();
    }
  }

  /** Publishes `timeline.changed` when the stream reaches a newer timeline than it had. */
  private timelineReached(timeline: number): void {
    this.current.timeline = timeline;
    const from = this.lastTimeline;
    this.lastTimeline = timeline;
    if (from === undefined || timeline <= from) return;
    this.options.events?.emit('timeline.changed', {
      ...this.subject,
      from,
      to: timeline,
      at: new Date().toISOString(),
    });
  }

  /**
   * After an asynchronous failover the repository can hold WAL of the old timeline past the
   * point where the new primary's timeline forked off it (the old primary had sent it to Warden,
   * not to the replica that won). The server refuses to stream the old timeline from there. That
   * WAL is archived as it is (cut short: a restore along the old timeline still reaches it) and
   * the stream goes on from the fork, on the timeline that follows it in the server's history.
   */
  private async pastTheFork(
    client: ReplicationClient,
    repository: Repository,
    serverTimeline: number,
    timeline: number,
    startLsn: Lsn,
  ): Promise<{ timeline: number; startLsn: Lsn } | undefined> {
    const history = parseTimelineHistory(
      (await client.timelineHistory(serverTimeline)).content.toString('utf8'),
    );
    const index = history.findIndex((entry) => entry.timeline === timeline);
    if (index < 0) return undefined;
    const fork = history[index]!.switchLsn;
    if (startLsn <= fork) return undefined;
    const segmentSize = repository.meta.walSegmentSize;
    const beyond = (await readWalInventory(repository)).partials.filter(
      (p) => p.timeline === timeline && p.startLsn > fork,
    );
    for (const partial of beyond) await this.archiveLeftover(repository, partial);
    const next = history[index + 1]?.timeline ?? serverTimeline;
    this.logger.warn(
      { timeline, fork: formatLsn(fork), heldUpTo: formatLsn(startLsn), next },
      `the repository holds WAL of timeline ${timeline} past where timeline ${next} forked off it (${formatLsn(fork)}): ` +
        'commits the old primary had and the new one lacks; kept on the old timeline, streaming goes on from the fork',
    );
    return { timeline: next, startLsn: segmentStart(fork, segmentSize) };
  }

  /** The id of the repository, creating it (on a short connection of its own) when it does not exist. */
  private async repositoryId(): Promise<string> {
    if (!(await this.options.store.stat(META_KEY))) {
      const client = await ReplicationClient.connect(this.connection);
      try {
        const identity = await client.identifySystem();
        await Repository.openFor(
          this.options.store,
          {
            systemId: identity.systemId,
            walSegmentSize: parseSegmentSize(await client.show('wal_segment_size')),
            serverVersion: await client.show('server_version'),
          },
          this.options.keys,
          this.options.slotName,
        );
      } finally {
        await client.close();
      }
    }
    return (await Repository.open(this.options.store, this.options.keys)).id;
  }

  /**
   * The repository's own slot, checked to be its own, created when missing. `cause` says why a
   * gap at the resume point would be there: the slot was created again, or replaced after the
   * server invalidated it (recorded and refused here unless continuing after gaps).
   */
  private async ownSlot(
    client: ReplicationClient,
    repository: Repository,
    serverTimeline: number,
    serverLsn: Lsn,
  ): Promise<{ name: string; cause?: WalGapCause; firstStream?: boolean }> {
    const resolve = () =>
      resolveRepositorySlot({
        connection: this.connection,
        patroni: this.options.connection.patroni,
        repository,
        ...(this.options.slotName !== undefined ? { requested: this.options.slotName } : {}),
      });
    let slot: Awaited<ReturnType<typeof resolve>>;
    let invalidated = false;
    try {
      slot = await resolve();
    } catch (error) {
      if (!isWardenError(error, 'WARDEN_E_SLOT_INVALIDATED')) throw error;
      const name = String(error.details.slot);
      const segmentSize = repository.meta.walSegmentSize;
      const gap = gapAtResume(
        await readWalInventory(repository),
        serverTimeline,
        segmentStart(serverLsn, segmentSize),
        segmentSize,
      );
      // Recorded before anything changes on the server; without --continue-after-gap that is all.
      if (gap) await this.gapFound(repository, { ...gap, cause: 'slot-invalidated', slot: name });
      if (!gap && !this.options.continueAfterGap) throw error;
      this.logger.warn({ slot: name }, `dropping invalidated slot ${name} and creating it again`);
      await client.dropSlot(name);
      invalidated = true;
      slot = await resolve();
    }
    if (slot.info?.active) throw slotBusy(repository, slot);
    let created = false;
    // A repository that never had a slot of its own (only backups, each through a temporary
    // slot; a legacy repository adopted `warden`, which it had streamed through) starts its
    // WAL stream here: WAL before it was never promised.
    const firstStream =
      !invalidated &&
      !slot.info &&
      repository.meta.slotCreatedAt === undefined &&
      repository.meta.slot !== LEGACY_SLOT;
    if (!slot.info) {
      await client.ensureSlot(slot.name);
      const made = await client.readSlot(slot.name);
      if (made?.restartLsn) await repository.recordSlot(slot.name, made.restartLsn);
      created = true;
    }
    const cause: WalGapCause | undefined = invalidated
      ? 'slot-invalidated'
      : created
        ? 'slot-recreated'
        : undefined;
    return { name: slot.name, ...(cause ? { cause } : {}), ...(firstStream ? { firstStream } : {}) };
  }

  /**
   * Records a gap as an incident in the repository, then stops with WARDEN_E_WAL_GAP unless
   * continuing after gaps (the record is written either way, so status and verify show it).
   */
  private async gapFound(
    repository: Repository,
    gap: { timeline: number; from: Lsn; to: Lsn; cause: WalGapCause; slot: string },
  ): Promise<void> {
    const { record, created } = await recordWalGap(repository, gap);
    this.options.events?.emit('wal.gap', {
      ...this.subject,
      timeline: record.timeline,
      from: record.from,
      to: record.to,
      cause: record.cause,
      at: new Date().toISOString(),
    });
    const error = walGapError(repository, record);
    if (!this.options.continueAfterGap) throw error;
    this.logger.error(
      { code: error.code, ...gap, from: record.from, to: record.to, newIncident: created },
      `${error.message} Streaming goes on from ${record.to}.`,
    );
    this.options.onGap?.(record);
  }

  /** Where to resume: the start of the partial segment, after the last archived one, or the slot. */
  private async startPoint(
    repository: Repository,
    serverTimeline: number,
    slotLsn: Lsn,
    segmentSize: number,
    kept = new Set<string>(),
    /** Collects `<timeline>:<segment start>` of the leftovers archived with less than a segment. */
    cutShort = new Set<string>(),
  ): Promise<{ timeline: number; startLsn: Lsn }> {
    const inventory = await readWalInventory(repository);
    const slotStart = segmentStart(slotLsn, segmentSize);
    const [newest, ...older] = inventory.partials
      .filter((p) => !kept.has(p.key))
      .sort((a, b) => b.timeline - a.timeline || Number(b.startLsn - a.startLsn));
    // Partials other than the newest one being received are leftovers of a run that died while
    // archiving (complete segments) or of a WAL range the server no longer has: archive them as
    // received, cut short where they are short.
    const leftovers = [...older];
    if (newest && (newest.validBytes >= segmentSize || newest.startLsn < slotStart)) leftovers.push(newest);
    if (leftovers.length > 0) {
      for (const partial of leftovers) {
        if (!(await this.archiveLeftover(repository, partial))) kept.add(partial.key);
        else if (partial.validBytes < segmentSize) cutShort.add(`${partial.timeline}:${partial.startLsn}`);
      }
      return this.startPoint(repository, serverTimeline, slotLsn, segmentSize, kept, cutShort);
    }
    if (newest) return { timeline: newest.timeline, startLsn: newest.startLsn };
    let best: { timeline: number; startLsn: Lsn } | undefined;
    // A kept leftover stands for its segment: streaming must resume after it, never rewrite it.
    const ends = [...inventory.segments].map(([timeline, records]) => ({
      timeline,
      last: records.at(-1) ? parseLsn(records.at(-1)!.startLsn) : undefined,
    }));
    for (const partial of inventory.partials.filter((p) => kept.has(p.key)))
      ends.push({ timeline: partial.timeline, last: partial.startLsn });
    for (const { timeline, last } of ends) {
      if (last === undefined || timeline > serverTimeline) continue;
      const after = last + BigInt(segmentSize);
      if (!best || timeline > best.timeline || (timeline === best.timeline && after > best.startLsn)) {
        best = { timeline, startLsn: after };
      }
    }
    if (best && best.startLsn < slotStart) {
      const fields = { archivedUpTo: formatLsn(best.startLsn), serverKeepsFrom: formatLsn(slotStart) };
      // A backup's temporary slot starts at the backup: WAL from before it was never kept for
      // this repository (no stream of its own ran), so this is the expected start of a new range.
      if (this.options.temporarySlot)
        this.logger.info(fields, "no WAL stream ran since the repository's WAL ends: a new WAL range starts");
      else this.logger.warn(fields, 'the server no longer has WAL the repository lacks: a WAL gap');
      return { timeline: serverTimeline, startLsn: slotStart };
    }
    return best ?? { timeline: serverTimeline, startLsn: slotStart };
  }

  /**
   * Archives a leftover partial segment and removes it: from its checked frames when this process
   * can open them, else (sealed to recipients whose identities it does not hold) as it is stored,
   * in a `sealed-partial` container. False when it is damaged or (with a signing key) signed by
   * another key: it is then kept as it is — restore and verify name it — and a warning says so.
   */
  private async archiveLeftover(repository: Repository, partial: PartialSegment): Promise<boolean> {
    // The archived segment's record is signed with this receiver's key: a leftover signed by any
    // other key, or whose frames fail their signatures, is kept (restore and verify name it)
    // rather than vouched for. Unsigned ones (written before signing) are archived, with a warning.
    const own = repository.keys.signingKey;
    const trust: TrustPolicy | undefined = own && {
      keys: new Map([[own.id, own.publicKey]]),
      allowUnsigned: true,
      onUnsigned: (object) =>
        this.logger.warn({ object }, `archiving unsigned leftover partial segment ${object}`),
    };
    try {
      const opened = await readPartialSegment(repository, partial, trust);
      if (opened.validBytes > 0)
        await archiveSegment(repository, partial.timeline, partial.segment, opened.raw, opened.validBytes);
    } catch (error) {
      if (!isWardenError(error)) throw error;
      const noKey = error.code === 'WARDEN_E_KEY_MISSING' || error.code === 'WARDEN_E_KEY_MISMATCH';
      if (!noKey) {
        this.logger.warn(
          { object: partial.key, code: error.code, problem: error.details.problem },
          `partial segment ${partial.key} is kept unarchived: ${error.message}`,
        );
        return false;
      }
      const sealed = await repository.store.getBuffer(partial.key);
      const { validBytes } = scanPartial(sealed, partial.key, repository.meta.walSegmentSize);
      if (validBytes > 0) await archiveSealedSegment(repository, partial, sealed, validBytes);
    }
    await repository.store.delete(partial.key);
    await removePartialTemps(repository.store, partial.key);
    return true;
  }

  private async archiveHistories(
    client: ReplicationClient,
    repository: Repository,
    upTo: number,
  ): Promise<void> {
    for (let timeline = 2; timeline <= upTo; timeline += 1) {
      // The record is written after the file: without it (a crash between, or a repository from
      // before history records) the server's copy is fetched again, so the record is the server's.
      if (await repository.store.stat(historyRecordKey(timeline))) {
        await this.assertSameHistory(client, repository, timeline);
        continue;
      }
      const stored = await repository.store.stat(historyKey(timeline));
      try {
        const { content } = await client.timelineHistory(timeline);
        await storeHistory(repository, timeline, content);
      } catch (error) {
        // A stored file the server no longer has stays as it is, without a record: readers then
        // treat it as unsigned (`warden repo sign` records it). Without a stored file, fail as before.
        if (!stored || !isWardenError(error) || error.code === 'WARDEN_E_REPO_IO') throw error;
        this.logger.warn(
          { timeline, code: error.code },
          'timeline history no longer on the server: the stored file keeps no signed record',
        );
      }
    }
  }

  /**
   * The server's history of `timeline` must be the one the repository holds under that ID. Two
   * different histories under one ID (a member promoted without seeing the newest timeline's
   * history: no shared archive) would put two clusters' WAL under the same segment names, and a
   * restore along that timeline would replay one's WAL on the other's data. Streaming stops
   * (fatal) naming both fork points. A server that no longer has the file is not compared.
   */
  private async assertSameHistory(
    client: ReplicationClient,
    repository: Repository,
    timeline: number,
  ): Promise<void> {
    let server: Buffer;
    try {
      server = (await client.timelineHistory(timeline)).content;
    } catch (error) {
      if (isWardenError(error) && error.code !== 'WARDEN_E_REPO_IO') return;
      throw error;
    }
    const held = await readHistory(repository, timeline);
    if (held.equals(server)) return;
    const forkOf = (content: Buffer) => {
      try {
        const entries = parseTimelineHistory(content.toString('utf8'));
        const last = entries.at(-1);
        return last ? `timeline ${last.timeline} at ${formatLsn(last.switchLsn)}` : 'nothing';
      } catch {
        return 'an unreadable history';
      }
    };
    throw new WardenError(
      'WARDEN_E_TIMELINE_COLLISION',
      `the server's timeline ${timeline} is not the repository's timeline ${timeline}: the server's forked from ${forkOf(server)}, the repository's from ${forkOf(held)}`,
      {
        hint:
          'A member was promoted without seeing the newest timeline (give every member the repository as restore_command: ' +
          '`warden wal get %f %p`). Stream this cluster into a new repository and take a full backup there; ' +
          'this repository keeps the other history and restores along it.',
        details: { timeline, server: forkOf(server), repository: forkOf(held) },
      },
    );
  }

  /**
   * Streams one timeline from `startLsn` (a segment start). Returns 'stop' when done, or the
   * next timeline when the server ended this one.
   */
  private async streamTimeline(
    client: ReplicationClient,
    repository: Repository,
    timeline: number,
    startLsn: Lsn,
    slotName: string,
  ): Promise<'stop' | { timeline: number; switchLsn: Lsn }> {
    const segmentSize = repository.meta.walSegmentSize;
    // Each event's data is copied into the segment before the next is taken, so the client may
    // recycle message buffers.
    const command = client.stream(
      `START_REPLICATION SLOT ${quoteIdent(slotName)} PHYSICAL ${formatLsn(startLsn)} TIMELINE ${timeline}`,
      { reuseCopyBuffers: true },
    );
    // Catch-up to a stop LSN (the end of a base backup) streams as fast as segments can be
    // archived: each completed segment is archived before the next is received (one segment in
    // memory), without being written to its partial file first.
    const segment = new SegmentWriter(repository, timeline, segmentSize, {
      catchUp: this.options.stopAtLsn !== undefined,
    });
    await segment.open(startLsn);
    let flushed = startLsn;
    let lastStatusAt = 0;
    let lastStateAt = 0;
    let caughtUpAt: Date | undefined;
    /** The furthest WAL end the server reported, and its clock then: caught up once flushed. */
    let serverEnd: { walEnd: Lsn; sendTime: Date } | undefined;
    const noteServerEnd = (walEnd: Lsn, sendTime: Date) => {
      serverEnd = { walEnd: serverEnd && serverEnd.walEnd > walEnd ? serverEnd.walEnd : walEnd, sendTime };
      if (flushed >= serverEnd.walEnd) caughtUpAt = sendTime;
    };
    let serverEnded = false;
    let stopping = false;
    let nextTimeline: { timeline: number; switchLsn: Lsn } | undefined;
    let failed = false;

    let lastFlushAt = Date.now();
    const flush = async (replyNow: boolean) => {
      lastFlushAt = Date.now();
      if (segment.position > flushed) {
        await segment.sync();
        flushed = segment.position;
        if (flushed > this.highestFlushed) this.highestFlushed = flushed;
        this.current.flushedLsn = formatLsn(flushed);
        this.options.onFlush?.(flushed, timeline);
        // Everything the server had when it last reported is durable now.
        if (serverEnd && flushed >= serverEnd.walEnd) caughtUpAt = serverEnd.sendTime;
        this.options.events?.emit('wal.flushed', {
          ...this.subject,
          lsn: formatLsn(flushed),
          timeline,
          at: new Date().toISOString(),
          ...(serverEnd
            ? { lagBytes: serverEnd.walEnd > flushed ? Number(serverEnd.walEnd - flushed) : 0 }
            : {}),
          ...(caughtUpAt ? { caughtUpAt: caughtUpAt.toISOString() } : {}),
        });
      }
      if (!serverEnded && !stopping) {
        command.sendCopyData(encodeStatusUpdate(flushed, flushed, replyNow));
        lastStatusAt = Date.now();
      }
    };

    // Flush when a burst is over, and at least every FLUSH_INTERVAL_MS under sustained load
    // (the queue may never run empty then) — but no more often than the repository likes
    // syncing (an object store re-uploads the partial segment on each sync). Data left unflushed
    // because of that interval is flushed by a timer tick.
    // Catch-up to a stop LSN has nobody waiting for acknowledgements: it syncs at the stop LSN
    // (and when the server asks for a reply) only, not after every burst (on a quiet server that
    // was every message) nor on an interval: each completed segment is archived as it completes,
    // and an interval sync of the partial in between was one more upload of it on object stores.
    const catchUp = this.options.stopAtLsn !== undefined;
    let tick: NodeJS.Timeout | undefined;
    let lastMessageAt = Date.now();
    const stateInterval = Math.max(STATE_WRITE_INTERVAL_MS, segment.syncIntervalMs);
    const recordState = async () => {
      if (caughtUpAt && Date.now() - lastStateAt >= stateInterval) {
        await this.writeState(repository, timeline, flushed, caughtUpAt);
        lastStateAt = Date.now();
        this.current.caughtUpAt = caughtUpAt.toISOString();
      }
    };
    // A quiet server sends nothing for up to wal_sender_timeout / 2; a status update asking for
    // a reply makes it answer at once with a keepalive saying where its WAL ends.
    const probe = catchUp
      ? undefined
      : setInterval(() => {
          if (Date.now() - lastMessageAt >= PROBE_INTERVAL_MS) command.events.push({ kind: 'tick' });
        }, PROBE_INTERVAL_MS);
    const dueForFlush = () => {
      if (catchUp) return false;
      const since = Date.now() - lastFlushAt;
      const minimum = segment.syncIntervalMs;
      return (
        since >= Math.max(FLUSH_INTERVAL_MS, minimum) || (command.events.pending === 0 && since >= minimum)
      );
    };
    const scheduleTick = () => {
      if (tick || catchUp || command.events.pending > 0) return;
      const wait = Math.max(1, lastFlushAt + segment.syncIntervalMs - Date.now());
      tick = setTimeout(() => {
        tick = undefined;
        command.events.push({ kind: 'tick' });
      }, wait);
    };

    try {
      for await (const event of command.events) {
        if (event.kind === 'tick') {
          if (segment.position > flushed && !serverEnded) await flush(false);
          else if (!serverEnded && !stopping && Date.now() - lastMessageAt >= PROBE_INTERVAL_MS) {
            command.sendCopyData(encodeStatusUpdate(flushed, flushed, true));
            lastStatusAt = Date.now();
          }
          if (!serverEnded) await recordState();
        } else if (event.kind === 'copy-data' && !serverEnded) {
          const type = event.data[0];
          this.current.lastMessageAt = new Date().toISOString();
          lastMessageAt = Date.now();
          if (type === CopyMessage.XLogData) {
            const message = decodeXLogData(event.data);
            await segment.write(message.dataStart, message.payload);
            const reachedStop =
              this.options.stopAtLsn !== undefined && segment.position >= this.options.stopAtLsn;
            // Past the stop LSN, what the server sends until it sees our CopyDone is synced once, at the end.
            if ((reachedStop && !stopping) || (!stopping && dueForFlush())) await flush(false);
            else scheduleTick();
            noteServerEnd(message.walEnd, pgTimeToDate(message.sendTime));
          } else if (type === CopyMessage.PrimaryKeepalive) {
            const keepalive = decodeKeepalive(event.data);
            if (keepalive.replyRequested || Date.now() - lastStatusAt > STATUS_INTERVAL_MS)
              await flush(keepalive.replyRequested);
            noteServerEnd(keepalive.walEnd, pgTimeToDate(keepalive.sendTime));
          }
          await recordState();
          if (this.options.stopAtLsn !== undefined && flushed >= this.options.stopAtLsn && !stopping) {
            stopping = true;
            command.endCopy();
          }
        } else if (event.kind === 'copy-done' && !stopping) {
          // The server finished this timeline; acknowledge and read where the next one starts.
          serverEnded = true;
          await flush(false);
          command.endCopy();
        } else if (event.kind === 'row' && serverEnded) {
          nextTimeline = { timeline: Number(event.values[0]), switchLsn: parseLsn(event.values[1] ?? '0/0') };
        }
      }
    } catch (error) {
      if (!this.options.signal?.aborted) {
        // Close the partial segment's handle now (each retry opens a new one), after the sync below.
        failed = true;
        throw error;
      }
    } finally {
      clearTimeout(tick);
      clearInterval(probe);
      await segment.sync().catch(() => undefined);
      if (failed) await segment.close().catch(() => undefined);
      if (caughtUpAt)
        await this.writeState(repository, timeline, segment.position, caughtUpAt).catch(() => undefined);
    }
    if (nextTimeline) {
      // The rest of this timeline's last segment will never come: archive what it has.
      await segment.finishPartial();
      return nextTimeline;
    }
    await segment.close();
    if (this.options.signal?.aborted || stopping) return 'stop';
    throw new WardenError('WARDEN_E_PROTOCOL', 'the WAL stream ended unexpectedly');
  }

  private async writeState(
    repository: Repository,
    timeline: number,
    flushed: Lsn,
    caughtUpAt: Date,
  ): Promise<void> {
    const state: StreamState = {
      timeline,
      flushedLsn: formatLsn(flushed),
      caughtUpAt: caughtUpAt.toISOString(),
      updatedAt: new Date().toISOString(),
    };
    await writeStreamState(repository, state);
  }
}
