import type { ObjectStore } from '../repository/object-store.ts';

/** One run of a scheduled job, as kept in the repository. */
export interface JobRun {
  /** The schedule slot this run served (ISO time). */
  slot: string;
  startedAt: string;
  finishedAt: string;
  /** Which daemon ran it (`host:pid:id`). */
  daemon: string;
  status: 'succeeded' | 'failed' | 'skipped';
  detail?: string;
  error?: { code: string; message: string };
}

/**
 * `daemon/jobs/<job>.json`: the last slot handled and recent runs. Shared by every daemon of the
 * repository, so a slot handled by one is not run again by another, and a slot missed while all
 * were down is caught up once.
 */
export interface JobState {
  format: 1;
  job: string;
  /** The newest slot that is done (succeeded, skipped, or failed for good). */
  lastSlot?: string;
  lastRun?: JobRun;
  lastSuccess?: JobRun;
  /** Newest first, at most {@link HISTORY_LENGTH}. */
  history: JobRun[];
}

const HISTORY_LENGTH = 20;

export function jobStateKey(job: string): string {
  return `daemon/jobs/${job}.json`;
}

export async function readJobState(store: ObjectStore, job: string): Promise<JobState> {
  const key = jobStateKey(job);
  if (!(await store.stat(key))) return { format: 1, job, history: [] };
  return JSON.parse((await store.getBuffer(key)).toString('utf8')) as JobState;
}

export async function readAllJobStates(store: ObjectStore): Promise<JobState[]> {
  const keys = (await store.list('daemon/jobs/')).filter((key) => key.endsWith('.json'));
  const states: JobState[] = [];
  for (const key of keys) states.push(JSON.parse((await store.getBuffer(key)).toString('utf8')) as JobState);
  return states;
}

/** Records a run; `done` moves lastSlot forward (a retryable failure leaves the slot open). */
export async function recordJobRun(
  store: ObjectStore,
  job: string,
  run: JobRun,
  done: boolean,
): Promise<JobState> {
  const state = await readJobState(store, job);
  const next: JobState = {
    ...state,
    ...(done ? { lastSlot: run.slot } : {}),
    lastRun: run,
    ...(run.status === 'succeeded' ? { lastSuccess: run } : {}),
    history: [run, ...state.history].slice(0, HISTORY_LENGTH),
  };
  await store.putBuffer(jobStateKey(job), Buffer.from(`${JSON.stringify(next, null, 2)}\n`));
  return next;
}
