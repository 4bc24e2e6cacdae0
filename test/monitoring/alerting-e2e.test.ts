import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { grafanaDashboards } from '../../src/monitoring/grafana-dashboards.ts';
import { startAlertmanager } from '../harness/alertmanager.ts';
import { runWarden } from '../harness/cli.ts';
import { startNodeExporter, startPostgresExporter, startRedisExporter } from '../harness/exporters.ts';
import type { LoopbackProcess } from '../harness/loopback-process.ts';
import { startCluster, type TestCluster } from '../harness/postgres.ts';
import { startPrometheus, type TestPrometheus } from '../harness/prometheus.ts';
import { startRedis, type TestRedis } from '../harness/redis.ts';
import { SpawnedWardens, waitFor, type SpawnedWarden } from '../harness/spawned-warden.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../harness/alertmanager-webhook.ts';

/**
 * Real Prometheus and Alertmanager (Debian packages) on loopback ports scrape `warden serve`, the
 * three exporters and evaluate `warden monitoring rules` with shortened holds; Alertmanager
 * notifies a local webhook. A backup failure (the backup role loses REPLICATION) arrives there and
 * resolves once backups succeed again; Redis down arrives after its hold and resolves.
 */

// Hold times × 0.05: RedisDown's 1 minute becomes 3 s. A failed backup is remembered 30 s
// (attempts fail every 10 s, so the alert stays up until the fix).
const HOLD_SCALE = '0.05';
const FAILURE_MEMORY = '30s';
const BACKUP_ROLE = 'warden_backup';
const wardens = new SpawnedWardens();
let serve: SpawnedWarden;
let wardenPort: number;

let cluster: TestCluster;
let redis: TestRedis;
let receiver: WebhookReceiver;
let prometheus: TestPrometheus;
const servers: LoopbackProcess[] = [];
let redisExporter: LoopbackProcess;

before(async () => {
  [cluster, redis, receiver] = await Promise.all([startCluster(), startRedis(), startWebhookReceiver()]);
  serve = await startFailingDaemon();
  redisExporter = await startRedisExporter(redis.port);
  const postgresExporter = await startPostgresExporter(`${cluster.url()}?sslmode=disable`);
  const nodeExporter = await startNodeExporter(['cpu', 'diskstats', 'filesystem', 'meminfo']);
  const alertmanager = await startAlertmanager({ webhookUrl: receiver.url });
  servers.push(redisExporter, postgresExporter, nodeExporter, alertmanager);
  const rules = await runWarden(
    ['monitoring', 'rules', '--hold-scale', HOLD_SCALE, '--failure-memory', FAILURE_MEMORY],
    { cwd: cluster.workDir },
  );
  assert.equal(rules.code, 0, rules.stderr);
  prometheus = await startPrometheus({
    rules: rules.stdout,
    alertmanagerPort: alertmanager.port,
    jobs: {
      redis: [`127.0.0.1:${redisExporter.port}`],
      postgres: [`127.0.0.1:${postgresExporter.port}`],
      node: [`127.0.0.1:${nodeExporter.port}`],
      warden: [`127.0.0.1:${wardenPort}`],
    },
  });
  servers.push(prometheus);
  await waitFor('every target scraped', 30_000, async () => {
    const targets = await prometheus.targets();
    return targets.length === 4 && targets.every((target) => target.health === 'up');
  });
});

/**
 * `warden serve` taking a full backup every 10 s as a role that lacks REPLICATION: every attempt
 * fails (WARDEN_E_ROLE_NOT_REPLICATION) until the test grants it.
 */
async function startFailingDaemon(): Promise<SpawnedWarden> {
  await cluster.query(`CREATE ROLE ${BACKUP_ROLE} LOGIN NOREPLICATION PASSWORD '${cluster.password}'`);
  const dir = cluster.workDir;
  await writeFile(
    path.join(dir, 'warden.yaml'),
    [
      'daemon:',
      '  profile: dev',
      '  walStreaming: false',
      '  schedules:',
      '    full-backup: "*/10 * * * * *"',
      '    backup: null',
      '    logical-dump: null',
      '    retention: null',
      '    verification: null',
      '    drill: null',
      '',
    ].join('\n'),
  );
  const daemon = wardens.spawn(
    [
      'serve',
      '--config',
      'warden.yaml',
      '--db',
      `postgres://${BACKUP_ROLE}@127.0.0.1:${cluster.port}/postgres?sslmode=disable`,
      '--repo',
      path.join(dir, 'repo'),
      '--no-encryption',
      '--http-port',
      '0',
    ],
    { cwd: dir, env: { ...process.env, PGPASSWORD: cluster.password } },
  );
  await waitFor('the metrics address', 60_000, () => /metrics: http:\/\/\S+\/metrics/.test(daemon.output()));
  wardenPort = Number(/metrics: http:\/\/[^\s/]+:(\d+)\/metrics/.exec(daemon.output())![1]);
  return daemon;
}

