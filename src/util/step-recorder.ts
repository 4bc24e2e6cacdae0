/** One step of a multi-step run (backup, restore, ...), as the CLI prints it. */
export interface StepReport {
  name: string;
  status: 'succeeded' | 'failed' | 'skipped';
  durationMs: number;
  detail?: string;
}

/** Collects step reports; `run` times a step and records failure before rethrowing. */
export class StepRecorder {
  readonly steps: StepReport[] = [];

  async run<T>(name: string, fn: () => Promise<T>, detail?: (result: T) => string): Promise<T> {
    const started = performance.now();
    try {
      const result = await fn();
      const text = detail?.(result);
      this.steps.push({
        name,
        status: 'succeeded',
        durationMs: Math.round(performance.now() - started),
        ...(text ? { detail: text } : {}),
      });
      return result;
    } catch (error) {
      this.steps.push({
        name,
        status: 'failed',
        durationMs: Math.round(performance.now() - started),
        detail: (error as Error).message,
      });
      throw error;
    }
  }

  skip(name: string, detail: string): void {
    this.steps.push({ name, status: 'skipped', durationMs: 0, detail });
  }
}
