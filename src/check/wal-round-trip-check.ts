import type { Logger } from 'pino';
import { planBackupWal, type BackupWalSource } from '../backup/wal-coverage.ts';
import { deliverWal, walDurableTo } from '../backup/wal-delivery.ts';
import { connect } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { quoteIdent, ReplicationClient } from '../postgres/replication-client.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import { readSlot } from '../postgres/replication-slots.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { lockHolder } from '../repository/repository-lock.ts';
import { throwIfAborted } from '../util/abort.ts';
import { sleep } from '../util/backoff.ts';
import { formatLsn, parseLsn, parseSegmentSize, segmentName, segmentStart, type Lsn } from '../wal/lsn.ts';
import { fail, failFrom, ok, warn, type CheckResult } from './check-result.ts';
import type { ServerSnapshot } from './server-snapshot.ts';

const NAME = 'wal-archive';
/** How long the round trip waits for its WAL to be durable in the repository, by default. */
export const DEFAULT_WAL_TIMEOUT_MS = 60_000;
const POLL_MS = 200;

export interface WalRoundTripOptions {
  connection: ConnectionConfig;
  store: ObjectStore;
  /** The writer's keys (recipients, signing key): the round trip archives WAL as a stream would. */
  keys: RepositoryKeys;
  snapshot: Pick<ServerSnapshot, 'role' | 'canSwitchWal' | 'inRecovery'>;
  /** `--slot`, when given. */
  slotName?: string;
  timeoutMs?: number;
  logger: Logger;
  signal?: AbortSignal;
}

/**
 * End to end: WAL written now must become durable in the repository. The WAL goes the way a
 * backup's does (planBackupWal): through this repository's running stream when one runs; else a
 * short receiver through the repository's idle slot, or through a TEMPORARY slot created before
 * the WAL is written (nothing is left on the server). A commit is made (so there is WAL to
 * switch away from), then `pg_switch_wal()` ends its segment and the check waits, at most
 * `timeoutMs`, until that segment is durable. Without the right to call pg_switch_wal() it
 * waits for the commit's WAL instead (in the partial segment) and says which GRANT gives it.
 */
