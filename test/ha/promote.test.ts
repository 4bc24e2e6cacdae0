import assert from 'node:assert/strict';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { startPrimaryWithReplica, type PrimaryWithReplica } from '../harness/replica.ts';
import { tempDir } from '../harness/temp-dir.ts';

/** `warden promote` on bare streaming replication (a primary and one standby, no manager). */
let pair: PrimaryWithReplica;
let cwd: string;

before(async () => {
  pair = await startPrimaryWithReplica();
  cwd = await tempDir('promote');
});
after(async () => {
  await pair?.stop();
});

const primaryName = () => `127.0.0.1:${pair.primary.port}`;
const replicaName = () => `127.0.0.1:${pair.replica.port}`;

async function promote(name: string, ...flags: string[]): Promise<CliRun & { error?: { code: string } }> {
  // Both members in one libpq-style host list; the password from the environment, never argv.
  const db = `postgres://postgres@${primaryName()},${replicaName()}/postgres?sslmode=disable`;
  const run = await runWarden(
    ['promote', name, '--db', db, '--repo', path.join(cwd, 'repo'), '--json', ...flags],
    {
      cwd,
      env: { PGPASSWORD: pair.primary.password },
    },
  );
  const text = run.stdout.trim() || run.stderr.trim();
  let parsed: { error?: { code: string } } = {};
  try {
    parsed = JSON.parse(text.slice(text.indexOf('{'))) as { error?: { code: string } };
  } catch {
    // not JSON: the assertion on the code shows the output
  }
  return { ...run, ...(parsed.error ? { error: parsed.error } : {}) };
}

test('promote refuses while the old primary answers, when it is merely unreachable, and when fencing fails; then promotes a fenced cluster', async () => {
  await pair.primary.query('CREATE TABLE t AS SELECT 1 AS id');
  await pair.replica.waitForReplay();

  const live = await promote(replicaName(), '--old-primary-fenced');
  assert.equal(live.error?.code, 'WARDEN_E_NOT_FENCED', live.stdout + live.stderr);
  assert.equal(live.code, 6);

  await pair.primary.instance.stop({ mode: 'immediate' });
  const unreachable = await promote(replicaName());
  assert.equal(unreachable.error?.code, 'WARDEN_E_NOT_FENCED', 'unreachable is not fenced');

  const fencingFails = await promote(replicaName(), '--fencing-command', 'false');
  assert.equal(fencingFails.error?.code, 'WARDEN_E_NOT_FENCED', 'a failing fencing command refuses');

  const notStandby = await promote(primaryName(), '--old-primary-fenced');
  assert.equal(notStandby.error?.code, 'WARDEN_E_PROMOTE_CANDIDATE');
  const [still] = await pair.replica.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
  assert.equal(still!.r, true, 'nothing was promoted by a refusal');

  const done = await promote(replicaName(), '--fencing-command', 'true');
  assert.equal(done.code, 0, done.stdout + done.stderr);
  const report = JSON.parse(done.stdout) as {
    promoted: string;
    timeline: number;
    fencedBy: string;
    forkLsn?: string;
  };
  assert.equal(report.promoted, replicaName());
  assert.equal(report.fencedBy, 'command');
  assert.equal(report.timeline, 2);
  assert.ok(report.forkLsn);
  const [now] = await pair.replica.query<{ r: boolean }>('SELECT pg_is_in_recovery() AS r');
  assert.equal(now!.r, false);
});
