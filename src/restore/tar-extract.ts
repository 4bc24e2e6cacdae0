import { mkdir, open, symlink } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { WardenError } from '../errors.ts';

/**
 * Extracts a tar stream into `targetDir`, refusing entries that would land outside it.
 * Writes through file handles (no stream per file): a data directory has thousands of small
 * files, and per-file stream setup dominated restore time. Returns the number of files written.
 */
export async function extractTar(source: Readable, targetDir: string, label: string): Promise<number> {
  const extract = tar.extract();
  const madeDirs = new Set<string>();
  const ensureDir = async (dir: string) => {
    if (madeDirs.has(dir)) return;
    await mkdir(dir, { recursive: true, mode: 0o700 });
    madeDirs.add(dir);
  };
  let files = 0;
  const consume = (async () => {
    for await (const entry of extract) {
      const header = entry.header;
      const destination = safeDestination(targetDir, header.name, label);
      if (header.type === 'directory') {
        await ensureDir(destination);
        entry.resume();
      } else if (header.type === 'symlink' && header.linkname) {
        await ensureDir(path.dirname(destination));
        await symlink(header.linkname, destination);
        entry.resume();
      } else if (header.type === 'file') {
        await ensureDir(path.dirname(destination));
        const handle = await open(destination, 'w', (header.mode ?? 0o600) & 0o777);
        try {
          for await (const chunk of entry as AsyncIterable<Buffer>) await handle.write(chunk);
        } finally {
          await handle.close();
        }
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

/** Where a tar entry lands; refuses names that would leave `targetDir` (`../`, absolute paths). */
export function safeDestination(targetDir: string, name: string, label: string): string {
  const destination = path.resolve(targetDir, name);
  if (destination !== targetDir && !destination.startsWith(targetDir + path.sep)) {
    throw new WardenError('WARDEN_E_REPO_CORRUPT', `${label} holds an entry outside the target: ${name}`, {
      details: { object: label, entry: name },
    });
  }
  return destination;
}
