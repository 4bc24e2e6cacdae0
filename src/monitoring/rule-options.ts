import { WardenError } from '../errors.ts';
import { parseDuration } from '../util/duration.ts';
import { DEFAULT_RULE_OPTIONS, type RuleOptions } from './alert-rule.ts';

/** `warden monitoring rules` flags as commander hands them over (strings, all optional). */
export interface RuleFlags {
  holdScale?: string;
  backupMaxAge?: string;
  slotRetainedMax?: string;
  failureMemory?: string;
  runbookBase?: string;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  B: 1,
  KiB: 1024,
  MiB: 1024 ** 2,
  GiB: 1024 ** 3,
  TiB: 1024 ** 4,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
};

/** Flags over the defaults; every value checked, errors naming the flag (WARDEN_E_USAGE). */
export function resolveRuleOptions(flags: RuleFlags): RuleOptions {
  const options: RuleOptions = { ...DEFAULT_RULE_OPTIONS };
  if (flags.holdScale !== undefined) options.holdScale = parseScale(flags.holdScale);
  if (flags.backupMaxAge !== undefined)
    options.backupMaxAgeMs = positiveDuration(flags.backupMaxAge, '--backup-max-age');
  if (flags.failureMemory !== undefined)
    options.failureMemoryMs = positiveDuration(flags.failureMemory, '--failure-memory');
  if (flags.slotRetainedMax !== undefined) options.slotRetainedMaxBytes = parseSize(flags.slotRetainedMax);
  if (flags.runbookBase !== undefined) options.runbookBase = parseRunbookBase(flags.runbookBase);
  return Object.freeze(options);
}

function usage(message: string, flag: string, value: string): WardenError {
  return new WardenError('WARDEN_E_USAGE', `${flag}: ${message}`, { details: { flag, value } });
}

/** Greater than 0 and at most 1: the option exists to shorten holds for demos and tests, never to lengthen them. */
function parseScale(text: string): number {
  const value = Number(text);
  if (!/^\d*\.?\d+(e-?\d+)?$/i.test(text.trim()) || !(value > 0 && value <= 1))
    throw usage(`"${text}" is not a factor in (0, 1] (e.g. 0.01 turns 5m into 3s)`, '--hold-scale', text);
  return value;
}

function positiveDuration(text: string, flag: string): number {
  let ms: number;
  try {
    ms = parseDuration(text, flag);
  } catch {
    throw usage(`"${text}" is not a duration (e.g. 9h, 7d)`, flag, text);
  }
  if (ms < 1000) throw usage(`"${text}" is shorter than a second`, flag, text);
  return ms;
}

function parseSize(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?$/.exec(text.trim());
  const unit = SIZE_UNITS[match?.[2] ?? ''];
  if (!match || unit === undefined || Number(match[1]) <= 0)
    throw usage(`"${text}" is not a size (e.g. 10GiB, 500MB, 1073741824)`, '--slot-retained-max', text);
  return Math.round(Number(match[1]) * unit);
}

/** A URL or path without a fragment, printed into annotations: no quotes or spaces to break YAML readers downstream. */
function parseRunbookBase(text: string): string {
  if (text.length === 0 || /[\s#"'<>]/.test(text))
    throw usage(
      `"${text}" is not a URL or path without spaces, quotes or a #fragment`,
      '--runbook-base',
      text,
    );
  return text;
}
