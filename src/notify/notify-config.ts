import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { WardenError } from '../errors.ts';
import { parseDuration } from '../util/duration.ts';
import { isLoopbackHost } from '../util/loopback.ts';
import { SEVERITIES, type Severity } from './conditions.ts';

export const WEBHOOK_KINDS = ['generic', 'slack', 'pagerduty'] as const;
export type WebhookKind = (typeof WEBHOOK_KINDS)[number];

/** PagerDuty's Events API v2 endpoint (a webhook of kind pagerduty may name another, e.g. EU). */
export const PAGERDUTY_EVENTS_URL = 'https://events.pagerduty.com/v2/enqueue';

const durationSchema = z.union([z.string(), z.number()]);

const webhookSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, _ . - only (at most 64)'),
    kind: z.enum(WEBHOOK_KINDS),
    /** Inline only where the URL holds no secret (not for slack, no user:password in it). */
    url: z.string().min(1).optional(),
    urlFile: z.string().min(1).optional(),
    urlEnv: z.string().min(1).optional(),
    /** PagerDuty's integration (routing) key: a secret, so from a file or the environment only. */
    routingKeyFile: z.string().min(1).optional(),
    routingKeyEnv: z.string().min(1).optional(),
    minSeverity: z.enum(SEVERITIES).optional(),
    /** A CA file (PEM) added to the system CAs for this https endpoint. */
    tlsCa: z.string().min(1).optional(),
    timeout: durationSchema.optional(),
  })
  .strict();

/** `daemon.notifications` in warden.yaml. */
export const notificationsSectionSchema = z
  .object({
    webhooks: z.array(webhookSchema).optional(),
    /** How long the WAL stream may be down before `stream-down` fires. */
    streamDownAfter: durationSchema.optional(),
    /** WAL a replication slot may keep on the server before `slot-retention-high` fires. */
    slotRetentionBytes: z.number().int().min(1).optional(),
    /** How often status-based conditions are evaluated. */
    evaluateEvery: durationSchema.optional(),
    /** Where the outbox (pending notifications, active conditions) is kept; relative to the config file. */
    stateDir: z.string().min(1).optional(),
    retry: z
      .object({
        initialDelay: durationSchema.optional(),
        maxDelay: durationSchema.optional(),
        giveUpAfter: durationSchema.optional(),
      })
      .strict()
      .optional(),
  })
  .strict();

export type NotificationsSection = z.infer<typeof notificationsSectionSchema>;

/** One resolved webhook. `url` and `routingKey` are secrets: never logged, never in the outbox. */
export interface WebhookPlan {
  name: string;
  kind: WebhookKind;
  url: URL;
  routingKey?: string;
  minSeverity: Severity;
  tlsCa?: string;
  timeoutMs: number;
}

export interface NotificationsPlan {
  webhooks: WebhookPlan[];
  streamDownAfterMs: number;
  slotRetentionBytes: number;
  evaluateEveryMs: number;
  /** The outbox file (absolute). */
  stateFile: string;
  retry: { initialDelayMs: number; maxDelayMs: number; giveUpAfterMs: number };
}

export const NOTIFICATIONS_DEFAULTS = {
  streamDownAfter: '5m',
  slotRetentionBytes: 10 * 1024 ** 3,
  evaluateEvery: '30s',
  stateDir: '.warden',
  stateFileName: 'notifications.json',
  minSeverity: 'warning' as Severity,
  timeout: '10s',
  retry: { initialDelay: '1s', maxDelay: '5m', giveUpAfter: '24h' },
} as const;

const FIELD = 'daemon.notifications';

/**
 * Resolves `daemon.notifications`: reads URL and routing-key files and variables, checks each
 * URL (https, or http to a loopback host only) and names the field in every error. A secret's
 * value never appears in a message, only where it came from.
 */
export function resolveNotificationsPlan(
  section: NotificationsSection,
  baseDir: string,
  env: NodeJS.ProcessEnv,
): NotificationsPlan {
  const names = new Set<string>();
  const webhooks = (section.webhooks ?? []).map((entry, i) => {
    const field = `${FIELD}.webhooks.${i}`;
    if (names.has(entry.name))
      throw configError(`${field}.name: "${entry.name}" is used by another webhook`, `${field}.name`);
    names.add(entry.name);
    return resolveWebhook(entry, field, baseDir, env);
  });
  const retry = section.retry ?? {};
  const d = NOTIFICATIONS_DEFAULTS;
  const plan: NotificationsPlan = {
    webhooks,
    streamDownAfterMs: parseDuration(
      section.streamDownAfter ?? d.streamDownAfter,
      `${FIELD}.streamDownAfter`,
    ),
    slotRetentionBytes: section.slotRetentionBytes ?? d.slotRetentionBytes,
    evaluateEveryMs: parseDuration(section.evaluateEvery ?? d.evaluateEvery, `${FIELD}.evaluateEvery`),
    stateFile: path.resolve(baseDir, section.stateDir ?? d.stateDir, d.stateFileName),
    retry: {
      initialDelayMs: parseDuration(
        retry.initialDelay ?? d.retry.initialDelay,
        `${FIELD}.retry.initialDelay`,
      ),
      maxDelayMs: parseDuration(retry.maxDelay ?? d.retry.maxDelay, `${FIELD}.retry.maxDelay`),
      giveUpAfterMs: parseDuration(retry.giveUpAfter ?? d.retry.giveUpAfter, `${FIELD}.retry.giveUpAfter`),
    },
  };
  if (plan.evaluateEveryMs < 100)
    throw configError(`${FIELD}.evaluateEvery: at least 100ms`, `${FIELD}.evaluateEvery`);
  if (plan.retry.initialDelayMs < 10 || plan.retry.maxDelayMs < plan.retry.initialDelayMs)
    throw configError(
      `${FIELD}.retry: initialDelay at least 10ms and maxDelay at least initialDelay`,
      `${FIELD}.retry`,
    );
  return plan;
}

