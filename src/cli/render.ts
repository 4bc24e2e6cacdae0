import { isWardenError, toWardenError } from '../errors.ts';
import type { StepReport } from '../util/step-recorder.ts';

export function printJson(value: unknown): void {
  process.stdout.write(
    `${JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2)}\n`,
  );
}

/** A plain text table: columns padded to their widest cell. */
export function table(headers: string[], rows: Array<Array<string | number>>): string {
  const cells = [headers, ...rows.map((row) => row.map(String))];
  const widths = headers.map((_, i) => Math.max(...cells.map((row) => (row[i] ?? '').length)));
  return cells
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

export function printSteps(steps: StepReport[]): void {
  for (const step of steps) {
    const mark = step.status === 'succeeded' ? 'ok  ' : step.status === 'failed' ? 'FAIL' : 'skip';
    process.stdout.write(
      `  ${mark} ${step.name.padEnd(30)} ${formatDuration(step.durationMs).padStart(8)}${step.detail ? `  ${step.detail}` : ''}\n`,
    );
  }
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** Prints an error (code, message, fix) and returns the exit status for it. */
export function reportError(error: unknown, json: boolean): number {
  const wrapped = toWardenError(error);
  if (json) {
    printJson({ error: wrapped.toJSON() });
  } else {
    process.stderr.write(`error ${wrapped.code}: ${wrapped.message}\n`);
    if (wrapped.hint) process.stderr.write(`  fix: ${wrapped.hint}\n`);
    const log = (wrapped.details as { log?: string }).log;
    if (log) process.stderr.write(`  server log (tail):\n${log.replace(/^/gm, '    ')}\n`);
    if (!isWardenError(error) && process.env.WARDEN_DEBUG)
      process.stderr.write(`${(error as Error).stack}\n`);
  }
  return wrapped.exitCode;
}
