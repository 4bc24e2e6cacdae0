import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { DockerfileParser, type Instruction, type Property } from 'dockerfile-ast';
import type { DaemonStatus } from '../../src/daemon/daemon.ts';
import { createStatusApp } from '../../src/server/status-app.ts';

// The image cannot be built here (no container engine): its definition is parsed and checked for
// the properties an operator relies on, and its health check script is run against the real
// status app.
const containerfile = fileURLToPath(new URL('../../deploy/container/Containerfile', import.meta.url));
const healthcheck = fileURLToPath(new URL('../../deploy/container/healthcheck.sh', import.meta.url));
const SUPPORTED_MAJORS = [15, 17];

const dockerfile = DockerfileParser.parse(await readFile(containerfile, 'utf8'));
const instructions = dockerfile.getInstructions();
const lastFrom = instructions.map((i) => i.getKeyword()).lastIndexOf('FROM');
/** The stage the image is made of: everything after the last FROM. */
const finalStage = instructions.slice(lastFrom + 1);

const args = (instruction: Instruction) => instruction.getArguments().map((a) => a.getValue());
const keyword = (name: string) => finalStage.filter((i) => i.getKeyword() === name);
/** ENV and ARG instructions hold `NAME=value` properties. */
const properties = (instruction: Instruction) =>
  (instruction as unknown as { getProperties(): Property[] }).getProperties();
/** `["a", "b"]` exec form, which the parser splits at spaces like any other. */
const execForm = (instruction: Instruction, skip = 0) =>
  JSON.parse(args(instruction).slice(skip).join(' ')) as string[];

test('every base image is pinned to an exact release or a digest', () => {
  const froms = dockerfile.getFROMs();
  assert.ok(froms.length >= 1);
  for (const from of froms) {
    const tag = from.getImageTag() ?? '';
    const pinned = from.getImageDigest() !== null || /^\d+\.\d+\.\d+(-[a-z0-9.-]+)?$/.test(tag);
    assert.ok(pinned, `${from.getImage()}: pin an exact version (x.y.z) or a digest`);
  }
});

test('the image runs as an unprivileged user with a fixed id', () => {
  const users = keyword('USER');
  assert.ok(users.length >= 1, 'USER in the final stage');
  const user = args(users.at(-1)!)[0]!;
  const [name, group] = user.split(':');
  for (const id of [name, group]) {
    assert.ok(id !== undefined && /^\d+$/.test(id), `${user}: numeric uid:gid, so runAsNonRoot can check it`);
    assert.notEqual(Number(id), 0, `${user}: not root`);
  }
});

test('the image carries PostgreSQL server and client binaries of every supported major', () => {
  const installs = keyword('RUN')
    .map((run) => args(run).join(' '))
    .join('\n');
  for (const major of SUPPORTED_MAJORS) {
    assert.match(installs, new RegExp(`\\bpostgresql-${major}\\b`), `server ${major}`);
    assert.match(installs, new RegExp(`\\bpostgresql-client-${major}\\b`), `client ${major}`);
  }
});

test('everything the image writes is under a declared volume (read-only root filesystem)', () => {
  const volumes = keyword('VOLUME').flatMap((v) => execForm(v));
  const env = new Map(
    keyword('ENV').flatMap((e) => properties(e).map((p) => [p.getName(), p.getValue() ?? ''] as const)),
  );
  const workdir = args(keyword('WORKDIR').at(-1)!)[0];
  const writable = [env.get('HOME'), env.get('TMPDIR'), workdir];
  for (const dir of writable) {
    assert.ok(dir !== undefined, 'HOME, TMPDIR and WORKDIR are set');
    assert.ok(
      volumes.some((volume) => dir === volume || dir.startsWith(`${volume}/`)),
      `${dir} is not under a VOLUME (${volumes.join(', ')})`,
    );
  }
});

test('no secret is baked into ENV or ARG', () => {
  const secretName = /PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH/i;
  const secretValue = /AGE-SECRET-KEY|WARDEN-SIGNING-KEY|:\/\/[^/\s:@]+:[^@\s]+@|BEGIN [A-Z ]*PRIVATE KEY/;
  for (const instruction of instructions.filter((i) => ['ENV', 'ARG'].includes(i.getKeyword()))) {
    for (const property of properties(instruction)) {
      assert.doesNotMatch(
        property.getName(),
        secretName,
        `${instruction.getKeyword()} ${property.getName()}`,
      );
      assert.doesNotMatch(
        property.getValue() ?? '',
        secretValue,
        `${instruction.getKeyword()} ${property.getName()}`,
      );
    }
  }
});

test('the HEALTHCHECK probes /api/health with the script the image copies in', () => {
  const checks = keyword('HEALTHCHECK');
  assert.equal(checks.length, 1);
  const check = checks[0]!;
  assert.equal(args(check)[0], 'CMD');
  const [script, route] = execForm(check, 1);
  assert.equal(route, '/api/health');
  const copied = keyword('COPY').map((copy) => args(copy));
  assert.ok(
    copied.some((copy) => copy.at(-1) === script && copy[0] === 'deploy/container/healthcheck.sh'),
    `${script} is COPY'd from deploy/container/healthcheck.sh`,
  );
});

/** Runs the image's health check script against a status app on a free loopback port. */
async function probe(status: DaemonStatus, route: string): Promise<number> {
  const server = http.createServer(createStatusApp({ status: async () => status }));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const { port } = server.address() as AddressInfo;
    return await new Promise((resolve) => {
      execFile(
        'sh',
        [healthcheck, route],
        { env: { ...process.env, WARDEN_HEALTH_PORT: String(port) } },
        (error) => resolve(error ? Number(error.code) : 0),
      );
    });
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

const daemon = { startedAt: new Date(0).toISOString(), warnings: [] };

test('the health check script passes a healthy daemon and fails one that needs a person', async () => {
  assert.equal(await probe({ daemon, clusters: [] }, '/api/health'), 0);
  const alerting = {
    daemon,
    clusters: [{ name: 'db1', alerts: ['verification failed'] }],
  } as unknown as DaemonStatus;
  assert.equal(await probe(alerting, '/api/health'), 1);
  assert.equal(await probe({ daemon, clusters: [] }, '/api/no-such-route'), 1);
});
