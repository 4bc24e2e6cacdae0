import { LuaScript } from '../redis/lua-script.ts';
import { wrongType } from '../redis/wrong-type.ts';

/**
 * GCRA (generic cell rate algorithm): one number per key, the theoretical arrival time (TAT).
 * A request of `cost` is allowed when `TAT + cost·T − burst·T <= now`, T being the emission
 * interval (window / limit). Runs atomically on the Redis clock, so concurrent consumers on any
 * number of instances never overshoot.
 *
 * KEYS[1] limiter key. ARGV: T ms (may be fractional), burst, cost.
 * Returns {allowed 0|1, remaining, resetMs, retryAfterMs}, or {-1, type} when the key holds
 * another type than a string.
 */
export const GCRA = new LuaScript(`${wrongType('string')}
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local T = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local stored = redis.pcall('GET', KEYS[1])
if type(stored) == 'table' and stored['err'] then return wrongtype(stored) end
local tat = tonumber(stored or '0')
if tat < now then tat = now end
local newTat = tat + cost * T
local allowAt = newTat - burst * T
if now < allowAt then
  return {0, math.floor((now - (tat - burst * T)) / T), math.ceil(tat - now), math.ceil(allowAt - now)}
end
redis.call('SET', KEYS[1], string.format('%.3f', newTat), 'PX', math.max(1, math.ceil(newTat - now)))
return {1, math.floor((now - allowAt) / T), math.ceil(newTat - now), 0}`);

export interface GcraDecision {
  allowed: boolean;
  remaining: number;
  resetMs: number;
  retryAfterMs: number;
}

/** The same algorithm in process memory, for the fallback while Redis is unavailable. */
export class MemoryGcra {
  readonly #tats = new Map<string, number>();

  constructor(readonly maxKeys = 100_000) {}

  consume(key: string, intervalMs: number, burst: number, cost: number, now = Date.now()): GcraDecision {
    const tat = Math.max(this.#tats.get(key) ?? 0, now);
    const newTat = tat + cost * intervalMs;
    const allowAt = newTat - burst * intervalMs;
    if (now < allowAt) {
      return {
        allowed: false,
        remaining: Math.floor((now - (tat - burst * intervalMs)) / intervalMs),
        resetMs: Math.ceil(tat - now),
        retryAfterMs: Math.ceil(allowAt - now),
      };
    }
    this.#tats.set(key, newTat);
    if (this.#tats.size > this.maxKeys) this.#sweep(now);
    return {
      allowed: true,
      remaining: Math.floor((now - allowAt) / intervalMs),
      resetMs: Math.ceil(newTat - now),
      retryAfterMs: 0,
    };
  }

  #sweep(now: number): void {
    for (const [key, tat] of this.#tats) if (tat <= now) this.#tats.delete(key);
    // still full of live keys: drop the oldest inserted rather than grow without bound
    for (const key of this.#tats.keys()) {
      if (this.#tats.size <= this.maxKeys) break;
      this.#tats.delete(key);
    }
  }
}
