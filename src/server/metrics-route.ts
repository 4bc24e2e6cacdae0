import type { Route } from './route.ts';

/** What serves the metrics text (the daemon's WardenMetrics); server/ knows nothing more of it. */
export interface MetricsSource {
  readonly contentType: string;
  render(): Promise<string>;
}

/**
 * `GET /metrics`: the Prometheus text format. It needs the viewer role, like `/api/status`: on
 * loopback without tokens anyone local may scrape; with tokens configured Prometheus sends one
 * (`authorization: { credentials_file: … }` in its scrape config), a viewer token is enough.
 */
export function metricsRoute(source: MetricsSource): Route {
  return {
    method: 'GET',
    path: '/metrics',
    access: 'viewer',
    async handle({ response }) {
      const body = await source.render();
      response.writeHead(200, {
        'content-type': source.contentType,
        'cache-control': 'no-store',
        'x-content-type-options': 'nosniff',
      });
      response.end(body);
    },
  };
}
