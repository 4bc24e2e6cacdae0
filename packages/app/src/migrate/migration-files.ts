import { createHash } from 'node:crypto';
import { lstat, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { DataLayerError } from '../errors.ts';

/** One migration file: `001_create_accounts.sql`, `V2__add_note.sql` (Flyway's names work too). */
export interface MigrationFile {
  version: number;
  name: string;
  file: string;
  sql: string;
  /** SHA-256 (hex) of the file's bytes: an applied file must never change. */
  sha256: string;
  /** False for a file whose first line is `-- warden:no-transaction` (e.g. CREATE INDEX CONCURRENTLY). */
  transactional: boolean;
}

const NAME = /^V?(\d{1,15})(?:__|_|-)([A-Za-z0-9][A-Za-z0-9_.-]*)\.sql$/;
export const NO_TRANSACTION_MARKER = '-- warden:no-transaction';
/** A migration larger than this is a data dump, not a migration. */
const MAX_FILE_BYTES = 16 * 1024 * 1024;

/**
 * Reads the migrations of `dir`, ordered by version. Names are checked before a file is read;
 * a symlink, a directory or an over-large file under a migration name, two files with one
 * version, or a `.sql` file whose name is not a migration's are refused (a typo would otherwise
 * be skipped silently).
 */
export async function readMigrationFiles(dir: string): Promise<MigrationFile[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (error) {
    throw invalid(`cannot read the migrations directory ${dir}: ${(error as NodeJS.ErrnoException).code}`, {
      dir,
    });
  }
  const files: MigrationFile[] = [];
  const byVersion = new Map<number, string>();
  for (const name of names) {
    if (!name.endsWith('.sql')) continue;
    const match = NAME.exec(name);
    if (!match) throw invalid(`${name} is not named like a migration (NNN_description.sql)`, { file: name });
    const version = Number(match[1]);
    const other = byVersion.get(version);
    if (other) throw invalid(`${name} and ${other} both have version ${version}`, { file: name, other });
    byVersion.set(version, name);
    const full = path.join(dir, name);
    const stat = await lstat(full);
    if (!stat.isFile())
      throw invalid(`${name} is not a regular file (a symlink or a directory)`, { file: name });
    if (stat.size > MAX_FILE_BYTES)
      throw invalid(`${name} is ${stat.size} bytes, more than a migration's ${MAX_FILE_BYTES}`, {
        file: name,
      });
    const bytes = await readFile(full);
    const sql = bytes.toString('utf8');
    files.push({
      version,
      name: match[2]!,
      file: name,
      sql,
      sha256: createHash('sha256').update(bytes).digest('hex'),
      transactional: !sql.trimStart().startsWith(NO_TRANSACTION_MARKER),
    });
  }
  return files.sort((a, b) => a.version - b.version);
}

function invalid(message: string, details: Record<string, unknown>): DataLayerError {
  return new DataLayerError('WARDEN_E_MIGRATION_INVALID', message, {
    hint: 'Name migrations NNN_description.sql with unique increasing numbers, as regular files.',
    details,
  });
}
