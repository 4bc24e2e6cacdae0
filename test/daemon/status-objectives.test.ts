import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { onExit } from '../harness/cleanup.ts';
import { runWarden, WARDEN_BIN } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { sleep } from '../faults/helpers.ts';

/**
 * The objectives `warden status` judges by are the same whether the daemon runs or not: without
 * a configured profile, the ones the last daemon recorded in the repository — and the output
 * says where they came from.
 */

interface StatusJson {
  clusters: Array<{
    profile: string;
    objectives: { rtoMs: number; rpoMs: number; origin: string; source: string };
  }>;
}

let cluster: TestCluster;
let daemon: ChildProcess | undefined;
const repoDir = () => path.join(cluster.workDir, 'repo');
const db = () => `${cluster.url()}?sslmode=disable`;

async function objectives() {
  const run = await runWarden(['status', '--db', db(), '--repo', repoDir(), '--json'], {
    cwd: cluster.workDir,
  });
  const parsed = JSON.parse(run.stdout) as StatusJson;
  return parsed.clusters[0]!;
}

before(async () => {
  cluster = await startCluster();
  const backup = await runWarden(['backup', '--db', db(), '--repo', repoDir(), '--no-encryption'], {
    cwd: cluster.workDir,
  });
  assert.equal(backup.code, 0, backup.stderr);
});

after(async () => {
  if (daemon && daemon.exitCode === null && daemon.signalCode === null) {
    const exited = once(daemon, 'exit');
    daemon.kill('SIGKILL');
    await exited;
  }
  await cluster?.stop();
});

test('with nothing configured or recorded, status names the profile defaults it falls back to', async () => {
  const status = await objectives();
  assert.equal(status.objectives.origin, 'default');
  assert.equal(status.profile, 'prod');
  assert.match(status.objectives.source, /nothing configured/);
});

test('status shows the objectives the daemon runs with, while it runs and after it stopped', async () => {
  // Every job off: the daemon only streams and records its objectives.
  const config = path.join(cluster.workDir, 'quiet.yaml');
  await writeFile(
    config,
    [
      'daemon:',
      '  schedules:',
      ...['full-backup', 'backup', 'logical-dump', 'retention', 'verification', 'drill'].map(
        (job) => `    ${job}: null`,
      ),
      '',
    ].join('\n'),
  );
  daemon = spawn(
    process.execPath,
    [
      WARDEN_BIN,
      'serve',
      '--config',
      config,
      '--db',
      db(),
      '--repo',
      repoDir(),
      '--profile',
      'uat',
      '--no-http',
      '--no-encryption',
    ],
    { cwd: cluster.workDir, stdio: 'ignore' },
  );
  const removeHook = onExit(() => daemon?.kill('SIGKILL'));
  let running = await objectives();
  for (let i = 0; i < 300 && running.objectives.origin !== 'daemon'; i += 1) {
    await sleep(100);
    running = await objectives();
  }
  // uat: RTO 8h, RPO 24h (prod would be 4h).
  assert.equal(running.profile, 'uat');
  assert.equal(running.objectives.origin, 'daemon');
  assert.equal(running.objectives.rtoMs, 8 * 3_600_000);
  const exited = once(daemon, 'exit');
  daemon.kill('SIGTERM');
  await exited;
  removeHook();
  const stopped = await objectives();
  assert.deepEqual(
    { profile: stopped.profile, objectives: stopped.objectives },
    { profile: running.profile, objectives: running.objectives },
  );
  const human = await runWarden(['status', '--db', db(), '--repo', repoDir()], { cwd: cluster.workDir });
  assert.match(human.stdout, /objectives +from recorded in the repository by the daemon/);
  // A configured profile still wins, and says so.
  const flagged = JSON.parse(
    (
      await runWarden(['status', '--db', db(), '--repo', repoDir(), '--json', '--profile', 'dev'], {
        cwd: cluster.workDir,
      })
    ).stdout,
  ) as StatusJson;
  assert.equal(flagged.clusters[0]!.objectives.origin, 'config');
  assert.equal(flagged.clusters[0]!.objectives.source, '--profile');
  assert.equal(flagged.clusters[0]!.profile, 'dev');
});
