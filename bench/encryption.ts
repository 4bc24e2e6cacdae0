/**
 * Encryption cost: age STREAM throughput (node:crypto ChaCha20-Poly1305) for 256 MB against the
 * bare cipher and the pure-JS `age-encryption` library, and a full backup with vs without
 * encryption on a pgbench data set. Writes bench/reports/encryption.md.
 *
 *   node --import tsx bench/encryption.ts [--scale 20] [--runs 3]
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execFileSync } from 'node:child_process';
import { Decrypter, Encrypter } from 'age-encryption';
import { takeBackup } from '../src/backup/base-backup.ts';
import { restore } from '../src/restore/restore.ts';
import { X25519Identity } from '../src/pipeline/encryption/age-keys.ts';
import { inlineRunner } from '../src/pipeline/encryption/age-chunks.ts';
import { AgeDecryptStream, AgeEncryptStream } from '../src/pipeline/encryption/age-stream.ts';
import { FsObjectStore } from '../src/repository/fs/fs-object-store.ts';
import { connectionFromUrl } from '../src/postgres/connection-config.ts';
import { startCluster } from '../test/harness/postgres.ts';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(process.argv[i + 1]);
};
const SIZE = 256 * 1024 * 1024;
const RUNS = arg('runs', 3);
const SCALE = arg('scale', 20);
/** --md5-rows N: back up N rows of md5 text (compresses ~2×, like bench/s3.ts) instead of pgbench data. */
const MD5_ROWS = arg('md5-rows', 0);
const MB = 1024 * 1024;
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[]) => `${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)}`;

const block = randomBytes(MB);
function source(bytes: number): Readable {
  let sent = 0;
  return new Readable({
    read() {
      if (sent >= bytes) this.push(null);
      else {
        sent += MB;
        this.push(block);
      }
    },
  });
}
function sink(keep?: Buffer[]): Writable {
  return new Writable({
    write(chunk: Buffer, _e, cb) {
      keep?.push(chunk);
      cb();
    },
  });
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const start = performance.now();
  await fn();
  return (performance.now() - start) / 1000;
}

const identity = X25519Identity.generate();
const LOAD_START = os.loadavg()[0]!;

