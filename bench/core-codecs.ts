/**
 * Codec choice for base backups: single-core speed and ratio of the candidate codecs on the same
 * bytes a backup compresses (a `pg_basebackup -Ft` base.tar of pgbench data, and random md5
 * text), cut into the blocks Warden compresses independently. Writes bench/reports/core-codecs.md.
 *
 *   node --import tsx bench/core-codecs.ts
 *
 * CPU seconds of this thread (process.cpuUsage, single-threaded here) rather than wall time, so
 * a loaded machine skews the figures less. Knobs: BENCH_CODEC_SCALE (20), BENCH_CODEC_ROUNDS (3).
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { BLOCK_BYTES } from '../src/pipeline/block-pool.ts';
import { startCluster } from '../test/harness/postgres.ts';

const SCALE = Number(process.env.BENCH_CODEC_SCALE ?? 20);
const ROUNDS = Number(process.env.BENCH_CODEC_ROUNDS ?? 3);
const PGBIN = '/usr/lib/postgresql/15/bin';
const ROOT = path.resolve(import.meta.dirname, '..');
const REPORT = path.join(ROOT, 'bench', 'reports', 'core-codecs.md');

const require = createRequire(import.meta.url);
const zstd = require('zstd-napi/binding.js') as {
  CCtx: new () => {
    setParameter(p: number, v: number): void;
    compress2(dst: Uint8Array, src: Uint8Array): number;
  };
  CParameter: { compressionLevel: number; checksumFlag: number };
  compressBound(n: number): number;
};
const lz4 = require('lz4-napi') as {
  compressFrameSync(data: Buffer, options?: { contentChecksum?: boolean }): Buffer;
};

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${stderr.slice(-1000)}`)),
    );
  });
}

async function pgbenchBaseTar(): Promise<Buffer> {
  const cluster = await startCluster({ settings: { shared_buffers: '128MB' } });
  try {
    const env = {
      PGHOST: '127.0.0.1',
      PGPORT: String(cluster.port),
      PGUSER: 'postgres',
      PGPASSWORD: cluster.password,
    };
    await run(`${PGBIN}/pgbench`, ['-i', '-q', '-s', String(SCALE), 'postgres'], env);
    await cluster.query('CHECKPOINT');
    const dir = path.join(cluster.workDir, 'codec-bb');
    await run(`${PGBIN}/pg_basebackup`, ['-D', dir, '-Ft', '-X', 'none', '-c', 'fast'], env);
    return await readFile(path.join(dir, 'base.tar'));
  } finally {
    await cluster.stop();
  }
}

function md5Text(bytes: number): Buffer {
  const parts: string[] = [];
  let size = 0;
  for (let i = 0; size < bytes; i += 1) {
    const row = createHash('md5').update(`${i}:${Math.random()}`).digest('hex');
    parts.push(row);
    size += row.length;
  }
  return Buffer.from(parts.join('')).subarray(0, bytes);
}

interface Codec {
  name: string;
  note: string;
  compress(block: Buffer): number;
}

function zstdCodec(level: number, note: string): Codec {
  const cctx = new zstd.CCtx();
  cctx.setParameter(zstd.CParameter.checksumFlag, 1);
  cctx.setParameter(zstd.CParameter.compressionLevel, level);
  const target = Buffer.allocUnsafe(zstd.compressBound(BLOCK_BYTES));
  return { name: `zstd level ${level}`, note, compress: (block) => cctx.compress2(target, block) };
}

const CODECS: Codec[] = [
  zstdCodec(3, 'zstd default; Warden before this change'),
  zstdCodec(1, 'Warden default now'),
  zstdCodec(-1, 'zstd "fast" level'),
  zstdCodec(-3, 'zstd "fast" level'),
  {
    name: 'lz4 frame (lz4-napi)',
    note: 'lz4_flex, frame format, content checksum',
    compress: (block) => lz4.compressFrameSync(block, { contentChecksum: true }).length,
  },
  {
    name: 'gzip level 6 (node:zlib)',
    note: 'Warden --compression gzip',
    compress: (block) => zlib.gzipSync(block, { level: 6 }).length,
  },
];

function measure(codec: Codec, data: Buffer): { mbPerCpuS: number; ratio: number } {
  const blocks: Buffer[] = [];
  for (let offset = 0; offset < data.length; offset += BLOCK_BYTES)
    blocks.push(data.subarray(offset, offset + BLOCK_BYTES));
  const speeds: number[] = [];
  let stored = 0;
  for (let round = 0; round < ROUNDS; round += 1) {
    stored = 0;
    const before = process.cpuUsage();
    for (const block of blocks) stored += codec.compress(block);
    const used = process.cpuUsage(before);
    speeds.push(data.length / 1e6 / ((used.user + used.system) / 1e6));
  }
  speeds.sort((a, b) => a - b);
  return { mbPerCpuS: speeds[Math.floor((speeds.length - 1) / 2)]!, ratio: data.length / stored };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const load = os.loadavg()[0]!;
  const baseTar = await pgbenchBaseTar();
  const text = md5Text(64 * 1024 * 1024);
  const sets = [
    { name: `pgbench -s ${SCALE} base.tar (${(baseTar.length / 1e6).toFixed(0)} MB)`, data: baseTar },
    { name: `random md5 hex text (${(text.length / 1e6).toFixed(0)} MB)`, data: text },
  ];
  const rows: string[] = [];
  for (const codec of CODECS) {
    const cells = sets.map(({ data }) => measure(codec, data));
    rows.push(
      `| ${codec.name} | ${cells.map((c) => `${c.mbPerCpuS.toFixed(0)} | ${c.ratio.toFixed(2)}×`).join(' | ')} | ${codec.note} |`,
    );
  }
  const report = [
    '## Codec choice for base backups (single core)',
    '',
    `Generated by \`node --import tsx bench/core-codecs.ts\` on ${startedAt.toISOString()}; 1-minute load average ${load.toFixed(1)} at the start (shared 2-vCPU machine). Each codec compresses the data in independent ${BLOCK_BYTES / 2 ** 20} MiB blocks, as Warden's workers do; speed is MB of input per CPU second of this thread, median of ${ROUNDS} rounds.`,
    '',
    `| codec | ${sets.map((s) => `${s.name}: MB per CPU s | ratio`).join(' | ')} | note |`,
    `|---|${sets.map(() => '---:|---:').join('|')}|---|`,
    ...rows,
    '',
  ].join('\n');
  await writeFile(REPORT, report);
  console.log(report);
}

await main();
