import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { before, test } from 'node:test';
import { Redis } from 'ioredis';
import { createRedis } from '../../packages/app/src/redis/index.ts';
import { runWarden, type CliRun } from '../harness/cli.ts';
import { redisCli, startRedis, startRedisCluster } from '../harness/redis.ts';
import { waitFor } from '../harness/spawned-warden.ts';
import { tempDir } from '../harness/temp-dir.ts';

let cwd: string;
before(async () => {
  cwd = await tempDir('creds-redis');
});

function warden(...args: string[]): Promise<CliRun> {
  return runWarden(args, { cwd });
}

/** Whether a fresh connection can authenticate as `user` with `password` on this port. */
async function canAuth(port: number, user: string, password: string): Promise<boolean> {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    username: user,
    password,
    lazyConnect: true,
    retryStrategy: () => null,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

async function createUser(ports: readonly number[], sink: string): Promise<void> {
  for (const port of ports)
    await redisCli(port, 'ACL', 'SETUSER', 'cache', 'on', '>first-password', '~*', '&*', '+@all');
  await writeFile(sink, JSON.stringify({ user: 'cache', password: 'first-password' }), { mode: 0o600 });
}

/** What an application does: reads the password from the file the rotation writes. */
const fromFile = (file: string) => async () =>
  (JSON.parse(await readFile(file, 'utf8')) as { password: string }).password;

test('standalone: the old and new passwords both work until the sink has the new one, then only the new; createRedis reconnects with it', async () => {
  const server = await startRedis();
  const sink = path.join(cwd, 'standalone.json');
  const client = createRedis({
    host: server.host,
    port: server.port,
    username: 'cache',
    password: fromFile(sink),
  });
  try {
    await createUser([server.port], sink);
    await client.connect();
    assert.equal(await client.set('k', 'before'), true);

    // The sink checks, at the moment it receives the new password, that both passwords work.
    const both = path.join(cwd, 'both.txt');
    const script = path.join(cwd, 'redis-sink.mjs');
    await writeFile(
      script,
      [
        "import { execFileSync } from 'node:child_process';",
        "import { readFileSync, writeFileSync } from 'node:fs';",
        "const input = readFileSync(0, 'utf8');",
        "const ping = (auth) => execFileSync('redis-cli', ['-p', process.argv[4], '--user', 'cache', '--no-auth-warning', 'PING'], { env: { ...process.env, REDISCLI_AUTH: auth } }).toString().trim();",
        "writeFileSync(process.argv[3], [ping('first-password'), ping(JSON.parse(input).password)].join(' '));",
        'writeFileSync(process.argv[2], input);',
      ].join('\n'),
    );
    await writeFile(
      path.join(cwd, 'warden.yaml'),
      JSON.stringify({
        credentials: {
          redis: {
            cache: {
              url: `redis://127.0.0.1:${server.port}`,
              sink: { command: [process.execPath, script, sink, both, String(server.port)] },
            },
          },
        },
      }),
    );
    const run = await warden('credentials', 'rotate', '--user', 'cache', '--json');
    assert.equal(await readFile(both, 'utf8'), 'PONG PONG');
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as { nodes: string[]; persisted: boolean };
    assert.deepEqual(report.nodes, [`127.0.0.1:${server.port}`]);
    const { password } = JSON.parse(await readFile(sink, 'utf8')) as { password: string };
    assert.ok(password.length >= 32 && !run.stdout.includes(password) && !run.stderr.includes(password));
    assert.equal(await canAuth(server.port, 'cache', password), true);
    assert.equal(await canAuth(server.port, 'cache', 'first-password'), false);

    // The open connection stays; once it is cut, the client reconnects with the new password.
    assert.equal(await client.get('k'), 'before');
    await redisCli(server.port, 'CLIENT', 'KILL', 'USER', 'cache');
    await waitFor('the client to reconnect with the new password', 30_000, async () => {
      try {
        return (await client.set('k', 'after')) === true;
      } catch {
        return false;
      }
    });
    assert.equal(await client.get('k'), 'after');

    const missing = await warden(
      'credentials',
      'rotate',
      '--redis',
      `redis://127.0.0.1:${server.port}`,
      '--user',
      'nobody',
      '--sink-file',
      sink,
      '--json',
    );
    assert.equal(missing.code, 3);
    assert.equal(
      (JSON.parse(missing.stdout || missing.stderr) as { error: { code: string } }).error.code,
      'WARDEN_E_REDIS_ACL',
    );
  } finally {
    await client.quit();
    await server.stop();
  }
});

test('Redis Cluster: the new password is set and the old one removed on every node, and a cluster client picks it up', async () => {
  const cluster = await startRedisCluster();
  const sink = path.join(cwd, 'cluster.json');
  const client = createRedis({ clusterNodes: cluster.nodes, username: 'cache', password: fromFile(sink) });
  try {
    await createUser(cluster.ports, sink);
    await client.connect();
    const run = await warden(
      'credentials',
      'rotate',
      '--redis',
      `redis://127.0.0.1:${cluster.ports[0]}`,
      '--user',
      'cache',
      '--sink-file',
      sink,
      '--json',
    );
    assert.equal(run.code, 0, run.stderr);
    assert.equal((JSON.parse(run.stdout) as { nodes: string[] }).nodes.length, 6);
    const { password } = JSON.parse(await readFile(sink, 'utf8')) as { password: string };
    for (const port of cluster.ports) {
      assert.equal(await canAuth(port, 'cache', password), true, `new password on ${port}`);
      assert.equal(await canAuth(port, 'cache', 'first-password'), false, `old password on ${port}`);
    }
    for (const port of cluster.ports) await redisCli(port, 'CLIENT', 'KILL', 'USER', 'cache');
    const keys = ['a', 'b', 'c', 'd', 'e', 'f'];
    await waitFor('the cluster client to reconnect with the new password', 30_000, async () => {
      try {
        for (const key of keys) if (!(await client.set(key, 'v'))) return false;
        return true;
      } catch {
        return false;
      }
    });
  } finally {
    await client.quit();
    await cluster.stop();
  }
});