type WebhookEntry = NonNullable<NotificationsSection['webhooks']>[number];

function resolveWebhook(
  entry: WebhookEntry,
  field: string,
  baseDir: string,
  env: NodeJS.ProcessEnv,
): WebhookPlan {
  const sources = [entry.url, entry.urlFile, entry.urlEnv].filter((s) => s !== undefined).length;
  if (entry.kind === 'slack' && entry.url !== undefined)
    throw configError(
      `${field}.url: a Slack webhook URL is a secret (anyone holding it can post); set urlFile or urlEnv instead`,
      `${field}.url`,
    );
  if (sources > 1) throw configError(`${field}: set only one of url, urlFile and urlEnv`, field);
  if (sources === 0 && entry.kind !== 'pagerduty')
    throw configError(`${field}.url: required (url, urlFile or urlEnv)`, `${field}.url`);
  if (entry.kind !== 'pagerduty' && (entry.routingKeyFile || entry.routingKeyEnv))
    throw configError(`${field}.routingKeyFile: only for kind pagerduty`, `${field}.routingKeyFile`);
  const urlText =
    entry.url ??
    (entry.urlFile !== undefined
      ? readSecretFile(entry.urlFile, baseDir, `${field}.urlFile`)
      : entry.urlEnv !== undefined
        ? readSecretEnv(entry.urlEnv, env, `${field}.urlEnv`)
        : PAGERDUTY_EVENTS_URL);
  const urlField =
    entry.url !== undefined ? `${field}.url` : entry.urlFile ? `${field}.urlFile` : `${field}.urlEnv`;
  const url = checkUrl(urlText, urlField, entry.url !== undefined);
  let routingKey: string | undefined;
  if (entry.kind === 'pagerduty') {
    if ((entry.routingKeyFile === undefined) === (entry.routingKeyEnv === undefined))
      throw configError(
        `${field}.routingKeyFile: set exactly one of routingKeyFile and routingKeyEnv (the integration key is a secret)`,
        `${field}.routingKeyFile`,
      );
    routingKey = entry.routingKeyFile
      ? readSecretFile(entry.routingKeyFile, baseDir, `${field}.routingKeyFile`)
      : readSecretEnv(entry.routingKeyEnv!, env, `${field}.routingKeyEnv`);
    if (!/^[A-Za-z0-9]{20,64}$/.test(routingKey))
      throw configError(
        `${field}.routingKey${entry.routingKeyFile ? 'File' : 'Env'}: not a PagerDuty integration key (20-64 letters and digits; it has ${routingKey.length} characters)`,
        `${field}.routingKey${entry.routingKeyFile ? 'File' : 'Env'}`,
      );
  }
  const tlsCa = entry.tlsCa ? path.resolve(baseDir, entry.tlsCa) : undefined;
  return {
    name: entry.name,
    kind: entry.kind,
    url,
    ...(routingKey ? { routingKey } : {}),
    minSeverity: entry.minSeverity ?? NOTIFICATIONS_DEFAULTS.minSeverity,
    ...(tlsCa ? { tlsCa } : {}),
    timeoutMs: parseDuration(entry.timeout ?? NOTIFICATIONS_DEFAULTS.timeout, `${field}.timeout`),
  };
}

/** https anywhere; plain http only to this machine (the request would cross a network in clear). */
function checkUrl(text: string, field: string, inline: boolean): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // The text may be a secret (from a file or variable): say what is wrong, not what it is.
    throw configError(`${field}: not a URL${inline ? ` ("${text}")` : ''}`, field);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:')
    throw configError(`${field}: the scheme must be https (or http to a loopback host)`, field);
  if (url.protocol === 'http:' && !isLoopbackHost(url.hostname))
    throw configError(
      `${field}: http is allowed to a loopback host only; use https for ${url.hostname} (the URL and the alerts would cross the network in clear)`,
      field,
    );
  if (inline && (url.username || url.password))
    throw configError(
      `${field}: credentials in an inline URL are a secret in the config; set urlFile or urlEnv`,
      field,
    );
  return url;
}

function readSecretFile(file: string, baseDir: string, field: string): string {
  const resolved = path.resolve(baseDir, file);
  let text: string;
  try {
    text = readFileSync(resolved, 'utf8').trim();
  } catch (cause) {
    throw new WardenError(
      'WARDEN_E_SECRET_UNAVAILABLE',
      `${field}: cannot read ${resolved} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
      { details: { field, file: resolved }, cause },
    );
  }
  if (!text) throw configError(`${field}: ${resolved} is empty`, field);
  return text;
}

function readSecretEnv(name: string, env: NodeJS.ProcessEnv, field: string): string {
  const value = env[name]?.trim();
  if (!value)
    throw new WardenError(
      'WARDEN_E_SECRET_UNAVAILABLE',
      `${field}: the environment variable ${name} is not set`,
      {
        details: { field, variable: name },
      },
    );
  return value;
}

function configError(message: string, field: string): WardenError {
  return new WardenError('WARDEN_E_CONFIG_INVALID', message, { details: { field } });
}
