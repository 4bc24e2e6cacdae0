import assert from 'node:assert/strict';
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { once } from 'node:events';
import { onExit } from './cleanup.ts';
import { WARDEN_BIN } from './cli.ts';

/** A `warden` CLI process a test started and watches (stdout and stderr interleaved). */
export interface SpawnedWarden {
  child: ChildProcess;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The CLI processes of one test file: each is killed if the test process exits, and `killAll`
 * (in `after`) ends whatever a failed test left running.
 */
export class SpawnedWardens {
  readonly #children = new Set<ChildProcess>();

  spawn(args: readonly string[], options: Pick<SpawnOptions, 'cwd' | 'env'>): SpawnedWarden {
    const child = spawn(process.execPath, [WARDEN_BIN, ...args], {
      ...options,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.track(child);
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = once(child, 'exit').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    return { child, output: () => output, exited };
  }

  /** Watches a process started some other way (killed at exit and by `killAll`). */
  track(child: ChildProcess): void {
    this.#children.add(child);
    const removeHook = onExit(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    child.once('exit', () => {
      removeHook();
      this.#children.delete(child);
    });
  }

  async killAll(): Promise<void> {
    for (const child of this.#children) await killHard(child);
  }
}

export async function killHard(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The exit of a spawned CLI, bounded: after `ms` the test fails with what the process printed
 * (a hang shows its cause in the test's output instead of a bare file timeout).
 */
export async function exitOf(
  spawned: SpawnedWarden,
  what: string,
  ms: number,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(`timed out after ${ms} ms waiting for ${what} to exit; it printed:\n${spawned.output()}`),
        ),
      ms,
    );
  });
  try {
    return await Promise.race([spawned.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls every `pollMs` until `condition` holds; fails naming `what` after `ms`. */
export async function waitFor(
  what: string,
  ms: number,
  condition: () => boolean | Promise<boolean>,
  pollMs = 100,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(pollMs);
  }
}
