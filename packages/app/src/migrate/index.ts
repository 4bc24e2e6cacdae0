/**
 * `@warden/app/migrate`: a migration runner for teams without a migration tool — numbered SQL
 * files, checksums, one deploy at a time. For a Helm pre-install hook or a start-up step; the
 * restore point and the backup before a migration stay in the Warden tool (`warden migrate --`).
 */
export {
  migrate,
  migrationStatus,
  MIGRATION_LOCK_KEY,
  type MigrateOptions,
  type MigrateReport,
} from './migrate.ts';
export type { MigrationClient } from './migration-client.ts';
export { readMigrationFiles, NO_TRANSACTION_MARKER, type MigrationFile } from './migration-files.ts';
export { DEFAULT_HISTORY_TABLE } from './migration-history.ts';
export { planMigrations, type AppliedMigration, type MigrationPlan } from './migration-plan.ts';
export { splitStatements } from './sql-statements.ts';
