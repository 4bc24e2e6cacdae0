import assert from 'node:assert/strict';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { alertRules, renderAlertRules } from '../../src/monitoring/alert-rules.ts';
import { resolveRuleOptions } from '../../src/monitoring/rule-options.ts';
import { runWarden } from '../harness/cli.ts';
import { tempDir } from '../harness/temp-dir.ts';
import { promtool } from './promtool.ts';

const root = fileURLToPath(new URL('../..', import.meta.url));
const deployDir = path.join(root, 'deploy/prometheus');
const shippedRules = path.join(deployDir, 'warden-rules.yml');

interface PromtoolTestFile {
  tests: { alert_rule_test?: { alertname: string; eval_time: string; exp_alerts: unknown[] }[] }[];
}

test('the shipped rule file is what `warden monitoring rules` prints, and promtool accepts it', async () => {
  const run = await runWarden(['monitoring', 'rules'], { cwd: root });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(
    run.stdout,
    await readFile(shippedRules, 'utf8'),
    'regenerate: warden monitoring rules > deploy/prometheus/warden-rules.yml',
  );
  const check = await promtool(['check', 'rules', shippedRules]);
  assert.equal(check.code, 0, check.output);
  const count = alertRules().groups.reduce((sum, group) => sum + group.rules.length, 0);
  assert.match(check.output, new RegExp(`SUCCESS: ${count} rules found`));
});

test('the requirements alert table is covered with its hold durations', () => {
  const hold = new Map(
    alertRules().groups.flatMap((group) => group.rules.map((rule) => [rule.alert, rule.for])),
  );
  // requirements §5: instance down 1 min, replication lag 2 min, disk / pools / connections /
  // latency / CPU 5 min, backup failure immediate.
  const table: Record<string, string> = {
    PostgresDown: '1m',
    RedisDown: '1m',
    PostgresReplicationLagWarning: '2m',
    PostgresReplicationLagCritical: '2m',
    HostDiskUsageHigh: '5m',
    HostDiskFreeLow: '5m',
    WardenBackupFailed: '0s',
    WardenVerificationFailed: '0s',
    ConnectionPoolExhausted: '5m',
    PostgresConnectionsHigh: '5m',
    HostDiskReadLatencyHigh: '5m',
    HostDiskWriteLatencyHigh: '5m',
    HostCpuHigh: '5m',
  };
  for (const [alert, duration] of Object.entries(table)) assert.equal(hold.get(alert), duration, alert);
  for (const rule of alertRules().groups.flatMap((group) => group.rules)) {
    assert.ok(['critical', 'warning'].includes(rule.labels.severity), rule.alert);
    assert.match(rule.annotations.runbook_url, /^docs\/alerts\.md#[a-z0-9-]+$/, rule.alert);
  }
});

test('every alert has promtool unit tests that see it fire and resolve, and they pass', async () => {
  const testsDir = path.join(deployDir, 'tests');
  const files = (await readdir(testsDir)).filter((name) => name.endsWith('.test.yml')).sort();
  const fired = new Set<string>();
  const quiet = new Set<string>();
  for (const file of files) {
    const content = parse(await readFile(path.join(testsDir, file), 'utf8')) as PromtoolTestFile;
    for (const group of content.tests) {
      for (const check of group.alert_rule_test ?? []) {
        (check.exp_alerts.length > 0 ? fired : quiet).add(check.alertname);
      }
    }
  }
  for (const rule of alertRules().groups.flatMap((group) => group.rules)) {
    assert.ok(fired.has(rule.alert), `no promtool test sees ${rule.alert} fire`);
    assert.ok(quiet.has(rule.alert), `no promtool test sees ${rule.alert} quiet (pending or resolved)`);
  }
  const run = await promtool(['test', 'rules', ...files], testsDir);
  assert.equal(run.code, 0, run.output);
  assert.equal(run.output.match(/SUCCESS/g)?.length, files.length, run.output);
});

test('--hold-scale shortens every hold time, --failure-memory the failed-backup window, and promtool accepts the result', async () => {
  const scaled = alertRules(resolveRuleOptions({ holdScale: '0.01' }));
  const rules = new Map(scaled.groups.flatMap((group) => group.rules.map((rule) => [rule.alert, rule])));
  assert.equal(rules.get('PostgresDown')?.for, '600ms');
  assert.equal(rules.get('HostCpuHigh')?.for, '3s');
  assert.equal(rules.get('WardenRestorableWindowShort')?.for, '36s');
  assert.equal(rules.get('WardenBackupFailed')?.for, '0s');
  assert.match(rules.get('WardenBackupFailed')!.expr, /\[1h\]/);
  const remembered = alertRules(resolveRuleOptions({ holdScale: '0.01', failureMemory: '20s' }));
  assert.match(
    remembered.groups.at(-1)!.rules.find((r) => r.alert === 'WardenBackupFailed')!.expr,
    /\[20s\].*offset 20s/,
  );
  const dir = await tempDir('rules-scaled');
  const file = path.join(dir, 'scaled.yml');
  await writeFile(file, renderAlertRules(resolveRuleOptions({ holdScale: '0.01', backupMaxAge: '30m' })));
  const check = await promtool(['check', 'rules', file]);
  assert.equal(check.code, 0, check.output);
  assert.match(await readFile(file, 'utf8'), /> 1800\n/);
});

test('rule options are validated, errors naming the flag with WARDEN_E_USAGE and exit 2', async () => {
  for (const flags of [
    { holdScale: '0' },
    { holdScale: '1.5' },
    { holdScale: 'fast' },
    { backupMaxAge: 'soon' },
    { backupMaxAge: '0s' },
    { slotRetainedMax: '10 parsecs' },
    { failureMemory: '-1h' },
    { runbookBase: 'https://x.example/alerts.md#top' },
  ]) {
    assert.throws(() => resolveRuleOptions(flags), { code: 'WARDEN_E_USAGE' }, JSON.stringify(flags));
  }
  assert.equal(resolveRuleOptions({ slotRetainedMax: '2GiB' }).slotRetainedMaxBytes, 2 * 1024 ** 3);
  const run = await runWarden(['monitoring', 'rules', '--hold-scale', '3', '--json'], { cwd: root });
  assert.equal(run.code, 2);
  const error = (JSON.parse(run.stdout) as { error: { code: string; details: { flag: string } } }).error;
  assert.equal(error.code, 'WARDEN_E_USAGE');
  assert.equal(error.details.flag, '--hold-scale');
});

test('docs/alerts.md explains every alert under the heading its runbook link points at, with its severity', async () => {
  const doc = await readFile(path.join(root, 'docs/alerts.md'), 'utf8');
  const headings = new Set([...doc.matchAll(/^### (\w+)$/gm)].map((match) => match[1]!));
  const rules = alertRules().groups.flatMap((group) => group.rules);
  for (const rule of rules) {
    assert.ok(headings.has(rule.alert), `docs/alerts.md has no "### ${rule.alert}"`);
    // GitHub's anchor of a one-word heading is the word in lower case.
    assert.equal(rule.annotations.runbook_url, `docs/alerts.md#${rule.alert.toLowerCase()}`);
    const row = new RegExp(
      `^\\| \\[${rule.alert}\\]\\(#${rule.alert.toLowerCase()}\\) \\| ${rule.labels.severity} \\|`,
      'm',
    );
    assert.match(doc, row, `the table's row of ${rule.alert}`);
  }
  assert.equal(headings.size, rules.length, 'an alert documented that the rules lack');
});
