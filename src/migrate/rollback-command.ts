import type { ProtectedPoint } from './protect-point.ts';

/**
 * The command that restores the state from before a migration into a NEW instance (never over
 * the migrated cluster: the operator decides when to switch over). `<DIR>` is left for them.
 */
export function rollbackCommand(
  point: ProtectedPoint,
  repository: string,
  targetDir = '<NEW-EMPTY-DIR>',
): string {
  const target = point.kind === 'restore-point' ? `--to-name ${point.name}` : `--backup ${point.id}`;
  return `warden restore ${target} --repo ${shellQuote(repository)} --target-dir ${shellQuote(targetDir)} --start`;
}

function shellQuote(value: string): string {
  return /^[\w@%+=:,./<>-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}
