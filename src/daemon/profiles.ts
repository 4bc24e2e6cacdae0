/** The jobs a daemon schedules per cluster. */
export const JOB_NAMES = [
  'full-backup',
  'backup',
  'logical-dump',
  'retention',
  'verification',
  'drill',
] as const;
export type JobName = (typeof JOB_NAMES)[number];

export const PROFILE_NAMES = ['dev', 'uat', 'prod'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

export interface Profile {
  /** Cron expressions (UTC unless a time zone is configured); null turns a job off. */
  schedules: Record<JobName, string | null>;
  objectives: { rto: string; rpo: string };
}

/**
 * Defaults from the requirements (§1, §2). The schedules are the same everywhere; what differs
 * between environments is what a drill has to prove. Retention (GFS 7 d / 4 w / 12 m) comes from
 * the `retention:` config section, whose defaults are the requirements'.
 */
const SCHEDULES: Profile['schedules'] = {
  // weekly full, Sunday 02:00
  'full-backup': '0 2 * * 0',
  // 6-hourly coverage at 06, 12, 18 (full backups before PostgreSQL 17; the WAL stream keeps RPO in seconds)
  backup: '0 6,12,18 * * *',
  // daily per-database logical dumps at 02:00
  'logical-dump': '0 2 * * *',
  // retention after the night's backups
  retention: '0 3 * * *',
  // daily restore verification
  verification: '0 4 * * *',
  // quarterly DR drill: 1 Jan / Apr / Jul / Oct, 05:00
  drill: '0 5 1 1,4,7,10 *',
};

export const PROFILES: Readonly<Record<ProfileName, Profile>> = {
  dev: { schedules: SCHEDULES, objectives: { rto: '24h', rpo: '48h' } },
  uat: { schedules: SCHEDULES, objectives: { rto: '8h', rpo: '24h' } },
  prod: { schedules: SCHEDULES, objectives: { rto: '4h', rpo: '24h' } },
};
