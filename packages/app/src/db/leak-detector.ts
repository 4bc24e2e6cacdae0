import type { Logger } from '../logger.ts';

export type LeakStackMode = 'per-statement' | 'every-checkout' | 'off';

/** Distinct SQL texts per pool whose first acquiring stack `'per-statement'` keeps (oldest dropped first). */
export const STATEMENT_STACKS = 1_000;

/** Leak warnings show the statement's SQL text up to this length (parameters are never logged). */
const LOGGED_STATEMENT_CHARS = 200;

/** What leak detection keeps on each pooled connection (the pool's entries carry these fields). */
export interface LeakWatched {
  /** Set while on loan with leak detection on: when, for which statement and where it was taken. */
  leasedAt: number;
  statement: string | undefined;
  acquiredBy: Error | null | undefined;
  /** This connection's reusable holder of the acquiring stack (one Error per connection, not per checkout). */
  stackHolder: Error | undefined;
  leakReported: boolean;
}

export interface LeakDetectorOptions {
  /** The pool's name, in every warning. */
  readonly pool: string;
  /** A connection held longer than this is reported; 0 disables detection. */
  readonly thresholdMs: number;
  readonly stacks: LeakStackMode;
  readonly logger: Logger;
  /** Called once per connection reported (the pool counts it). */
  readonly onLeak: () => void;
}

/**
 * HikariCP's leak detection for one pool: a connection on loan longer than the threshold logs a
 * warning with the stack that took it (see `PoolSettings.leakDetectionStacks` for what that
 * stack costs and where it comes from), and an info line when it finally comes back.
 */
export class LeakDetector {
  /** Whether detection is on (threshold above 0): checked on every checkout. */
  readonly enabled: boolean;
  private readonly options: LeakDetectorOptions;
  private scanner: NodeJS.Timeout | undefined;
  /** `'per-statement'` mode: the stack of the first checkout of each SQL text, oldest first. */
  private readonly statementStacks = new Map<string, Error>();

  constructor(options: LeakDetectorOptions) {
    this.options = options;
    this.enabled = options.thresholdMs > 0;
  }

  /** Starts scanning `connections` (the pool's live set) when detection is on. */
  start(connections: Iterable<LeakWatched>): void {
    const threshold = this.options.thresholdMs;
    if (!this.enabled) return;
    // A scan instead of a timer per checkout: warnings come up to a quarter threshold late.
    this.scanner = setInterval(() => this.scan(connections), Math.min(5_000, Math.max(10, threshold / 4)));
    this.scanner.unref();
  }

  stop(): void {
    clearInterval(this.scanner);
  }

  /**
   * Records a checkout (call only when {@link enabled}). `anchor` is the public method that took
   * the connection: the acquiring stack starts at its caller, so the pool's own frames neither
   * cost capture time nor use up `Error.stackTraceLimit`.
   */
  leased(
    entry: LeakWatched,
    now: number,
    anchor: (...args: never[]) => unknown,
    statement: string | undefined,
  ): void {
    entry.leasedAt = now;
    entry.statement = statement;
    entry.acquiredBy = this.acquiringStack(entry, anchor, statement);
  }

  /** Records a connection given back; logs when it had been reported as leaked. */
  returned(entry: LeakWatched): void {
    entry.acquiredBy = undefined;
    entry.statement = undefined;
    if (entry.leakReported) {
      entry.leakReported = false;
      this.options.logger.info(
        { pool: this.options.pool },
        'a connection previously reported as leaked was returned',
      );
    }
  }

  /** The stack a leak warning for this checkout shows; null when stacks are off. */
  private acquiringStack(
    entry: LeakWatched,
    anchor: (...args: never[]) => unknown,
    statement: string | undefined,
  ): Error | null {
    const mode = this.options.stacks;
    if (mode === 'off') return null;
    if (mode === 'per-statement' && statement !== undefined) {
      let stack = this.statementStacks.get(statement);
      if (stack === undefined) {
        stack = new Error('first checkout for this statement');
        Error.captureStackTrace(stack, anchor);
        this.statementStacks.set(statement, stack);
        if (this.statementStacks.size > STATEMENT_STACKS) {
          this.statementStacks.delete(this.statementStacks.keys().next().value!);
        }
      }
      return stack;
    }
    // Re-captures into the connection's own holder instead of allocating an Error per checkout;
    // V8 keeps the frames structured and formats them only when a leak warning reads `.stack`.
    const holder = (entry.stackHolder ??= new Error('connection acquired here'));
    Error.captureStackTrace(holder, anchor);
    return holder;
  }

  private scan(connections: Iterable<LeakWatched>): void {
    const threshold = this.options.thresholdMs;
    const now = Date.now();
    for (const entry of connections) {
      if (entry.acquiredBy === undefined || entry.leakReported || now - entry.leasedAt <= threshold) continue;
      entry.leakReported = true;
      this.options.onLeak();
      this.options.logger.warn(
        {
          pool: this.options.pool,
          heldMs: now - entry.leasedAt,
          thresholdMs: threshold,
          statement: entry.statement?.slice(0, LOGGED_STATEMENT_CHARS),
          stack: entry.acquiredBy?.stack,
        },
        `connection leak suspected: held longer than ${threshold} ms`,
      );
    }
  }
}
