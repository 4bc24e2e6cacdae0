#!/usr/bin/env node
// Runs the compiled build (dist/). An installed package ships dist/ only, and runs it. In a clone
// (src/ present), the TypeScript sources run through tsx (a devDependency) when they are newer
// than the build or WARDEN_FROM_SOURCE=1, so a developer never runs a stale build.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));

// restore_command runs once per WAL file: a segment already in the prefetcher's spool is served
// before anything else is loaded (bin/wal-get-fast.js).
if (process.argv[2] === 'wal' && process.argv[3] === 'get') {
  const { walGetFast } = await import('./wal-get-fast.js');
  // Any surprise here (a spool removed under it…) leaves the answer to the CLI.
  const status = await walGetFast(process.argv, fileURLToPath(import.meta.url)).catch(() => undefined);
  if (status !== undefined) process.exit(status);
}
const built = path.join(root, 'dist', 'cli', 'main.js');
const sources = path.join(root, 'src');

function newestMtime(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(full) : statSync(full).mtimeMs);
  }
  return newest;
}

function runFromSource() {
  if (!existsSync(path.join(sources, 'cli', 'main.ts'))) return false;
  if (process.env.WARDEN_FROM_SOURCE === '1' || !existsSync(built)) return true;
  return statSync(built).mtimeMs < newestMtime(sources);
}

let main;
if (runFromSource()) {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
} else {
  ({ main } = await import(pathToFileURL(built).href));
}
await main(process.argv);
