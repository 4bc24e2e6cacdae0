import path from 'node:path';
import { z } from 'zod';
import { describeS3, resolveS3Repository, s3SectionSchema } from '../config/s3-config.ts';
import { WardenError } from '../errors.ts';
import type { RepositoryLocation } from '../repository/open-object-store.ts';
import type { CopyTargetPlan } from '../copy/copy-target-plan.ts';
import { parseDuration } from '../util/duration.ts';
import { resolveStorageClassRules, storageClassesSchema } from '../repository/storage-class-rules.ts';

/** One `copyTo` entry: a second repository every committed object is replicated to. */
export const copyTargetSchema = z
  .object({
    /** The label in status, metrics (`target`) and events; default: the location. */
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9_.-]{0,62}$/, 'lower-case letters, digits, ., - and _ only')
      .optional(),
    /** A directory (relative to the config file) or `s3://bucket/prefix`. */
    repository: z.string().min(1),
    /** The target bucket's own endpoint, region and credentials (not the source's). */
    s3: s3SectionSchema.partial({ bucket: true }).optional(),
    /** How often the daemon looks for newly committed objects (default 15s). */
    interval: z.union([z.string(), z.number()]).optional(),
    /** Age rules for the target's storage classes (S3 targets only). */
    storageClasses: storageClassesSchema.optional(),
  })
  .strict();

export const copyToSchema = z.array(copyTargetSchema);

export type { CopyTargetPlan };

export const COPY_DEFAULT_INTERVAL_MS = 15_000;

/**
 * Resolves `copyTo` entries. An S3 target takes its endpoint, region and credentials from its
 * own `s3:` (then the AWS environment, as for the main repository), never from the source's.
 */
export function resolveCopyTargets(
  raw: z.infer<typeof copyToSchema> | undefined,
  field: string,
  baseDir: string,
  env: NodeJS.ProcessEnv,
): CopyTargetPlan[] {
  const targets = (raw ?? []).map((entry, i): CopyTargetPlan => {
    const where = `${field}.${i}`;
    const s3 = entry.repository.startsWith('s3://')
      ? resolveS3Repository(
          entry.repository,
          false,
          entry.s3 ? { bucket: '', ...entry.s3 } : undefined,
          env,
          baseDir,
        )
      : undefined;
    if (!s3 && entry.s3) {
      throw new WardenError('WARDEN_E_CONFIG_INVALID', `${where}.s3: only for an s3:// repository`, {
        details: { field: `${where}.s3` },
      });
    }
    const storageClasses = resolveStorageClassRules(entry.storageClasses, `${where}.storageClasses`);
    if (!s3 && storageClasses.length) {
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `${where}.storageClasses: only for an s3:// repository (a directory has no storage classes)`,
        { details: { field: `${where}.storageClasses` } },
      );
    }
    const location: RepositoryLocation = s3
      ? { path: describeS3(s3), s3 }
      : { path: path.resolve(baseDir, entry.repository) };
    return {
      name: entry.name ?? location.path,
      location,
      intervalMs:
        entry.interval === undefined
          ? COPY_DEFAULT_INTERVAL_MS
          : parseDuration(entry.interval, `${where}.interval`),
      storageClasses,
    };
  });
  const names = new Set<string>();
  for (const [i, target] of targets.entries()) {
    if (names.has(target.name)) {
      throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}.${i}.name: "${target.name}" is used twice`, {
        details: { field: `${field}.${i}.name` },
      });
    }
    names.add(target.name);
  }
  return targets;
}
