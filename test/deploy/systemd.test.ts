import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chmod, cp, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../harness/temp-dir.ts';

const unitFile = fileURLToPath(new URL('../../deploy/systemd/warden.service', import.meta.url));
const analyze = spawnSync('systemd-analyze', ['--version']).status === 0;
// scripts/ensure-test-deps.sh installs systemd-analyze (Debian's `systemd` package), so a missing
// tool fails the checks below instead of passing them silently; a machine that cannot have it
// says so explicitly with WARDEN_SKIP_SYSTEMD_ANALYZE=1.
const skip =
  !analyze && process.env.WARDEN_SKIP_SYSTEMD_ANALYZE === '1'
    ? 'systemd-analyze is not installed (WARDEN_SKIP_SYSTEMD_ANALYZE=1)'
    : false;

function requireAnalyze(): void {
  assert.ok(
    analyze,
    'systemd-analyze is not installed: run scripts/ensure-test-deps.sh (Debian package `systemd`), ' +
      'or set WARDEN_SKIP_SYSTEMD_ANALYZE=1 to skip these checks on purpose',
  );
}

/** `[Section]` → key → values (a key may repeat), as systemd reads a unit file. */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const section = /^\[(.+)\]$/.exec(line);
    if (section) {
      current = new Map();
      sections.set(section[1]!, current);
      continue;
    }
    const [key, ...value] = line.split('=');
    assert.ok(current && key, `line outside a section: ${line}`);
    current.set(key, [...(current.get(key) ?? []), value.join('=')]);
  }
  return sections;
}

/**
 * A root directory with the host's system units, the unit and a stand-in for the installed
 * `warden` binary, so `systemd-analyze --root` checks the unit as on a machine where Warden is
 * installed (it refuses an ExecStart whose program does not exist).
 */
async function installedRoot(): Promise<string> {
  const root = await tempDir('systemd');
  const service = parseUnit(await readFile(unitFile, 'utf8')).get('Service')!;
  const program = service.get('ExecStart')![0]!.split(' ')[0]!;
  await mkdir(path.join(root, path.dirname(program)), { recursive: true });
  await writeFile(path.join(root, program), '#!/bin/sh\n');
  await chmod(path.join(root, program), 0o755);
  await cp('/usr/lib/systemd/system', path.join(root, 'usr/lib/systemd/system'), { recursive: true });
  await mkdir(path.join(root, 'etc/systemd/system'), { recursive: true });
  await cp(unitFile, path.join(root, 'etc/systemd/system/warden.service'));
  return root;
}

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile('systemd-analyze', args, (error, stdout, stderr) =>
      resolve({ code: error ? Number(error.code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('systemd-analyze verify accepts the unit without a warning', { skip }, async () => {
  requireAnalyze();
  const root = await installedRoot();
  const verified = await run(['verify', `--root=${root}`, 'warden.service']);
  assert.equal(verified.code, 0, verified.stderr);
  // Unknown keys and unparsable values are only warnings, with status 0: none is allowed.
  assert.equal(verified.stderr, '');
});

test("systemd-analyze security rates the unit's exposure low", { skip }, async () => {
  requireAnalyze();
  const root = await installedRoot();
  const rated = await run(['security', '--offline=true', `--root=${root}`, 'warden.service']);
  assert.equal(rated.code, 0, rated.stderr);
  const exposure = /Overall exposure level for warden\.service: ([\d.]+)/.exec(rated.stdout);
  assert.ok(exposure, rated.stdout);
  assert.ok(Number(exposure[1]) <= 2, `exposure ${exposure[1]} (0 = fully confined, 10 = exposed)`);
});

test('the unit runs as its own user with the hardening options set', async () => {
  const service = parseUnit(await readFile(unitFile, 'utf8')).get('Service')!;
  const one = (key: string) => {
    const values = service.get(key);
    assert.ok(values, `${key}= is set`);
    return values.at(-1);
  };
  assert.ok(!['root', '0', undefined].includes(one('User')));
  assert.match(one('ExecStart')!, /\/warden serve\b/);
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('NoNewPrivileges'), 'true');
  assert.equal(one('PrivateTmp'), 'true');
  assert.equal(one('ProtectHome'), 'true');
  assert.equal(one('CapabilityBoundingSet'), '', 'no capabilities');
  assert.equal(one('AmbientCapabilities'), '');
  assert.ok(one('ReadWritePaths')!.split(' ').includes('/var/lib/warden'));
  assert.equal(one('KillSignal'), 'SIGTERM');
  assert.equal(one('UMask'), '0077');
});
