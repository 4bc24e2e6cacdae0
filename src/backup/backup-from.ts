import { WardenError, type ErrorCode } from '../errors.ts';
import { connectionFromUrl, type ConnectionConfig } from '../postgres/connection-config.ts';

/**
 * Where `BASE_BACKUP` runs (`warden backup --from`, `WARDEN_BACKUP_FROM`, `backup.from` in
 * warden.yaml): the primary; any streaming standby of the cluster (the least behind that
 * qualifies), optionally falling back to the primary when none does; one member by name
 * (Patroni's, or `host:port` without Patroni); or a standby named by its URL.
 */
export type BackupFrom =
  | { kind: 'primary' }
  | { kind: 'standby'; orPrimary: boolean }
  | { kind: 'member'; name: string }
  | { kind: 'url'; connection: ConnectionConfig };

export const DEFAULT_BACKUP_FROM: BackupFrom = Object.freeze({ kind: 'primary' });

/** Patroni member names (and `host:port`): no spaces, slashes or anything a shell or URL would read. */
const MEMBER_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$/;

/**
 * Parses one `--from` value. `field` names where it came from in the message (`--from`,
 * `WARDEN_BACKUP_FROM`, `warden.yaml: cluster.backup.from`); `code` is USAGE for a flag and
 * CONFIG_INVALID for the environment or a file. `primary`, `standby` and `standby-or-primary`
 * are keywords: a member really called so is named by its URL instead.
 */
export function parseBackupFrom(
  value: string,
  field: string,
  code: ErrorCode = 'WARDEN_E_USAGE',
): BackupFrom {
  if (value === 'primary') return DEFAULT_BACKUP_FROM;
  if (value === 'standby') return { kind: 'standby', orPrimary: false };
  if (value === 'standby-or-primary') return { kind: 'standby', orPrimary: true };
  if (/^postgres(ql)?:\/\//.test(value)) return { kind: 'url', connection: connectionFromUrl(value, field) };
  if (MEMBER_NAME.test(value)) return { kind: 'member', name: value };
  throw new WardenError(
    code,
    `${field}: "${value.slice(0, 80)}" is not primary, standby, standby-or-primary, a member name or a postgres:// URL`,
    {
      hint: 'e.g. --from standby, --from node2 (a Patroni member), --from postgres://backup@replica1:5432/postgres',
      details: { field },
    },
  );
}

/** How a BackupFrom reads in reports and logs (a URL without its password). */
export function describeBackupFrom(from: BackupFrom): string {
  switch (from.kind) {
    case 'primary':
      return 'primary';
    case 'standby':
      return from.orPrimary ? 'standby-or-primary' : 'standby';
    case 'member':
      return from.name;
    case 'url':
      return `${from.connection.host}:${from.connection.port}`;
  }
}
