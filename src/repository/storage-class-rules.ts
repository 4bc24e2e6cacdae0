import { z } from 'zod';
import { WardenError } from '../errors.ts';
import { parseDuration } from '../util/duration.ts';

/** The S3 storage classes a rule may name (AWS's; S3-compatible servers accept a subset). */
export const STORAGE_CLASSES = [
  'STANDARD',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER_IR',
  'GLACIER',
  'DEEP_ARCHIVE',
] as const;

/** Classes whose objects must be retrieved (restored) before a GET can read them. */
export const ARCHIVE_CLASSES: ReadonlySet<string> = new Set(['GLACIER', 'DEEP_ARCHIVE']);

/** `storageClasses: [{ olderThan: 30d, class: STANDARD_IA }]` in warden.yaml. */
export const storageClassesSchema = z.array(
  z
    .object({
      olderThan: z.union([z.string(), z.number()]),
      class: z.enum(STORAGE_CLASSES),
    })
    .strict(),
);

export interface StorageClassRule {
  olderThanMs: number;
  storageClass: string;
}

/** Resolved rules, youngest first; two rules for the same age are refused (which would win?). */
export function resolveStorageClassRules(
  raw: z.infer<typeof storageClassesSchema> | undefined,
  field: string,
): StorageClassRule[] {
  const rules = (raw ?? []).map((rule, i) => ({
    olderThanMs: parseDuration(rule.olderThan, `${field}.${i}.olderThan`),
    storageClass: rule.class,
  }));
  rules.sort((a, b) => a.olderThanMs - b.olderThanMs);
  for (let i = 1; i < rules.length; i += 1) {
    if (rules[i]!.olderThanMs === rules[i - 1]!.olderThanMs) {
      throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: two rules for the same age`, {
        details: { field },
      });
    }
  }
  return rules;
}

/**
 * The class an object of this age belongs in: the rule with the greatest `olderThan` the age
 * reaches, or undefined (the bucket's default, STANDARD) when none does or the age is unknown.
 */
export function storageClassFor(
  ageMs: number | undefined,
  rules: readonly StorageClassRule[],
): string | undefined {
  if (ageMs === undefined) return undefined;
  let chosen: string | undefined;
  for (const rule of rules) if (ageMs >= rule.olderThanMs) chosen = rule.storageClass;
  return chosen;
}
