import { collectClusterInfo, type ClusterInfo } from '../../daemon/cluster-info.ts';
import { describeDuration } from '../../util/duration.ts';
import type { CommandContext } from '../context.ts';
import { formatBytes, printJson, table } from '../render.ts';
import { describeWindow } from './backup-list.ts';
import { daemonPlanFor, type ServeFlags } from '../daemon-plan.ts';
import { openObjectStore } from '../../repository/open-object-store.ts';
import { renderTopology } from '../render-topology.ts';
import { collectStorageInfo, type StorageInfo } from '../../copy/storage-info.ts';
import { listBackups } from '../../repository/backup-catalog.ts';
import { Repository } from '../../repository/repository.ts';

/**
 * `warden info`: one view per cluster of what its repository holds and how far it can be
 * trusted (backups, chains, verification, window, WAL, keys, slot, last verification and drill).
 */
export async function infoCommand(context: CommandContext, flags: ServeFlags): Promise<number> {
  const plan = daemonPlanFor(context, flags);
  const readKeys = await context.readKeys().catch(() => undefined);
  const clusters: Array<ClusterInfo & { storage?: StorageInfo }> = [];
  for (const cluster of plan.clusters) {
    const store = await openObjectStore(cluster.repository);
    const info = await collectClusterInfo({
      plan: cluster,
      store,
      ...(cluster.connection ? { connection: cluster.connection } : {}),
      ...(readKeys?.trust ? { trusted: readKeys.trust.keys } : {}),
    });
    // Storage classes and copies only where configured or possible (an S3 repository).
    const storage =
      store.storageClassOf || cluster.storageClasses.length || cluster.copyTo.length
        ? await collectStorageInfo(
            store,
            await listBackups(await Repository.open(store, readKeys)),
            cluster.storageClasses,
            cluster.copyTo,
          )
        : undefined;
    clusters.push(storage ? { ...info, storage } : info);
  }
  if (context.json) printJson({ format: 1, clusters });
  else process.stdout.write(clusters.map(renderInfo).join('\n'));
  return 0;
}

export function renderInfo(c: ClusterInfo & { storage?: StorageInfo }): string {
  const r = c.repository;
  const lines = [
    `cluster ${c.name}: repository ${r.location}`,
    `  system id ${r.systemId}, PostgreSQL ${r.serverVersion}, created ${r.createdAt}, slot ${r.slot}`,
    `  objectives RTO ${describeDuration(c.objectives.rtoMs)}, RPO ${describeDuration(c.objectives.rpoMs)} (profile ${c.objectives.profile}, from ${c.objectives.source})`,
    '',
  ];
  if (c.backups.length === 0) lines.push('backups: none');
  else {
    lines.push('backups:');
    lines.push(
      indent(
        table(
          ['ID', 'KIND', 'NAME', 'CONSISTENT AT (UTC)', 'SIZE', 'STORED', 'CHAIN', 'VERIFIED'],
          c.backups.map((b) => [
            b.id,
            b.kind === 'incremental' ? `incr on ${b.parent}` : 'full',
            b.name ?? '',
            b.endTime.replace('T', ' ').slice(0, 19),
            formatBytes(b.sizeBytes),
            formatBytes(b.storedBytes),
            b.chain ? b.chain.join(' + ') : 'BROKEN (a parent is missing)',
            b.verification.state === 'never'
              ? 'never'
              : `${b.verification.state} ${b.verification.at} (${b.verification.by})`,
          ]),
        ),
      ),
    );
  }
  lines.push('', describeWindow(c.window), '');
  const w = c.wal;
  lines.push(
    `WAL: ${w.segments} segments, ${formatBytes(w.storedBytes)} stored${w.partials ? `, ${w.partials} partial` : ''}${w.streamState ? `; durable to ${w.streamState.flushedLsn}, last caught up ${w.streamState.caughtUpAt}` : ''}`,
  );
  for (const t of w.timelines)
    lines.push(
      `  timeline ${t.timeline}: ${t.first} .. ${t.last} (${t.segments} segments, ${formatBytes(t.storedBytes)})`,
    );
  const k = c.keys;
  lines.push(
    '',
    `keys: encrypted to ${k.recipients.length ? k.recipients.join(', ') : 'nothing (not encrypted)'}${k.unencrypted && k.recipients.length ? `; ${k.unencrypted} backup(s)/WAL range(s) not encrypted` : ''}`,
  );
  for (const s of k.signingKeys)
    lines.push(`  signed by ${s.key} (${s.trustedHere ? 'trusted here' : 'NOT trusted here'})`);
  if (k.unsigned) lines.push(`  ${k.unsigned} backup(s)/WAL range(s) unsigned`);
  if (k.passphraseKeys.length) lines.push(`  passphrase-protected keys: ${k.passphraseKeys.join(', ')}`);
  const s = c.slot;
  lines.push(
    '',
    `slot ${s.name}: ${
      !s.checked
        ? `not checked (${s.reason})`
        : !s.exists
          ? 'not on the server'
          : `${s.active ? 'active' : 'inactive'}, restart_lsn ${s.restartLsn ?? '-'}, keeps ${formatBytes(s.retainedBytes ?? 0)} of WAL, wal_status ${s.walStatus ?? '-'}`
    }`,
  );
  if (c.storage) lines.push('', ...renderStorage(c.storage));
  if (c.topology) lines.push('', ...renderTopology(c.topology, ''));
  const v = c.lastVerification;
  lines.push(
    `last verification: ${v ? `${v.passed ? 'passed' : `FAILED (${v.failed.join(', ')})`} at ${v.startedAt}, backup ${v.backupId ?? '-'}` : 'never'}`,
  );
  const d = c.lastDrill;
  lines.push(
    `last drill: ${
      d
        ? `${d.passed ? 'passed' : `FAILED (${d.failures.join('; ')})`} at ${d.startedAt}: RTO ${describeDuration(d.rtoMs)} / ${describeDuration(d.objectives.rtoMs)}, RPO ${d.rpoMs === undefined ? '-' : describeDuration(d.rpoMs)} / ${describeDuration(d.objectives.rpoMs)}`
        : 'never'
    }`,
  );
  return `${lines.join('\n')}\n`;
}

function renderStorage(s: StorageInfo): string[] {
  const rules = (list: StorageInfo['rules']) =>
    list.length
      ? list.map((r) => `${r.storageClass} after ${describeDuration(r.olderThanMs)}`).join(', ')
      : 'none';
  const lines = [`storage classes: ${rules(s.rules)}`];
  for (const b of s.backups ?? []) lines.push(`  backup ${b.id}: ${b.storageClass}`);
  for (const t of s.copyTo)
    lines.push(`copy to ${t.name} (${t.location}); storage classes: ${rules(t.rules)}`);
  return lines;
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `  ${line}`)
    .join('\n');
}
