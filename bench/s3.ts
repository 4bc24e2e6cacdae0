/**
 * Backup and restore throughput into an S3-compatible repository (the test harness's local
 * s3rver on loopback) beside the filesystem repository, same cluster and data, same process,
 * interleaved round by round; and, as the storage path's own limit, a plain AWS SDK upload of the
 * bytes the same round's filesystem backup stored, to the same server. For each S3 backup it
 * counts the requests by kind, sums the server's own time per kind, and takes the CPU seconds of
 * the s3rver process and of Warden's. Writes bench/reports/s3.md.
 *
 *   node --import tsx bench/s3.ts            # ~230 MiB data directory, 3 rounds
 *   BENCH_S3_ROWS=500000 BENCH_S3_ROUNDS=1 node --import tsx bench/s3.ts   # quick run
 */
import { readFileSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { takeBackup } from '../src/backup/base-backup.ts';
import { X25519Identity } from '../src/pipeline/encryption/age-keys.ts';
import type { Compression } from '../src/pipeline/compression.ts';
import { connectionFromUrl } from '../src/postgres/connection-config.ts';
import { FsObjectStore } from '../src/repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../src/repository/object-store.ts';
import { createS3Client } from '../src/repository/s3/s3-client.ts';
import { DEFAULT_PART_SIZE, DEFAULT_QUEUE_SIZE } from '../src/repository/s3/s3-object-store.ts';
import { restore } from '../src/restore/restore.ts';
import { startCluster } from '../test/harness/postgres.ts';
import { startS3, type ServerRequest } from '../test/harness/s3.ts';
import { uploadWithSdk, type BaselineResult } from './s3-sdk-baseline.ts';

const ROWS = Number(process.env.BENCH_S3_ROWS ?? 2_000_000);
const ROUNDS = Number(process.env.BENCH_S3_ROUNDS ?? 3);
const MiB = 1024 * 1024;

interface Sample {
  backupMs: number;
  restoreMs: number;
  rawBytes: number;
  storedBytes: number;
  /** Backup steps by name, ms. */
  steps: Map<string, number>;
  /** CPU seconds of this process (Warden) during the backup. */
  wardenCpuS: number;
  /** S3 modes: CPU seconds of the s3rver process during the backup. */
  serverCpuS?: number;
  /** S3 modes: requests during the backup, count and summed server ms per kind. */
  requests?: Map<string, { count: number; ms: number }>;
  /** S3 modes: the SDK upload of the same round's filesystem backup objects. */
  baseline?: BaselineResult & { serverCpuS: number };
  /** Filesystem modes: the repository root and the backup's object keys (the baseline's input). */
  stored?: { root: string; keys: string[] };
}

interface Mode {
  label: string;
  compression: Compression;
  kind: 'fs' | 's3';
  encrypted?: boolean;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const log = (message: string) => process.stderr.write(`[bench s3] ${message}\n`);
/** utime + stime of a process in seconds (/proc/PID/stat fields 14 and 15, in clock ticks of 1/100 s). */
const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};
const ownCpu = () => {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1e6;
};
const byKind = (requests: ReadonlyArray<ServerRequest>) => {
  const kinds = new Map<string, { count: number; ms: number }>();
  for (const r of requests) {
    const entry = kinds.get(r.kind) ?? { count: 0, ms: 0 };
    entry.count += 1;
    entry.ms += r.ms;
    kinds.set(r.kind, entry);
  }
  return kinds;
};

const loadAtStart = os.loadavg()[0]!;
const cluster = await startCluster();
const s3 = await startS3({ logRequests: true });
const stores: ObjectStore[] = [];
const sdk = createS3Client({
  region: s3.region,
  endpoint: s3.endpoint,
  forcePathStyle: true,
  credentials: s3.credentials,
});
try {
  log(`loading ${ROWS} rows`);
  await cluster.query(
    `CREATE TABLE bench AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v, now() AS t FROM generate_series(1, ${ROWS}) g`,
  );
  await cluster.query('VACUUM ANALYZE bench');
  await cluster.query('CHECKPOINT');
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  const work = path.join(cluster.workDir, 'bench-s3');
  // Run as root, PostgreSQL (the `postgres` user) must be able to pass through to a restore target.
  await mkdir(work, { recursive: true });
  await chmod(work, 0o711);
  const identity = X25519Identity.generate();

  // Each filesystem mode right before its S3 twin: the S3 round's baseline uploads what it stored.
  const modes: Mode[] = [];
  for (const compression of ['zstd', 'none'] as const) {
    modes.push({ label: `filesystem, ${compression}`, compression, kind: 'fs' });
    modes.push({ label: `S3 (local s3rver), ${compression}`, compression, kind: 's3' });
  }
  modes.push({ label: 'filesystem, zstd + encryption', compression: 'zstd', kind: 'fs', encrypted: true });
  modes.push({
    label: 'S3 (local s3rver), zstd + encryption',
    compression: 'zstd',
    kind: 's3',
    encrypted: true,
  });

  const samples = new Map<Mode, Sample[]>(modes.map((mode) => [mode, []]));
  for (let round = 0; round < ROUNDS; round += 1) {
    let twin: Sample | undefined;
    for (const [index, mode] of modes.entries()) {
      let store: ObjectStore;
      let root: string | undefined;
      if (mode.kind === 'fs') {
        root = path.join(work, `fs-${index}-${round}`);
        store = new FsObjectStore(root);
      } else {
        store = await s3.newStore();
        stores.push(store);
      }
      const requestsBefore = s3.requests.length;
      const serverCpuBefore = cpuSeconds(s3.pid);
      const cpuBefore = ownCpu();
      const started = performance.now();
      const { backup, steps } = await takeBackup({
        connection,
        store,
        slotName: 'bench',
        compression: mode.compression,
        ...(mode.encrypted ? { keys: { recipients: [identity.recipient] } } : {}),
      });
      const backupMs = performance.now() - started;
      const wardenCpuS = ownCpu() - cpuBefore;
      const serverCpuS = cpuSeconds(s3.pid) - serverCpuBefore;
      const requests = byKind(s3.requests.slice(requestsBefore));
      const targetDir = path.join(work, `restore-${index}-${round}`);
      const restoreStarted = performance.now();
      await restore({
        store,
        target: { kind: 'backup', id: backup.id },
        targetDir,
        ...(mode.encrypted ? { keys: { identities: [identity] } } : {}),
      });
      const restoreMs = performance.now() - restoreStarted;
      await rm(targetDir, { recursive: true, force: true });
      const objects = [...backup.archives, backup.manifest];
      const sample: Sample = {
        backupMs,
        restoreMs,
        rawBytes: objects.reduce((n, o) => n + o.rawSize, 0),
        storedBytes: objects.reduce((n, o) => n + o.size, 0),
        steps: new Map(steps.map((step) => [step.name, step.durationMs])),
        wardenCpuS,
      };
      if (mode.kind === 'fs') {
        sample.stored = { root: root!, keys: objects.map((o) => o.key) };
        twin = sample;
      } else {
        sample.serverCpuS = serverCpuS;
        sample.requests = requests;
        const before = cpuSeconds(s3.pid);
        const baseline = await uploadWithSdk(sdk, twin!.stored!.root, twin!.stored!.keys, {
          partSize: DEFAULT_PART_SIZE,
          queueSize: DEFAULT_QUEUE_SIZE,
        });
        sample.baseline = { ...baseline, serverCpuS: cpuSeconds(s3.pid) - before };
        await rm(twin!.stored!.root, { recursive: true, force: true });
      }
      samples.get(mode)!.push(sample);
      log(
        `round ${round + 1} ${mode.label}: backup ${Math.round(backupMs)} ms, restore ${Math.round(restoreMs)} ms` +
          (sample.baseline ? `, SDK upload of the same bytes ${Math.round(sample.baseline.ms)} ms` : ''),
      );
    }
  }
  const loadAtEnd = os.loadavg()[0]!;
  await mkdir('bench/reports', { recursive: true });
  const report = renderReport(modes, samples, loadAtStart, loadAtEnd);
  await writeFile('bench/reports/s3.md', report);
  process.stdout.write(report);
} finally {
  sdk.destroy();
  for (const store of stores) (store as { destroy?: () => void }).destroy?.();
  await s3.stop();
  await cluster.stop();
}

function renderReport(
  modes: Mode[],
  samples: Map<Mode, Sample[]>,
  loadStart: number,
  loadEnd: number,
): string {
  const s = (ms: number) => (ms / 1000).toFixed(2);
  const spread = (values: number[], f: (v: number) => string) =>
    `${f(median(values))} (${f(Math.min(...values))}–${f(Math.max(...values))})`;
  const seconds = (values: number[]) => spread(values, (v) => `${s(v)} s`);
  const cpu = (values: number[]) => spread(values, (v) => v.toFixed(2));

  const throughput = modes.map((mode) => {
    const list = samples.get(mode)!;
    const raw = median(list.map((x) => x.rawBytes)) / MiB;
    const stored = median(list.map((x) => x.storedBytes)) / MiB;
    const backup = list.map((x) => x.backupMs);
    const rest = list.map((x) => x.restoreMs);
    const rate = (ms: number) => (raw / (ms / 1000)).toFixed(0);
    return `| ${mode.label} | ${raw.toFixed(0)} | ${stored.toFixed(0)} | ${seconds(backup)} | ${rate(median(backup))} | ${seconds(rest)} | ${rate(median(rest))} | ${cpu(list.map((x) => x.wardenCpuS))} |`;
  });

  // Per S3 mode: against the same round's filesystem backup and the SDK upload of its bytes.
  const ratios: string[] = [];
  const shares: string[] = [];
  const requestRows: string[] = [];
  for (const [index, mode] of modes.entries()) {
    if (mode.kind !== 's3') continue;
    const list = samples.get(mode)!;
    const fs = samples.get(modes[index - 1]!)!;
    const vsFs = list.map((x, round) => fs[round]!.backupMs / x.backupMs);
    const vsSdk = list.map((x) => x.baseline!.ms / x.backupMs);
    const extra = list.map((x, round) => x.backupMs - fs[round]!.backupMs);
    const step = (name: string) => list.map((x) => x.steps.get(name) ?? 0);
    const fsStep = (name: string) => fs.map((x) => x.steps.get(name) ?? 0);
    ratios.push(
      `| ${mode.label} | ${spread(vsFs, (v) => `${v.toFixed(2)}×`)} | ${spread(vsSdk, (v) => `${v.toFixed(2)}×`)} | ${seconds(extra)} | ${seconds(list.map((x) => x.baseline!.ms))} | ${seconds(step('stream base backup'))} vs ${seconds(fsStep('stream base backup'))} | ${seconds(step('archive WAL to end of backup'))} vs ${seconds(fsStep('archive WAL to end of backup'))} |`,
    );
    const complete = list.map((x) => x.requests!.get('CompleteMultipartUpload')?.ms ?? 0);
    const serverMs = list.map((x) => [...x.requests!.values()].reduce((n, k) => n + k.ms, 0));
    shares.push(
      `| ${mode.label} | ${cpu(list.map((x) => x.wardenCpuS))} | ${cpu(fs.map((x) => x.wardenCpuS))} | ${cpu(list.map((x) => x.serverCpuS!))} | ${seconds(serverMs)} | ${seconds(complete)} | ${cpu(list.map((x) => x.baseline!.clientCpuS))} / ${cpu(list.map((x) => x.baseline!.serverCpuS))} |`,
    );
    const kinds = [...new Set(list.flatMap((x) => [...x.requests!.keys()]))].sort();
    requestRows.push(
      `| ${mode.label} | ${kinds
        .map((kind) => {
          const counts = list.map((x) => x.requests!.get(kind)?.count ?? 0);
          const ms = list.map((x) => x.requests!.get(kind)?.ms ?? 0);
          return `${kind} ${median(counts)} (${Math.round(median(ms))} ms)`;
        })
        .join(', ')} |`,
    );
  }

  return `## S3-compatible repository vs filesystem

Measured ${new Date().toISOString()} by \`bench/s3.ts\` on ${os.cpus().length} vCPU, 1-minute load average
${loadStart.toFixed(1)} at the start and ${loadEnd.toFixed(1)} at the end (the machine is shared: other work ran).
Same cluster and data (${ROWS.toLocaleString('en')} rows), ${ROUNDS} interleaved round(s) (each round runs every
mode once, each filesystem mode right before its S3 twin), median (min–max). Backup = \`takeBackup\`
(BASE_BACKUP streamed through compression and SHA-256 into the repository, WAL to end of backup, commit);
restore = \`restore --backup ID\` without starting the instance (download, checksum, decompress, untar).
MB/s is of the uncompressed data directory. The S3 server is s3rver (filesystem-backed, single Node
process) on loopback; its CPU shares the 2 vCPUs with Warden and PostgreSQL. Multipart uploads use
${DEFAULT_PART_SIZE / MiB} MiB parts, ${DEFAULT_QUEUE_SIZE} in flight per object.

| repository, compression | raw MiB | stored MiB | backup | backup MB/s | restore | restore MB/s | Warden CPU s (backup) |
| --- | --- | --- | --- | --- | --- | --- | --- |
${throughput.join('\n')}

### S3 backup against the filesystem backup and against a plain SDK upload

"SDK upload" = the objects the same round's filesystem backup stored (same bytes, sizes and
keys), uploaded one after the other with \`@aws-sdk/lib-storage\` \`Upload\` (PutObject when one
part holds the object, multipart otherwise; same part size and parallelism; bodies already in
memory) to a new bucket on the same s3rver: the storage path's own limit. Speed ratios are
per round (time of the other / time of the S3 backup; ≥ 1 means the S3 backup was faster).

| mode | speed vs filesystem backup | speed vs SDK upload of its bytes | S3 extra time over filesystem | SDK upload | step "stream base backup" S3 vs fs | step "archive WAL" S3 vs fs |
| --- | --- | --- | --- | --- | --- | --- |
${ratios.join('\n')}

### Whose time: Warden's process against s3rver's

CPU seconds (user + system) during the backup. "Server busy" sums s3rver's own time over the
backup's requests (from a request's arrival to its response; concurrent requests overlap, so it
can exceed the wall time); CompleteMultipartUpload is where s3rver reads every part back and
writes the object again with its MD5, after the last byte has been sent.

| mode | Warden CPU s (S3) | Warden CPU s (fs twin) | s3rver CPU s | server busy | of which CompleteMultipartUpload | SDK upload: client / s3rver CPU s |
| --- | --- | --- | --- | --- | --- | --- |
${shares.join('\n')}

Requests per backup by kind (median count over the rounds, median summed server time):

| mode | requests |
| --- | --- |
${requestRows.join('\n')}
`;
}
