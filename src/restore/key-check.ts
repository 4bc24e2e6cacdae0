import { keyMismatch, keyMissing } from '../pipeline/encryption/age-errors.ts';
import { probeHeader } from '../pipeline/encryption/age-stream.ts';
import { identitiesMatch, type ObjectEncryption } from '../pipeline/encryption/repository-keys.ts';
import type { Repository } from '../repository/repository.ts';

/**
 * Before a restore writes anything: every encrypted object it needs must be encrypted to one of
 * the identities (checked against the recorded recipients), and the first object of each
 * recipient set must really open with them (its header is read and its MAC checked).
 * Fails with WARDEN_E_KEY_MISSING or WARDEN_E_KEY_MISMATCH naming the object.
 */
export async function checkRestoreKeys(
  repository: Pick<Repository, 'store' | 'keys'>,
  objects: ReadonlyArray<{ key: string; encryption?: ObjectEncryption; container?: string }>,
): Promise<{ encryptedObjects: number }> {
  const groups = new Map<string, { encryption: ObjectEncryption; keys: string[]; probe?: string }>();
  for (const object of objects) {
    if (!object.encryption) continue;
    const id = object.encryption.recipients.join(',');
    const group = groups.get(id) ?? { encryption: object.encryption, keys: [] };
    group.keys.push(object.key);
    // A sealed-partial container is not an age file: its header is probed when it is read.
    if (!object.container) group.probe ??= object.key;
    groups.set(id, group);
  }
  if (groups.size === 0) return { encryptedObjects: 0 };
  const identities = repository.keys.identities ?? [];
  const first = [...groups.values()][0]!;
  if (identities.length === 0) throw keyMissing(first.keys[0], first.encryption.recipients);
  for (const group of groups.values()) {
    if (!identitiesMatch(group.encryption, identities)) {
      const error = keyMismatch(
        group.keys[0],
        group.encryption.recipients,
        identities.map((identity) => identity.label),
      );
      error.details.objectsNeedingThisKey = group.keys.length;
      throw error;
    }
  }
  for (const group of groups.values())
    if (group.probe)
      await probeHeader(repository.store.get(group.probe), { identities, object: group.probe });
  return { encryptedObjects: [...groups.values()].reduce((n, g) => n + g.keys.length, 0) };
}
