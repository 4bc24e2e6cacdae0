import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { open, rename, unlink } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../errors.ts';

/**
 * Where a rotated secret goes: a file (replaced atomically, mode 0600) or a program that reads
 * it on standard input (one that updates a Kubernetes Secret or a secrets manager). The
 * program's argv comes from the configuration and runs without a shell; the secret is never
 * one of its arguments.
 */
export type SecretSink =
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'command'; readonly argv: readonly string[]; readonly timeoutMs: number };

/** What a sink receives: the login to use now and its password, as one JSON object and a newline. */
export interface SecretPayload {
  readonly user: string;
  readonly password: string;
}

/** How much of a failed sink command's output is kept for the error message. */
const OUTPUT_TAIL = 2048;

export function describeSink(sink: SecretSink): string {
  return sink.kind === 'file' ? `file ${sink.path}` : `command ${path.basename(sink.argv[0] ?? '')}`;
}

/** Hands the payload to the sink; fails with WARDEN_E_SECRET_SINK, whose message never holds the secret. */
export async function deliverSecret(sink: SecretSink, payload: SecretPayload): Promise<void> {
  const text = `${JSON.stringify({ user: payload.user, password: payload.password })}\n`;
  if (sink.kind === 'file') await writeFileAtomically(sink.path, text);
  else await pipeToCommand(sink, text, payload.password);
}

/**
 * Temp file beside the target (same file system, so the rename is atomic), created 0600 and
 * exclusively, fsynced, renamed over the target, then the directory fsynced so the rename
 * survives a crash. A reader sees the old secret or the new one, never half of one.
 */
async function writeFileAtomically(file: string, text: string): Promise<void> {
  const dir = path.dirname(file);
  const temp = path.join(dir, `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const handle = await open(temp, 'wx', 0o600);
    try {
      // The umask can only narrow 0600; chmod states it in case the file system ignores the mode.
      await handle.chmod(0o600);
      await handle.writeFile(text, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
    const directory = await open(dir, 'r');
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  } catch (cause) {
    await unlink(temp).catch(() => undefined);
    throw new WardenError('WARDEN_E_SECRET_SINK', `cannot write the secret to ${file}`, {
      hint: 'The directory must exist and be writable by the user Warden runs as.',
      details: { sink: 'file', file, errno: (cause as { code?: string }).code },
      cause,
    });
  }
}

function pipeToCommand(
  sink: Extract<SecretSink, { kind: 'command' }>,
  text: string,
  secret: string,
): Promise<void> {
  const program = sink.argv[0]!;
  return new Promise((resolve, reject) => {
    let output = '';
    let settled = false;
    const fail = (reason: string, exitCode?: number, cause?: unknown) => {
      if (settled) return;
      settled = true;
      // The program may echo what it read: its output is shown with the secret cut out.
      const tail = output.split(secret).join('[redacted]').trim().slice(-OUTPUT_TAIL);
      reject(
        new WardenError('WARDEN_E_SECRET_SINK', `secret sink command ${path.basename(program)} ${reason}`, {
          hint: 'The new password is set but not active: the current one keeps working. Fix the command and rotate again.',
          details: {
            sink: 'command',
            program,
            ...(exitCode !== undefined ? { exitCode } : {}),
            output: tail,
          },
          cause,
        }),
      );
    };
    const child = spawn(program, sink.argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], shell: false });
    const collect = (chunk: Buffer) => {
      output = (output + chunk.toString('utf8')).slice(-4 * OUTPUT_TAIL);
    };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(`did not finish within ${sink.timeoutMs / 1000} s`);
    }, sink.timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      fail(`could not run (${(error as { code?: string }).code ?? error.message})`, undefined, error);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        if (!settled) resolve();
        settled = true;
        return;
      }
      fail(
        code === null ? `was stopped by ${String(signal)}` : `exited with status ${code}`,
        code ?? undefined,
      );
    });
    // A program that exits without reading its input closes the pipe: its exit status decides.
    child.stdin.on('error', () => undefined);
    child.stdin.end(text);
  });
}
