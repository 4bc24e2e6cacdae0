import { open, readdir } from 'node:fs/promises';
import path from 'node:path';

/** fsyncs running at once: enough to keep the disk queue busy, few file descriptors. */
const CONCURRENCY = 16;

/**
 * Makes a directory tree durable, as initdb and pg_basebackup do for a data directory: fsync of
 * every regular file and directory below `root` (symlinks are not followed), then of `root`'s
 * parent, so its own entry survives a crash too. A restore calls this before it reports success:
 * its files are written without syncs, and PostgreSQL only syncs them at start-up when `fsync`
 * is on and the instance is started at all.
 */
export async function syncTree(root: string): Promise<number> {
  const queue: string[] = [];
  const walk = async (dir: string) => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) queue.push(full);
    }
    queue.push(dir); // after its entries
  };
  await walk(root);
  let next = 0;
  const worker = async () => {
    while (next < queue.length) await fsyncPath(queue[next++]!);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  await fsyncPath(path.dirname(root));
  return queue.length;
}

/** fsync of one file or directory (a directory: so the entries made in it survive a crash). */
export async function fsyncPath(target: string): Promise<void> {
  const handle = await open(target, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
