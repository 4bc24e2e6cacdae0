import { z } from 'zod';
import { DEFAULT_BACKUP_FROM, parseBackupFrom, type BackupFrom } from './backup-from.ts';

/**
 * `backup:` of a cluster in warden.yaml (`cluster.backup`, `daemon.backup`,
 * `daemon.clusters[].backup`): where `warden backup` and the daemon's scheduled backups run.
 */
export const backupSectionSchema = z
  .object({
    /** `primary` (default), `standby`, `standby-or-primary`, a member name, or a standby's URL. */
    from: z.string().min(1).max(1000).optional(),
  })
  .strict();

export type BackupSection = z.infer<typeof backupSectionSchema>;

/**
 * The backup source of the configuration: WARDEN_BACKUP_FROM > the config file's field >
 * `primary`. (`--from` beats both: the backup command applies it.) Values are checked here, so
 * a wrong one fails when the configuration loads, naming its field.
 */
export function resolveBackupFrom(
  env: NodeJS.ProcessEnv,
  fromFile: string | undefined,
  fileField: string,
): { from: BackupFrom; source: 'env' | 'file' | 'default' } {
  if (env.WARDEN_BACKUP_FROM)
    return {
      from: parseBackupFrom(env.WARDEN_BACKUP_FROM, 'WARDEN_BACKUP_FROM', 'WARDEN_E_CONFIG_INVALID'),
      source: 'env',
    };
  if (fromFile !== undefined)
    return { from: parseBackupFrom(fromFile, fileField, 'WARDEN_E_CONFIG_INVALID'), source: 'file' };
  return { from: DEFAULT_BACKUP_FROM, source: 'default' };
}
