import { spawn } from 'node:child_process';
import { isWardenError, WardenError } from '../errors.ts';
import { connect } from '../postgres/connect.ts';
import { pinnedTo, type ConnectionConfig, type HostPort } from '../postgres/connection-config.ts';
import { ReplicationClient } from '../postgres/replication-client.ts';
import { archivedEnd } from '../repository/archived-end.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import { readWalInventory } from '../repository/wal-archive.ts';
import { sleep } from '../util/backoff.ts';
import { formatLsn, parseLsn } from '../wal/lsn.ts';
import { parseTimelineHistory } from '../wal/timeline-history.ts';
import { currentPosition } from './member-position.ts';

export interface PromoteOptions {
  /** Every member of the bare streaming-replication cluster (`hosts` of a multi-host URL). */
  connection: ConnectionConfig;
  /** The standby to promote, `host:port` as in the host list. */
  candidate: string;
  /** The operator says the old primary is stopped for good (`--old-primary-fenced`). */
  oldPrimaryFenced?: boolean;
  /** A fencing program (no shell) that must exit 0 before anything is promoted. */
  fencingCommand?: readonly string[];
  /** The candidate may lag the most advanced standby (replayed) by at most this (default 0). */
  maxLagBytes?: number;
  /** With the repository: what the old primary had that the new one lacks is reported. */
  store?: ObjectStore;
}

export interface MemberReplay extends HostPort {
  name: string;
  state: 'standby' | 'primary' | 'unreachable';
  replayLsn?: string;
  receiveLsn?: string;
}

export interface PromoteReport {
  promoted: string;
  fencedBy: 'flag' | 'command';
  timeline: number;
  lsn: string;
  members: MemberReplay[];
  /** Where the new timeline forked off the old one. */
  forkLsn?: string;
  /** WAL the repository holds on the old timeline past the fork: commits the new primary lacks. */
  oldPrimaryOnly?: { timeline: number; from: string; to: string; bytes: number };
}

/**
 * `warden promote NAME`: a guarded runbook for bare streaming replication (no cluster manager),
 * never automatic. Refuses (WARDEN_E_NOT_FENCED) while any member still answers as a primary,
 * and unless the old primary is known fenced: `--old-primary-fenced` after the operator stopped
 * it, or a fencing command that succeeded — an unreachable primary is not a fenced one. Refuses
 * (WARDEN_E_PROMOTE_CANDIDATE) a candidate that is not a standby or replayed less than the most
 * advanced standby by more than `maxLagBytes`. Then `pg_promote()`, and the report says the new
 * timeline and what the repository holds of the old primary that the new one lacks.
 */
export async function promote(options: PromoteOptions): Promise<PromoteReport> {
  const { connection } = options;
  if (connection.patroni?.urls.length)
    throw new WardenError('WARDEN_E_USAGE', 'this cluster is managed by Patroni: use `warden switchover`', {
      details: { field: 'patroni.urls' },
    });
  const hosts = connection.hosts?.length
    ? connection.hosts
    : [{ host: connection.host, port: connection.port }];
  const members = await Promise.all(hosts.map((h) => replayOf(connection, h)));
  const candidate = members.find((m) => m.name === options.candidate);
  if (!candidate || candidate.state !== 'standby')
    throw refuseCandidate(`${options.candidate} is not a reachable standby of the host list`, members);
  const primary = members.find((m) => m.state === 'primary');
  if (primary)
    throw notFenced(
      `${primary.name} still answers as a primary: promoting another would split the cluster`,
      members,
    );
  let fencedBy: PromoteReport['fencedBy'];
  if (options.fencingCommand?.length) {
    await runFencing(options.fencingCommand);
    fencedBy = 'command';
  } else if (options.oldPrimaryFenced) fencedBy = 'flag';
  else
    throw notFenced(
      'the old primary does not answer, but unreachable is not fenced: it may still take writes elsewhere',
      members,
    );
  const best = members
    .filter((m) => m.state === 'standby' && m.replayLsn)
    .sort((a, b) => Number(parseLsn(b.replayLsn!) - parseLsn(a.replayLsn!)))[0]!;
  const behind = parseLsn(best.replayLsn!) - parseLsn(candidate.replayLsn ?? '0/0');
  if (behind > BigInt(options.maxLagBytes ?? 0))
    throw refuseCandidate(
      `${candidate.name} replayed ${candidate.replayLsn}, ${behind} bytes behind ${best.name} (${best.replayLsn}): promote ${best.name}, or raise --max-lag-bytes`,
      members,
    );
  const pinned = pinnedTo(connection, candidate);
  const client = await connect({ ...pinned, applicationName: 'warden promote' });
  try {
    await client.query('SELECT pg_promote(true, 60)');
  } finally {
    await client.end().catch(() => undefined);
  }
  let position: { timeline: number; lsn: string } | undefined;
  for (let i = 0; i < 120 && !position; i += 1) {
    try {
      position = await currentPosition(pinned);
    } catch {
      await sleep(500);
    }
  }
  if (!position) throw refuseCandidate(`${candidate.name} did not leave recovery within 60 s`, members);
  const report: PromoteReport = { promoted: candidate.name, fencedBy, ...position, members };
  const fork = await forkPoint(pinned, position.timeline);
  if (fork) {
    report.forkLsn = formatLsn(fork.lsn);
    if (options.store) {
      const repository = await Repository.open(options.store);
      const end = archivedEnd(
        await readWalInventory(repository),
        fork.timeline,
        repository.meta.walSegmentSize,
      );
      if (end > fork.lsn)
        report.oldPrimaryOnly = {
          timeline: fork.timeline,
          from: formatLsn(fork.lsn),
          to: formatLsn(end),
          bytes: Number(end - fork.lsn),
        };
    }
  }
  return report;
}

