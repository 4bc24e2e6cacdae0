import { z } from 'zod';
import { CONDITION_CODES, SEVERITIES, type ActiveCondition, type ConditionCode } from './conditions.ts';

/**
 * One message to one webhook: a transition of one condition. Kept in the outbox until the
 * webhook accepted it. `id` is its idempotency key (sent as `Idempotency-Key` and in the
 * generic body): a receiver that saw it already can drop a resend after a crash.
 */
export interface Notification {
  id: string;
  webhook: string;
  /** Order of creation; each webhook gets its notifications in this order. */
  seq: number;
  status: 'firing' | 'resolved';
  alert: ActiveCondition;
  /** When the transition happened. */
  at: string;
  attempts: number;
  nextAttemptAt?: string;
  lastError?: string;
}

/** What the state file holds: the active conditions and the undelivered notifications. */
export interface NotificationState {
  version: 1;
  nextSeq: number;
  active: ActiveCondition[];
  outbox: Notification[];
}

export const emptyState = (): NotificationState => ({ version: 1, nextSeq: 1, active: [], outbox: [] });

const errorSchema = z.object({ code: z.string().max(200), message: z.string().max(10_000) }).strict();
const time = z.string().datetime({ offset: true });

const activeSchema = z
  .object({
    key: z.string().min(1).max(500),
    cluster: z.string().min(1).max(200),
    condition: z.enum(CONDITION_CODES as [ConditionCode, ...ConditionCode[]]),
    subject: z.string().max(200).optional(),
    severity: z.enum(SEVERITIES),
    title: z.string().max(500),
    summary: z.string().max(10_000),
    repository: z.string().max(2_000).optional(),
    error: errorSchema.optional(),
    since: time,
    updatedAt: time,
  })
  .strict();

/** The state file is read back on start: validated, like anything read from disk. */
export const stateSchema = z
  .object({
    version: z.literal(1),
    nextSeq: z.number().int().min(1),
    active: z.array(activeSchema),
    outbox: z.array(
      z
        .object({
          id: z.string().regex(/^[A-Za-z0-9-]{8,80}$/),
          webhook: z.string().min(1).max(64),
          seq: z.number().int().min(1),
          status: z.enum(['firing', 'resolved']),
          alert: activeSchema,
          at: time,
          attempts: z.number().int().min(0),
          nextAttemptAt: time.optional(),
          lastError: z.string().max(2_000).optional(),
        })
        .strict(),
    ),
  })
  .strict();
