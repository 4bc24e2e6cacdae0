import type { HttpIdentity } from './access-tokens.ts';
import type { Route } from './route.ts';

/**
 * One API call the audit log records (see {@link isAuditedCall}): who (the token's name, never
 * the token), from where, what and how it ended. Built by the HTTP app, recorded by the daemon.
 */
export interface HttpAuditEvent {
  method: string;
  /** The path only: a query string is not recorded. */
  path: string;
  status: number;
  /** The caller's token name (or `anonymous`), when one was established. */
  caller?: string;
  role?: HttpIdentity['role'];
  /** `token`, `session`, `sign-in`, `anonymous`, `invalid-token` (refused) or `none` (no credentials). */
  via: string;
  remote?: string;
  /** The error code of a refused or failed call. */
  code?: string;
  at: Date;
  durationMs: number;
}

/** A sink that must not block or fail the request (the daemon's is a durable outbox). */
export type HttpAuditSink = (event: HttpAuditEvent) => void;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * Which calls are recorded: every state-changing call (POST, PUT, PATCH, DELETE: operator actions,
 * sign-in and sign-out) whatever its outcome, and every GET of a route that declares `audited`
 * (none does today: the API serves status and metadata, never backup contents). Reads of status,
 * metrics, health and the dashboard's files are not recorded, as `warden status` is not.
 * Refused credentials (a bearer token that is not valid, a role too weak) are recorded on any route.
 */
export function isAuditedCall(route: Pick<Route, 'audited'>, method: string): boolean {
  return !SAFE_METHODS.has(method) || route.audited === true;
}
