/**
 * Builds ustar archives byte by byte, with whatever names, types and link targets a test wants
 * (absolute names, `..`, hard links, devices): what a hostile repository could hold. tar-stream
 * would normalise or refuse some of them.
 */

export type TarEntryType =
  'file' | 'directory' | 'symlink' | 'hardlink' | 'chardev' | 'blockdev' | 'fifo' | 'contiguous';

export interface TarEntry {
  name: string;
  type?: TarEntryType;
  data?: Buffer | string;
  linkname?: string;
  mode?: number;
}

const FLAGS: Record<TarEntryType, string> = {
  file: '0',
  hardlink: '1',
  symlink: '2',
  chardev: '3',
  blockdev: '4',
  directory: '5',
  fifo: '6',
  contiguous: '7',
};

/** One archive: the entries, then the two zero blocks that end it (unless `open`). */
export function hostileTar(entries: readonly TarEntry[], options: { open?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  for (const entry of entries) {
    const data = entry.data === undefined ? Buffer.alloc(0) : Buffer.from(entry.data);
    parts.push(header(entry, data.length), data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  if (!options.open) parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** `archive` without its end-of-archive blocks, so entries can be appended to a real one. */
export function withoutEnd(archive: Buffer): Buffer {
  let at = 0;
  while (at + 512 <= archive.length && !archive.subarray(at, at + 512).every((b) => b === 0)) {
    const size = parseInt(
      archive
        .toString('latin1', at + 124, at + 136)
        .replace(/\0/g, '')
        .trim() || '0',
      8,
    );
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return archive.subarray(0, at);
}

function header(entry: TarEntry, size: number): Buffer {
  const block = Buffer.alloc(512);
  let name = entry.name;
  let prefix = '';
  if (Buffer.byteLength(name) > 100) {
    const cut = name.lastIndexOf('/', name.length - 1);
    prefix = name.slice(0, cut);
    name = name.slice(cut + 1);
  }
  block.write(name, 0, 100, 'utf8');
  const type = entry.type ?? 'file';
  octal(block, 100, 8, entry.mode ?? (type === 'directory' ? 0o700 : 0o600));
  octal(block, 108, 8, 0);
  octal(block, 116, 8, 0);
  octal(block, 124, 12, size);
  octal(block, 136, 12, 1_700_000_000);
  block.write(FLAGS[type], 156, 1, 'latin1');
  block.write(entry.linkname ?? '', 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 8, 'latin1');
  block.write(prefix, 345, 155, 'utf8');
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'latin1');
  return block;
}

function octal(block: Buffer, offset: number, length: number, value: number): void {
  block.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, length, 'latin1');
}
