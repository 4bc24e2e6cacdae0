import { PassThrough, type Transform } from 'node:stream';
import zlib from 'node:zlib';
import { CompressStream, DecompressStream } from 'zstd-napi';
import { WardenError } from '../errors.ts';

export type Compression = 'zstd' | 'gzip' | 'none';
export const COMPRESSIONS: readonly Compression[] = ['zstd', 'gzip', 'none'];

const EXTENSIONS: Record<Compression, string> = { zstd: '.zst', gzip: '.gz', none: '' };
const DEFAULT_LEVELS: Record<Compression, number> = { zstd: 3, gzip: 6, none: 0 };

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
 * A streaming compressor. zstd runs with one background worker thread so compression overlaps
 * with receiving and hashing on the event loop; its frames carry a content checksum.
 */
export function createCompressor(kind: Compression, level = DEFAULT_LEVELS[kind]): Transform {
  switch (kind) {
    case 'zstd':
      return new CompressStream({ compressionLevel: level, checksumFlag: true, nbWorkers: 1 });
    case 'gzip':
      return zlib.createGzip({ level, chunkSize: 256 * 1024 });
    case 'none':
      return new PassThrough({ highWaterMark: 1024 * 1024 });
  }
}

export function createDecompressor(kind: Compression): Transform {
  switch (kind) {
    case 'zstd':
      return new DecompressStream();
    case 'gzip':
      return zlib.createGunzip({ chunkSize: 256 * 1024 });
    case 'none':
      return new PassThrough({ highWaterMark: 1024 * 1024 });
  }
}
