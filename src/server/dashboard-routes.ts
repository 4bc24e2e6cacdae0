import type { ClusterCatalog } from '../daemon/catalog-view.ts';
import type { HistorySnapshot } from '../daemon/status-history.ts';
import { fetchAlertmanagerAlerts } from './alertmanager-alerts.ts';
import { DASHBOARD_ASSETS, DASHBOARD_CSP, readAsset, type AssetPath } from './dashboard-assets.ts';
import type { Route } from './route.ts';

/** What the dashboard reads besides `/api/status`: kept by a running daemon. */
export interface DashboardSource {
  history(): HistorySnapshot;
  catalog(): Promise<{ clusters: ClusterCatalog[] }>;
  /** Set: `GET /api/alertmanager/alerts` relays this Alertmanager's active alerts. */
  alertmanagerUrl?: string;
}

/**
 * The web dashboard: its page and assets at `/` and `/assets/*` (open: they hold no data; the
 * page signs in through `/api/session` when the API needs it), and the API it reads beyond
 * `/api/status`: `/api/identity` (open: who the caller is, if anyone), `/api/history`, `/api/catalog` and
 * `/api/alertmanager/alerts` (viewer).
 */
export function dashboardRoutes(source: DashboardSource): Route[] {
  const assets: Route[] = (Object.keys(DASHBOARD_ASSETS) as AssetPath[]).map((path) => ({
    method: 'GET',
    path,
    access: 'public',
    async handle({ response }) {
      const body = await readAsset(path);
      response.writeHead(200, {
        'content-type': DASHBOARD_ASSETS[path].type,
        'content-length': String(body.length),
        'content-security-policy': DASHBOARD_CSP,
        'x-content-type-options': 'nosniff',
        'x-frame-options': 'DENY',
        'referrer-policy': 'no-referrer',
        // Revalidated on each load, so an upgraded daemon never serves a stale script.
        'cache-control': 'no-cache',
      });
      response.end(body);
    },
  }));
  return [
    ...assets,
    {
      // The page's first question, answered without a 401 (which a browser logs as an error).
      method: 'GET',
      path: '/api/identity',
      access: 'public',
      handle({ identity, send }) {
        send(
          200,
          identity
            ? { signedIn: true, name: identity.name, role: identity.role, via: identity.via }
            : { signedIn: false },
        );
      },
    },
    {
      method: 'GET',
      path: '/api/history',
      access: 'viewer',
      handle({ send }) {
        send(200, source.history());
      },
    },
    {
      method: 'GET',
      path: '/api/catalog',
      access: 'viewer',
      async handle({ send }) {
        send(200, await source.catalog());
      },
    },
    {
      method: 'GET',
      path: '/api/alertmanager/alerts',
      access: 'viewer',
      async handle({ send }) {
        const url = source.alertmanagerUrl;
        if (url === undefined) return send(200, { configured: false, alerts: [] });
        send(200, { configured: true, url, alerts: await fetchAlertmanagerAlerts(url) });
      },
    },
  ];
}
