import { deleteBackup } from '../../retention/delete-backup.ts';
import type { CommandContext } from '../context.ts';
import { printJson } from '../render.ts';

/** `warden backup delete ID|NAME [--force]`: the explicit way to delete a (named) backup. */
export async function backupDeleteCommand(
  context: CommandContext,
  backup: string,
  flags: { force?: boolean },
  signal?: AbortSignal,
): Promise<number> {
  const record = await deleteBackup({
    store: context.store,
    backup,
    force: flags.force === true,
    logger: context.logger,
    ...(signal ? { signal } : {}),
  });
  if (context.json) printJson({ deleted: { id: record.id, name: record.name } });
  else
    process.stdout.write(
      `deleted backup ${record.id}${record.name ? ` (${record.name})` : ''}; run \`warden expire\` to release WAL only it needed\n`,
    );
  return 0;
}
