import { LuaScript } from '../redis/lua-script.ts';

// Every script reads the clock from Redis (TIME), so all instances agree on expiry, and checks
// both limits before acting: idle (last access + idle timeout) and absolute (creation + lifetime).
// The key's PEXPIRE is always min(idle, absolute remaining), so Redis drops it on its own too.
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * KEYS[1] session hash. ARGV: data, idleMs, lifetimeMs, userId ('' for none), mode, encrypted.
 * mode 'create' fails on an existing key; 'update' fails on a missing one (never resurrects an
 * expired session); 'upsert' does either. Returns {1, created, lastAccess, absoluteExpiry, fresh}
 * or {0}; `fresh` is 1 when the session is new or changed user, i.e. when the user index (keyed
 * by user, so in another hash slot) needs the entry; an existing session of the same user is
 * already indexed under its unchanged absolute expiry, which saves a round trip per save.
 */
export const SAVE = new LuaScript(`${NOW}
local idle = tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 'c', 'a', 'x', 'i', 'u')
local created, expires
local fresh = 1
if h[1] then
  if h[5] == ARGV[4] then fresh = 0 end
  if ARGV[5] == 'create' then return {0} end
  created = tonumber(h[1])
  expires = tonumber(h[3])
  if now >= expires or now >= tonumber(h[2]) + tonumber(h[4]) then
    redis.call('DEL', KEYS[1])
    return {0}
  end
else
  if ARGV[5] == 'update' then return {0} end
  created = now
  expires = now + tonumber(ARGV[3])
end
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'c', created, 'a', now, 'x', expires, 'i', idle, 'u', ARGV[4], 'e', ARGV[6])
redis.call('PEXPIRE', KEYS[1], math.max(1, math.min(idle, expires - now)))
return {1, created, now, expires, fresh}`);

/**
 * KEYS[1] session hash. ARGV[1] '1' to slide the idle window (never past the absolute expiry).
 * Returns nil for a missing or expired session, else {data, created, lastAccess, expires, idle, user, encrypted}.
 */
export const LOAD = new LuaScript(`${NOW}
local h = redis.call('HMGET', KEYS[1], 'd', 'c', 'a', 'x', 'i', 'u', 'e')
if not h[2] then return nil end
local expires = tonumber(h[4])
local idle = tonumber(h[5])
if now >= expires or now >= tonumber(h[3]) + idle then
  redis.call('DEL', KEYS[1])
  return nil
end
local last = tonumber(h[3])
if ARGV[1] == '1' then
  last = now
  redis.call('HSET', KEYS[1], 'a', now)
  redis.call('PEXPIRE', KEYS[1], math.max(1, math.min(idle, expires - now)))
end
return {h[1], h[2], tostring(last), h[4], h[5], h[6], h[7]}`);

/** KEYS[1] session hash: deletes it and returns its user id (or nil). */
export const DESTROY = new LuaScript(`
local u = redis.call('HGET', KEYS[1], 'u')
redis.call('DEL', KEYS[1])
return u`);

/** KEYS[1] user index (zset handle -> absolute expiry). ARGV: handle, expiry ms. Prunes the past. */
export const INDEX_ADD = new LuaScript(`${NOW}
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - now)) end
return 1`);

/** KEYS[1] user index: the handles of sessions not past their absolute expiry. */
export const INDEX_LIST = new LuaScript(`${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)`);

/** KEYS[1] user index: returns all handles and deletes the index. */
export const INDEX_POP = new LuaScript(`
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return members`);

/** KEYS[1] session hash: metadata without the data, nil when missing or expired. */
export const INFO = new LuaScript(`${NOW}
local h = redis.call('HMGET', KEYS[1], 'c', 'a', 'x', 'i', 'u')
if not h[1] then return nil end
if now >= tonumber(h[3]) or now >= tonumber(h[2]) + tonumber(h[4]) then
  redis.call('DEL', KEYS[1])
  return nil
end
return h`);

/** KEYS[1] user index, ARGV[1] handle. */
export const INDEX_REMOVE = new LuaScript(`return redis.call('ZREM', KEYS[1], ARGV[1])`);

/** KEYS[1] session hash: {data, encrypted} without touching it, nil when missing or expired. */
export const PEEK = new LuaScript(`${NOW}
local h = redis.call('HMGET', KEYS[1], 'd', 'e', 'a', 'x', 'i')
if not h[1] then return nil end
if now >= tonumber(h[4]) or now >= tonumber(h[3]) + tonumber(h[5]) then return nil end
return {h[1], h[2]}`);
