import { currentActor } from '../audit/audit-actor.ts';
import type { AuditEntry } from '../audit/audit-record.ts';
import type { HttpAuditEvent } from './http-audit.ts';

/**
 * An API call as an audit record: `api <METHOD> <path>`, the caller's token *name*, role, how it
 * was identified and from where; the daemon's OS user, host and pid as for its own jobs (with no
 * tokens configured the API is loopback-only and anonymous: `via: "anonymous"` says so).
 * Nothing the caller sent is recorded but the method and path: never a token, body or query.
 */
export function apiAuditEntry(event: HttpAuditEvent): AuditEntry {
  const base = currentActor();
  return {
    actor: {
      ...base,
      ...(event.caller && event.via !== 'anonymous' ? { token: event.caller } : {}),
      ...(event.role ? { role: event.role } : {}),
      via: event.via,
      ...(event.remote ? { remote: event.remote } : {}),
    },
    action: `api ${event.method} ${event.path}`.slice(0, 200),
    outcome: event.status < 400 ? 'succeeded' : 'failed',
    ...(event.code ? { code: event.code } : {}),
    status: event.status,
    occurredAt: event.at.toISOString(),
    durationMs: event.durationMs,
  };
}
