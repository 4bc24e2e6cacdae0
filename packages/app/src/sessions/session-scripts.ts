import { LuaScript } from '../redis/lua-script.ts';
import { wrongType } from '../redis/wrong-type.ts';

// Every script reads the clock from Redis (TIME), so all instances agree on expiry, and checks
// every limit before acting: idle (last access + idle timeout), absolute (creation + lifetime) and
// the cookie's expiry when the app gave one ('k', kept on the Redis clock). The key's PEXPIRE is
// always the nearest of them, so Redis drops the key on its own too and it never outlives the
// cookie.
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

const LIMITS = `${NOW}
local function ended(last, idle, expires, cookie)
  return now >= expires or now >= last + idle or (cookie ~= nil and now >= cookie)
end
local function ttl(idle, expires, cookie)
  local ms = math.min(idle, expires - now)
  if cookie ~= nil then ms = math.min(ms, cookie - now) end
  return math.max(1, ms)
end
local function cookieargs(stored, ms, at)
  if ms == '-' then return nil end
  if ms == '' then return stored end
  return math.min(now + tonumber(ms), tonumber(at))
end`;

const HASH = `${LIMITS}${wrongType('hash')}`;
const ZSET = wrongType('zset');

/**
 * KEYS[1] session hash. ARGV: data, idleMs, lifetimeMs, userId ('' for none), mode, encrypted,
 * cookie ms and cookie expiry ('' keeps the stored cookie expiry, '-' clears it, else the ms until
 * the cookie expires and the expiry; the earlier of now + ms and the expiry is kept).
 * mode 'create' fails on an existing key; 'update' fails on a missing one (never resurrects an
 * expired session); 'upsert' does either. Returns {1, created, lastAccess, absoluteExpiry, fresh,
 * cookieExpiry or 0} or {0}; `fresh` is 1 when the session is new or changed user, i.e. when the
 * user index (keyed by user, so in another hash slot) needs the entry; an existing session of the
 * same user is already indexed under its unchanged absolute expiry, which saves a round trip.
 */
export const SAVE = new LuaScript(`${HASH}
local idle = tonumber(ARGV[2])
local h = redis.pcall('HMGET', KEYS[1], 'c', 'a', 'x', 'i', 'u', 'k')
if h['err'] then return wrongtype(h) end
local created, expires
local cookie = tonumber(h[6])
local fresh = 1
if h[1] then
  if h[5] == ARGV[4] then fresh = 0 end
  if ARGV[5] == 'create' then return {0} end
  created = tonumber(h[1])
  expires = tonumber(h[3])
  if ended(tonumber(h[2]), tonumber(h[4]), expires, cookie) then
    redis.call('DEL', KEYS[1])
    return {0}
  end
else
  if ARGV[5] == 'update' then return {0} end
  created = now
  expires = now + tonumber(ARGV[3])
end
cookie = cookieargs(cookie, ARGV[7], ARGV[8])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 'c', created, 'a', now, 'x', expires, 'i', idle, 'u', ARGV[4], 'e', ARGV[6], 'k', cookie or '')
redis.call('PEXPIRE', KEYS[1], ttl(idle, expires, cookie))
return {1, created, now, expires, fresh, cookie or 0}`);

/**
 * KEYS[1] session hash. ARGV[1] '1' to slide the idle window (never past the absolute expiry or
 * the cookie's); ARGV[2], ARGV[3] the cookie as in SAVE. Returns nil for a missing or expired session, else
 * {data, created, lastAccess, expires, idle, user, encrypted, cookieExpiry or ''}.
 */
export const LOAD = new LuaScript(`${HASH}
local h = redis.pcall('HMGET', KEYS[1], 'd', 'c', 'a', 'x', 'i', 'u', 'e', 'k')
if h['err'] then return wrongtype(h) end
if not h[2] then return nil end
local expires = tonumber(h[4])
local idle = tonumber(h[5])
local cookie = tonumber(h[8])
if ended(tonumber(h[3]), idle, expires, cookie) then
  redis.call('DEL', KEYS[1])
  return nil
end
local last = tonumber(h[3])
if ARGV[1] == '1' then
  last = now
  cookie = cookieargs(cookie, ARGV[2], ARGV[3])
  redis.call('HSET', KEYS[1], 'a', now, 'k', cookie or '')
  redis.call('PEXPIRE', KEYS[1], ttl(idle, expires, cookie))
end
return {h[1], h[2], tostring(last), h[4], h[5], h[6], h[7], tostring(cookie or '')}`);

/** KEYS[1] session hash: deletes it and returns its user id (or nil). */
export const DESTROY = new LuaScript(`${HASH}
local u = redis.pcall('HGET', KEYS[1], 'u')
if type(u) == 'table' and u['err'] then return wrongtype(u) end
redis.call('DEL', KEYS[1])
return u`);

/** KEYS[1] user index (zset handle -> absolute expiry). ARGV: handle, expiry ms. Prunes the past. */
export const INDEX_ADD = new LuaScript(`${NOW}${ZSET}
local added = redis.pcall('ZADD', KEYS[1], ARGV[2], ARGV[1])
if type(added) == 'table' and added['err'] then return wrongtype(added) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIRE', KEYS[1], math.max(1, tonumber(last[2]) - now)) end
return 1`);

/** KEYS[1] user index: the handles of sessions not past their absolute expiry. */
export const INDEX_LIST = new LuaScript(`${NOW}${ZSET}
local pruned = redis.pcall('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if type(pruned) == 'table' and pruned['err'] then return wrongtype(pruned) end
return redis.call('ZRANGE', KEYS[1], 0, -1)`);

/** KEYS[1] user index: returns all handles and deletes the index. */
export const INDEX_POP = new LuaScript(`${ZSET}
local members = redis.pcall('ZRANGE', KEYS[1], 0, -1)
if members['err'] then return wrongtype(members) end
redis.call('DEL', KEYS[1])
return members`);

/**
 * KEYS[1] session hash: metadata without the data, nil when missing or expired.
 * Returns {created, lastAccess, expires, idle, user, cookieExpiry or ''}.
 */
export const INFO = new LuaScript(`${HASH}
local h = redis.pcall('HMGET', KEYS[1], 'c', 'a', 'x', 'i', 'u', 'k')
if h['err'] then return wrongtype(h) end
if not h[1] then return nil end
if ended(tonumber(h[2]), tonumber(h[4]), tonumber(h[3]), tonumber(h[6])) then
  redis.call('DEL', KEYS[1])
  return nil
end
return h`);

/** KEYS[1] user index, ARGV[1] handle. */
export const INDEX_REMOVE = new LuaScript(`${ZSET}
local removed = redis.pcall('ZREM', KEYS[1], ARGV[1])
if type(removed) == 'table' and removed['err'] then return wrongtype(removed) end
return removed`);

/** KEYS[1] session hash: {data, encrypted} without touching it, nil when missing or expired. */
export const PEEK = new LuaScript(`${HASH}
local h = redis.pcall('HMGET', KEYS[1], 'd', 'e', 'a', 'x', 'i', 'k')
if h['err'] then return wrongtype(h) end
if not h[1] then return nil end
if ended(tonumber(h[3]), tonumber(h[5]), tonumber(h[4]), tonumber(h[6])) then return nil end
return {h[1], h[2]}`);
