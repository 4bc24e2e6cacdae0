import { createWriteStream } from 'node:fs';
import { mkdir, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { WardenError } from '../errors.ts';

/**
 * Extracts a tar stream into `targetDir`, refusing entries that would land outside it.
 * Returns the number of files written.
 */
export async function extractTar(source: Readable, targetDir: string, label: string): Promise<number> {
  const extract = tar.extract();
  let files = 0;
  const consume = (async () => {
    for await (const entry of extract) {
      const header = entry.header;
      const destination = path.resolve(targetDir, header.name);
      if (destination !== targetDir && !destination.startsWith(targetDir + path.sep)) {
        throw new WardenError('WARDEN_E_REPO_CORRUPT', `${label} holds an entry outside the target: ${header.name}`, {
          details: { object: label, entry: header.name },
        });
      }
      if (header.type === 'directory') {
        await mkdir(destination, { recursive: true, mode: 0o700 });
        entry.resume();
      } else if (header.type === 'symlink' && header.linkname) {
        await mkdir(path.dirname(destination), { recursive: true, mode: 0o700 });
        await symlink(header.linkname, destination);
        entry.resume();
      } else if (header.type === 'file') {
        await mkdir(path.dirname(destination), { recursive: true, mode: 0o700 });
        await pipeline(entry, createWriteStream(destination, { mode: (header.mode ?? 0o600) & 0o777, highWaterMark: 1024 * 1024 }));
        files += 1;
      } else {
        entry.resume();
      }
    }
  })();
  consume.catch((error: unknown) => extract.destroy(error as Error));
  await Promise.all([pipeline(source, extract), consume]);
  return files;
}
