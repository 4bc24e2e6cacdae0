import type http from 'node:http';
import type { Logger } from 'pino';
import { resolveHttpPlan, type HttpPlan } from '../daemon/http-config.ts';
import type { DaemonStatus } from '../daemon/status.ts';
import { AccessTokens } from './access-tokens.ts';
import { HostCheck } from './host-check.ts';
import { dashboardRoutes, type DashboardSource } from './dashboard-routes.ts';
import { createHttpApp } from './http-app.ts';
import type { HttpAuditSink } from './http-audit.ts';
import type { Route } from './route.ts';
import { sessionRoutes } from './session-routes.ts';
import { SessionStore } from './session-store.ts';

export interface StatusSource {
  status(): Promise<DaemonStatus>;
}

export interface StatusAppOptions {
  /** Access rules (default: loopback, no tokens, no TLS). */
  http?: Pick<HttpPlan, 'host' | 'allowedHosts' | 'tls' | 'tokens' | 'sessionTtlMs'>;
  /** More routes, e.g. operator actions; each declares the role it needs. */
  routes?: readonly Route[];
  /** Serve the web dashboard at `/` and the API it reads (see {@link dashboardRoutes}). */
  dashboard?: DashboardSource;
  logger?: Logger;
  /** Receives the calls the audit log records (see `isAuditedCall`). */
  audit?: HttpAuditSink;
}

/**
 * The daemon's HTTP API as a plain request listener, built apart from `listen()` so tests call it
 * in-process. `GET /api/status` (viewer): every cluster's protection status (JSON).
 * `GET /api/health` (open, for probes): 200 when nothing needs a person, 503 otherwise; the
 * alerts only to a signed-in caller. Sign-in routes: see {@link sessionRoutes}. Access rules:
 * see {@link createHttpApp}.
 *
 * @example
 * const server = https.createServer({ cert, key }, createStatusApp(daemon, { http: plan.http }));
 */
export function createStatusApp(source: StatusSource, options: StatusAppOptions = {}): http.RequestListener {
  // Without a plan: the defaults (loopback, no tokens, no TLS).
  const plan = options.http ?? resolveHttpPlan(undefined, '/', undefined);
  const tokens = new AccessTokens(plan.tokens);
  const sessions = new SessionStore(plan.sessionTtlMs);
  const secure = plan.tls !== undefined;
  const routes: Route[] = [
    {
      method: 'GET',
      path: '/api/status',
      access: 'viewer',
      async handle({ send }) {
        send(200, await source.status());
      },
    },
    {
      method: 'GET',
      path: '/api/health',
      access: 'public',
      async handle({ identity, send }) {
        const status = await source.status();
        const alerts = status.clusters.flatMap((c) => c.alerts.map((alert) => `${c.name}: ${alert}`));
        const ok = alerts.length === 0;
        // Probes need only the verdict; what is wrong is for callers allowed to read status.
        send(ok ? 200 : 503, identity ? { ok, alerts } : { ok });
      },
    },
    ...sessionRoutes(tokens, sessions, secure),
    ...(options.dashboard ? dashboardRoutes(options.dashboard) : []),
    ...(options.routes ?? []),
  ];
  return createHttpApp({
    routes,
    hosts: HostCheck.forPlan(plan),
    tokens,
    sessions,
    secure,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.audit ? { audit: options.audit } : {}),
  });
}
