import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { WardenError } from '../errors.ts';
import type { WardenEvents } from '../events/warden-events.ts';
import { silentLogger } from '../logger.ts';
import { backoffDelay } from '../util/backoff.ts';
import { claimOwnerRecord, type OwnerClaim } from '../util/owner-record.ts';
import {
  activeCondition,
  byUrgency,
  conditionKey,
  severityAtLeast,
  type ActiveCondition,
  type ConditionCode,
  type ConditionInput,
} from './conditions.ts';
import { watchEvents, type ConditionSink } from './event-conditions.ts';
import type { NotificationsPlan, WebhookPlan } from './notify-config.ts';
import { emptyState, type Notification, type NotificationState } from './outbox-state.ts';
import { renderPayload } from './payloads.ts';
import { scrubber } from './scrub.ts';
import { StateFile } from './state-file.ts';
import { STATUS_CONDITIONS, StatusConditions, type ClusterHealth } from './status-conditions.ts';
import { postWebhook } from './webhook-sender.ts';

export interface NotifierOptions {
  plan: NotificationsPlan;
  /** The configured clusters: active conditions of any other (a removed cluster) resolve at start. */
  clusters: readonly string[];
  logger?: Logger;
  /** Values that must never reach a webhook besides the webhooks' own URLs and keys. */
  secrets?: readonly string[];
}

/** What `GET /api/alerts` answers (docs/notifications.md#the-alerts-api). */
export interface AlertsDocument {
  alerts: ActiveCondition[];
  webhooks: Array<{
    name: string;
    kind: WebhookPlan['kind'];
    minSeverity: WebhookPlan['minSeverity'];
    /** Notifications not yet accepted by the receiver. */
    pending: number;
    delivered: number;
    /** Given up on: refused for good (4xx) or still failing after `retry.giveUpAfter`. */
    dropped: number;
    lastDeliveredAt?: string;
    lastError?: { at: string; message: string };
  }>;
}

interface WebhookStats {
  delivered: number;
  dropped: number;
  lastDeliveredAt?: string;
  lastError?: { at: string; message: string };
}

/**
 * Warden's own alerting: keeps the active conditions (from events and from the status the
 * daemon computes) and sends each transition to every webhook whose `minSeverity` it meets —
 * once when a condition fires, once when it resolves.
 *
 * Delivery: one FIFO per webhook, in creation order; the head is retried until accepted, so a
 * webhook never sees a "resolved" before its "firing". Retries back off exponentially with
 * ±50 % jitter: initialDelay·2^n capped at maxDelay (defaults 1 s, 2 s, 4 s … 256 s, then every
 * 5 min), until `giveUpAfter` (default 24 h) from the transition; a 4xx other than 408/429 is
 * dropped at once (resending the same body cannot succeed). Every notification is in the state
 * file (fsynced) before its first attempt and leaves it only after the receiver accepted it, so a
 * restart loses nothing; the only resend is of a notification whose acceptance was not yet
 * recorded when the process died, and it carries the same idempotency key.
 *
 * @example
 * const notifier = new Notifier({ plan, clusters: ['main'], logger });
 * await notifier.start();
 * notifier.watch(events);
 * notifier.watchStatus(async () => (await daemon.status()).clusters);
 */
export class Notifier implements ConditionSink {
  private readonly logger: Logger;
  private readonly file: StateFile;
  private readonly scrub: (text: string) => string;
  private readonly statusConditions: StatusConditions;
  private readonly controller = new AbortController();
  private state: NotificationState = emptyState();
  private readonly active = new Map<string, ActiveCondition>();
  private readonly stats = new Map<string, WebhookStats>();
  private readonly wakers = new Map<string, () => void>();
  private readonly loops: Promise<void>[] = [];
  private writing: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;
  private claim: OwnerClaim | undefined;
  private unsubscribe: (() => void) | undefined;
  private starting: Promise<void> | undefined;
  private stopping: Promise<void> | undefined;
  private ready = false;

  constructor(private readonly options: NotifierOptions) {
    this.logger = (options.logger ?? silentLogger).child({ component: 'notify' });
    this.file = new StateFile(options.plan.stateFile);
    this.statusConditions = new StatusConditions(options.plan);
    this.scrub = scrubber([
      ...(options.secrets ?? []),
      ...options.plan.webhooks.flatMap((w) => [w.url.href, ...(w.routingKey ? [w.routingKey] : [])]),
    ]);
    for (const webhook of options.plan.webhooks) this.stats.set(webhook.name, { delivered: 0, dropped: 0 });
  }

  /** Without webhooks nothing is sent and nothing is kept on disk: the conditions still show. */
  private get persistent(): boolean {
    return this.options.plan.webhooks.length > 0;
  }

  /** Claims the state file (one daemon per file), loads it, and starts delivering what is pending. */
  async start(): Promise<void> {
    this.starting ??= this.doStart();
    await this.starting;
  }

