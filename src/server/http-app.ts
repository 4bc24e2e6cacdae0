import type http from 'node:http';
import type { Logger } from 'pino';
import { toWardenError, WardenError } from '../errors.ts';
import { silentLogger } from '../logger.ts';
import type { AccessTokens } from './access-tokens.ts';
import { roleAllows, type HttpIdentity } from './access-tokens.ts';
import type { HostCheck } from './host-check.ts';
import { isAuditedCall, type HttpAuditSink } from './http-audit.ts';
import type { RequestContext, Route } from './route.ts';
import { clearedSessionCookie, readSessionCookie } from './session-cookie.ts';
import type { SessionStore } from './session-store.ts';

export interface HttpAppOptions {
  routes: readonly Route[];
  hosts: HostCheck;
  tokens: AccessTokens;
  sessions: SessionStore;
  /** Served over TLS: session cookies are `Secure`. */
  secure: boolean;
  logger?: Logger;
  /** Receives the calls the audit log records ({@link isAuditedCall}); must not block. */
  audit?: HttpAuditSink;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);
const ANONYMOUS: HttpIdentity = { name: 'anonymous', role: 'viewer', via: 'anonymous' };

/**
 * The guard every request passes, in this order: the Host header names this server (else 421);
 * the route exists (404) for this method (405); a state-changing request from a browser comes
 * from an allowed origin (403); the credentials presented are valid (401: a bearer token, else a
 * session cookie; with no tokens configured, requests without credentials are anonymous viewers);
 * the caller's role covers the route's (401 without credentials, 403 with too weak a role).
 */
