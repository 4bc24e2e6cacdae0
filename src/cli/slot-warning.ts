import { idleSlotWarning } from '../backup/repository-slot.ts';
import { isWardenError } from '../errors.ts';
import { readSlot } from '../postgres/replication-slots.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import type { ObjectStore } from '../repository/object-store.ts';
import { Repository } from '../repository/repository.ts';
import type { CommandContext } from './context.ts';

/** The command's repository (or the given store's), or undefined when there is none yet. */
export async function openRepositoryIfAny(
  context: CommandContext,
  store: ObjectStore = context.store,
): Promise<Repository | undefined> {
  try {
    return await Repository.open(store);
  } catch (error) {
    if (isWardenError(error, 'WARDEN_E_REPO_NOT_INITIALIZED')) return undefined;
    throw error;
  }
}

/**
 * Every command that connects says so when the repository's slot is inactive and keeps WAL on
 * the server (its disk fills until the stream runs again or the slot is dropped). Best effort:
 * a warning never fails the command. docs/slots.md lists the commands that call it, and why the
 * others do not. `target` is for commands whose repository or connection come from a daemon
 * plan (drill) rather than the command line's defaults.
 */
export async function warnIdleSlot(
  context: CommandContext,
  target: { store?: ObjectStore; connection?: ConnectionConfig } = {},
): Promise<void> {
  try {
    const repository = await openRepositoryIfAny(context, target.store);
    const name = context.config.slot ?? repository?.meta.slot;
    if (!name) return;
    const { currentLsn, slot } = await readSlot(target.connection ?? context.cluster(), name);
    const warning = slot ? idleSlotWarning({ name, info: slot, currentLsn, archiveEnd: 0n }) : undefined;
    if (warning) process.stderr.write(`warning: ${warning}\n`);
  } catch {
    // no server, no repository: the command itself reports that
  }
}
