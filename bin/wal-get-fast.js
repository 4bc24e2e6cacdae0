// The fast path of `warden wal get %f %p` (restore_command), run before the CLI is loaded: a
// segment the background prefetcher (`warden wal prefetch`, src/restore/wal-prefetcher.ts) has
// already fetched, verified and decrypted into the spool is moved to %p, and the process exits
// without loading the CLI, its configuration or its keys. Plain node:fs and node:crypto only:
// this file is what a restore_command call costs when the prefetcher keeps ahead.
//
// Spool protocol (docs/wal-archive-commands.md#the-background-prefetcher), shared with
// src/restore/wal-spool.ts:
// - `<root>/<key>/` where root is --spool-dir or `warden-spool` beside %p (pg_wal), and key a
//   digest of the data directory and the command's flags, so another repository or key set
//   never shares a spool. Both directories must be real directories (not symlinks), owned by
//   this OS user, closed to group and others; otherwise the fast path steps aside.
// - A segment is ready only under the name `<segment>.sha256-<hex>`: the prefetcher writes a
//   temp name and renames it into place, so a half-written file never has that name, and the
//   fast path serves a file only if its SHA-256 is the one in its name.
// - `want` (the segment asked for, written here on a miss), `state.json` (the prefetcher's
//   verdict on the segment it could not fetch) and `prefetcher.pid` (its lock).
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const SEGMENT = /^[0-9A-F]{24}$/;
// PostgreSQL passes pg_wal/RECOVERYXLOG; the fast path takes only a plain name inside pg_wal.
const TARGET = /^pg_wal\/[A-Za-z0-9_.-]+$/;
const READY = '.sha256-';
const HEX64 = /^[0-9a-f]{64}$/;
/** How long a call waits for the prefetcher to deliver the segment it asked for. */
const WAIT_MS = 60_000;
const POLL_MS = 25;
/** Flags of `wal get` that take a value (all others the fast path may see are switches). */
const VALUE_FLAGS = new Set(['--spool-dir', '--prefetch', '--prefetch-idle']);

/**
 * `undefined`: not handled here, run the CLI (it validates, fetches, reports errors).
 * A number: the exit status (0 served, 1 the repository does not hold the segment).
 */
export async function walGetFast(argv, script) {
  if (argv[2] !== 'wal' || argv[3] !== 'get') return undefined;
  const [file, target, ...flags] = argv.slice(4);
  if (file === undefined || target === undefined || !SEGMENT.test(file) || !TARGET.test(target))
    return undefined;
  const options = parseFlags(flags);
  if (!options || options.prefetch === 0) return undefined;
  const spool = openSpool(options.spoolDir ?? path.join('pg_wal', 'warden-spool'), flags);
  if (!spool) return undefined;
  if (serve(spool, file, target)) return 0;

  const wantedAt = Date.now();
  let child;
  let childGone = false;
  const start = () => {
    writeAtomically(path.join(spool, 'want'), JSON.stringify({ segment: file, at: wantedAt }));
    if (prefetcherAlive(spool)) return;
    child = spawn(process.execPath, [script, 'wal', 'prefetch', file, '--spool', spool, ...flags], {
      detached: true,
      stdio: 'ignore',
    });
    child.on('error', () => (childGone = true));
    child.on('exit', () => (childGone = true));
    child.unref();
  };
  start();
  const deadline = wantedAt + WAIT_MS;
  while (Date.now() < deadline) {
    await sleep(POLL_MS);
    if (serve(spool, file, target)) return 0;
    const verdict = readState(spool);
    if (verdict?.segment === file && verdict.at >= wantedAt) return verdict.missing === true ? 1 : undefined;
    if ((child === undefined || childGone) && !prefetcherAlive(spool)) {
      if (serve(spool, file, target)) return 0;
      // The prefetcher seen alive stopped (idle) before it read our want: start one, once.
      if (child === undefined) start();
      else return undefined;
    }
  }
  return undefined;
}

