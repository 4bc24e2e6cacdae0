import { WalReceiver } from '../../backup/wal-receiver.ts';
import { describeGap } from '../../repository/wal-gap-incidents.ts';
import type { CommandContext } from '../context.ts';

/**
 * `warden wal stream`: runs the WAL receiver until Ctrl-C. A WAL gap is recorded in the
 * repository and ends the command (exit 5) unless `continueAfterGap` (`--continue-after-gap`).
 */
export async function walStreamCommand(
  context: CommandContext,
  signal: AbortSignal,
  flags: { continueAfterGap?: boolean } = {},
): Promise<number> {
  const receiver = new WalReceiver({
    continueAfterGap: flags.continueAfterGap === true,
    onGap: (gap) =>
      process.stderr.write(
        `\nWAL gap recorded: ${describeGap(gap)}; streaming goes on from ${gap.to}. Take a new full backup (\`warden backup\`) so restores reach past it.\n`,
      ),
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
