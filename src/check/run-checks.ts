import type { Logger } from 'pino';
import type { WardenConfig } from '../config/config.ts';
import { ERROR_CODES, isWardenError } from '../errors.ts';
import { loadWriteKeys } from '../pipeline/encryption/keyring.ts';
import { loadSigningKey } from '../pipeline/signing/signing-keyring.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { failFrom, skip, timed, type CheckResult } from './check-result.ts';
import { checkClock } from './clock-check.ts';
import { checkConnection } from './connection-check.ts';
import { checkKeys } from './encryption-check.ts';
import { checkReplicationConnection } from './pg-hba-check.ts';
import { checkReplicationRole } from './replication-role-check.ts';
import { checkRepository } from './repository-probe-check.ts';
import { checkRestoreSpace } from './restore-space-check.ts';
import type { ServerSnapshot } from './server-snapshot.ts';
import { checkSigning } from './signing-check.ts';
import { checkSlot } from './slot-check.ts';
import { checkWalRoundTrip } from './wal-round-trip-check.ts';
import { checkWalSettings } from './wal-settings-check.ts';

export interface CheckReport {
  /** No check failed (warnings allowed). */
  ok: boolean;
  /** The exit status of the first failed check's code (docs/cli.md), 0 when none failed. */
  exitCode: number;
  checks: CheckResult[];
}

export interface RunChecksOptions {
  config: WardenConfig;
  store: ObjectStore;
  /** The cluster, or why there is none (`no cluster given`). */
  connection: ConnectionConfig | { error: unknown };
  /** Where restores would go (free space is measured there). */
  restoreDir: string;
  walTimeoutMs?: number;
  logger: Logger;
  signal?: AbortSignal;
}

/** Checks that need the server; skipped when it cannot be reached. */
const SERVER_CHECKS = [
  'replication-role',
  'pg_hba-replication',
  'wal_level',
  'max_wal_senders',
  'max_replication_slots',
  'slot',
  'clock',
];
/** A failure of any of these makes the WAL round trip pointless (it would fail the same way). */
const ROUND_TRIP_NEEDS = [
  'connection',
  'replication-role',
  'pg_hba-replication',
  'wal_level',
  'max_wal_senders',
  'max_replication_slots',
  'slot',
  'repository',
  'encryption',
  'signing-key',
];

/**
 * Runs every check of `warden check` after the configuration has loaded, in the order they are
 * printed: the server (connection and TLS, privileges, settings, slot, clock), the repository
 * (probe), the keys, the free space for a restore, then the WAL round trip when nothing it
 * depends on failed.
 */
export async function runChecks(options: RunChecksOptions): Promise<CheckResult[]> {
  const { config, store } = options;
  const results: CheckResult[] = [];
  const connection = 'error' in options.connection ? undefined : options.connection;
  const repository = await openIfAny(store);
  let snapshot: ServerSnapshot | undefined;
  if (connection) {
    const started = performance.now();
    const checked = await checkConnection(connection);
    results.push({ ...checked.result, durationMs: Math.round(performance.now() - started) });
    snapshot = checked.snapshot;
  } else {
    results.push(failFrom('connection', (options.connection as { error: unknown }).error));
  }
  if (connection && snapshot) {
    const server = snapshot;
    results.push(checkReplicationRole(server));
    results.push(await timed('pg_hba-replication', () => checkReplicationConnection(connection)));
    const ownSlot = config.slot ?? repository?.meta.slot;
    results.push(
      ...checkWalSettings(server, {
        ...(repository ? { repositoryId: repository.id } : {}),
        ...(ownSlot ? { slot: ownSlot } : {}),
      }),
    );
    results.push(
      repository
        ? await timed('slot', () =>
            checkSlot({
              connection,
              repository,
              ...(config.slot !== undefined ? { requested: config.slot } : {}),
            }),
          )
        : skip('slot', 'no repository yet: its slot is named when it is created'),
    );
    results.push(checkClock(server.clock));
  } else {
    for (const name of SERVER_CHECKS) results.push(skip(name, 'not run: cannot connect to the server'));
  }
  results.push(
    await timed('repository', () => {
      const systemId = results.find((r) => r.name === 'pg_hba-replication')?.details?.systemId;
      return checkRepository(store, {
        ...(config.repository.s3 ? {} : { directory: config.repository.path }),
        ...(typeof systemId === 'string' ? { systemId } : {}),
      });
    }),
  );
  results.push(
    ...(await checkKeys(config.repository.encryption, store).catch((error: unknown) => [
      failFrom('encryption', error),
      skip('decryption', 'not run: encryption failed'),
    ])),
  );
  results.push(await timed('signing-key', () => checkSigning(config.repository.signing)));
  results.push(
    repository
      ? await timed('restore-space', () => checkRestoreSpace(repository, options.restoreDir))
      : skip('restore-space', 'no repository yet'),
  );
  const blockers = results.filter((r) => r.status === 'fail' && ROUND_TRIP_NEEDS.includes(r.name));
  if (!connection || !snapshot || blockers.length > 0) {
    results.push(
      skip('wal-archive', `not run: ${blockers.map((r) => r.name).join(', ') || 'connection'} failed`),
    );
  } else {
    const server = snapshot;
    results.push(
      await timed('wal-archive', async () =>
        checkWalRoundTrip({
          connection,
          store,
          keys: {
            ...(await loadWriteKeys(config.repository.encryption, store)),
            signingKey: (await loadSigningKey(config.repository.signing)).key,
          },
          snapshot: server,
          ...(config.slot !== undefined ? { slotName: config.slot } : {}),
          ...(options.walTimeoutMs !== undefined ? { timeoutMs: options.walTimeoutMs } : {}),
          logger: options.logger,
          ...(options.signal ? { signal: options.signal } : {}),
        }),
      ),
    );
  }
  return results;
}

/** The report of a list of checks: failed when one failed, with the first failure's exit status. */
export function reportOf(checks: CheckResult[]): CheckReport {
  const failed = checks.find((c) => c.status === 'fail');
  return {
    ok: failed === undefined,
    exitCode: failed ? ERROR_CODES[failed.code ?? 'WARDEN_E_INTERNAL'].exit : 0,
    checks,
  };
}

async function openIfAny(store: ObjectStore): Promise<Repository | undefined> {
  try {
    return await Repository.open(store);
  } catch (error) {
    if (isWardenError(error)) return undefined; // not there, or unreadable: the repository check says which
    throw error;
  }
}
