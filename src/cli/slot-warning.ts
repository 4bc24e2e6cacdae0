import { idleSlotWarning } from '../backup/repository-slot.ts';
import { isWardenError } from '../errors.ts';
import { readSlot } from '../postgres/replication-slots.ts';
import { Repository } from '../repository/repository.ts';
import type { CommandContext } from './context.ts';

/** The command's repository, or undefined when there is none yet. */
export async function openRepositoryIfAny(context: CommandContext): Promise<Repository | undefined> {
  try {
    return await Repository.open(context.store);
  } catch (error) {
    if (isWardenError(error, 'WARDEN_E_REPO_NOT_INITIALIZED')) return undefined;
    throw error;
  }
}

/**
 * Every command that connects says so when the repository's slot is inactive and keeps WAL on
 * the server (its disk fills until the stream runs again or the slot is dropped). Best effort:
 * a warning never fails the command.
 */
export async function warnIdleSlot(context: CommandContext): Promise<void> {
  try {
    const repository = await openRepositoryIfAny(context);
    const name = context.config.slot ?? repository?.meta.slot;
    if (!name) return;
    const { currentLsn, slot } = await readSlot(context.cluster(), name);
    const warning = slot ? idleSlotWarning({ name, info: slot, currentLsn, archiveEnd: 0n }) : undefined;
    if (warning) process.stderr.write(`warning: ${warning}\n`);
  } catch {
    // no server, no repository: the command itself reports that
  }
}
