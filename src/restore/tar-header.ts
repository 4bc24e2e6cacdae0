import { WardenError } from '../errors.ts';

export const TAR_BLOCK = 512;

export interface TarHeader {
  name: string;
  /** PostgreSQL writes files, directories and symlinks; the others are named to be refused. */
  type: 'file' | 'directory' | 'symlink' | 'hardlink' | 'device' | 'fifo' | 'other';
  mode: number;
  size: number;
  linkname: string;
}

/**
 * Parses one 512-byte ustar header, as PostgreSQL writes them (BASE_BACKUP archives): name with
 * the ustar prefix, octal or base-256 size, type, mode and link target. Returns 'end' for the
 * zero block that ends an archive. A damaged header (checksum) or an entry type that would rename
 * what follows (pax, GNU long names: PostgreSQL writes none) fails as a corrupt archive rather
 * than being extracted under a wrong name.
 */
export function parseTarHeader(block: Buffer, label: string): TarHeader | 'end' {
  if (block.every((byte) => byte === 0)) return 'end';
  const recorded = octal(block, 148, 8);
  let sum = 8 * 0x20; // the checksum field counts as spaces
  for (let i = 0; i < TAR_BLOCK; i += 1) if (i < 148 || i >= 156) sum += block[i]!;
  if (recorded !== sum)
    throw corrupt(label, `a tar header's checksum does not match (${recorded} vs ${sum})`);
  const flag = String.fromCharCode(block[156]!);
  if ('xgLKS'.includes(flag)) {
    throw corrupt(label, `unsupported tar entry type '${flag}' (not written by PostgreSQL)`);
  }
  let name = text(block, 0, 100);
  const prefix = block.toString('latin1', 257, 262) === 'ustar' ? text(block, 345, 155) : '';
  if (prefix) name = `${prefix}/${name}`;
  return {
    name,
    type: TYPES[flag] ?? 'other',
    mode: octal(block, 100, 8),
    size: size(block),
    linkname: text(block, 157, 100),
  };
}

const TYPES: Record<string, TarHeader['type']> = {
  '0': 'file',
  '\0': 'file',
  '1': 'hardlink',
  '2': 'symlink',
  '3': 'device',
  '4': 'device',
  '5': 'directory',
  '6': 'fifo',
};

function text(block: Buffer, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.toString('utf8', 0, end === -1 ? length : end);
}

function octal(block: Buffer, offset: number, length: number): number {
  const digits = text(block, offset, length).trim();
  return digits === '' ? 0 : parseInt(digits, 8);
}

/** Octal, or base-256 (high bit of the first byte set) for files of 8 GiB and more. */
function size(block: Buffer): number {
  if ((block[124]! & 0x80) === 0) return octal(block, 124, 12);
  let value = block[124]! & 0x7f;
  for (let i = 125; i < 136; i += 1) value = value * 256 + block[i]!;
  return value;
}

function corrupt(label: string, reason: string): WardenError {
  return new WardenError('WARDEN_E_REPO_CORRUPT', `${label}: ${reason}`, { details: { object: label } });
}
