import { WalReceiver } from '../../backup/wal-receiver.ts';
import type { CommandContext } from '../context.ts';

/** `warden wal stream`: runs the WAL receiver until Ctrl-C. */
export async function walStreamCommand(context: CommandContext, signal: AbortSignal): Promise<number> {
  const receiver = new WalReceiver({
    connection: context.cluster(),
    store: context.store,
    ...(context.config.slot !== undefined ? { slotName: context.config.slot } : {}),
    keys: await context.writeKeys(),
    logger: context.logger,
    signal,
  });
  if (!context.json)
    process.stdout.write(
      `streaming WAL into ${context.store.location} (slot ${context.config.slot ?? 'of the repository'}); Ctrl-C stops\n`,
    );
  const timer = setInterval(() => {
    const status = receiver.status();
    if (!context.json && process.stdout.isTTY)
      process.stdout.write(
        `\r${status.state}${status.slot ? ` (slot ${status.slot})` : ''} flushed ${status.flushedLsn ?? '-'}${status.waitingFor ? `, waiting for ${status.waitingFor}` : ''}   `,
      );
  }, 1000);
  try {
    await receiver.run();
  } finally {
    clearInterval(timer);
  }
  if (!context.json) process.stdout.write('\nWAL stream stopped\n');
  return 0;
}
