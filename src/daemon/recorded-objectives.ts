import os from 'node:os';
import type { ObjectStore } from '../repository/object-store.ts';
import type { DrillReport } from '../verify/drill.ts';
import type { ClusterPlan } from './daemon-config.ts';
import { PROFILE_NAMES, type ProfileName } from './profiles.ts';

/**
 * `daemon/objectives.json`: the profile and objectives the last daemon of this repository ran
 * with. `status` and `info` read them when their own configuration names none, so a probe shows
 * the same objectives whether the daemon runs or not.
 */
export const OBJECTIVES_KEY = 'daemon/objectives.json';

export interface RecordedObjectives {
  format: 1;
  profile: ProfileName;
  rtoMs: number;
  rpoMs: number;
  recordedAt: string;
  /** `host:pid` of the daemon that wrote it. */
  recordedBy: string;
}

/** The objectives a report judges against, and where they came from (printed with them). */
export interface ObjectivesChoice {
  profile: ProfileName;
  rtoMs: number;
  rpoMs: number;
  /** `config`: flags, environment or config file; `daemon`/`drill`: recorded in the repository. */
  origin: 'config' | 'daemon' | 'drill' | 'default';
  /** Human words: `--profile`, `recorded by the daemon on host:pid at …`, …. */
  source: string;
}

/** Reads the record; anything malformed counts as absent (it is only a default, never trusted further). */
export async function readRecordedObjectives(store: ObjectStore): Promise<RecordedObjectives | undefined> {
  if (!(await store.stat(OBJECTIVES_KEY))) return undefined;
  let parsed: Partial<RecordedObjectives>;
  try {
    parsed = JSON.parse(
      (await store.getBuffer(OBJECTIVES_KEY)).toString('utf8'),
    ) as Partial<RecordedObjectives>;
  } catch {
    return undefined;
  }
  return isRecord(parsed) ? parsed : undefined;
}

function isRecord(value: Partial<RecordedObjectives>): value is RecordedObjectives {
  return (
    value.format === 1 &&
    (PROFILE_NAMES as readonly unknown[]).includes(value.profile) &&
    validMs(value.rtoMs) &&
    validMs(value.rpoMs) &&
    typeof value.recordedAt === 'string' &&
    !Number.isNaN(Date.parse(value.recordedAt)) &&
    typeof value.recordedBy === 'string'
  );
}

const validMs = (value: unknown): value is number =>
  typeof value === 'number' && Number.isFinite(value) && value > 0;

/** Records the plan's objectives unless the repository already holds the same ones. */
export async function recordObjectives(
  store: ObjectStore,
  plan: ClusterPlan,
  now = new Date(),
): Promise<boolean> {
  const current = await readRecordedObjectives(store);
  if (
    current?.profile === plan.profile &&
    current.rtoMs === plan.objectives.rtoMs &&
    current.rpoMs === plan.objectives.rpoMs
  )
    return false;
  const record: RecordedObjectives = {
    format: 1,
    profile: plan.profile,
    rtoMs: plan.objectives.rtoMs,
    rpoMs: plan.objectives.rpoMs,
    recordedAt: now.toISOString(),
    recordedBy: `${os.hostname()}:${process.pid}`,
  };
  await store.putBuffer(OBJECTIVES_KEY, Buffer.from(`${JSON.stringify(record, null, 2)}\n`));
  return true;
}

/**
 * The objectives to judge a cluster by: the configured ones when anything configures them
 * (flag, environment, config file); otherwise the newer of what the last daemon recorded and
 * what the last drill ran with; only when the repository holds neither, the plan's profile
 * defaults — and the source says so.
 */
export function chooseObjectives(
  plan: ClusterPlan,
  recorded: { daemon?: RecordedObjectives; drill?: DrillReport },
): ObjectivesChoice {
  if (plan.objectivesFrom)
    return { profile: plan.profile, ...plan.objectives, origin: 'config', source: plan.objectivesFrom };
  const drill = recorded.drill;
  const drillProfile = (PROFILE_NAMES as readonly unknown[]).includes(drill?.profile)
    ? (drill!.profile as ProfileName)
    : undefined;
  const daemon = recorded.daemon;
  const drillIsNewer = drill && drillProfile && (!daemon || drill.startedAt > daemon.recordedAt);
  if (drillIsNewer && validMs(drill.objectives?.rtoMs) && validMs(drill.objectives?.rpoMs))
    return {
      profile: drillProfile,
      rtoMs: drill.objectives.rtoMs,
      rpoMs: drill.objectives.rpoMs,
      origin: 'drill',
      source: `recorded in the repository by the drill at ${drill.startedAt}`,
    };
  if (daemon)
    return {
      profile: daemon.profile,
      rtoMs: daemon.rtoMs,
      rpoMs: daemon.rpoMs,
      origin: 'daemon',
      source: `recorded in the repository by the daemon on ${daemon.recordedBy} at ${daemon.recordedAt}`,
    };
  return {
    profile: plan.profile,
    ...plan.objectives,
    origin: 'default',
    source: `the ${plan.profile} profile's defaults: nothing configured, and no daemon or drill recorded any in the repository (set --profile or daemon.profile)`,
  };
}
