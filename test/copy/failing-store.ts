import { WardenError } from '../../src/errors.ts';
import type { ObjectStore } from '../../src/repository/object-store.ts';

/**
 * The fault-injecting adapter of these tests: every call goes to `inner`, except writes of keys
 * `fails` picks while `down` says so, which throw WARDEN_E_REPO_IO as an unwritable target would
 * (and every delete meanwhile, so nothing written before the failure is cleaned up).
 */
export function failingStore(
  inner: ObjectStore,
  fails: (key: string) => boolean,
): ObjectStore & { down: boolean; refused: string[] } {
  const refused: string[] = [];
  const check = (key: string) => {
    if (wrapper.down && fails(key)) {
      refused.push(key);
      throw new WardenError('WARDEN_E_REPO_IO', `injected: writing ${key} failed`);
    }
  };
  const wrapper = Object.create(inner) as ObjectStore & { down: boolean; refused: string[] };
  Object.assign(wrapper, {
    down: true,
    refused,
    put: async (
      key: string,
      ...rest: Parameters<ObjectStore['put']> extends [string, ...infer R] ? R : never
    ) => {
      check(key);
      return inner.put(key, ...rest);
    },
    putBuffer: async (key: string, data: Buffer) => {
      check(key);
      return inner.putBuffer(key, data);
    },
    // A target that went away cannot clean up either: what was written stays.
    delete: async (key: string) => {
      if (wrapper.down) throw new WardenError('WARDEN_E_REPO_IO', `injected: deleting ${key} failed`);
      return inner.delete(key);
    },
  });
  return wrapper;
}
