import type { ClusterTopology } from '../postgres/cluster-topology.ts';
import { formatBytes, table } from './render.ts';

/** The members of a cluster as `warden status` and `warden info` print them. */
export function renderTopology(t: ClusterTopology, indent = '  '): string[] {
  const lines = [
    `${indent}cluster members (from ${t.source === 'patroni' ? `Patroni at ${t.patroni?.endpoint ?? '?'}` : 'the host list'}; primary ${t.primary ?? 'NONE'})${
      t.patroniError ? `; Patroni not asked: ${t.patroniError.code}` : ''
    }`,
  ];
  const rows = t.members.map((m) => [
    m.name,
    `${m.host}:${m.port}`,
    m.reachable ? m.role : `unreachable (${m.error?.code ?? '?'})`,
    m.patroni ? `${m.patroni.role}/${m.patroni.state}` : '-',
    m.timeline !== undefined ? String(m.timeline) : '-',
    m.lsn ?? '-',
    m.replayLagBytes !== undefined ? formatBytes(m.replayLagBytes) : '-',
    m.syncState ?? '-',
    m.hasSlot === undefined ? '-' : m.hasSlot ? 'yes' : 'MISSING',
  ]);
  lines.push(
    ...table(['MEMBER', 'ADDRESS', 'ROLE', 'PATRONI', 'TL', 'LSN', 'LAG', 'SYNC', 'SLOT'], rows)
      .split('\n')
      .map((line) => `${indent}  ${line}`),
  );
  if (t.patroni)
    lines.push(`${indent}  Patroni permanent slots: ${t.patroni.permanentSlots.join(', ') || 'none'}`);
  const others = t.replication.filter((r) => !t.members.some((m) => m.name === r.applicationName));
  for (const r of others)
    lines.push(
      `${indent}  walsender ${r.applicationName}: ${r.state}, ${r.syncState}${r.flushLsn ? `, flushed ${r.flushLsn}` : ''}`,
    );
  return lines;
}
