import assert from 'node:assert/strict';
import { test } from 'node:test';
import { auditDaemonEvents } from '../../src/audit/audit-events.ts';
import { listAudit } from '../../src/audit/audit-log.ts';
import { verifyAuditLog } from '../../src/audit/audit-verify.ts';
import { WardenEvents } from '../../src/events/warden-events.ts';
import { silentLogger } from '../../src/logger.ts';
import { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { tempDir } from '../harness/temp-dir.ts';

const job = (name: string, outcome: 'succeeded' | 'failed' | 'skipped', detail?: string) => ({
  cluster: 'main',
  job: name,
  outcome,
  at: new Date().toISOString(),
  durationMs: 1200,
  ...(detail ? { detail } : {}),
  ...(outcome === 'failed' ? { error: { code: 'WARDEN_E_REPO_IO', message: 'unreachable' } } : {}),
});

test("the daemon's jobs are recorded in their cluster's audit log, in order; skipped slots and unknown clusters are not", async () => {
  const signer = SigningKey.generate();
  const store = new FsObjectStore(await tempDir('audit-events'));
  const repository = await Repository.openFor(
    store,
    { systemId: '7300000000000000003', walSegmentSize: 16 << 20, serverVersion: '15.0' },
    { signingKey: signer },
  );
  const events = new WardenEvents();
  const audit = auditDaemonEvents(events, {
    repositoryOf: async (cluster) => (cluster === 'main' ? repository : undefined),
    logger: silentLogger,
  });
  events.emit('job.finished', job('backup', 'succeeded', 'full backup 20261206-031500F'));
  events.emit('job.finished', job('verify', 'failed'));
  events.emit('job.finished', job('backup', 'skipped'));
  events.emit('job.finished', { ...job('drill', 'succeeded'), cluster: 'elsewhere' });
  events.emit('job.finished', job('drill', 'succeeded'));
  audit.unsubscribe();
  events.emit('job.finished', job('expire', 'succeeded'));
  await audit.flush();
  const records = await listAudit(repository);
  assert.deepEqual(
    records.map((r) => [r.action, r.outcome, r.code, r.target]),
    [
      ['daemon backup', 'succeeded', undefined, 'full backup 20261206-031500F'],
      ['daemon verify', 'failed', 'WARDEN_E_REPO_IO', undefined],
      ['daemon drill', 'succeeded', undefined, undefined],
    ],
  );
  const trusted = await Repository.open(store, { trust: { keys: new Map([[signer.id, signer.publicKey]]) } });
  assert.deepEqual((await verifyAuditLog(trusted)).problems, []);
});
