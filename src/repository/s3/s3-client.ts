import { S3Client } from '@aws-sdk/client-s3';
import { ConfiguredRetryStrategy } from '@smithy/core/retry';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import http from 'node:http';
import https from 'node:https';
import { verifiedTlsOptions } from '../../util/verified-tls.ts';
import { checkS3Endpoint } from './s3-endpoint-policy.ts';

/** How the adapter reaches the bucket. Credentials default to the SDK's provider chain. */
export interface S3ClientSettings {
  region: string;
  /** Custom endpoint (MinIO, Ceph, a local server); absent for AWS S3. */
  endpoint?: string;
  /** Path-style addressing (`endpoint/bucket/key`), which most non-AWS servers need. */
  forcePathStyle: boolean;
  /** Permit http:// to a host that is not loopback (warns once); refused otherwise. */
  allowHttp?: boolean;
  /** PEM file of a CA trusted for https:// besides the system CAs. */
  tlsCa?: string;
  /** Static credentials from config; when absent the SDK's default chain applies. */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  retry?: { maxAttempts?: number; baseDelayMs?: number; maxDelayMs?: number };
  /** Socket idle time after which a request is abandoned (and retried). */
  requestTimeoutMs?: number;
}

export const DEFAULT_RETRY = { maxAttempts: 6, baseDelayMs: 250, maxDelayMs: 10_000 } as const;

/**
 * Backoff before retry n (1-based), "equal jitter": half the exponential step plus a random
 * half, so retries of many clients spread out but never come back immediately.
 * With the defaults (6 attempts, base 250 ms, cap 10 s) the schedule is:
 *   retry 1: 125–250 ms, retry 2: 250–500 ms, retry 3: 0.5–1 s, retry 4: 1–2 s, retry 5: 2–4 s
 * i.e. at most ~7.75 s of waiting before the operation fails with WARDEN_E_REPO_IO.
 */
export function backoffDelay(retry: number, baseDelayMs: number, maxDelayMs: number): number {
  const step = Math.min(maxDelayMs, baseDelayMs * 2 ** (retry - 1));
  return step / 2 + Math.random() * (step / 2);
}

/**
 * An S3 client for one repository. The SDK's standard retry strategy decides what is retried —
 * throttling (SlowDown, 429, 503), other 5xx, timeouts and connection resets (ECONNRESET, EPIPE,
 * ECONNREFUSED) — and we give it our attempt count and backoff schedule.
 * Checksums are sent only where an operation requires them: many S3-compatible servers reject
 * the SDK's default trailing CRC on streamed bodies, and every object's SHA-256 is recorded and
 * checked by Warden itself (backup.json, segment records) besides the size check after upload.
 */
export function createS3Client(settings: S3ClientSettings): S3Client {
  const retry = { ...DEFAULT_RETRY, ...settings.retry };
  checkS3Endpoint(settings.endpoint, settings.allowHttp === true, 'endpoint');
  return new S3Client({
    region: settings.region,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    forcePathStyle: settings.forcePathStyle,
    ...(settings.credentials ? { credentials: settings.credentials } : {}),
    retryStrategy: new ConfiguredRetryStrategy(retry.maxAttempts, (attempt) =>
      backoffDelay(attempt, retry.baseDelayMs, retry.maxDelayMs),
    ),
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: new NodeHttpHandler({
      connectionTimeout: 10_000,
      requestTimeout: settings.requestTimeoutMs ?? 60_000,
      httpAgent: new http.Agent({ keepAlive: true, maxSockets: 32 }),
      // Certificates always verified; a configured CA is added to the system CAs, not instead.
      httpsAgent: new https.Agent({
        keepAlive: true,
        maxSockets: 32,
        ...verifiedTlsOptions(true, settings.tlsCa),
      }),
    }),
  });
}
