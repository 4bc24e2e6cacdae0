import type { JobRun } from '../scheduler/job-state.ts';

/** The slice of the daemon's status the job lines are made of. */
export interface JobsView {
  clusters: Array<{ name: string; jobs: Array<{ name: string; lastRun?: JobRun }> }>;
}

/**
 * The lines `serve` prints about finished jobs, each run once. The repository remembers the last
 * run of every job, so a restarted daemon sees runs of its predecessor: those finished before
 * this daemon started are printed once, marked as earlier, instead of passing for new ones.
 */
export class JobLines {
  private readonly seen = new Set<string>();

  constructor(private readonly startedAt: Date) {}

  next(view: JobsView | undefined): string[] {
    const lines: string[] = [];
    for (const cluster of view?.clusters ?? []) {
      for (const job of cluster.jobs) {
        const run = job.lastRun;
        const key = `${cluster.name}/${job.name}/${run?.finishedAt ?? ''}`;
        if (!run || this.seen.has(key)) continue;
        this.seen.add(key);
        const earlier = Date.parse(run.finishedAt) < this.startedAt.getTime();
        lines.push(
          `  ${run.finishedAt} ${cluster.name} ${job.name}: ${run.status}${run.detail ? ` — ${run.detail}` : ''}${earlier ? ' (earlier run, before this start)' : ''}`,
        );
      }
    }
    return lines;
  }
}
