import { toWardenError } from '../errors.ts';
import type { EventError, EventPublisher, EventSubject } from './warden-events.ts';

/**
 * What a use case's options carry to publish events. Both optional: a use case run without them
 * (the CLI's one-shot commands, tests) publishes nowhere.
 */
export interface ObservedOptions {
  /** Where to publish what happens (the daemon's one `WardenEvents`). */
  events?: EventPublisher;
  /** Who it happens to; default: cluster `default` and the store's location. */
  eventSubject?: EventSubject;
}

/** The subject of a use case's events: the one given, or `default` and the store's location. */
export function subjectOf(options: ObservedOptions, store: { location: string }): EventSubject {
  return options.eventSubject ?? { cluster: 'default', repository: store.location };
}

/**
 * An error as events carry it: its stable code and message only (WardenError messages never
 * embed secrets; see errors.ts).
 */
export function eventError(error: unknown): EventError {
  const wrapped = toWardenError(error);
  return { code: wrapped.code, message: wrapped.message };
}

/** Milliseconds since `performance.now()` read `start`, whole. */
export function elapsedMs(start: number): number {
  return Math.round(performance.now() - start);
}

/**
 * Whether an event's error is a stop (Ctrl-C, a daemon shutting down), not a failure: the work
 * was abandoned cleanly and is run again (a scheduled slot stays open), so nothing alerts or
 * counts it as a failure.
 */
export function wasInterrupted(error: EventError | undefined): boolean {
  return error?.code === 'WARDEN_E_ABORTED';
}
