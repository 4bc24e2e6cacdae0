import os from 'node:os';
import type { AuditActor } from './audit-record.ts';

/** This process as an actor: its OS account, host and pid; `token` names an API caller's token. */
export function currentActor(token?: string): AuditActor {
  let user: string;
  try {
    user = os.userInfo().username;
  } catch {
    // A uid without a passwd entry (a container run with an arbitrary uid) still gets recorded.
    user = `uid ${process.getuid?.() ?? 'unknown'}`;
  }
  return { user, host: os.hostname(), pid: process.pid, ...(token ? { token } : {}) };
}
