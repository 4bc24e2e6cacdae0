import http from 'node:http';
import https from 'node:https';
import { verifiedTlsOptions } from '../util/verified-tls.ts';
import type { WebhookPlan } from './notify-config.ts';
import type { RenderedPayload } from './payloads.ts';

/** What one POST achieved. `retry`: try again later; `rejected`: the receiver refuses it for good. */
export type DeliveryResult =
  { outcome: 'delivered'; status: number } | { outcome: 'retry' | 'rejected'; reason: string };

/** Bodies we read back at most (to log a reason); the rest is drained unread. */
const MAX_REASON_BYTES = 512;

/**
 * POSTs one payload. https is verified (system CAs plus the webhook's `tlsCa`, host name
 * checked); plain http reaches only loopback hosts (checked when the config was resolved).
 * 2xx is delivered; 408, 429, 5xx, timeouts and network errors are worth retrying; any other
 * status is a permanent refusal. Messages name the webhook, never its URL (it may be a secret).
 */
export async function postWebhook(
  webhook: WebhookPlan,
  payload: RenderedPayload,
  signal: AbortSignal,
): Promise<DeliveryResult> {
  const body = Buffer.from(payload.body, 'utf8');
  const options: https.RequestOptions = {
    method: 'POST',
    headers: { ...payload.headers, 'content-length': String(body.length) },
    signal,
    timeout: webhook.timeoutMs,
    ...(webhook.url.protocol === 'https:' ? verifiedTlsOptions(true, webhook.tlsCa) : {}),
  };
  const client = webhook.url.protocol === 'https:' ? https : http;
  return await new Promise<DeliveryResult>((resolve) => {
    const request = client.request(webhook.url, options, (response) => {
      const status = response.statusCode ?? 0;
      let reason = '';
      response.on('data', (chunk: Buffer) => {
        if (reason.length < MAX_REASON_BYTES) reason += chunk.toString('utf8').slice(0, MAX_REASON_BYTES);
      });
      response.on('error', () => resolve({ outcome: 'retry', reason: `HTTP ${status}, response broke off` }));
      response.on('end', () => {
        if (status >= 200 && status < 300) resolve({ outcome: 'delivered', status });
        else {
          const text = `HTTP ${status}${reason ? `: ${reason.replace(/\s+/g, ' ').trim().slice(0, 200)}` : ''}`;
          resolve({
            outcome: status === 408 || status === 429 || status >= 500 ? 'retry' : 'rejected',
            reason: text,
          });
        }
      });
    });
    request.on('timeout', () =>
      request.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })),
    );
    request.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ outcome: 'retry', reason: error.code ?? error.message }),
    );
    request.end(body);
  });
}