  private async doStart(): Promise<void> {
    const { plan } = this.options;
    if (this.persistent) {
      await mkdir(path.dirname(plan.stateFile), { recursive: true, mode: 0o700 }).catch((error: unknown) => {
        throw new WardenError('WARDEN_E_NOTIFY_STATE', `cannot create ${path.dirname(plan.stateFile)}`, {
          hint: 'Set daemon.notifications.stateDir to a writable local directory.',
          details: { file: plan.stateFile, errno: (error as NodeJS.ErrnoException).code },
          cause: error,
        });
      });
      this.claim = await claimOwnerRecord(
        `${plan.stateFile}.owner`,
        `a warden serve notifying from ${plan.stateFile}`,
      );
      this.state = await this.file.load((aside, reason) =>
        this.logger.error(
          { code: 'WARDEN_E_NOTIFY_STATE', file: aside },
          `notification state was unreadable (${reason}); moved aside, its pending notifications are not sent`,
        ),
      );
      // Messages for webhooks no longer configured cannot be sent: drop them, saying how many.
      const names = new Set(plan.webhooks.map((w) => w.name));
      const orphaned = this.state.outbox.filter((n) => !names.has(n.webhook));
      if (orphaned.length > 0) {
        this.logger.warn(
          { webhooks: [...new Set(orphaned.map((n) => n.webhook))] },
          `${orphaned.length} pending notification(s) for removed webhooks dropped`,
        );
        this.state.outbox = this.state.outbox.filter((n) => names.has(n.webhook));
      }
    }
    for (const alert of this.state.active) this.active.set(alert.key, alert);
    this.ready = true;
    const at = new Date().toISOString();
    for (const alert of [...this.active.values()])
      if (!this.options.clusters.includes(alert.cluster))
        this.clear(alert, at, `cluster ${alert.cluster} is no longer configured`);
    await this.persist();
    for (const webhook of plan.webhooks) this.loops.push(this.deliverLoop(webhook));
  }

  /** Subscribes the event conditions (backup, verification, drill, job, repository). */
  watch(events: WardenEvents): void {
    this.unsubscribe?.();
    this.unsubscribe = watchEvents(events, this);
  }

  /** Evaluates the status conditions every `evaluateEvery` with the status the daemon computes. */
  watchStatus(source: () => Promise<readonly ClusterHealth[]>): void {
    const signal = this.controller.signal;
    const loop = async () => {
      while (!signal.aborted) {
        await this.pause(this.options.plan.evaluateEveryMs);
        if (signal.aborted) break;
        try {
          this.evaluate(await source(), new Date());
        } catch (error) {
          this.logger.warn({ err: (error as Error).message }, 'status for the alert conditions failed');
        }
      }
    };
    this.loops.push(loop());
  }

  /** Applies one status evaluation: what holds fires (or stays), what no longer holds resolves. */
  evaluate(clusters: readonly ClusterHealth[], now: Date): void {
    for (const cluster of clusters) {
      const activeFor = (code: ConditionCode) =>
        this.active.has(conditionKey({ cluster: cluster.name, condition: code }));
      const holding = this.statusConditions.evaluate(cluster, now, activeFor);
      for (const input of holding) this.raise(input);
      const held = new Set(holding.map((input) => input.condition));
      for (const condition of STATUS_CONDITIONS)
        if (!held.has(condition))
          this.clear({ cluster: cluster.name, condition }, now.toISOString(), 'no longer holds');
    }
  }

  raise(input: ConditionInput): void {
    if (!this.ready || this.stopping) return;
    const clean: ConditionInput = {
      ...input,
      summary: this.scrub(input.summary),
      ...(input.error ? { error: { code: input.error.code, message: this.scrub(input.error.message) } } : {}),
    };
    const key = conditionKey(clean);
    const existing = this.active.get(key);
    if (existing) {
      // Still firing: the newest facts for the dashboard, no new message.
      const { summary, error } = clean;
      this.active.set(key, { ...existing, summary, ...(error ? { error } : {}), updatedAt: clean.at });
      return;
    }
    const alert = activeCondition(clean);
    this.active.set(key, alert);
    this.logger.warn({ alert: key, severity: alert.severity }, `alert firing: ${alert.summary}`);
    this.enqueue('firing', alert, clean.at);
  }

  clear(
    which: { cluster: string; condition: ConditionCode; subject?: string },
    at: string,
    why: string,
  ): void {
    if (!this.ready || this.stopping) return;
    const key = conditionKey(which);
    const alert = this.active.get(key);
    if (!alert) return;
    this.active.delete(key);
    this.logger.info({ alert: key }, `alert resolved: ${why}`);
    this.enqueue('resolved', { ...alert, updatedAt: at }, at);
  }

  /** The active conditions, most urgent first, and each webhook's delivery state. */
  alerts(): AlertsDocument {
    return {
      alerts: [...this.active.values()].sort(byUrgency),
      webhooks: this.options.plan.webhooks.map((w) => {
        const stats = this.stats.get(w.name)!;
        return {
          name: w.name,
          kind: w.kind,
          minSeverity: w.minSeverity,
          pending: this.state.outbox.filter((n) => n.webhook === w.name).length,
          ...stats,
        };
      }),
    };
  }