/** CPU seconds of this process's main thread (Linux: its task's utime + stime, in clock ticks of 1/100 s). */
function mainThreadCpu(): number {
  const fields = readFileSync(`/proc/self/task/${process.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
const rows: string[][] = [];

async function streamThroughput() {
  const enc: number[] = [];
  const dec: number[] = [];
  const raw: number[] = [];
  for (let run = 0; run < RUNS; run += 1) {
    const parts: Buffer[] = [];
    enc.push(
      SIZE /
        MB /
        (await timed(() => pipeline(source(SIZE), new AgeEncryptStream([identity.recipient]), sink(parts)))),
    );
    dec.push(
      SIZE /
        MB /
        (await timed(() =>
          pipeline(Readable.from(parts), new AgeDecryptStream({ identities: [identity] }), sink()),
        )),
    );
    raw.push(
      SIZE /
        MB /
        (await timed(async () => {
          const key = randomBytes(32);
          for (let off = 0, n = 0; off < SIZE; off += 64 * 1024, n += 1) {
            const nonce = Buffer.alloc(12);
            nonce.writeUInt32BE(n, 4);
            const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
            c.update(block.subarray(off % MB, (off % MB) + 64 * 1024));
            c.final();
            c.getAuthTag();
          }
        })),
    );
  }
  const encInline: number[] = [];
  const decInline: number[] = [];
  for (let run = 0; run < RUNS; run += 1) {
    const parts: Buffer[] = [];
    const runner = { runner: inlineRunner };
    encInline.push(
      SIZE /
        MB /
        (await timed(() =>
          pipeline(source(SIZE), new AgeEncryptStream([identity.recipient], runner), sink(parts)),
        )),
    );
    decInline.push(
      SIZE /
        MB /
        (await timed(() =>
          pipeline(Readable.from(parts), new AgeDecryptStream({ identities: [identity], ...runner }), sink()),
        )),
    );
  }
  rows.push([
    'warden age encrypt (stream, runs of 32 chunks on the worker pool)',
    median(enc).toFixed(0),
    spread(enc),
  ]);
  rows.push(['warden age decrypt (stream, on the worker pool)', median(dec).toFixed(0), spread(dec)]);
  rows.push([
    'warden age encrypt (stream, on the main thread: inlineRunner)',
    median(encInline).toFixed(0),
    spread(encInline),
  ]);
  rows.push([
    'warden age decrypt (stream, on the main thread: inlineRunner)',
    median(decInline).toFixed(0),
    spread(decInline),
  ]);
  rows.push(['bare node:crypto ChaCha20-Poly1305, 64 KiB calls', median(raw).toFixed(0), spread(raw)]);
  // the pure-JS library on a smaller buffer (it holds it all in memory)
  const lib = 64 * MB;
  const data = Buffer.concat(Array.from({ length: 64 }, () => block));
  const e = new Encrypter();
  e.addRecipient(identity.label);
  let encrypted: Uint8Array = new Uint8Array();
  const libEnc = lib / MB / (await timed(async () => void (encrypted = await e.encrypt(data))));
  const d = new Decrypter();
  d.addIdentity(identity.encode());
  const libDec = lib / MB / (await timed(async () => void (await d.decrypt(encrypted))));
  rows.push(['age-encryption (pure JS) encrypt, 64 MB', libEnc.toFixed(0), '1 run']);
  rows.push(['age-encryption (pure JS) decrypt, 64 MB', libDec.toFixed(0), '1 run']);
}

async function backupCost(): Promise<string[][]> {
  const cluster = await startCluster({ settings: { shared_buffers: '128MB' } });
  try {
    if (MD5_ROWS > 0) {
      await cluster.query(
        `CREATE TABLE bench AS SELECT g AS id, md5(g::text) || md5((g * 7)::text) AS v, now() AS t FROM generate_series(1, ${MD5_ROWS}) g`,
      );
      await cluster.query('CHECKPOINT');
    } else execFileSync('pgbench', ['-i', '-q', '-s', String(SCALE), cluster.url()], { stdio: 'ignore' });
    const [total] = await cluster.query<{ size: string }>(
      'SELECT sum(pg_database_size(oid))::text AS size FROM pg_database',
    );
    const dataMB = Number(total!.size) / MB;
    const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
    const result: string[][] = [];
    const modes = [
      ['zstd, no encryption', undefined],
      ['zstd + age (X25519)', { recipients: [identity.recipient], identities: [identity] }],
    ] as const;
    type Run = {
      backup: number;
      backupCpu: number;
      backupMain: number;
      restore: number;
      restoreCpu: number;
      restoreMain: number;
    };
    const runs = new Map<string, Run[]>();
    // Interleaved: each round runs every mode once, so load changes hit both alike. CPU is this
    // process's (main thread and workers), from process.cpuUsage.
    const cpuSeconds = (start: NodeJS.CpuUsage) => {
      const used = process.cpuUsage(start);
      return (used.user + used.system) / 1e6;
    };
    for (let run = 0; run < RUNS; run += 1) {
      for (const [label, keys] of modes) {
        const store = new FsObjectStore(path.join(cluster.workDir, `repo-${run}-${label.length}`));
        let id = '';
        let cpu = process.cpuUsage();
        let main = mainThreadCpu();
        const backup = await timed(async () => {
          const taken = await takeBackup({
            connection,
            store,
            slotName: 'warden',
            compression: 'zstd',
            ...(keys ? { keys: { recipients: keys.recipients } } : {}),
          });
          id = taken.backup.id;
        });
        const backupCpu = cpuSeconds(cpu);
        const backupMain = mainThreadCpu() - main;
        const targetDir = path.join(cluster.workDir, `restore-${run}-${label.length}`);
        cpu = process.cpuUsage();
        main = mainThreadCpu();
        const restored = await timed(async () => {
          await restore({
            store,
            target: { kind: 'backup', id },
            targetDir,
            ...(keys ? { keys: { identities: keys.identities } } : {}),
          });
        });
        const restoreCpu = cpuSeconds(cpu);
        const restoreMain = mainThreadCpu() - main;
        rmSync(targetDir, { recursive: true, force: true });
        runs.set(label, [
          ...(runs.get(label) ?? []),
          { backup, backupCpu, backupMain, restore: restored, restoreCpu, restoreMain },
        ]);
      }
    }
    const plain = runs.get(modes[0][0])!;
    for (const [label] of modes) {
      const r = runs.get(label)!;
      const ratio = (key: keyof Run) =>
        (median(r.map((x) => x[key])) / median(plain.map((x) => x[key]))).toFixed(2);
      result.push([
        label,
        `${median(r.map((x) => x.backup)).toFixed(2)} (${r.map((x) => x.backup.toFixed(2)).join(' / ')})`,
        `${median(r.map((x) => x.backupCpu)).toFixed(2)} / ${median(r.map((x) => x.backupMain)).toFixed(2)}`,
        `${median(r.map((x) => x.restore)).toFixed(2)} (${r.map((x) => x.restore.toFixed(2)).join(' / ')})`,
        `${median(r.map((x) => x.restoreCpu)).toFixed(2)} / ${median(r.map((x) => x.restoreMain)).toFixed(2)}`,
        `${ratio('backup')} / ${ratio('restore')}`,
        `${ratio('backupCpu')} / ${ratio('restoreCpu')}`,
      ]);
    }
    result.push([
      `data set: ${MD5_ROWS > 0 ? `${MD5_ROWS} rows of md5 text` : `pgbench -s ${SCALE}`}, ${dataMB.toFixed(0)} MB in databases`,
      '',
      '',
      '',
      '',
      '',
      '',
    ]);
    return result;
  } finally {
    await cluster.stop();
  }
}

await streamThroughput();
const backups = await backupCost();
const report = `# Encryption benchmark

\`node --import tsx bench/encryption.ts ${MD5_ROWS > 0 ? `--md5-rows ${MD5_ROWS}` : `--scale ${SCALE}`} --runs ${RUNS}\` — ${new Date().toISOString().slice(0, 10)}, ${process.version}, 2-vCPU shared machine (noisy: runs vary 10–15 %).

## age STREAM throughput, 256 MB (median of ${RUNS})

| path | MB/s | spread |
|---|---|---|
${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}

## Full backup and restore with and without encryption (median of ${RUNS} interleaved rounds, each a fresh repository)

Encryption runs after zstd, on the compressed bytes (pgbench data compresses ~20×, md5 text ~2×). Backup = \`takeBackup\` (stream, compress, encrypt, WAL to the
end, commit); restore = \`restore\` of that backup without starting the instance. Both seal and
open age chunks on the worker pool (runs of 32 chunks), as zstd does its frames. CPU is the bench
process's (main thread + workers, \`process.cpuUsage\`) and the main thread's alone
(\`/proc/self/task/<pid>/stat\`). 1-min load average: ${LOAD_START.toFixed(1)} at the start,
${os.loadavg()[0]!.toFixed(1)} at the end (2 vCPUs, shared).

| mode | backup wall s, median (runs) | backup CPU s: process / main thread | restore wall s, median (runs) | restore CPU s: process / main thread | wall ratio to plain, backup / restore | CPU ratio to plain, backup / restore |
|---|---:|---:|---:|---:|---:|---:|
${backups.map((r) => `| ${r.join(' | ')} |`).join('\n')}
`;
writeFileSync(new URL('reports/encryption.md', import.meta.url), report);
process.stdout.write(report);