after(async () => {
  await wardens.killAll();
  for (const server of servers.reverse()) await server.stop();
  await Promise.all([receiver?.stop(), cluster?.stop(), redis?.stop()]);
});

test('every dashboard query is valid PromQL for the real Prometheus', async () => {
  for (const [file, dashboard] of grafanaDashboards()) {
    for (const panel of dashboard.panels) {
      for (const target of panel.targets ?? []) {
        // Grafana's variables, as Grafana substitutes them.
        const expr = target.expr.replaceAll('$__rate_interval', '1m').replace(/\$\w+/g, '.*');
        await assert.doesNotReject(prometheus.query(expr), `${file} "${panel.title}": ${expr}`);
      }
    }
  }
  // and the exporters' series are there to be read
  assert.equal((await prometheus.query('redis_up'))[0]?.value[1], '1');
  assert.equal((await prometheus.query('pg_up'))[0]?.value[1], '1');
});

test('Redis down reaches the webhook through Alertmanager after the (scaled) hold time, then resolves', async () => {
  const redisDown = (status: 'firing' | 'resolved') =>
    receiver.alerts().find((alert) => alert.labels.alertname === 'RedisDown' && alert.status === status);
  assert.equal(redisDown('firing'), undefined);
  const killedAt = Date.now();
  await redis.kill();
  await waitFor('RedisDown firing at the webhook', 60_000, () => redisDown('firing') !== undefined, 200);
  const firedAfterMs = Date.now() - killedAt;
  const firing = redisDown('firing')!;
  assert.equal(firing.labels.severity, 'critical');
  assert.equal(firing.labels.instance, `127.0.0.1:${redisExporter.port}`);
  assert.equal(firing.annotations.runbook_url, 'docs/alerts.md#redisdown');
  // startsAt is when Prometheus turned the alert to firing: held 3 s (1 minute × 0.05) after it
  // first saw redis_up 0, which was after the kill (100 ms for rounding of the timestamps).
  const firedAt = Date.parse(firing.startsAt);
  assert.ok(firedAt - killedAt >= 3000 - 100, `fired ${firedAt - killedAt} ms after the kill`);
  await redis.restart();
  await waitFor('RedisDown resolved at the webhook', 60_000, () => redisDown('resolved') !== undefined, 200);
  process.stdout.write(`# RedisDown: firing at the webhook ${firedAfterMs} ms after the kill\n`);
});

test('a failed backup reaches the webhook through Alertmanager at once, and resolves after backups succeed again', async () => {
  const backupFailed = (status: 'firing' | 'resolved') =>
    receiver
      .alerts()
      .find((alert) => alert.labels.alertname === 'WardenBackupFailed' && alert.status === status);
  await waitFor(
    'WardenBackupFailed firing at the webhook',
    60_000,
    () => backupFailed('firing') !== undefined,
    200,
  );
  const firing = backupFailed('firing')!;
  assert.equal(firing.labels.severity, 'critical');
  assert.equal(firing.labels.kind, 'full');
  assert.equal(firing.labels.cluster, 'default');
  assert.equal(firing.annotations.runbook_url, 'docs/alerts.md#wardenbackupfailed');
  assert.equal(backupFailed('resolved'), undefined);
  // Still failing: nothing resolves while the role lacks REPLICATION.
  const failures = Number((await prometheus.query('warden_backup_failures_total{kind="full"}'))[0]!.value[1]);
  assert.ok(failures >= 1, `failures: ${failures}`);

  const fixedAt = Date.now() / 1000;
  await cluster.query(`ALTER ROLE ${BACKUP_ROLE} REPLICATION`);
  await waitFor(
    'WardenBackupFailed resolved at the webhook',
    90_000,
    () => backupFailed('resolved') !== undefined,
    200,
  ).catch(async (error: unknown) => {
    // What Prometheus and the daemon saw, to tell a rule from a daemon problem.
    const seen = JSON.stringify(await prometheus.query('{__name__=~"warden_backup_.*|warden_job_.*"}'));
    assert.fail(`${String(error)}\nprometheus: ${seen}\ndaemon: ${serve.output().slice(-3000)}`);
  });
  // It resolved because backups succeed again: one did after the fix, and none failed since.
  const success = await prometheus.query('warden_backup_last_success_timestamp_seconds{kind="full"}');
  assert.ok(Number(success[0]?.value[1]) > fixedAt, 'a full backup succeeded after the fix');
  const failuresSinceFix = await prometheus.query(
    `increase(warden_backup_failures_total{kind="full"}[${FAILURE_MEMORY}])`,
  );
  assert.equal(Number(failuresSinceFix[0]!.value[1]), 0);
  // The scheduled job's own alert fired with the first failure and resolved with the first success.
  const jobAlerts = receiver.alerts().filter((alert) => alert.labels.alertname === 'WardenJobFailed');
  assert.ok(
    jobAlerts.some((alert) => alert.status === 'firing' && alert.labels.exported_job === 'full-backup'),
  );
  assert.ok(jobAlerts.some((alert) => alert.status === 'resolved'));
  assert.equal(serve.child.exitCode, null, serve.output());
});
