import { PassThrough, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { WardenError } from '../errors.ts';
import { ParallelZstdDecompressor } from './zstd-decompressor.ts';
import { ParallelZstdCompressor } from './zstd-pool.ts';

export type Compression = 'zstd' | 'gzip' | 'none';
export const COMPRESSIONS: readonly Compression[] = ['zstd', 'gzip', 'none'];

const EXTENSIONS: Record<Compression, string> = { zstd: '.zst', gzip: '.gz', none: '' };
// zstd level 1, not zstd's own default of 3: on pgbench data it stores the same ratio (~21x)
// with ~40 % less CPU, and on poorly compressible data (random md5 text) a slightly better ratio
// at several times the speed (level 3 spends most of its time on matches it never finds).
// bench/reports/core.md has the measurements.
export const DEFAULT_LEVELS: Readonly<Record<Compression, number>> = { zstd: 1, gzip: 6, none: 0 };

export function compressionExtension(kind: Compression): string {
  return EXTENSIONS[kind];
}

export function parseCompression(value: string, field: string): Compression {
  if ((COMPRESSIONS as readonly string[]).includes(value)) return value as Compression;
  throw new WardenError(
    'WARDEN_E_CONFIG_INVALID',
    `${field}: "${value}" is not a compression (${COMPRESSIONS.join(', ')})`,
    {
      details: { field },
    },
  );
}

/**
 * A streaming compressor. zstd compresses 2 MiB blocks (BLOCK_BYTES) on a pool of worker threads (one per
 * core) into independent frames, each with a content checksum, so compression runs in parallel
 * and off the event loop that receives the data.
 */
export function createCompressor(kind: Compression, level = DEFAULT_LEVELS[kind]): Transform {
  switch (kind) {
    case 'zstd':
      return new ParallelZstdCompressor(level);
    case 'gzip':
      return zlib.createGzip({ level, chunkSize: 256 * 1024 });
    case 'none':
      return new PassThrough({ highWaterMark: 1024 * 1024 });
  }
}

export function createDecompressor(kind: Compression): Transform {
  switch (kind) {
    case 'zstd':
      return new ParallelZstdDecompressor();
    case 'gzip':
      return zlib.createGunzip({ chunkSize: 256 * 1024 });
    case 'none':
      return new PassThrough({ highWaterMark: 1024 * 1024 });
  }
}
