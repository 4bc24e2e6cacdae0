import { DataLayerError } from '../errors.ts';
import type { MigrationFile } from './migration-files.ts';

/** A row of the history table. */
export interface AppliedMigration {
  version: number;
  name: string;
  sha256: string;
  appliedAt: Date;
}

export interface MigrationPlan {
  /** The newest applied version (0 when none). */
  current: number;
  applied: AppliedMigration[];
  pending: MigrationFile[];
}

/**
 * What is left to apply, refusing a history the files no longer describe: an applied file that
 * changed (checksum), an applied version whose file is gone, and a pending file older than the
 * newest applied one (out of order: it was added after newer ones ran, and running it now would
 * apply changes in an order no environment was tested with).
 */
export function planMigrations(
  files: readonly MigrationFile[],
  applied: readonly AppliedMigration[],
): MigrationPlan {
  const byVersion = new Map(files.map((f) => [f.version, f]));
  for (const row of applied) {
    const file = byVersion.get(row.version);
    if (!file)
      throw new DataLayerError(
        'WARDEN_E_MIGRATION_INVALID',
        `applied migration ${row.version} (${row.name}) has no file any more`,
        {
          hint: 'Restore the file: applied migrations stay in the directory.',
          details: { version: row.version },
        },
      );
    if (file.sha256 !== row.sha256)
      throw new DataLayerError(
        'WARDEN_E_MIGRATION_CHECKSUM',
        `${file.file} changed after it was applied (SHA-256 ${file.sha256.slice(0, 12)}…, applied as ${row.sha256.slice(0, 12)}…)`,
        {
          hint: 'Never edit an applied migration: revert the file and put the change in a new one.',
          details: { version: row.version, file: file.file },
        },
      );
  }
  const current = applied.reduce((max, row) => Math.max(max, row.version), 0);
  const done = new Set(applied.map((row) => row.version));
  const pending = files.filter((f) => !done.has(f.version));
  const late = pending.find((f) => f.version < current);
  if (late)
    throw new DataLayerError(
      'WARDEN_E_MIGRATION_ORDER',
      `${late.file} is older than the newest applied migration ${current}: out of order`,
      {
        hint: 'Renumber it after the newest applied migration.',
        details: { version: late.version, current },
      },
    );
  return { current, applied: [...applied].sort((a, b) => a.version - b.version), pending };
}