export function createHttpApp(options: HttpAppOptions): http.RequestListener {
  const baseLogger = options.logger ?? silentLogger;
  return (request, response) => {
    const method = request.method ?? 'GET';
    const url = requestUrl(request.url);
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      response.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
        ...headers,
      });
      response.end(`${JSON.stringify(body, null, 2)}\n`);
    };
    const fail = (error: WardenError, headers: Record<string, string> = {}, status = error.httpStatus) =>
      send(status, { error: error.toJSON() }, headers);
    const remote = request.socket.remoteAddress;
    const at = new Date();
    const started = performance.now();
    const audit = (
      status: number,
      who: { caller?: string; role?: HttpIdentity['role']; via: string },
      code?: string,
    ) => {
      try {
        options.audit?.({
          method,
          path: url.pathname.slice(0, 150),
          status,
          ...who,
          ...(remote ? { remote } : {}),
          ...(code ? { code } : {}),
          at,
          durationMs: Math.round(performance.now() - started),
        });
      } catch (error) {
        // The sink queues; should it throw, the request still gets its answer.
        baseLogger.error({ err: String(error) }, 'http: the audit sink failed');
      }
    };
    type Who = { caller?: string; role?: HttpIdentity['role']; via: string };
    const whoIs = (identity: HttpIdentity | undefined): Who =>
      identity ? { caller: identity.name, role: identity.role, via: identity.via } : { via: 'none' };

    if (!options.hosts.allowsHost(request.headers.host)) {
      baseLogger.warn(
        { host: request.headers.host?.slice(0, 200), remote, method, path: url.pathname },
        'http: request refused, Host header names another server (DNS rebinding?)',
      );
      return fail(
        new WardenError('WARDEN_E_HTTP_HOST_REFUSED', 'the Host header does not name this server', {
          hint: 'Add the name clients use to daemon.http.allowedHosts.',
        }),
      );
    }
    const candidates = options.routes.filter((r) => r.path === url.pathname);
    const route = candidates.find((r) => r.method === method || (method === 'HEAD' && r.method === 'GET'));
    if (!route) {
      if (!candidates.length) {
        return fail(new WardenError('WARDEN_E_USAGE', `no route ${url.pathname}`), {}, 404);
      }
      const allowed = candidates.flatMap((r) => (r.method === 'GET' ? ['GET', 'HEAD'] : [r.method]));
      return fail(
        new WardenError('WARDEN_E_USAGE', `${method} is not allowed on ${url.pathname}`),
        { allow: allowed.join(', ') },
        405,
      );
    }
    const origin = request.headers.origin;
    if (!SAFE_METHODS.has(method) && origin !== undefined && !options.hosts.allowsOrigin(origin)) {
      baseLogger.warn(
        { origin: origin.slice(0, 200), remote, method, path: url.pathname },
        'http: cross-origin request refused',
      );
      audit(403, { via: 'none' }, 'WARDEN_E_HTTP_ORIGIN_REFUSED');
      return fail(
        new WardenError(
          'WARDEN_E_HTTP_ORIGIN_REFUSED',
          'requests from other origins may not change anything',
        ),
      );
    }

    let identity: HttpIdentity | undefined;
    const authorization = request.headers.authorization;
    const sessionId = readSessionCookie(request.headers.cookie, options.secure);
    let staleCookie = false;
    if (authorization !== undefined) {
      const token = /^Bearer +(\S+) *$/i.exec(authorization)?.[1];
      const found = token === undefined ? undefined : options.tokens.verify(token);
      if (!found) {
        baseLogger.warn({ remote, method, path: url.pathname }, 'http: invalid bearer token');
        // The presented token is never recorded: only that one was refused, from where.
        audit(401, { via: 'invalid-token' }, 'WARDEN_E_HTTP_AUTH_REQUIRED');
        return fail(
          new WardenError('WARDEN_E_HTTP_AUTH_REQUIRED', 'the bearer token is not valid', {
            hint: 'Send Authorization: Bearer <token> with a token configured in daemon.http.tokens.',
          }),
          { 'www-authenticate': 'Bearer realm="warden", error="invalid_token"' },
        );
      }
      identity = { ...found, via: 'token' };
    } else if (sessionId !== undefined) {
      const found = options.sessions.get(sessionId);
      if (found) identity = { ...found, via: 'session' };
      else staleCookie = true;
    }
    if (!identity && !options.tokens.required) identity = ANONYMOUS;

    const logger = baseLogger.child({ caller: identity?.name, role: identity?.role, via: identity?.via });
    const staleHeaders: Record<string, string> = staleCookie
      ? { 'set-cookie': clearedSessionCookie(options.secure) }
      : {};
    if (route.access !== 'public') {
      if (!identity) {
        logger.info({ remote, method, path: url.pathname }, 'http: credentials required');
        if (isAuditedCall(route, method)) audit(401, { via: 'none' }, 'WARDEN_E_HTTP_AUTH_REQUIRED');
        return fail(
          new WardenError(
            'WARDEN_E_HTTP_AUTH_REQUIRED',
            `${url.pathname} needs a bearer token or a session`,
            {
              hint: 'Send Authorization: Bearer <token>, or sign in with POST /api/session.',
            },
          ),
          { 'www-authenticate': 'Bearer realm="warden"', ...staleHeaders },
        );
      }
      if (!roleAllows(identity.role, route.access)) {
        logger.warn({ remote, method, path: url.pathname }, 'http: role too weak for the route');
        audit(403, whoIs(identity), 'WARDEN_E_HTTP_ROLE_DENIED');
        return fail(
          new WardenError(
            'WARDEN_E_HTTP_ROLE_DENIED',
            `${method} ${url.pathname} needs the ${route.access} role; ${identity.name} is a ${identity.role}`,
            { details: { needed: route.access, caller: identity.name, role: identity.role } },
          ),
        );
      }
    }
    let auditWho: Who = whoIs(identity);
    let failureCode: string | undefined;
    let audited = false;
    const auditOnce = () => {
      if (audited || !isAuditedCall(route, method)) return;
      audited = true;
      const status = response.writableFinished ? response.statusCode : 499;
      audit(status, auditWho, failureCode);
    };
    response.once('finish', () => {
      logger.info({ remote, method, path: url.pathname, status: response.statusCode }, 'http: request');
      auditOnce();
    });
    // A client that went away before the answer: recorded too (499, as nginx says).
    response.once('close', auditOnce);
    const context: RequestContext = {
      request,
      response,
      url,
      identity,
      logger,
      send: (status, body, headers = {}) => send(status, body, { ...staleHeaders, ...headers }),
      auditAs: (caller, via) => {
        auditWho = { caller: caller.name, role: caller.role, via };
      },
    };
    Promise.resolve()
      .then(() => route.handle(context))
      .catch((error: unknown) => {
        const wrapped = toWardenError(error);
        failureCode = wrapped.code;
        if (wrapped.code === 'WARDEN_E_INTERNAL') logger.error({ err: error }, 'http: handler failed');
        if (!response.headersSent) fail(wrapped);
        else response.destroy();
      });
  };
}

/** The request target as a URL; one that does not parse (`http://[`) is a path no route has. */
function requestUrl(target = '/'): URL {
  try {
    return new URL(target, 'http://localhost');
  } catch {
    return new URL('http://localhost/invalid-request-target');
  }
}
