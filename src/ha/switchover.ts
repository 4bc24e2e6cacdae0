import { WardenError } from '../errors.ts';
import { locate } from '../postgres/connect.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { PatroniClient } from '../postgres/patroni-client.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { sleep } from '../util/backoff.ts';
import { parseLsn } from '../wal/lsn.ts';
import { currentPosition } from './member-position.ts';

export interface SwitchoverOptions {
  /** The cluster, with `patroni.urls` (Patroni is the authority that switches). */
  connection: ConnectionConfig;
  /** Member to hand the lead to; Patroni picks when absent. */
  candidate?: string;
  /** The repository whose WAL stream must follow the new leader (checked when given). */
  store?: ObjectStore;
  /** How long each wait lasts: the new leader, then the stream (default 120 s each). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface SwitchoverReport {
  from: string;
  to: string;
  /** The new leader's timeline and WAL position when it first accepted writes. */
  timeline: number;
  lsn: string;
  /** From the request to the new leader accepting writes. */
  leaderChangeMs: number;
  /** From the request to the repository holding the new leader's WAL (when a store was given). */
  streamFollowedMs?: number;
}

/**
 * `warden switchover`: asks Patroni (POST /switchover) to hand the lead to `candidate` (or to
 * whom it picks), waits until another member leads and accepts writes, then — with a
 * repository — until the WAL stream made the new leader's position durable on its timeline.
 * Warden never picks a primary itself: Patroni does, and Warden follows.
 */
export async function switchover(options: SwitchoverOptions): Promise<SwitchoverReport> {
  const { connection } = options;
  if (!connection.patroni?.urls.length) {
    throw new WardenError(
      'WARDEN_E_USAGE',
      "switchover needs the cluster's Patroni REST endpoints (patroni.urls)",
      {
        hint: 'Without a cluster manager, use `warden promote NAME` (a guarded runbook).',
        details: { field: 'patroni.urls' },
      },
    );
  }
  const patroni = new PatroniClient(connection.patroni);
  const timeoutMs = options.timeoutMs ?? 120_000;
  const view = await patroni.cluster();
  const leader = view.members.find((m) => m.role === 'leader');
  if (!leader) throw failed('leader', 'Patroni names no leader: nothing to switch over from');
  if (options.candidate !== undefined) {
    const candidate = view.members.find((m) => m.name === options.candidate);
    if (!candidate || candidate.name === leader.name || !['running', 'streaming'].includes(candidate.state))
      throw failed(
        'candidate',
        `"${options.candidate}" is not a running replica of the cluster (members: ${view.members.map((m) => `${m.name} ${m.role}/${m.state}`).join(', ')})`,
      );
  }
  const started = Date.now();
  await patroni.switchover(leader.name, options.candidate);

  const deadline = started + timeoutMs;
  let to: { name: string; timeline: number; lsn: string } | undefined;
  while (!to) {
    if (Date.now() > deadline) throw failed('leader', `no new leader accepted writes within ${timeoutMs} ms`);
    try {
      const { member, connection: pinned } = await locate(connection, 'primary');
      if (member.name !== undefined && member.name !== leader.name) {
        const position = await currentPosition(pinned);
        to = { name: member.name, ...position };
      }
    } catch {
      // between leaders: no primary yet
    }
    if (!to) await sleep(250, options.signal);
  }
  const report: SwitchoverReport = {
    from: leader.name,
    to: to.name,
    timeline: to.timeline,
    lsn: to.lsn,
    leaderChangeMs: Date.now() - started,
  };
  if (options.store) {
    const repository = await Repository.open(options.store);
    const target = parseLsn(to.lsn);
    const streamDeadline = Date.now() + timeoutMs;
    for (;;) {
      const state = (await readWalInventory(repository)).streamState;
      if (state && state.timeline >= to.timeline && parseLsn(state.flushedLsn) >= target) break;
      if (Date.now() > streamDeadline)
        throw failed(
          'stream',
          `the WAL stream did not follow ${to.name} within ${timeoutMs} ms (durable to ${state ? `${state.flushedLsn} on timeline ${state.timeline}` : 'nothing'}, leader at ${to.lsn} on timeline ${to.timeline})`,
        );
      await sleep(200, options.signal);
    }
    report.streamFollowedMs = Date.now() - started;
  }
  return report;
}

function failed(step: 'leader' | 'candidate' | 'stream', message: string): WardenError {
  return new WardenError('WARDEN_E_SWITCHOVER_FAILED', `switchover: ${message}`, {
    hint:
      step === 'stream'
        ? 'Check `warden status`: the receiver must run (warden serve / wal stream) with the cluster connection.'
        : 'See `patronictl list` for the members and their state.',
    details: { step },
  });
}
