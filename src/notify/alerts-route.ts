import type { Route } from '../server/route.ts';
import type { AlertsDocument } from './notifier.ts';

/**
 * `GET /api/alerts` (viewer): Warden's own active conditions, most urgent first, and each
 * webhook's delivery state (never its URL). The dashboard lists these as active alerts.
 */
export function alertsRoute(source: { alerts(): AlertsDocument }): Route {
  return {
    method: 'GET',
    path: '/api/alerts',
    access: 'viewer',
    handle({ send }) {
      send(200, source.alerts());
    },
  };
}
