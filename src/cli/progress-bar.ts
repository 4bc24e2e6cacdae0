import cliProgress from 'cli-progress';
import { formatBytes } from './render.ts';

export interface ByteProgress {
  update(done: number, total: number): void;
  stop(): void;
}

/**
 * A progress bar for byte counts, both ends in the same binary units (`23.1 MiB/23.1 MiB`).
 * The payload keys are not cli-progress' reserved `{value}`/`{total}`, which it fills with the
 * raw numbers and which once showed up as `23.1 MiB/24224768`.
 */
export function byteProgressBar(label: string, stream: NodeJS.WritableStream = process.stdout): ByteProgress {
  const bar = new cliProgress.SingleBar(
    {
      format: `${label} |{bar}| {percentage}% {doneBytes}/{totalBytes}`,
      hideCursor: true,
      stream,
      // Callers only create a bar for a terminal; a test's stream still gets each frame.
      noTTYOutput: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const payload = (done: number, total: number) => ({
    doneBytes: formatBytes(done),
    totalBytes: formatBytes(total),
  });
  return {
    update(done, total) {
      if (!started) bar.start(total, 0, payload(0, total));
      started = true;
      bar.setTotal(total);
      bar.update(Math.min(done, total), payload(Math.min(done, total), total));
    },
    stop() {
      if (started) bar.stop();
    },
  };
}
