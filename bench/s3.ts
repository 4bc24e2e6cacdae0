/**
 * Backup and restore throughput into an S3-compatible repository (the test harness's local
 * s3rver on loopback) beside the filesystem repository, same cluster and data, same process.
 * Writes bench/reports/s3.md.
 *
 *   node --import tsx bench/s3.ts            # ~300 MB dataset, 3 rounds per mode
 *   BENCH_S3_ROWS=500000 BENCH_S3_ROUNDS=1 node --import tsx bench/s3.ts   # quick run
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { takeBackup } from '../src/backup/base-backup.ts';
import { X25519Identity } from '../src/pipeline/encryption/age-keys.ts';
import type { Compression } from '../src/pipeline/compression.ts';
import { connectionFromUrl } from '../src/postgres/connection-config.ts';
import { FsObjectStore } from '../src/repository/fs/fs-object-store.ts';
import type { ObjectStore } from '../src/repository/object-store.ts';
import type { S3ObjectStore } from '../src/repository/s3/s3-object-store.ts';
import { restore } from '../src/restore/restore.ts';
import { startCluster } from '../test/harness/postgres.ts';
import { startS3 } from '../test/harness/s3.ts';

const ROWS = Number(process.env.BENCH_S3_ROWS ?? 2_000_000);
const ROUNDS = Number(process.env.BENCH_S3_ROUNDS ?? 3);
const MiB = 1024 * 1024;

interface Sample {
  backupMs: number;
  restoreMs: number;
  rawBytes: number;
  storedBytes: number;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const log = (message: string) => process.stderr.write(`[bench s3] ${message}\n`);

const cluster = await startCluster();
const s3 = await startS3();
const stores: S3ObjectStore[] = [];
try {
  log(`loading ${ROWS} rows`);
  await cluster.query(
    `CREATE TABLE bench AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v, now() AS t FROM generate_series(1, ${ROWS}) g`,
  );
  await cluster.query('CHECKPOINT');
  const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
  const work = path.join(cluster.workDir, 'bench-s3');

  const identity = X25519Identity.generate();
  const modes: Array<{
    label: string;
    compression: Compression;
    store: () => Promise<ObjectStore>;
    encrypted?: boolean;
  }> = [];
  for (const compression of ['zstd', 'none'] as const) {
    modes.push({
      label: `filesystem, ${compression}`,
      compression,
      store: async () => new FsObjectStore(path.join(work, `fs-${compression}-${Date.now()}`)),
    });
    modes.push({
      label: `S3 (local s3rver), ${compression}`,
      compression,
      store: async () => {
        const store = await s3.newStore();
        stores.push(store);
        return store;
      },
    });
  }

  // The same zstd modes with client-side encryption (age, X25519) on every object.
  modes.push({
    label: 'filesystem, zstd + encryption',
    compression: 'zstd',
    encrypted: true,
    store: async () => new FsObjectStore(path.join(work, `fs-enc-${Date.now()}`)),
  });
  modes.push({
    label: 'S3 (local s3rver), zstd + encryption',
    compression: 'zstd',
    encrypted: true,
    store: async () => {
      const store = await s3.newStore();
      stores.push(store);
      return store;
    },
  });

  const results: Array<{ label: string; samples: Sample[] }> = [];
  for (const mode of modes) {
    const samples: Sample[] = [];
    for (let round = 0; round < ROUNDS; round += 1) {
      const store = await mode.store();
      const started = performance.now();
      const { backup } = await takeBackup({
        connection,
        store,
        slotName: 'bench',
        compression: mode.compression,
        ...(mode.encrypted ? { keys: { recipients: [identity.recipient] } } : {}),
      });
      const backupMs = performance.now() - started;
      const targetDir = path.join(work, `restore-${results.length}-${round}`);
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
      samples.push({
        backupMs,
        restoreMs,
        rawBytes: objects.reduce((n, o) => n + o.rawSize, 0),
        storedBytes: objects.reduce((n, o) => n + o.size, 0),
      });
      log(
        `${mode.label} round ${round + 1}: backup ${Math.round(backupMs)} ms, restore ${Math.round(restoreMs)} ms`,
      );
    }
    results.push({ label: mode.label, samples });
  }

  const rows = results.map(({ label, samples }) => {
    const raw = median(samples.map((s) => s.rawBytes)) / MiB;
    const stored = median(samples.map((s) => s.storedBytes)) / MiB;
    const backup = samples.map((s) => s.backupMs);
    const rest = samples.map((s) => s.restoreMs);
    const rate = (ms: number) => (raw / (ms / 1000)).toFixed(0);
    return `| ${label} | ${raw.toFixed(0)} | ${stored.toFixed(0)} | ${(median(backup) / 1000).toFixed(2)} s (${rate(median(backup))} MB/s) | ${(Math.min(...backup) / 1000).toFixed(2)}–${(Math.max(...backup) / 1000).toFixed(2)} s | ${(median(rest) / 1000).toFixed(2)} s (${rate(median(rest))} MB/s) | ${(Math.min(...rest) / 1000).toFixed(2)}–${(Math.max(...rest) / 1000).toFixed(2)} s |`;
  });
  const report = `## S3-compatible repository vs filesystem

Measured ${new Date().toISOString()} by \`bench/s3.ts\` on ${os.cpus().length} vCPU. Same cluster and data
(${ROWS.toLocaleString('en')} rows), ${ROUNDS} round(s) per mode, median and range. Backup = \`takeBackup\` (BASE_BACKUP
streamed through compression and SHA-256 into the repository, WAL to end of backup, commit); restore =
\`restore --backup ID\` without starting the instance (download, checksum, decompress, untar). MB/s is of the
uncompressed data directory. The S3 server is s3rver (filesystem-backed, single Node process) on loopback;
uploads are multipart with 8 MiB parts, 4 in parallel per object (≈32 MiB of buffers per object).
A real S3 endpoint adds network latency and bandwidth limits that this does not show; s3rver's own
CPU shares the 2 vCPUs with Warden and PostgreSQL here.

| repository, compression | raw MiB | stored MiB | backup (median) | backup range | restore (median) | restore range |
| --- | --- | --- | --- | --- | --- | --- |
${rows.join('\n')}
`;
  await mkdir('bench/reports', { recursive: true });
  await writeFile('bench/reports/s3.md', report);
  process.stdout.write(report);
} finally {
  for (const store of stores) store.destroy();
  await s3.stop();
  await cluster.stop();
}