function parseFlags(flags) {
  const options = {};
  for (let i = 0; i < flags.length; i += 1) {
    const [flag, inline] = flags[i].split(/=(.*)/s, 2);
    if (flag === '--json' || flag === '--help' || flag === '-h') return undefined;
    if (!VALUE_FLAGS.has(flag)) continue;
    const value = inline ?? flags[(i += 1)];
    if (value === undefined) return undefined;
    if (flag === '--spool-dir') options.spoolDir = value;
    if (flag === '--prefetch') options.prefetch = Number(value);
  }
  return options;
}

/** The spool of a restore_command: `<root>/<digest of the data directory and the flags>`. */
export function spoolDirectory(root, flags, cwd = process.cwd()) {
  const key = createHash('sha256')
    .update(JSON.stringify([cwd, ...flags]))
    .digest('hex')
    .slice(0, 16);
  return path.join(root, key);
}

/** The spool directory, created private; undefined when it is not safely ours. */
function openSpool(root, flags) {
  const dir = spoolDirectory(root, flags);
  try {
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    for (const each of [root, dir]) if (!privateToUs(fs.lstatSync(each), true)) return undefined;
  } catch {
    return undefined;
  }
  return dir;
}

function privateToUs(info, directory) {
  const ours = typeof process.getuid !== 'function' || info.uid === process.getuid();
  const kind = directory ? info.isDirectory() : info.isFile() && info.nlink === 1;
  return kind && ours && (info.mode & 0o077) === 0;
}

/**
 * Moves the ready segment to %p when its content is what its name says. The file is first
 * renamed out of the spool next to %p (or copied, across file systems), then hashed there, so
 * what is checked is what is served; a file that fails the check is removed, never served.
 */
function serve(spool, file, target) {
  let ready;
  try {
    ready = fs.readdirSync(spool).find((entry) => entry.startsWith(file + READY));
  } catch {
    return false;
  }
  const expected = ready?.slice(file.length + READY.length);
  if (ready === undefined || !HEX64.test(expected)) return false;
  const source = path.join(spool, ready);
  const temp = `${target}.warden-${process.pid}-${randomBytes(4).toString('hex')}`;
  try {
    try {
      fs.renameSync(source, temp);
    } catch (error) {
      if (error.code !== 'EXDEV') throw error;
      fs.copyFileSync(source, temp, fs.constants.COPYFILE_EXCL);
      fs.rmSync(source, { force: true });
    }
    if (!verified(temp, expected)) {
      fs.rmSync(temp, { force: true });
      return false;
    }
    fs.renameSync(temp, target);
    return true;
  } catch {
    fs.rmSync(temp, { force: true });
    return false;
  }
}

function verified(file, expected) {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    if (!privateToUs(fs.fstatSync(fd), false)) return false;
    const hash = createHash('sha256');
    const buffer = Buffer.allocUnsafe(1 << 20);
    for (let read; (read = fs.readSync(fd, buffer, 0, buffer.length, null)) > 0;)
      hash.update(buffer.subarray(0, read));
    return hash.digest('hex') === expected;
  } finally {
    fs.closeSync(fd);
  }
}

function writeAtomically(file, text) {
  const temp = `${file}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  fs.writeFileSync(temp, text, { flag: 'wx', mode: 0o600 });
  fs.renameSync(temp, file);
}

function readState(spool) {
  try {
    const state = JSON.parse(fs.readFileSync(path.join(spool, 'state.json'), 'utf8'));
    return typeof state?.segment === 'string' && typeof state.at === 'number' ? state : undefined;
  } catch {
    return undefined;
  }
}

/** The lock file names a live process (the prefetcher removes it when it ends). */
function prefetcherAlive(spool) {
  try {
    const pid = Number(fs.readFileSync(path.join(spool, 'prefetcher.pid'), 'utf8'));
    if (!Number.isInteger(pid) || pid <= 0) return false;
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error?.code === 'EPERM';
  }
}
