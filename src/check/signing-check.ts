import path from 'node:path';
import type { SigningConfig } from '../config/signing-config.ts';
import { loadSigningKey, loadTrust } from '../pipeline/signing/signing-keyring.ts';
import { failFrom, ok, type CheckResult } from './check-result.ts';

const NAME = 'signing-key';

/**
 * The key records are signed with, loaded as every writer loads it: the configured file must
 * exist and hold a key; without one, the default file is created on first use — `check` writes
 * WAL records in its round trip, so it is a first use too, and says so. The trusted keys
 * (files included) must be readable as well: readers refuse records without them.
 */
export async function checkSigning(config: SigningConfig): Promise<CheckResult> {
  try {
    const { key, file, created } = await loadSigningKey(config);
    const trust = await loadTrust(config);
    const where = path.relative(process.cwd(), file) || file;
    const others = [...trust.keys.keys()].filter((id) => id !== key.id).length;
    const trusted = others ? `; ${others} more trusted key(s) for reading` : '';
    return ok(
      NAME,
      created
        ? `created ${where} now (public key ${key.id}): keep a copy elsewhere; restores on other hosts need --trust-key ${key.id}${trusted}`
        : `records are signed with ${where} (public key ${key.id})${trusted}`,
      { publicKey: key.id, file, created },
    );
  } catch (error) {
    return failFrom(NAME, error);
  }
}
