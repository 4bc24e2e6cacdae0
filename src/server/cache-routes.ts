import type http from 'node:http';
import type { InvalidationReport } from '../cache-coherence/cache-invalidator.ts';
import { WardenError } from '../errors.ts';
import type { Route } from './route.ts';

const MAX_BODY_BYTES = 4096;

/** What the route drives: the daemon's clusters that have a `cache:` section. */
export interface CacheInvalidation {
  /** Cluster names with a cache configured. */
  clusters(): string[];
  invalidate(cluster: string, reason: string): Promise<InvalidationReport>;
}

/**
 * `POST /api/cache/invalidate` (operator): a restore cut-over (or anything else that made the
 * caches wrong) announced by a person or a runbook. Body `{"reason": "…", "cluster": "…"}`;
 * `cluster` may be left out when one cluster has a cache. Answers the invalidation report.
 */
export function cacheRoutes(target: CacheInvalidation): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/cache/invalidate',
      access: 'operator',
      async handle({ request, send, logger }) {
        const body = await readJsonBody(request);
        const reason = body.reason;
        if (typeof reason !== 'string' || reason.trim() === '') {
          throw new WardenError('WARDEN_E_USAGE', 'reason: required, a non-empty string');
        }
        const names = target.clusters();
        const cluster = body.cluster ?? (names.length === 1 ? names[0] : undefined);
        if (typeof cluster !== 'string' || !names.includes(cluster)) {
          throw new WardenError(
            'WARDEN_E_USAGE',
            names.length === 0 ? 'no cluster has a cache: section' : `cluster: one of ${names.join(', ')}`,
            { details: { field: 'cluster' } },
          );
        }
        const report = await target.invalidate(cluster, reason);
        logger.info({ cluster, generation: report.generation }, 'http: caches invalidated');
        send(200, report);
      },
    },
  ];
}

async function readJsonBody(request: http.IncomingMessage): Promise<Record<string, unknown>> {
  if (!/^application\/json\b/i.test(request.headers['content-type'] ?? '')) {
    throw new WardenError('WARDEN_E_USAGE', 'the body must be application/json: {"reason": "…"}');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new WardenError('WARDEN_E_USAGE', `request body larger than ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new WardenError('WARDEN_E_USAGE', 'the body is not valid JSON');
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new WardenError('WARDEN_E_USAGE', 'the body must be a JSON object: {"reason": "…"}');
  }
  return parsed as Record<string, unknown>;
}
