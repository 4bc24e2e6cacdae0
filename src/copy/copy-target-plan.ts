import type { RepositoryLocation } from '../repository/open-object-store.ts';
import type { StorageClassRule } from '../repository/storage-class-rules.ts';

/** One resolved `copyTo` target (daemon/copy-config.ts resolves it from warden.yaml). */
export interface CopyTargetPlan {
  /** The label in status, metrics (`target`) and events. */
  name: string;
  location: RepositoryLocation;
  /** How often a pass looks for newly committed objects. */
  intervalMs: number;
  /** Age rules for the target's storage classes (S3 only); empty when none. */
  storageClasses: StorageClassRule[];
}
