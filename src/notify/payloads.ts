import type { WebhookPlan } from './notify-config.ts';
import type { Notification } from './outbox-state.ts';

/** A request body ready to POST. */
export interface RenderedPayload {
  body: string;
  headers: Record<string, string>;
}

/**
 * The body a webhook of each kind expects. Rendered at send time from the outbox entry, so the
 * PagerDuty routing key (the only secret a body carries, by PagerDuty's design) is never
 * written to the outbox file.
 */
export function renderPayload(notification: Notification, webhook: WebhookPlan): RenderedPayload {
  const body =
    webhook.kind === 'slack'
      ? slackBody(notification)
      : webhook.kind === 'pagerduty'
        ? pagerDutyBody(notification, webhook.routingKey ?? '')
        : genericBody(notification);
  return {
    body: JSON.stringify(body),
    headers: {
      'content-type': 'application/json',
      'idempotency-key': notification.id,
      'user-agent': 'warden-notifier/1',
    },
  };
}

/** Generic JSON (version 1): one object per transition. See docs/notifications.md. */
export function genericBody(n: Notification): Record<string, unknown> {
  const a = n.alert;
  return {
    version: 1,
    id: n.id,
    status: n.status,
    at: n.at,
    key: a.key,
    cluster: a.cluster,
    condition: a.condition,
    ...(a.subject ? { subject: a.subject } : {}),
    severity: a.severity,
    title: a.title,
    summary: a.summary,
    ...(a.repository ? { repository: a.repository } : {}),
    ...(a.error ? { error: a.error } : {}),
    since: a.since,
    ...(n.status === 'resolved' ? { resolvedAt: n.at } : {}),
  };
}

/** Slack incoming-webhook format: `text` (the notification line) and blocks for the detail. */
export function slackBody(n: Notification): Record<string, unknown> {
  const a = n.alert;
  const firing = n.status === 'firing';
  const icon = firing
    ? a.severity === 'critical'
      ? ':red_circle:'
      : ':large_orange_circle:'
    : ':white_check_mark:';
  const head = `${icon} ${firing ? 'FIRING' : 'RESOLVED'} [${a.severity}] ${a.cluster}: ${a.title}`;
  const context = [`key \`${a.key}\``, `since ${a.since}`, ...(firing ? [] : [`resolved ${n.at}`])];
  return {
    text: escapeSlack(`${head}: ${a.summary}`),
    blocks: [
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `*${escapeSlack(head)}*\n${escapeSlack(a.summary)}` },
      },
      { type: 'context', elements: [{ type: 'mrkdwn', text: escapeSlack(context.join(' · ')) }] },
    ],
  };
}

/** PagerDuty Events API v2: trigger and resolve share the dedup key (the condition's key). */
export function pagerDutyBody(n: Notification, routingKey: string): Record<string, unknown> {
  const a = n.alert;
  const dedupKey = `warden/${a.key}`.slice(0, 255);
  if (n.status === 'resolved')
    return { routing_key: routingKey, event_action: 'resolve', dedup_key: dedupKey };
  return {
    routing_key: routingKey,
    event_action: 'trigger',
    dedup_key: dedupKey,
    payload: {
      summary: `${a.cluster}: ${a.title}: ${a.summary}`.slice(0, 1024),
      source: `warden/${a.cluster}`,
      severity: a.severity,
      timestamp: n.at,
      component: a.cluster,
      class: a.condition,
      ...(a.repository ? { group: a.repository } : {}),
      custom_details: {
        key: a.key,
        since: a.since,
        ...(a.error ? { error_code: a.error.code, error_message: a.error.message } : {}),
        notification_id: n.id,
      },
    },
  };
}

/** Slack mrkdwn control characters (`&`, `<`, `>`), so a message cannot ping or link. */
function escapeSlack(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
