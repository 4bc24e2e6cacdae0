import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { WardenError } from '../errors.ts';
import { emptyState, stateSchema, type NotificationState } from './outbox-state.ts';

/**
 * The notifier's durable state: one JSON file (mode 0600 in a 0700 directory), replaced whole
 * by write-aside, fsync, rename, fsync of the directory. A crash leaves either the old or the
 * new file, never half of one. Local rather than in the repository: the repository being
 * unreachable is itself a condition to announce, and a pending message must survive that.
 */
export class StateFile {
  constructor(readonly file: string) {}

  /**
   * The saved state; a fresh one when there is none. A file that fails validation is moved
   * aside (`<file>.unreadable-<time>`) and reported through `onUnreadable`, so a damaged file
   * costs its pending messages (named in the log) but never stops the daemon.
   */
  async load(onUnreadable: (aside: string, reason: string) => void): Promise<NotificationState> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return emptyState();
      throw new WardenError('WARDEN_E_NOTIFY_STATE', `cannot read the notification state ${this.file}`, {
        details: { file: this.file },
        cause: error,
      });
    }
    let reason: string;
    try {
      const parsed = stateSchema.safeParse(JSON.parse(text));
      if (parsed.success) return parsed.data as NotificationState;
      reason = parsed.error.issues
        .slice(0, 3)
        .map((i) => `${i.path.join('.')}: ${i.message}`)
        .join('; ');
    } catch (error) {
      reason = (error as Error).message;
    }
    const aside = `${this.file}.unreadable-${new Date().toISOString().replace(/[:.]/g, '-')}`;
    await rename(this.file, aside);
    onUnreadable(aside, reason);
    return emptyState();
  }

  async save(state: NotificationState): Promise<void> {
    const dir = path.dirname(this.file);
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      const aside = path.join(dir, `.${path.basename(this.file)}.${process.pid}.tmp`);
      const handle = await open(aside, 'w', 0o600);
      try {
        await handle.writeFile(JSON.stringify(state));
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(aside, this.file).catch(async (error: unknown) => {
        await rm(aside, { force: true });
        throw error;
      });
      const directory = await open(dir, 'r');
      try {
        await directory.sync();
      } finally {
        await directory.close();
      }
    } catch (error) {
      throw new WardenError('WARDEN_E_NOTIFY_STATE', `cannot write the notification state ${this.file}`, {
        hint: 'Check daemon.notifications.stateDir: it must be a writable local directory.',
        details: { file: this.file, errno: (error as NodeJS.ErrnoException).code },
        cause: error,
      });
    }
  }
}
