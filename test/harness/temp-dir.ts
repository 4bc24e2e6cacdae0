import { rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { onExit } from './cleanup.ts';

/** The prefix of every temp directory the tests make; CI fails when one is left behind. */
export const TEMP_PREFIX = 'warden-';

/**
 * A new, empty temp directory (`warden-<name>-XXXXXX`), removed when the test process exits or
 * is interrupted, whether its tests passed or not. For a directory a test can remove itself
 * earlier, this is the fallback.
 */
export async function tempDir(name: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `${TEMP_PREFIX}${name}-`));
  onExit(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
