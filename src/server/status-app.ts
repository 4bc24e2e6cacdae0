import type http from 'node:http';
import { toWardenError } from '../errors.ts';
import type { DaemonStatus } from '../daemon/daemon.ts';

export interface StatusSource {
  status(): Promise<DaemonStatus>;
}

/**
 * The daemon's HTTP API as a plain request listener, built apart from `listen()` so tests call it
 * in-process. `GET /api/status`: every cluster's protection status (JSON). `GET /api/health`:
 * 200 when nothing needs a person, 503 with the alerts otherwise.
 */
export function createStatusApp(source: StatusSource): http.RequestListener {
  return (request, response) => {
    const send = (status: number, body: unknown) => {
      response.writeHead(status, {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
      });
      response.end(`${JSON.stringify(body, null, 2)}\n`);
    };
    const url = new URL(request.url ?? '/', 'http://localhost');
    const route = url.pathname;
    if (route !== '/api/status' && route !== '/api/health') {
      send(404, { error: { code: 'WARDEN_E_USAGE', message: `no route ${route}` } });
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.setHeader('allow', 'GET, HEAD');
      send(405, {
        error: { code: 'WARDEN_E_USAGE', message: `${request.method} is not allowed on ${route}` },
      });
      return;
    }
    source.status().then(
      (status) => {
        if (route === '/api/status') return send(200, status);
        const alerts = status.clusters.flatMap((c) => c.alerts.map((alert) => `${c.name}: ${alert}`));
        send(alerts.length ? 503 : 200, { ok: alerts.length === 0, alerts });
      },
      (error: unknown) => {
        const wrapped = toWardenError(error);
        send(wrapped.httpStatus, { error: wrapped.toJSON() });
      },
    );
  };
}
