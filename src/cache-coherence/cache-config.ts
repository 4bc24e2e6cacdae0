import path from 'node:path';
import { z } from 'zod';
import { WardenError } from '../errors.ts';
import { parseDuration } from '../util/duration.ts';

/**
 * The `cache:` section (under `daemon:` or a `daemon.clusters[]` entry): the Redis of the
 * applications' caches that Warden invalidates after a failover or a restore cut-over
 * (docs/cache-coherence.md).
 */
export const cacheSectionSchema = z
  .object({
    redis: z
      .object({
        /** `redis://host:port/db` or `rediss://…`; never with a password (use passwordFile/Env). */
        url: z.string().min(1),
        /** The URL names one seed node of a Redis Cluster. */
        cluster: z.boolean().optional(),
        username: z.string().min(1).optional(),
        passwordFile: z.string().min(1).optional(),
        /** Name of an environment variable holding the password. */
        passwordEnv: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'an environment variable name')
          .optional(),
      })
      .strict(),
    prefixes: z.array(z.string().min(1)).min(1),
    /** Never cleared; a prefix that overlaps it is refused. */
    sessionPrefix: z.string().min(1).optional(),
    channel: z.string().min(1).optional(),
    generationKey: z.string().min(1).optional(),
    /** How often the daemon reads the server's timeline itself (default 5s). */
    timelinePoll: z.union([z.string(), z.number()]).optional(),
    /** Keys per SCAN page and per UNLINK (default 500). */
    batchSize: z.number().int().min(1).max(10_000).optional(),
  })
  .strict();

export type CacheSection = z.infer<typeof cacheSectionSchema>;

/** The resolved section. No password in it: only where to read one. */
export interface CachePlan {
  redis: {
    host: string;
    port: number;
    db: number;
    tls: boolean;
    cluster: boolean;
    username?: string;
    passwordFile?: string;
    passwordEnv?: string;
  };
  prefixes: string[];
  sessionPrefix?: string;
  channel: string;
  generationKey: string;
  timelinePollMs: number;
  batchSize: number;
}

export const CACHE_DEFAULTS = { timelinePoll: '5s', batchSize: 500, port: 6379 } as const;

/** Validates the section; errors name the field (`daemon.cache.prefixes.1: …`). */
export function resolveCachePlan(section: CacheSection, field: string, baseDir: string): CachePlan {
  const fail = (at: string, message: string, hint?: string): never => {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}.${at}: ${message}`, {
      details: { field: `${field}.${at}` },
      ...(hint ? { hint } : {}),
    });
  };
  let url: URL;
  try {
    url = new URL(section.redis.url);
  } catch {
    return fail('redis.url', 'not a URL (redis://host:6379/0 or rediss://…)');
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    fail('redis.url', `scheme ${url.protocol} is not redis: or rediss:`);
  }
  if (url.password) {
    // Config files get shared and printed; the password lives in a file or the environment.
    fail('redis.url', 'must not contain a password', 'Use redis.passwordFile or redis.passwordEnv.');
  }
  const db = url.pathname.length > 1 ? Number(url.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0)
    fail('redis.url', `"${url.pathname.slice(1)}" is not a database number`);
  if (section.redis.cluster && db !== 0) fail('redis.url', 'a Redis Cluster has only database 0');
  if (section.redis.passwordFile && section.redis.passwordEnv) {
    fail('redis.passwordFile', 'give passwordFile or passwordEnv, not both');
  }
  const sessionPrefix = section.sessionPrefix;
  section.prefixes.forEach((prefix, i) => {
    if (
      sessionPrefix !== undefined &&
      (sessionPrefix.startsWith(prefix) || prefix.startsWith(sessionPrefix))
    ) {
      fail(
        `prefixes.${i}`,
        `"${prefix}" overlaps the session prefix "${sessionPrefix}", which is never cleared`,
      );
    }
  });
  const first = section.prefixes[0]!;
  const username = section.redis.username ?? (url.username ? decodeURIComponent(url.username) : undefined);
  return {
    redis: {
      host: url.hostname.replace(/^\[|\]$/g, ''),
      port: url.port ? Number(url.port) : CACHE_DEFAULTS.port,
      db,
      tls: url.protocol === 'rediss:',
      cluster: section.redis.cluster === true,
      ...(username ? { username } : {}),
      ...(section.redis.passwordFile
        ? { passwordFile: path.resolve(baseDir, section.redis.passwordFile) }
        : {}),
      ...(section.redis.passwordEnv ? { passwordEnv: section.redis.passwordEnv } : {}),
    },
    prefixes: [...section.prefixes],
    ...(sessionPrefix !== undefined ? { sessionPrefix } : {}),
    // The defaults are the ones `@warden/app`'s Cache uses for the first prefix.
    channel: section.channel ?? `${first}__invalidate`,
    generationKey: section.generationKey ?? `${first}__generation`,
    timelinePollMs: parseDuration(
      section.timelinePoll ?? CACHE_DEFAULTS.timelinePoll,
      `${field}.timelinePoll`,
    ),
    batchSize: section.batchSize ?? CACHE_DEFAULTS.batchSize,
  };
}
