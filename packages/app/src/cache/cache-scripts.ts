import { LuaScript } from '../redis/lua-script.ts';

/** KEYS[1] tag set, ARGV[1] entry key, ARGV[2] entry TTL ms: the set lives as long as its longest entry. */
export const ADD_TO_TAG = new LuaScript(`
redis.call('SADD', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`);

/** KEYS[1] tag set: returns its members and deletes it in one step. */
export const POP_TAG = new LuaScript(`
local members = redis.call('SMEMBERS', KEYS[1])
redis.call('UNLINK', KEYS[1])
return members`);

/** KEYS[1] lock, ARGV[1] owner token: deletes the lock only while we still own it. */
export const RELEASE_LOCK = new LuaScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('UNLINK', KEYS[1]) end
return 0`);
