import { readFileSync } from 'node:fs';

/**
 * A process as a record can name it: its PID alone is not enough, because the kernel reuses
 * PIDs; the start time the kernel keeps for it (clock ticks since boot, field 22 of
 * /proc/<pid>/stat) tells a reused PID from the process that wrote the record.
 */
export interface ProcessIdentity {
  pid: number;
  /** /proc/<pid>/stat starttime; absent where /proc is not available (or in older records). */
  startTicks?: number;
  /** When the process started, ISO 8601 UTC, for people reading the record. */
  startedAt: string;
}

/** This process. */
export function currentProcessIdentity(): ProcessIdentity {
  const startTicks = procStartTicks(process.pid);
  return {
    pid: process.pid,
    ...(startTicks !== undefined ? { startTicks } : {}),
    startedAt: new Date(Date.now() - process.uptime() * 1000).toISOString(),
  };
}

/**
 * Whether the process a record names still runs. "dead" only when that is proven: no process
 * has the PID, or the one that has it started at another time (the PID was reused). Without
 * /proc or a recorded start time, a PID that exists — even one we may not signal — counts as
 * alive: a record is never taken from an owner that might still run.
 */
export function processLiveness(owner: ProcessIdentity): 'alive' | 'dead' {
  if (!Number.isSafeInteger(owner.pid) || owner.pid <= 0) return 'dead';
  if (HAS_PROC) {
    const stat = procStat(owner.pid);
    // A zombie has exited; only its parent has yet to collect its status.
    if (!stat || stat.state === 'Z' || stat.state === 'X') return 'dead';
    if (owner.startTicks !== undefined) return stat.startTicks === owner.startTicks ? 'alive' : 'dead';
    return 'alive';
  }
  try {
    process.kill(owner.pid, 0);
    return 'alive';
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH' ? 'dead' : 'alive';
  }
}

const HAS_PROC = procStat(process.pid) !== undefined;

function procStartTicks(pid: number): number | undefined {
  return procStat(pid)?.startTicks;
}

/** State (field 3) and starttime (field 22) of /proc/<pid>/stat; undefined when unreadable. */
function procStat(pid: number): { state: string; startTicks: number } | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces or ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const startTicks = Number(fields[19]);
  return fields[0] && Number.isSafeInteger(startTicks) ? { state: fields[0], startTicks } : undefined;
}

/** Another process as a record would name it, or undefined when none runs (or no /proc). */
export function processIdentity(pid: number): ProcessIdentity | undefined {
  const stat = procStat(pid);
  if (!stat) return undefined;
  return {
    pid,
    startTicks: stat.startTicks,
    startedAt:
      bootTimeMs() === undefined
        ? 'an unknown time'
        : new Date(bootTimeMs()! + stat.startTicks * (1000 / USER_HZ)).toISOString(),
  };
}

/** /proc counts in USER_HZ, 100 on every architecture Linux runs Node on. */
const USER_HZ = 100;

function bootTimeMs(): number | undefined {
  try {
    const match = /^btime (\d+)$/m.exec(readFileSync('/proc/stat', 'utf8'));
    return match ? Number(match[1]) * 1000 : undefined;
  } catch {
    return undefined;
  }
}
