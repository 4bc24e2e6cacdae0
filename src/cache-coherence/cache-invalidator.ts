import { StepRecorder, type StepReport } from '../util/step-recorder.ts';
import type { CachePlan } from './cache-config.ts';
import { connectCacheRedis, unavailable, type CacheRedis } from './cache-redis.ts';

/** Why the caches are invalidated; travels in the message and the report. */
export interface InvalidationCause {
  /** `timeline` (the daemon saw the timeline change), `cut-over` (an operator said so). */
  kind: 'timeline' | 'cut-over';
  /** Free text from the operator or `timeline 1 -> 2`; control characters are dropped, 200 chars max. */
  reason: string;
  cluster: string;
  /** The timeline now current, recorded next to the generation key (see {@link timelineKey}). */
  timeline?: number;
}

/** Where the timeline of the last invalidation is kept, so a daemon restarted after a failover still notices it. */
export function timelineKey(plan: CachePlan): string {
  return `${plan.generationKey}:timeline`;
}

/** The timeline recorded by the last timeline invalidation, if any. */
export async function recordedTimeline(
  plan: CachePlan,
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<number | undefined> {
  const redis = await connectCacheRedis(plan.redis, options.env);
  try {
    const text = await call('read timeline', () => redis.get(timelineKey(plan)));
    const value = text === null ? NaN : Number(text);
    return Number.isInteger(value) && value > 0 ? value : undefined;
  } finally {
    await redis.quit();
  }
}

/** Records `timeline` as the one the caches are current for (the daemon's first read, when none is recorded). */
export async function recordTimeline(
  plan: CachePlan,
  timeline: number,
  options: { env?: NodeJS.ProcessEnv } = {},
): Promise<void> {
  const redis = await connectCacheRedis(plan.redis, options.env);
  try {
    await call('record timeline', () => redis.set(timelineKey(plan), String(timeline)));
  } finally {
    await redis.quit();
  }
}

export interface InvalidationReport {
  cluster: string;
  kind: InvalidationCause['kind'];
  reason: string;
  at: string;
  /** The generation key's value after the invalidation. */
  generation: number;
  /** Keys removed per prefix. */
  deleted: Record<string, number>;
  /** Subscribers the final message reached (on a Cluster: those of the node that took it). */
  receivers: number;
  durationMs: number;
  steps: StepReport[];
}

/** The message on the channel, as `@warden/app`'s Cache reads it: drop everything (c), new generation (g). */
export interface InvalidationMessage {
  o: 'warden';
  c: 1;
  g: string;
  kind: InvalidationCause['kind'];
  r: string;
}

export function cleanReason(text: string): string {
  // Control characters (terminal escapes, newlines that forge log lines) become spaces.
  const printable = [...text].map((c) => (c < ' ' || c === '\u007f' ? ' ' : c)).join('');
  return printable.trim().slice(0, 200);
}

/**
 * Invalidates the applications' caches: bumps the generation key and announces it, clears every
 * configured prefix (SCAN + UNLINK in batches, per master on a Cluster; the session prefix, the
 * generation key and the keys under it are never deleted), then bumps and announces again.
 *
 * Why twice: the first bump stops instances from caching loads that started against the old
 * primary (a load that straddles a generation change is returned but not stored), so none writes
 * an old value behind the clear; the second drops every L1 entry refilled from Redis while the
 * clear was running. An instance that misses both messages reads the key within its own bound.
 *
 * @example
 * const report = await invalidateCaches(plan, { kind: 'cut-over', reason: 'restored to 10:42', cluster: 'main' });
 */
export async function invalidateCaches(
  plan: CachePlan,
  cause: InvalidationCause,
  options: { env?: NodeJS.ProcessEnv; redis?: CacheRedis } = {},
): Promise<InvalidationReport> {
  const started = performance.now();
  const steps = new StepRecorder();
  const reason = cleanReason(cause.reason);
  const redis =
    options.redis ?? (await steps.run('connect', () => connectCacheRedis(plan.redis, options.env)));
  try {
    const announce = async (step: string): Promise<{ generation: number; receivers: number }> =>
      steps.run(
        step,
        async () => {
          const generation = await call(step, () => redis.incr(plan.generationKey));
          const message: InvalidationMessage = {
            o: 'warden',
            c: 1,
            g: String(generation),
            kind: cause.kind,
            r: reason,
          };
          const receivers = await call(step, () => redis.publish(plan.channel, JSON.stringify(message)));
          return { generation, receivers };
        },
        (r) => `generation ${r.generation}, ${r.receivers} subscribers`,
      );
    await announce('bump');
    const deleted: Record<string, number> = {};
    for (const prefix of plan.prefixes) {
      deleted[prefix] = await steps.run(
        `clear ${prefix}`,
        () => call(`clear ${prefix}`, () => clearPrefix(redis, plan, prefix)),
        (n) => `${n} keys`,
      );
    }
    const final = await announce('announce');
    if (cause.timeline !== undefined) {
      const timeline = String(cause.timeline);
      await steps.run('record timeline', () =>
        call('record timeline', () => redis.set(timelineKey(plan), timeline)),
      );
    }
    return {
      cluster: cause.cluster,
      kind: cause.kind,
      reason,
      at: new Date().toISOString(),
      generation: final.generation,
      deleted,
      receivers: final.receivers,
      durationMs: Math.round(performance.now() - started),
      steps: steps.steps,
    };
  } finally {
    if (!options.redis) await redis.quit();
  }
}

async function clearPrefix(redis: CacheRedis, plan: CachePlan, prefix: string): Promise<number> {
  let deleted = 0;
  await redis.scan(`${escapeGlob(prefix)}*`, plan.batchSize, async (keys) => {
    // Defence in depth: the config refuses overlapping prefixes, and the key stays whatever.
    const doomed = keys.filter(
      (key) =>
        !key.startsWith(plan.generationKey) &&
        (plan.sessionPrefix === undefined || !key.startsWith(plan.sessionPrefix)),
    );
    deleted += await redis.unlink(doomed);
  });
  return deleted;
}

/** A prefix as a literal in a SCAN MATCH pattern. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

async function call<T>(step: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (cause) {
    throw unavailable(`cache invalidation failed at "${step}"`, step, cause);
  }
}
