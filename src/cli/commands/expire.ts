import { WardenError } from '../../errors.ts';
import { expire, type ExpireReport } from '../../retention/expire.ts';
import { parseDuration, type RetentionPolicy } from '../../retention/retention-policy.ts';
import type { CommandContext } from '../context.ts';
import { printJson, printSteps, table } from '../render.ts';
import { leftoverCount, type Leftovers } from '../../retention/leftovers.ts';

/**
 * Flags of `warden expire`. Any keep option on the command line replaces the configured (or
 * default) policy as a whole: `--keep-last 1` keeps the newest backup, not the newest backup on
 * top of seven daily, four weekly and twelve monthly ones.
 */
export interface ExpireFlags {
  dryRun?: boolean;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepLast?: string;
  maxAgeFull?: string;
  maxAgeIncremental?: string;
  recoveryWindow?: string;
}

/** Where the policy an expire applies came from. */
export type PolicySource = 'command line' | 'configuration';

/**
 * The policy to apply: only the command line's keep options when there is any (every other rule
 * off), otherwise the configured policy (config file over the built-in default).
 */
export function policyFromFlags(
  base: RetentionPolicy,
  flags: ExpireFlags,
): { policy: RetentionPolicy; source: PolicySource } {
  const count = (value: string | undefined, flag: string): number | undefined => {
    if (value === undefined) return undefined;
    if (!/^\d+$/.test(value)) {
      throw new WardenError('WARDEN_E_USAGE', `${flag}: "${value}" is not a whole number`, {
        details: { flag, value },
      });
    }
    return Number(value);
  };
  const duration = (value: string | undefined, flag: string) =>
    value === undefined ? undefined : parseDuration(value, flag, 'WARDEN_E_USAGE');
  const given = {
    daily: count(flags.keepDaily, '--keep-daily'),
    weekly: count(flags.keepWeekly, '--keep-weekly'),
    monthly: count(flags.keepMonthly, '--keep-monthly'),
    keepLast: count(flags.keepLast, '--keep-last'),
    fullMs: duration(flags.maxAgeFull, '--max-age-full'),
    incrementalMs: duration(flags.maxAgeIncremental, '--max-age-incremental'),
    recoveryWindowMs: duration(flags.recoveryWindow, '--recovery-window'),
  };
  if (Object.values(given).every((value) => value === undefined))
    return { policy: base, source: 'configuration' };
  const policy: RetentionPolicy = {
    gfs: { daily: given.daily ?? 0, weekly: given.weekly ?? 0, monthly: given.monthly ?? 0 },
    maxAge: definedOnly({ fullMs: given.fullMs, incrementalMs: given.incrementalMs }),
  };
  if (given.keepLast) policy.keepLast = given.keepLast;
  if (given.recoveryWindowMs) policy.recoveryWindowMs = given.recoveryWindowMs;
  return { policy, source: 'command line' };
}

/** `warden expire [--dry-run]`: applies the retention policy and says what went, what stayed and why. */
export async function expireCommand(
  context: CommandContext,
  flags: ExpireFlags,
  signal?: AbortSignal,
): Promise<number> {
  const { policy, source } = policyFromFlags(context.config.retention, flags);
  const report = await expire({
    store: context.store,
    policy,
    dryRun: flags.dryRun === true,
    logger: context.logger,
    ...(signal ? { signal } : {}),
  });
  if (context.json) printJson({ ...report, policySource: source });
  else printExpireReport(report, source);
  return 0;
}

export function printExpireReport(report: ExpireReport, source?: PolicySource): void {
  const { plan } = report;
  const out = (text: string) => process.stdout.write(`${text}\n`);
  out(`repository ${report.repository}`);
  out(
    `policy     ${report.policyText}${source === 'command line' ? '   (from the command line; replaces the configured policy)' : ''}`,
  );
  out(`now        ${plan.now}${report.dryRun ? '   (dry run: nothing is deleted)' : ''}`);
  for (const warning of plan.warnings) out(`warning    ${warning}`);
  out('');
  const verb = report.dryRun ? 'would expire' : 'expired';
  if (plan.expire.length === 0) out('no backup expires');
  else {
    out(`${verb} ${plan.expire.length} backup(s):`);
    out(
      table(
        ['ID', 'CONSISTENT AT (UTC)', 'RULE', 'WHY'],
        plan.expire.map((b) => [b.id, shortTime(b.endTime), b.rule, b.reasons.join('; ')]),
      ),
    );
  }
  out('');
  out(`keeping ${plan.keep.length} backup(s):`);
  out(
    table(
      ['ID', 'NAME', 'CONSISTENT AT (UTC)', 'KEPT BY'],
      plan.keep.map((b) => [
        b.id,
        b.name ?? '',
        shortTime(b.endTime),
        b.reasons.map((r) => `${r.rule} (${r.detail})`).join('; ') + (b.valid ? '' : ' [not restorable]'),
      ]),
    ),
  );
  out('');
  const walVerb = report.dryRun ? 'would delete' : 'deleted';
  if (plan.walDeleteRanges.length === 0) out('WAL: nothing to delete');
  else {
    out(`WAL: ${walVerb} ${plan.walToDelete.length} segment(s) no kept backup needs:`);
    for (const r of plan.walDeleteRanges)
      out(`  timeline ${r.timeline}: ${r.first} .. ${r.last} (${r.count})`);
  }
  out('WAL kept:');
  for (const r of plan.walKept.segments)
    out(`  timeline ${r.timeline}: ${r.first} .. ${r.last} (${r.count}), needed by ${r.neededBy}`);
  if (plan.walKept.histories.length)
    out(`  history files of timelines ${plan.walKept.histories.join(', ')} (always kept)`);
  for (const partial of plan.walKept.partials) out(`  ${partial} (segment being received; always kept)`);
  printLeftovers(report.leftovers, report.dryRun ? 'would remove' : 'removed', out);
  out('');
  printSteps(report.steps);
}

/** Leftovers of interrupted commands, listed by expire (`verb`: what happens to them) and verify. */
export function printLeftovers(leftovers: Leftovers, verb: string, out: (text: string) => void): void {
  if (leftoverCount(leftovers) === 0) return;
  out(`leftovers of interrupted commands (no record points to them; ${verb}):`);
  for (const b of leftovers.uncommittedBackups)
    out(`  backups/${b.id}/  uncommitted backup, ${b.objects} object(s), no backup.json`);
  for (const key of leftovers.walWithoutRecord) out(`  ${key}  WAL data without its record`);
  for (const key of leftovers.emptyDirectories) out(`  ${key}  empty directory`);
}

function shortTime(iso: string): string {
  return iso.replace('T', ' ').slice(0, 19);
}

function definedOnly<T extends Record<string, unknown>>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
