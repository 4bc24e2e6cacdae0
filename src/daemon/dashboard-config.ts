import { z } from 'zod';
import { WardenError } from '../errors.ts';
import { parseDuration } from '../util/duration.ts';

/** `daemon.dashboard` in warden.yaml: the web dashboard's history and Alertmanager source. */
export const dashboardSectionSchema = z
  .object({
    /** How often the daemon samples each cluster's WAL lag and RPO exposure (default 30s). */
    historyInterval: z.union([z.string(), z.number()]).optional(),
    /** How far back the samples reach (default 6h); older ones are dropped. */
    historyWindow: z.union([z.string(), z.number()]).optional(),
    /** An Alertmanager whose active alerts the dashboard shows (the daemon fetches them). */
    alertmanagerUrl: z.string().min(1).optional(),
  })
  .strict();

export type DashboardSection = z.infer<typeof dashboardSectionSchema>;

export interface DashboardPlan {
  historyIntervalMs: number;
  historyWindowMs: number;
  /** Base URL of an Alertmanager (no credentials in it), ending in `/`. */
  alertmanagerUrl?: string;
}

export const DASHBOARD_DEFAULTS = { historyInterval: '30s', historyWindow: '6h' } as const;

/** At most this many samples are kept whatever the settings say (memory stays bounded). */
export const MAX_HISTORY_SAMPLES = 10_000;

export function resolveDashboardPlan(section: DashboardSection | undefined): DashboardPlan {
  const historyIntervalMs = parseDuration(
    section?.historyInterval ?? DASHBOARD_DEFAULTS.historyInterval,
    'daemon.dashboard.historyInterval',
  );
  const historyWindowMs = parseDuration(
    section?.historyWindow ?? DASHBOARD_DEFAULTS.historyWindow,
    'daemon.dashboard.historyWindow',
  );
  if (historyIntervalMs < 1000)
    throw configError('daemon.dashboard.historyInterval: at least 1s', 'daemon.dashboard.historyInterval');
  if (historyWindowMs < historyIntervalMs || historyWindowMs / historyIntervalMs > MAX_HISTORY_SAMPLES)
    throw configError(
      `daemon.dashboard.historyWindow: between one historyInterval and ${MAX_HISTORY_SAMPLES} of them`,
      'daemon.dashboard.historyWindow',
    );
  return {
    historyIntervalMs,
    historyWindowMs,
    ...(section?.alertmanagerUrl ? { alertmanagerUrl: alertmanagerUrl(section.alertmanagerUrl) } : {}),
  };
}

function alertmanagerUrl(text: string): string {
  const field = 'daemon.dashboard.alertmanagerUrl';
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw configError(`${field}: not a URL (e.g. http://127.0.0.1:9093/)`, field);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw configError(`${field}: must be an http:// or https:// URL`, field);
  // Credentials in a URL end up in logs and error messages; keep them out of the config.
  if (url.username || url.password)
    throw configError(`${field}: must not carry a user name or password`, field);
  if (url.search || url.hash) throw configError(`${field}: no query or fragment`, field);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url.toString();
}

function configError(message: string, field: string): WardenError {
  return new WardenError('WARDEN_E_CONFIG_INVALID', message, { details: { field } });
}