export async function checkWalRoundTrip(options: WalRoundTripOptions): Promise<CheckResult> {
  const { snapshot } = options;
  const timeoutMs = options.timeoutMs ?? DEFAULT_WAL_TIMEOUT_MS;
  if (snapshot.inRecovery)
    return warn(NAME, 'the server is a standby: no WAL can be written or switched here to test with', {
      fix: 'Run `warden check` against the primary.',
    });
  const { repository, timeline } = await openRepository(options);
  const source = await planSource(options, repository, timeoutMs);
  try {
    const segmentSize = repository.meta.walSegmentSize;
    const written = await writeAndSwitch(options.connection, snapshot.canSwitchWal);
    throwIfAborted(options.signal, 'the WAL round trip');
    const target = written.switched
      ? segmentStart(written.lsn - 1n, segmentSize) + BigInt(segmentSize)
      : written.lsn;
    const started = Date.now();
    const error = await deliverWal({
      connection: options.connection,
      store: options.store,
      repository,
      source,
      target,
      segmentsOnly: written.switched,
      timeoutMs,
      logger: options.logger,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    throwIfAborted(options.signal, 'the WAL round trip');
    const durable = error === undefined && (await walDurableTo(repository, target, written.switched));
    const via = describeSource(source);
    const segment = segmentName(timeline, written.switched ? written.lsn - 1n : written.lsn, segmentSize);
    const what = written.switched
      ? `pg_switch_wal() at ${formatLsn(written.lsn)}: segment ${segment}`
      : `WAL up to ${formatLsn(target)} (a commit made now, in segment ${segment})`;
    const details = {
      target: formatLsn(target),
      segment,
      via: source.kind,
      switched: written.switched,
      timeoutMs,
    };
    if (error !== undefined) {
      const failed = failFrom(NAME, error, `${what} was not archived (${via})`);
      return {
        ...failed,
        fix:
          failed.fix ??
          `Make the repository's wal/ writable for Warden (the error names the object); \`warden verify\` lists what is stored.`,
        details: { ...failed.details, ...details },
      };
    }
    if (!durable) {
      const holder = source.kind === 'stream' ? await lockHolder(options.store, 'wal-stream') : undefined;
      return fail(
        NAME,
        'WARDEN_E_WAL_NOT_ARCHIVED',
        `${what} was not durable in the repository within ${timeoutMs / 1000} s (${via}${holder ? `, held by pid ${holder.pid} on ${holder.host}` : ''})`,
        {
          fix:
            source.kind === 'stream'
              ? "The repository's WAL stream holds its lock but archives nothing: see `warden status` and the stream's log (or restart it)."
              : 'See `warden status`; a slow repository or server may need --wal-timeout longer.',
          details,
        },
      );
    }
    const took = `${((Date.now() - started) / 1000).toFixed(1)} s`;
    if (written.switched)
      return ok(NAME, `${what} durable in the repository after ${took} (${via})`, details);
    const grant = `GRANT EXECUTE ON FUNCTION pg_switch_wal() TO ${quoteIdent(snapshot.role)};`;
    return warn(
      NAME,
      `${what} durable after ${took} (${via}); role ${snapshot.role} may not call pg_switch_wal(), so the complete-segment round trip was not run`,
      {
        fix: grant,
        details: { ...details, grant },
      },
    );
  } finally {
    if (source.kind === 'temporary') await source.client.close();
  }
}

/**
 * Where the WAL comes from, as planBackupWal decides, except that a running stream is relied on
 * at once: planBackupWal waits up to 30 s for a just-started stream to create its slot; the
 * check waits for that within its own bound (a segment switched before the slot exists would
 * never reach the repository).
 */
async function planSource(
  options: WalRoundTripOptions,
  repository: Repository,
  timeoutMs: number,
): Promise<BackupWalSource> {
  if (await lockHolder(options.store, 'wal-stream')) {
    const name = options.slotName ?? repository.meta.slot;
    const deadline = Date.now() + timeoutMs;
    while (name !== undefined && Date.now() < deadline && !(await readSlot(options.connection, name)).slot)
      await sleep(POLL_MS, options.signal);
    return { kind: 'stream' };
  }
  return planBackupWal({
    connection: options.connection,
    repository,
    ...(options.slotName !== undefined ? { slotName: options.slotName } : {}),
    logger: options.logger,
  });
}

/** The repository, created for this cluster when it does not exist yet (as the stream would). */
async function openRepository(
  options: WalRoundTripOptions,
): Promise<{ repository: Repository; timeline: number }> {
  const client = await ReplicationClient.connect({ ...options.connection, applicationName: 'warden check' });
  try {
    const identity = await client.identifySystem();
    const repository = await Repository.openFor(
      options.store,
      {
        systemId: identity.systemId,
        walSegmentSize: parseSegmentSize(await client.show('wal_segment_size')),
        serverVersion: await client.show('server_version'),
      },
      options.keys,
      options.slotName,
    );
    return { repository, timeline: identity.timeline };
  } finally {
    await client.close();
  }
}

/**
 * Commits a transaction that has an id (so new WAL exists: a switch with nothing written since
 * the last one switches nothing), then switches when allowed. Without the switch the target is
 * the insert position after that commit: a transaction that wrote nothing else commits
 * asynchronously, so the flush position may not include it yet (the WAL writer flushes it
 * within wal_writer_delay, and only then can a WAL sender send it).
 */
async function writeAndSwitch(
  connection: ConnectionConfig,
  canSwitch: boolean,
): Promise<{ lsn: Lsn; switched: boolean }> {
  const client = await connect({ ...connection, applicationName: 'warden check' });
  try {
    await client.query('SELECT pg_current_xact_id()');
    const sql = canSwitch
      ? 'SELECT pg_switch_wal()::text AS lsn'
      : 'SELECT pg_current_wal_insert_lsn()::text AS lsn';
    const { rows } = await client.query<{ lsn: string }>(sql);
    return { lsn: parseLsn(rows[0]!.lsn), switched: canSwitch };
  } finally {
    await client.end().catch(() => undefined);
  }
}

function describeSource(source: BackupWalSource): string {
  if (source.kind === 'stream') return "through this repository's running WAL stream";
  if (source.kind === 'slot') return `a short receiver through the repository's idle slot ${source.name}`;
  return `a short receiver through temporary slot ${source.name}`;
}