  /** Stops delivery (an attempt in flight is abandoned and stays pending) and writes the state. */
  async stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.starting?.catch(() => undefined);
      this.unsubscribe?.();
      this.controller.abort();
      for (const wake of this.wakers.values()) wake();
      await Promise.all(this.loops);
      await this.persist().catch(() => undefined);
      await this.claim?.release();
    })();
    await this.stopping;
  }

  private enqueue(status: Notification['status'], alert: ActiveCondition, at: string): void {
    for (const webhook of this.options.plan.webhooks) {
      if (!severityAtLeast(alert.severity, webhook.minSeverity)) continue;
      this.state.outbox.push({
        id: randomUUID(),
        webhook: webhook.name,
        seq: this.state.nextSeq++,
        status,
        alert,
        at,
        attempts: 0,
      });
    }
    // Sent only once on disk: the delivery loop waits for this write before its attempt.
    void this.persist()
      .catch(() => undefined)
      .then(() => {
        for (const wake of this.wakers.values()) wake();
      });
  }

  /** Writes the state as it is when the write starts; concurrent calls share one queued write. */
  private persist(): Promise<void> {
    if (!this.persistent) return Promise.resolve();
    this.queued ??= this.writing.then(() => {
      this.queued = undefined;
      this.state.active = [...this.active.values()];
      return this.file.save(this.state);
    });
    const write = this.queued;
    this.writing = write.catch((error: unknown) =>
      this.logger.error(
        { code: 'WARDEN_E_NOTIFY_STATE', err: (error as Error).message },
        'notification state not saved',
      ),
    );
    return write;
  }

  private async deliverLoop(webhook: WebhookPlan): Promise<void> {
    const signal = this.controller.signal;
    const { retry } = this.options.plan;
    const stats = this.stats.get(webhook.name)!;
    const logger = this.logger.child({ webhook: webhook.name });
    while (!signal.aborted) {
      const head = this.state.outbox
        .filter((n) => n.webhook === webhook.name)
        .sort((a, b) => a.seq - b.seq)[0];
      const wait = head ? (head.nextAttemptAt ? Date.parse(head.nextAttemptAt) - Date.now() : 0) : undefined;
      if (wait === undefined || wait > 0) {
        await this.pause(wait, webhook.name);
        continue;
      }
      await this.writing;
      const result = await postWebhook(webhook, renderPayload(head!, webhook), signal);
      if (signal.aborted) break;
      const now = new Date();
      if (result.outcome === 'delivered') {
        this.remove(head!);
        stats.delivered += 1;
        stats.lastDeliveredAt = now.toISOString();
        logger.info({ alert: head!.alert.key, status: head!.status, id: head!.id }, 'notification delivered');
      } else {
        head!.attempts += 1;
        head!.lastError = result.reason;
        stats.lastError = { at: now.toISOString(), message: result.reason };
        const expired = now.getTime() - Date.parse(head!.at) > retry.giveUpAfterMs;
        if (result.outcome === 'rejected' || expired) {
          this.remove(head!);
          stats.dropped += 1;
          logger.error(
            {
              code: 'WARDEN_E_WEBHOOK_DELIVERY',
              alert: head!.alert.key,
              id: head!.id,
              attempts: head!.attempts,
            },
            `notification dropped (${result.outcome === 'rejected' ? 'refused' : 'gave up'}): ${result.reason}`,
          );
        } else {
          const delay = backoffDelay(head!.attempts - 1, retry.initialDelayMs, retry.maxDelayMs);
          head!.nextAttemptAt = new Date(now.getTime() + delay).toISOString();
          logger.warn(
            {
              code: 'WARDEN_E_WEBHOOK_DELIVERY',
              alert: head!.alert.key,
              attempts: head!.attempts,
              retryInMs: delay,
            },
            `notification not delivered: ${result.reason}`,
          );
        }
      }
      await this.persist().catch(() => undefined);
    }
  }

  private remove(notification: Notification): void {
    this.state.outbox = this.state.outbox.filter((n) => n !== notification);
  }

  /** Sleeps `ms` (forever when undefined) or until woken (new work for `webhook`) or stopped. */
  private pause(ms: number | undefined, webhook?: string): Promise<void> {
    return new Promise((resolve) => {
      const signal = this.controller.signal;
      if (signal.aborted) return resolve();
      let timer: NodeJS.Timeout | undefined;
      const done = () => {
        if (timer) clearTimeout(timer);
        if (webhook) this.wakers.delete(webhook);
        signal.removeEventListener('abort', done);
        resolve();
      };
      if (ms !== undefined) timer = setTimeout(done, ms);
      if (webhook) this.wakers.set(webhook, done);
      signal.addEventListener('abort', done, { once: true });
    });
  }
}
