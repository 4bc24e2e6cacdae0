import type { Logger } from 'pino';
import { toWardenError, WardenError } from '../errors.ts';

/** One check of a scratch-restore verification, as stored in `verifications/…json`. */
export interface CheckResult {
  name: string;
  status: 'passed' | 'failed' | 'skipped';
  durationMs: number;
  detail?: string;
  error?: { code: string; message: string };
}

/**
 * Collects a verification's check results. Unlike `StepRecorder` (util/step-recorder.ts) a
 * failed check is a result, not an exception: `run` returns false and the run goes on, and the
 * stored report keeps its own vocabulary (`passed`, an `error` with the code), which recorded
 * verifications already hold in repositories. Only cancellation throws.
 */
export class CheckRecorder {
  readonly checks: CheckResult[] = [];

  constructor(
    private readonly logger: Logger,
    private readonly signal: AbortSignal | undefined,
  ) {}

  /** Runs one check; true when it passed. `fn` returns the detail shown for a passed check. */
  async run(name: string, fn: () => Promise<string | undefined>): Promise<boolean> {
    this.throwIfAborted();
    const started = performance.now();
    try {
      const detail = await fn();
      this.checks.push({
        name,
        status: 'passed',
        durationMs: msSince(started),
        ...(detail ? { detail } : {}),
      });
      return true;
    } catch (error) {
      this.throwIfAborted();
      const wrapped = this.fail(name, error, started);
      this.logger.warn({ check: name, code: wrapped.code }, `verification check failed: ${wrapped.message}`);
      return false;
    }
  }

  /** Records a failure that happened outside any check (choosing a backup, preparing scratch). */
  fail(name: string, error: unknown, started: number): WardenError {
    const wrapped = toWardenError(error);
    this.checks.push({
      name,
      status: 'failed',
      durationMs: msSince(started),
      detail: wrapped.message,
      error: { code: wrapped.code, message: wrapped.message },
    });
    return wrapped;
  }

  skip(name: string, detail: string): void {
    this.checks.push({ name, status: 'skipped', durationMs: 0, detail });
  }

  has(name: string): boolean {
    return this.checks.some((check) => check.name === name);
  }

  /** No check failed so far. */
  get allPassed(): boolean {
    return this.checks.every((check) => check.status !== 'failed');
  }

  private throwIfAborted(): void {
    if (this.signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', 'verification cancelled');
  }
}

export function msSince(started: number): number {
  return Math.round(performance.now() - started);
}
