import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { onExit } from '../harness/cleanup.ts';
import { WARDEN_BIN } from '../harness/cli.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';

/**
 * `warden serve` restarted: the job run of the first daemon, which the repository remembers,
 * is shown once by the second as an earlier run, not as a new one. The only job is a backup on
 * a yearly schedule, so the first daemon runs exactly one slot (the catch-up of this year's).
 */

let cluster: TestCluster;
let configFile: string;

before(async () => {
  cluster = await startCluster();
  configFile = path.join(cluster.workDir, 'warden.yaml');
  await writeFile(
    configFile,
    [
      'daemon:',
      '  profile: dev',
      '  schedules:',
      '    full-backup: null',
      '    backup: "0 0 1 1 *"',
      '    logical-dump: null',
      '    retention: null',
      '    verification: null',
      '    drill: null',
      '',
    ].join('\n'),
  );
});
after(async () => cluster?.stop());

function serve(repo: string): { child: ChildProcess; stdout: () => string; exited: Promise<unknown> } {
  const child = spawn(
    process.execPath,
    [
      WARDEN_BIN,
      'serve',
      '--config',
      configFile,
      '--db',
      `${cluster.url()}?sslmode=disable`,
      '--repo',
      repo,
      '--no-encryption',
      '--no-http',
    ],
    { cwd: cluster.workDir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const removeHook = onExit(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = once(child, 'exit').then(() => removeHook());
  return { child, stdout: () => `${stdout}\n--- stderr\n${stderr}`, exited };
}

async function waitFor(what: string, ms: number, condition: () => boolean): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const backupLines = (output: string) => output.split('\n').filter((line) => / backup: succeeded/.test(line));

test('a restarted serve marks the job runs of the daemon before it as earlier', async () => {
  const repo = path.join(cluster.workDir, 'restart-repo');
  const first = serve(repo);
  try {
    await waitFor('the first backup run', 120_000, () => backupLines(first.stdout()).length > 0);
  } finally {
    first.child.kill('SIGINT');
    await first.exited;
  }
  const [fresh] = backupLines(first.stdout());
  assert.doesNotMatch(fresh!, /earlier run/, 'a run of this daemon is not marked');
  const finishedAt = fresh!.trim().split(' ')[0]!;

  const second = serve(repo);
  try {
    await waitFor(
      'the second daemon to list job runs',
      60_000,
      () => backupLines(second.stdout()).length > 0,
    );
  } finally {
    second.child.kill('SIGINT');
    await second.exited;
  }
  const lines = backupLines(second.stdout());
  assert.equal(lines.length, 1, second.stdout());
  assert.ok(lines[0]!.includes(finishedAt), second.stdout());
  assert.match(lines[0]!, /\(earlier run, before this start\)$/);
});
