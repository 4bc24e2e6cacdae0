import { z } from 'zod';
import { WardenError } from '../errors.ts';

/** An active Alertmanager alert as the dashboard shows it. */
export interface AlertmanagerAlert {
  name: string;
  severity?: string;
  state: string;
  startsAt: string;
  summary?: string;
  labels: Record<string, string>;
}

const TIMEOUT_MS = 5_000;
const MAX_BYTES = 1024 * 1024;
const MAX_ALERTS = 200;
const MAX_TEXT = 500;

// The slice of Alertmanager's v2 `gettableAlerts` the dashboard reads; anything else is ignored.
const alertsSchema = z.array(
  z.object({
    labels: z.record(z.string(), z.string()),
    annotations: z.record(z.string(), z.string()).optional(),
    startsAt: z.string(),
    status: z.object({ state: z.string() }).optional(),
  }),
);

/**
 * The active (neither silenced nor inhibited) alerts of the Alertmanager at `baseUrl`, fetched by
 * the daemon so the browser talks to Warden's API only. Bounded: 5 s, 1 MiB, 200 alerts, texts
 * cut at 500 characters. Whatever goes wrong is WARDEN_E_ALERTMANAGER_UNAVAILABLE.
 */
export async function fetchAlertmanagerAlerts(baseUrl: string): Promise<AlertmanagerAlert[]> {
  const url = new URL('api/v2/alerts?active=true&silenced=false&inhibited=false', baseUrl);
  const unavailable = (why: string, cause?: unknown) =>
    new WardenError('WARDEN_E_ALERTMANAGER_UNAVAILABLE', `Alertmanager at ${baseUrl}: ${why}`, {
      hint: 'Check that Alertmanager runs at daemon.dashboard.alertmanagerUrl and is reachable from the daemon.',
      details: { url: baseUrl },
      ...(cause !== undefined ? { cause } : {}),
    });
  let body: string;
  try {
    const response = await fetch(url, {
      signal: AbortSignal.timeout(TIMEOUT_MS),
      headers: { accept: 'application/json' },
      redirect: 'error',
    });
    if (!response.ok) {
      await response.body?.cancel();
      throw unavailable(`answered HTTP ${response.status}`);
    }
    const text = await readBounded(response);
    if (text === undefined) throw unavailable(`the answer is larger than ${MAX_BYTES} bytes`);
    body = text;
  } catch (error) {
    if (error instanceof WardenError) throw error;
    const reason =
      (error as Error).name === 'TimeoutError' ? `no answer within ${TIMEOUT_MS} ms` : 'unreachable';
    throw unavailable(reason, error);
  }
  let parsed: z.infer<typeof alertsSchema>;
  try {
    parsed = alertsSchema.parse(JSON.parse(body));
  } catch (error) {
    throw unavailable('the answer is not an Alertmanager v2 alert list', error);
  }
  return parsed.slice(0, MAX_ALERTS).map((alert) => {
    const summary = alert.annotations?.summary ?? alert.annotations?.description;
    const severity = alert.labels.severity;
    return {
      name: cut(alert.labels.alertname ?? '(unnamed)'),
      ...(severity !== undefined ? { severity: cut(severity) } : {}),
      state: cut(alert.status?.state ?? 'active'),
      startsAt: cut(alert.startsAt),
      ...(summary !== undefined ? { summary: cut(summary) } : {}),
      labels: Object.fromEntries(
        Object.entries(alert.labels)
          .slice(0, 30)
          .map(([k, v]) => [cut(k), cut(v)]),
      ),
    };
  });
}

/** The body as text, or undefined (and the stream cancelled) once it passes MAX_BYTES. */
async function readBounded(response: Response): Promise<string | undefined> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of response.body ?? []) {
    size += chunk.length;
    if (size > MAX_BYTES) {
      await response.body?.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function cut(text: string): string {
  return text.length > MAX_TEXT ? `${text.slice(0, MAX_TEXT)}…` : text;
}
