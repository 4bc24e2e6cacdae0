import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { apiAuditEntry } from '../../src/server/api-audit-entry.ts';
import { listAudit } from '../../src/audit/audit-log.ts';
import { AuditOutbox } from '../../src/audit/audit-outbox.ts';
import type { AuditRecord } from '../../src/audit/audit-record.ts';
import { Daemon } from '../../src/daemon/daemon.ts';
import { resolveDaemonPlan } from '../../src/daemon/daemon-config.ts';
import { tokenDigest } from '../../src/daemon/http-config.ts';
import type { DaemonStatus } from '../../src/daemon/status.ts';
import { silentLogger } from '../../src/logger.ts';
import { SigningKey } from '../../src/pipeline/signing/signing-keys.ts';
import { connectionFromUrl } from '../../src/postgres/connection-config.ts';
import { FsObjectStore } from '../../src/repository/fs/fs-object-store.ts';
import { Repository } from '../../src/repository/repository.ts';
import { WardenError } from '../../src/errors.ts';
import { createStatusApp } from '../../src/server/status-app.ts';
import { runWarden } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { tempDir } from '../harness/temp-dir.ts';

/**
 * API calls in the audit log: `warden serve` (real PostgreSQL, its WAL stream creating the
 * repository) records state-changing calls and refused credentials with the token's name, never
 * the token; and the outbox keeps records while the repository is unreachable.
 */

const OPERATOR_TOKEN = 'op-secret-'.padEnd(40, 'x');
const VIEWER_TOKEN = 'viewer-secret-'.padEnd(40, 'y');
const FORGED_TOKEN = 'forged-secret-'.padEnd(40, 'z');

let cluster: TestCluster;
before(async () => {
  cluster = await startCluster();
});
after(async () => cluster?.stop());

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(200);
  }
}

test('warden serve records API calls with the token name, role and address; refused credentials too; no token reaches the log', async () => {
  const repoPath = path.join(cluster.workDir, 'repo');
  const signer = SigningKey.generate();
  const plan = resolveDaemonPlan({
    section: {
      profile: 'dev',
      http: {
        port: 0,
        tokens: [
          { name: 'deploy-bot', role: 'operator', tokenSha256: tokenDigest(OPERATOR_TOKEN) },
          { name: 'grafana', role: 'viewer', tokenSha256: tokenDigest(VIEWER_TOKEN) },
        ],
      },
      schedules: {
        'full-backup': null,
        backup: null,
        'logical-dump': null,
        retention: null,
        verification: null,
        drill: null,
      },
    },
    baseDir: cluster.workDir,
    defaultCluster: {
      connection: { ...connectionFromUrl(cluster.url()), tls: 'disable' },
      repository: { path: repoPath },
      slot: 'warden',
    },
    retention: { ...(await import('../../src/retention/retention-policy.ts')).DEFAULT_RETENTION_POLICY },
    flags: {},
    env: {},
  });
  const daemon = new Daemon({
    plan,
    compression: 'zstd',
    tickMs: 100,
    retryBaseMs: 200,
    keys: { signingKey: signer },
  });
  await daemon.start();
  const store = new FsObjectStore(repoPath);
  try {
    // The WAL stream creates the repository: before that there is nothing to record into.
    await waitFor('the repository', 60_000, async () =>
      (await store.stat('warden-repo.json')) ? true : undefined,
    );
    const base = `http://127.0.0.1:${daemon.address!.port}`;
    const call = (method: string, route: string, headers: Record<string, string> = {}, body?: string) =>
      fetch(`${base}${route}`, { method, headers, ...(body !== undefined ? { body } : {}) });
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

    assert.equal((await call('POST', '/api/session', bearer(OPERATOR_TOKEN))).status, 200);
    const signIn = await call(
      'POST',
      '/api/session',
      { 'content-type': 'application/json' },
      JSON.stringify({ token: VIEWER_TOKEN }),
    );
    assert.equal(signIn.status, 200);
    const badSignIn = await call(
      'POST',
      '/api/session',
      { 'content-type': 'application/json' },
      JSON.stringify({ token: FORGED_TOKEN }),
    );
    assert.equal(badSignIn.status, 401);
    assert.equal((await call('GET', '/api/status', bearer(FORGED_TOKEN))).status, 401);
    assert.equal((await call('POST', '/api/cache/invalidate', bearer(VIEWER_TOKEN))).status, 403);
    // Reads of status and metrics are not recorded.
    assert.equal((await call('GET', '/api/status', bearer(VIEWER_TOKEN))).status, 200);
    assert.equal((await call('GET', '/metrics', bearer(VIEWER_TOKEN))).status, 200);

    const expected = [
      ['api POST /api/session', 'succeeded', 200, 'deploy-bot', 'operator', 'token'],
      ['api POST /api/session', 'succeeded', 200, 'grafana', 'viewer', 'sign-in'],
      ['api POST /api/session', 'failed', 401, undefined, undefined, 'none'],
      ['api GET /api/status', 'failed', 401, undefined, undefined, 'invalid-token'],
      ['api POST /api/cache/invalidate', 'failed', 403, 'grafana', 'viewer', 'token'],
    ];
    const records = await waitFor('the API records', 60_000, async () => {
      const api = (await listAudit(await Repository.open(store))).filter((r) => r.action.startsWith('api '));
      return api.length >= expected.length ? api : undefined;
    });
    assert.deepEqual(
      records.map((r: AuditRecord) => [
        r.action,
        r.outcome,
        r.status,
        r.actor.token,
        r.actor.role,
        r.actor.via,
      ]),
      expected,
    );
    assert.equal(records[2]!.code, 'WARDEN_E_HTTP_AUTH_REQUIRED');
    assert.equal(records[4]!.code, 'WARDEN_E_HTTP_ROLE_DENIED');
    assert.ok(
      records.every((r) => r.actor.remote === '127.0.0.1' && r.actor.user.length > 0 && r.occurredAt),
    );

    const auditDir = path.join(repoPath, 'audit');
    const files = await readdir(auditDir, { recursive: true });
    let everything = '';
    for (const file of files)
      if (file.endsWith('.json')) everything += await readFile(path.join(auditDir, file), 'utf8');
    for (const secret of [OPERATOR_TOKEN, VIEWER_TOKEN, FORGED_TOKEN, tokenDigest(OPERATOR_TOKEN)])
      assert.ok(!everything.includes(secret), 'a token or its hash reached the audit log');

    const verified = await runWarden(['audit', 'verify', '--repo', repoPath, '--trust-key', signer.id], {
      cwd: cluster.workDir,
    });
    assert.equal(verified.code, 0, verified.stdout + verified.stderr);
  } finally {
    await daemon.stop();
  }
});

