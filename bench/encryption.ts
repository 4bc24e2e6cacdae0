/**
 * Encryption cost: age STREAM throughput (node:crypto ChaCha20-Poly1305) for 256 MB against the
 * bare cipher and the pure-JS `age-encryption` library, and a full backup with vs without
 * encryption on a pgbench data set. Writes bench/reports/encryption.md.
 *
 *   node --import tsx bench/encryption.ts [--scale 20] [--runs 3]
 */
import { createCipheriv, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execFileSync } from 'node:child_process';
import { Decrypter, Encrypter } from 'age-encryption';
import { takeBackup } from '../src/backup/base-backup.ts';
import { X25519Identity } from '../src/pipeline/encryption/age-keys.ts';
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
  rows.push(['warden age encrypt (stream, 64 KiB chunks)', median(enc).toFixed(0), spread(enc)]);
  rows.push(['warden age decrypt (stream)', median(dec).toFixed(0), spread(dec)]);
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
    execFileSync('pgbench', ['-i', '-q', '-s', String(SCALE), cluster.url()], { stdio: 'ignore' });
    const [total] = await cluster.query<{ size: string }>(
      'SELECT sum(pg_database_size(oid))::text AS size FROM pg_database',
    );
    const dataMB = Number(total!.size) / MB;
    const connection = { ...connectionFromUrl(cluster.url()), tls: 'disable' as const };
    const result: string[][] = [];
    const modes = [
      ['zstd, no encryption', undefined],
      ['zstd + age (X25519)', { recipients: [identity.recipient] }],
    ] as const;
    const times = new Map<string, number[]>();
    for (let run = 0; run < RUNS; run += 1) {
      for (const [label, keys] of modes) {
        const store = new FsObjectStore(path.join(cluster.workDir, `repo-${run}-${label.length}`));
        const seconds = await timed(async () => {
          await takeBackup({
            connection,
            store,
            slotName: 'warden',
            compression: 'zstd',
            ...(keys ? { keys } : {}),
          });
        });
        times.set(label, [...(times.get(label) ?? []), seconds]);
      }
    }
    for (const [label] of modes) {
      const t = times.get(label)!;
      result.push([
        label,
        median(t).toFixed(2),
        (dataMB / median(t)).toFixed(0),
        t.map((x) => x.toFixed(2)).join(' / '),
      ]);
    }
    result.push([`data set: pgbench -s ${SCALE}, ${dataMB.toFixed(0)} MB in databases`, '', '', '']);
    return result;
  } finally {
    await cluster.stop();
  }
}

await streamThroughput();
const backups = await backupCost();
const report = `# Encryption benchmark

\`node --import tsx bench/encryption.ts --scale ${SCALE} --runs ${RUNS}\` — ${new Date().toISOString().slice(0, 10)}, ${process.version}, 2-vCPU shared machine (noisy: runs vary 10–15 %).

## age STREAM throughput, 256 MB (median of ${RUNS})

| path | MB/s | spread |
|---|---|---|
${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}

## Full backup with and without encryption (median of ${RUNS}, each run a fresh repository)

Encryption runs after zstd, on the compressed bytes (pgbench data compresses ~20×), so it costs a
fraction of the raw-data rate.

| mode | wall s | MB/s of data | runs |
|---|---|---|---|
${backups.map((r) => `| ${r.join(' | ')} |`).join('\n')}
`;
writeFileSync(new URL('reports/encryption.md', import.meta.url), report);
process.stdout.write(report);