async function replayOf(connection: ConnectionConfig, host: HostPort): Promise<MemberReplay> {
  const name = `${host.host}:${host.port}`;
  try {
    const client = await connect(
      { ...pinnedTo(connection, host), applicationName: 'warden promote' },
      { connectTimeoutMs: 5_000 },
    );
    try {
      const { rows } = await client.query<{ r: boolean; replay: string | null; receive: string | null }>(
        'SELECT pg_is_in_recovery() AS r, pg_last_wal_replay_lsn()::text AS replay, pg_last_wal_receive_lsn()::text AS receive',
      );
      const row = rows[0]!;
      return {
        ...host,
        name,
        state: row.r ? 'standby' : 'primary',
        ...(row.replay ? { replayLsn: row.replay } : {}),
        ...(row.receive ? { receiveLsn: row.receive } : {}),
      };
    } finally {
      await client.end().catch(() => undefined);
    }
  } catch (error) {
    if (isWardenError(error) && error.code !== 'WARDEN_E_DB_UNREACHABLE') throw error;
    return { ...host, name, state: 'unreachable' };
  }
}

/** Where the promoted member's timeline forked off its parent (from its history file). */
async function forkPoint(
  connection: ConnectionConfig,
  timeline: number,
): Promise<{ timeline: number; lsn: bigint } | undefined> {
  if (timeline < 2) return undefined;
  const client = await ReplicationClient.connect(connection);
  try {
    const history = parseTimelineHistory((await client.timelineHistory(timeline)).content.toString('utf8'));
    const last = history.at(-1);
    return last ? { timeline: last.timeline, lsn: last.switchLsn } : undefined;
  } finally {
    await client.close();
  }
}

/** Runs the fencing program (no shell, 60 s at most); anything but exit 0 refuses the promotion. */
async function runFencing(command: readonly string[]): Promise<void> {
  const [program, ...args] = command;
  const code = await new Promise<number | string>((resolve) => {
    const child = spawn(program!, args, { stdio: 'ignore', timeout: 60_000 });
    child.once('error', (error) => resolve((error as NodeJS.ErrnoException).code ?? 'error'));
    child.once('exit', (exitCode, signal) => resolve(exitCode ?? signal ?? 'killed'));
  });
  if (code !== 0)
    throw new WardenError(
      'WARDEN_E_NOT_FENCED',
      `the fencing command ${program} failed (${code}): the old primary is not known fenced`,
      {
        hint: 'Fence the old primary (power it off, cut it from the network), then run the command again.',
        details: { program, status: code },
      },
    );
}

function notFenced(message: string, members: MemberReplay[]): WardenError {
  return new WardenError('WARDEN_E_NOT_FENCED', `promote refused: ${message}`, {
    hint: 'Stop the old primary for good, then pass --old-primary-fenced (or configure a fencing command).',
    details: { members },
  });
}

function refuseCandidate(message: string, members: MemberReplay[]): WardenError {
  return new WardenError('WARDEN_E_PROMOTE_CANDIDATE', `promote refused: ${message}`, {
    details: { members },
  });
}
