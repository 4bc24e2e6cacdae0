import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { WalReceiver } from '../../src/backup/wal-receiver.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { META_KEY } from '../../src/repository/repository-meta.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

// A stop that arrives while the receiver opens its connection must end the receiver: a listener
// added to a signal that has already fired is never called, and a daemon stopped in that moment
// waited on a stream that never ended (a CI run's `warden` after Ctrl-C, until killed).

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster();
});
after(async () => cluster?.stop());

/** A store that fires the stop the moment the receiver's session looks up the repository. */
class StopOnRepositoryLookup extends FsObjectStore {
  lookups = 0;
  constructor(
    dir: string,
    private readonly stop: AbortController,
  ) {
    super(dir);
  }
  override async stat(key: string) {
    if (key === META_KEY) {
      this.lookups += 1;
      this.stop.abort();
    }
    return super.stat(key);
  }
}

test(
  'a receiver stopped while it connects ends, and leaves no walsender behind',
  { timeout: 120_000 },
  async () => {
    const stop = new AbortController();
    const store = new StopOnRepositoryLookup(path.join(cluster.workDir, 'repo-stop-connecting'), stop);
    const receiver = new WalReceiver({
      connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
      store,
      slotName: 'warden_stop_connecting',
      signal: stop.signal,
    });
    await receiver.run();
    assert.ok(store.lookups >= 1, 'the stop came from inside the session, after its start-of-attempt check');
    assert.equal(receiver.status().state, 'stopped');
    const senders = await cluster.query<{ n: string }>(
      `SELECT count(*)::text AS n FROM pg_stat_replication WHERE application_name LIKE 'warden%'`,
    );
    assert.equal(senders[0]!.n, '0');
  },
);
