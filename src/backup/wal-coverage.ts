import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { isWardenError, WardenError } from '../errors.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { ReplicationClient } from '../postgres/replication-client.ts';
import { holderName, readSlot } from '../postgres/replication-slots.ts';
import type { Repository } from '../repository/repository.ts';
import { lockHolder } from '../repository/repository-lock.ts';
import { archivedEnd } from '../repository/archived-end.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { sleep } from '../util/backoff.ts';
import { formatLsn, type Lsn } from '../wal/lsn.ts';
import { WalReceiver } from './wal-receiver.ts';
import { resolveRepositorySlot, slotBusy } from './repository-slot.ts';

const WAIT_FOR_RECEIVER_MS = 120_000;
/** How long a backup waits for a just-started stream to create the repository's slot. */
const SLOT_APPEAR_MS = 30_000;
/** After this long, the wait for the running stream is said out loud (a stalled stream shows). */
const STILL_WAITING_MS = 10_000;
/** Catch-up through the repository's slot: 4 attempts (waits of 0.5, 1 and 2 s, ±50 %), then fail. */
const CATCH_UP_ATTEMPTS = 4;

/**
 * Where a backup's WAL comes from, decided before BASE_BACKUP starts (so the server keeps that
 * WAL from the backup's start on):
 * - `stream`: this repository's WAL stream runs; the backup waits for it to pass its end.
 * - `slot`: the repository's own slot exists and nobody uses it: the backup catches up through
 *   it (it holds the WAL since the stream stopped, so the repository's WAL stays continuous).
 * - `temporary`: no slot of the repository's own: a TEMPORARY slot on a connection of its own,
 *   held from before BASE_BACKUP until the WAL is archived (as `pg_basebackup -X stream` does),
 *   so nothing is left on the server afterwards.
 */
export type BackupWalSource =
  | { kind: 'stream' }
  | { kind: 'slot'; name: string }
  | { kind: 'temporary'; name: string; client: ReplicationClient };

/** Decides the backup's WAL source; fails fast (WARDEN_E_SLOT_BUSY) when its slot is held elsewhere. */
export async function planBackupWal(options: {
  connection: ConnectionConfig;
  repository: Repository;
  /** `--slot`, when given. */
  slotName?: string;
  logger: Logger;
}): Promise<BackupWalSource> {
  const { repository, logger } = options;
  if (await lockHolder(repository.store, 'wal-stream')) {
    // A stream that has just started (the daemon's first start) may not have created its slot
    // yet; one created after BASE_BACKUP's checkpoint would start after the backup. Wait for it
    // (at most 30 s, polling every 200 ms), then rely on the stream either way.
    const name = options.slotName ?? repository.meta.slot;
    for (let waited = 0; name !== undefined && waited < SLOT_APPEAR_MS; waited += 200) {
      if ((await readSlot(options.connection, name)).slot) break;
      if (waited === 0) logger.info({ slot: name }, 'waiting for the running WAL stream to create its slot');
      await sleep(200);
    }
    return { kind: 'stream' };
  }
  try {
    const slot = await resolveRepositorySlot({
      connection: options.connection,
      repository,
      ...(options.slotName !== undefined ? { requested: options.slotName } : {}),
    });
    if (slot.info?.active) throw slotBusy(repository, slot);
    if (slot.info) return { kind: 'slot', name: slot.name };
  } catch (error) {
    // The repository's slot lost its WAL: its stream has a gap whatever this backup does, and a
    // new full backup is the remedy. Take it through a temporary slot, and say so.
    if (!isWardenError(error, 'WARDEN_E_SLOT_INVALIDATED')) throw error;
    logger.warn({ code: error.code, hint: error.hint }, error.message);
  }
  const client = await ReplicationClient.connect({
    ...options.connection,
    applicationName: holderName(repository.id),
  });
  try {
    const name = `warden_tmp_${randomBytes(8).toString('hex')}`;
    await client.createSlot(name, { temporary: true });
    return { kind: 'temporary', name, client };
  } catch (error) {
    await client.close();
    throw error;
  }
}

/**
 * A base backup taken with `WAL false` is only restorable with the WAL from its start to its
 * end LSN. When a WAL receiver already runs for this repository, wait for it to pass `endLsn`
 * (at most WAIT_FOR_RECEIVER_MS); otherwise stream the missing WAL now (catch-up mode) through
 * the source `planBackupWal` chose.
 */
export async function ensureWalArchived(options: {
  connection: ConnectionConfig;
  source: BackupWalSource;
  repository: Repository;
  endLsn: Lsn;
  logger: Logger;
  signal?: AbortSignal;
}): Promise<void> {
  const segmentSize = options.repository.meta.walSegmentSize;
  const { source } = options;
  // A stream of this repository that started during the backup (a daemon taking over) holds the
  // wal-stream lock a catch-up needs: wait for it instead, as when it ran from the start.
  if (source.kind === 'stream' || (await lockHolder(options.repository.store, 'wal-stream'))) {
    options.logger.info(
      { endLsn: formatLsn(options.endLsn), timeoutMs: WAIT_FOR_RECEIVER_MS },
      "waiting for the running WAL stream to archive the backup's WAL",
    );
    const started = Date.now();
    const deadline = started + WAIT_FOR_RECEIVER_MS;
    let told = false;
    while (Date.now() < deadline) {
      const inventory = await readWalInventory(options.repository);
      const timelines = [...inventory.segments.keys(), ...inventory.partials.map((p) => p.timeline)];
      if (timelines.some((tli) => archivedEnd(inventory, tli, segmentSize) >= options.endLsn)) return;
      if (!told && Date.now() - started >= STILL_WAITING_MS) {
        told = true;
        const holder = await lockHolder(options.repository.store, 'wal-stream');
        options.logger.warn(
          {
            endLsn: formatLsn(options.endLsn),
            holder: holder ? `pid ${holder.pid} on ${holder.host}` : undefined,
          },
          `still waiting for the running WAL stream to archive up to ${formatLsn(options.endLsn)}; giving up ${Math.round((deadline - Date.now()) / 1000)} s from now`,
        );
      }
      await sleep(200, options.signal);
    }
    throw new WardenError(
      'WARDEN_E_WAL_GAP',
      `the running WAL receiver did not archive up to ${formatLsn(options.endLsn)} within ${WAIT_FOR_RECEIVER_MS / 1000} s`,
      {
        hint: 'Check `warden status`: the WAL stream may be stalled.',
        details: { endLsn: formatLsn(options.endLsn) },
      },
    );
  }
  const receiver = new WalReceiver({
    connection: options.connection,
    store: options.repository.store,
    ...(source.kind === 'slot'
      ? { slotName: source.name, maxAttempts: CATCH_UP_ATTEMPTS }
      : { temporarySlot: { client: source.client, name: source.name } }),
    logger: options.logger,
    stopAtLsn: options.endLsn,
    // The backup being taken starts after any gap found here: it is the remedy, so a gap is
    // recorded (status and verify show it) but does not fail the backup.
    continueAfterGap: true,
    // The backup's own keys: its recipients encrypt the segments, its signing key signs their records.
    keys: options.repository.keys,
    ...(options.signal ? { signal: options.signal } : {}),
  });
  await receiver.run();
}
