import type http from 'node:http';
import type { Logger } from 'pino';
import type { HttpRole } from '../daemon/http-config.ts';
import type { HttpIdentity } from './access-tokens.ts';

/** Who may call a route: anyone who passes the Host check, or callers with at least this role. */
export type RouteAccess = 'public' | HttpRole;

export interface RequestContext {
  request: http.IncomingMessage;
  response: http.ServerResponse;
  url: URL;
  /** The caller; undefined only on a public route called without credentials. */
  identity: HttpIdentity | undefined;
  /** Carries the caller's name (`caller`) on every line; never a token. */
  logger: Logger;
  send(status: number, body: unknown, headers?: Record<string, string>): void;
  /**
   * Who the audit record names when the request itself carried no credentials: sign-in sets the
   * token it verified (its name and role; never the token).
   */
  auditAs(caller: { name: string; role: HttpRole }, via: string): void;
}

/**
 * One endpoint of the HTTP API. Routes declare the role they need and the app enforces it before
 * `handle` runs, so an operator action (start a backup, run a drill) is added as
 * `{ method: 'POST', path: '/api/…', access: 'operator', handle }` with nothing else to check.
 * A GET route answers HEAD too. A handler throws a WardenError to answer with its code.
 */
export interface Route {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  access: RouteAccess;
  /** Record a GET of this route in the audit log too (state-changing methods always are). */
  audited?: boolean;
  handle(context: RequestContext): Promise<void> | void;
}