test('an unreachable repository does not hold up or fail the request: the record waits in the outbox, survives a restart, and is appended in order', async () => {
  const dir = await tempDir('audit-outbox');
  const store = new FsObjectStore(path.join(dir, 'repo'));
  const repository = await Repository.openFor(store, {
    systemId: '7300000000000000009',
    walSegmentSize: 16 << 20,
    serverVersion: '15.0',
  });
  let reachable = false;
  const outboxOptions = {
    dir: path.join(dir, 'outbox'),
    repositoryOf: async () => {
      // Injected fault: the repository is away until the test brings it back.
      if (!reachable) throw new WardenError('WARDEN_E_REPO_IO', 'repository unreachable');
      return repository;
    },
    logger: silentLogger,
    retryBaseMs: 20,
    retryCapMs: 100,
  };
  const outbox = new AuditOutbox(outboxOptions);
  outbox.start();
  const status: DaemonStatus = {
    daemon: { startedAt: new Date().toISOString(), warnings: [] },
    clusters: [],
  };
  const server = http.createServer(
    createStatusApp(
      { status: async () => status },
      {
        http: {
          host: '127.0.0.1',
          allowedHosts: [],
          tokens: [{ name: 'deploy-bot', role: 'operator', sha256: tokenDigest(OPERATOR_TOKEN) }],
          sessionTtlMs: 60_000,
        },
        audit: (event) => outbox.record(['main'], apiAuditEntry(event)),
      },
    ),
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/api/session`;
    for (let i = 0; i < 2; i += 1) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${OPERATOR_TOKEN}` },
      });
      assert.equal(response.status, 200);
    }
    await outbox.flush();
    assert.equal(await outbox.pending(), 2);
    await outbox.stop();
    assert.deepEqual(await listAudit(repository), []);

    // A restarted daemon finds them on disk and appends them once the repository is back.
    const restarted = new AuditOutbox(outboxOptions);
    reachable = true;
    restarted.start();
    await waitFor('the outbox to drain', 30_000, async () =>
      (await restarted.pending()) === 0 ? true : undefined,
    );
    await restarted.stop();
    const records = await listAudit(repository);
    assert.deepEqual(
      records.map((r) => [r.seq, r.action, r.actor.token]),
      [
        [1, 'api POST /api/session', 'deploy-bot'],
        [2, 'api POST /api/session', 'deploy-bot'],
      ],
    );
    assert.ok(Date.parse(records[0]!.occurredAt!) <= Date.parse(records[1]!.occurredAt!));
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
