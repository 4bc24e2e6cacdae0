import { loadConfig } from '../../config/config.ts';
import { openObjectStore } from '../../repository/open-object-store.ts';
import { copyRepository } from '../../repository/repository-copy.ts';
import type { CommandContext, GlobalOptions } from '../context.ts';
import { printJson } from '../render.ts';

export interface RepoCopyFlags {
  to: string;
}

/**
 * `warden repo copy --to <repo>`: replicates the committed backups and archived WAL that the
 * second repository (a directory or `s3://bucket/prefix`, credentials as for --repo) lacks.
 */
export async function repoCopyCommand(
  context: CommandContext,
  options: GlobalOptions & RepoCopyFlags,
): Promise<number> {
  const target = await openObjectStore(
    loadConfig({ flags: { ...options, repo: options.to }, env: process.env, cwd: process.cwd() }).repository,
  );
  const report = await copyRepository(context.store, target, {
    keys: await context.readKeys(),
    signingKey: await context.signingKey(),
  });
  if (context.json) printJson(report);
  else
    process.stdout.write(
      `copied ${report.backups.length} backup(s), ${report.segments} WAL segment(s), ` +
        `${report.histories} history file(s) (${(report.bytes / 1048576).toFixed(1)} MiB) ` +
        `from ${report.from} to ${report.to} in ${(report.durationMs / 1000).toFixed(1)} s\n`,
    );
  return 0;
}
