import { walPush } from '../../backup/wal-push.ts';
import type { CommandContext } from '../context.ts';

/**
 * `warden wal push %p` (archive_command). Exit 0 once the file is durable in the repository (or
 * was already, identical); any failure exits non-zero with the error on stderr, which PostgreSQL
 * logs, and PostgreSQL keeps the file and retries. A segment of that name with other content is
 * WARDEN_E_WAL_PUSH_CONFLICT (exit 6), never overwritten.
 */
export async function walPushCommand(
  context: CommandContext,
  file: string,
  signal: AbortSignal,
): Promise<number> {
  const result = await walPush({ store: context.store, file, keys: await context.writeKeys(), signal });
  if (context.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else if (result.kind === 'ignored')
    process.stderr.write(`warden: ${result.name} not kept: ${result.reason}\n`);
  return 0;
}
