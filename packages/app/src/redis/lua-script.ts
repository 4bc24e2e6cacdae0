import { createHash } from 'node:crypto';

/**
 * A Lua script with its SHA1 computed up front, so callers run it with EVALSHA and only send the
 * body once per server (after a NOSCRIPT reply).
 *
 * @example
 * const incr = new LuaScript('return redis.call("INCRBY", KEYS[1], ARGV[1])');
 * await redis.eval(incr, ['{user:1}:hits'], [1]);
 */
export class LuaScript {
  readonly sha: string;

  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }
}
