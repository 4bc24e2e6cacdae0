import type { BackupOrigin } from '../repository/backup-catalog.ts';

/**
 * `takenFrom` of a backup record as one line (`standby node2 (10.0.0.2:5432), 1504 bytes behind
 * when chosen`). The record comes from the repository: whatever is not the expected shape is
 * left out, and control characters never reach the terminal.
 */
export function describeOrigin(origin: BackupOrigin | undefined): string | undefined {
  if (!origin || (origin.role !== 'primary' && origin.role !== 'standby')) return undefined;
  const where =
    typeof origin.host === 'string' && Number.isInteger(origin.port)
      ? `${printable(origin.host)}:${origin.port}`
      : undefined;
  const member = typeof origin.member === 'string' ? printable(origin.member) : undefined;
  const name = member && where && member !== where ? `${member} (${where})` : (member ?? where);
  const lag =
    typeof origin.replayLagBytes === 'number' && Number.isFinite(origin.replayLagBytes)
      ? `, ${origin.replayLagBytes} bytes behind when chosen`
      : '';
  const fallback =
    typeof origin.fallback === 'string' ? ` (no standby qualified: ${printable(origin.fallback)})` : '';
  return `${origin.role}${name ? ` ${name}` : ''}${lag}${fallback}`;
}

function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.slice(0, 300).replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
}
