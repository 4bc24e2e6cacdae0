import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { takeBackup } from '../../src/backup/base-backup.ts';
import { checkLedger, createLedger, randomTransfer } from '../../src/embedded/ledger.ts';
import { LocalInstance } from '../../src/postgres/local-instance.ts';
import type { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { readWalInventory } from '../../src/repository/wal-archive.ts';
import { restore } from '../../src/restore/restore.ts';
import { rejectsWithCode } from '../faults/helpers.ts';
import { startCluster, withClient, type TestCluster } from '../harness/postgres.ts';
import { streamInto, type StreamingRepository } from '../harness/streaming.ts';

const FIRST = 'pre-v1.13.0-upgrade';
const SECOND = 'pre-v1.14.0-upgrade';

let cluster: TestCluster;
let store: FsObjectStore;
let stream: StreamingRepository<FsObjectStore>;
/** Transfer ids committed before each restore point, and all of them. */
const beforePoint = new Map<string, number[]>();
const transfers: number[] = [];

before(async () => {
  cluster = await startCluster();
  await withClient(cluster.url(), (client) => createLedger(client));
  stream = streamInto(cluster);
  store = stream.store;
  await takeBackup({ connection: stream.connection, store, slotName: stream.slotName, compression: 'zstd' });
  await withClient(cluster.url(), async (client) => {
    const transfer = async (n: number) => {
      for (let i = 0; i < n; i += 1) transfers.push((await randomTransfer(client)).id);
    };
    await transfer(8);
    await client.query('SELECT pg_create_restore_point($1)', [FIRST]);
    beforePoint.set(FIRST, [...transfers]);
    await transfer(8);
    // The first restore point ends up in an archived segment, the second in the partial one.
    await client.query('SELECT pg_switch_wal()');
    await transfer(5);
    await client.query('SELECT pg_create_restore_point($1)', [SECOND]);
    beforePoint.set(SECOND, [...transfers]);
    await transfer(5);
  });
  await stream.waitForArchive();
});

after(async () => {
  await stream?.stop();
  await cluster?.stop();
});

async function restoreToName(dirName: string, name: string) {
  const targetDir = path.join(cluster.workDir, dirName);
  const report = await restore({ store, target: { kind: 'name', name }, targetDir, start: true }).catch(
    (e) => {
      console.error(e.details?.log);
      throw e;
    },
  );
  const instance = new LocalInstance({
    binaries: cluster.instance.binaries,
    dataDir: targetDir,
    port: report.port!,
  });
  try {
    const ledger = await withClient(
      cluster.url().replace(`:${cluster.port}/`, `:${report.port}/`),
      (client) => checkLedger(client),
    );
    return { report, ledger };
  } finally {
    await instance.stop({ mode: 'immediate' });
  }
}

test('archived segments record the restore point they hold', async () => {
  // Completed segments are archived in the background: wait for the one holding the point.
  const recordedPoints = async () => {
    const inventory = await readWalInventory(await Repository.open(store));
    return [...inventory.segments.values()].flat().flatMap((s) => s.restorePoints ?? []);
  };
  let recorded = await recordedPoints();
  for (let tries = 0; recorded.length === 0 && tries < 100; tries += 1) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    recorded = await recordedPoints();
  }
  assert.deepEqual(
    recorded.map((rp) => rp.name),
    [FIRST],
  );
  assert.ok(!Number.isNaN(Date.parse(recorded[0]!.time)));
});

test('restore --to-name recovers exactly the transfers committed before the restore point', async () => {
  for (const [index, name] of [FIRST, SECOND].entries()) {
    const { report, ledger } = await restoreToName(`to-name-${index}`, name);
    assert.equal(report.recovery.recovery_target_name, name);
    assert.deepEqual(ledger.transfers, beforePoint.get(name), `restored to ${name}`);
    assert.ok(ledger.transfers.length < transfers.length);
    assert.ok(ledger.balanced && ledger.consistent, 'ledger balanced');
  }
});

test('an unknown restore point name is refused before anything is restored, listing the known names', async () => {
  const targetDir = path.join(cluster.workDir, 'to-name-unknown');
  const error = await rejectsWithCode(
    restore({ store, target: { kind: 'name', name: 'pre-v9.9.9-upgrade' }, targetDir, start: true }),
    'WARDEN_E_RESTORE_POINT_NOT_FOUND',
  );
  assert.equal(error.exitCode, 4);
  assert.deepEqual(error.details.knownNames, [FIRST, SECOND]);
  assert.equal(existsSync(targetDir), false, 'the target directory restore created is removed again');
});
