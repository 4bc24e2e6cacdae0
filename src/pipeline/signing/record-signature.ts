import { WardenError } from '../../errors.ts';
import { SigningPublicKey, type SigningKey } from './signing-keys.ts';

/**
 * The `signature` field of a signed record (backup.json, dump.json, a WAL segment record,
 * warden-repo.json, stream-state.json, a timeline history's record). It signs the record's
 * canonical form without this field, so record and signature are written in one atomic put.
 */
export interface RecordSignature {
  alg: 'ed25519';
  /** The signer's public key, `wardensig1...`: a key id a reader looks up in its trust set. */
  key: string;
  /** Base64 of the 64-byte Ed25519 signature. */
  sig: string;
}

/**
 * Which public keys a reader accepts. It comes from outside the repository (the local signing
 * key, --trust-key, repository.signing.trustedKeys): a key named only inside the repository
 * proves nothing, since whoever can write the repository can name their own.
 */
export interface TrustPolicy {
  /** Accepted public keys by id (`wardensig1...`). */
  keys: ReadonlyMap<string, SigningPublicKey>;
  /** Accept records with no signature at all (repositories written before signing), with a warning. */
  allowUnsigned?: boolean;
  /** Told about each unsigned record accepted under `allowUnsigned`. */
  onUnsigned?: (object: string) => void;
}

/** Where a record lives: the signature binds both, so a record cannot be moved to another name or repository. */
export interface SignedObject {
  /** Repository key of the record (`backups/<id>/backup.json`). */
  object: string;
  /** The repository's PostgreSQL system identifier. */
  systemId: string;
}

export type SignatureVerdict =
  | { status: 'trusted'; key: string }
  | { status: 'unsigned' }
  | { status: 'untrusted'; key: string }
  | { status: 'invalid'; key?: string; reason: string };

const DOMAIN = 'warden-signed-record-v1';

/** JSON with object keys sorted at every level and no whitespace: the same bytes on every writer and reader. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item ?? null)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function signedBytes(record: object, where: SignedObject): Buffer {
  const { signature: _omitted, ...unsigned } = record as { signature?: unknown };
  return Buffer.from(`${DOMAIN}\n${where.systemId}\n${where.object}\n${canonicalJson(unsigned)}`);
}

/** The record with a fresh `signature` (any old one replaced). */
export function signRecord<T extends object>(
  record: T,
  where: SignedObject,
  key: SigningKey,
): T & { signature: RecordSignature } {
  const { signature: _old, ...unsigned } = record as T & { signature?: unknown };
  const signature: RecordSignature = {
    alg: 'ed25519',
    key: key.id,
    sig: key.sign(signedBytes(unsigned, where)).toString('base64'),
  };
  return { ...(unsigned as T), signature };
}

/** Checks a parsed record's signature against the trust set (keys it does not know are still checked for validity). */
export function checkRecordSignature(
  record: unknown,
  where: SignedObject,
  trusted: ReadonlyMap<string, SigningPublicKey>,
): SignatureVerdict {
  if (record === null || typeof record !== 'object' || Array.isArray(record))
    return { status: 'invalid', reason: 'not a JSON object' };
  const signature = (record as { signature?: unknown }).signature;
  if (signature === undefined) return { status: 'unsigned' };
  const { alg, key, sig } = (signature ?? {}) as Partial<RecordSignature>;
  if (alg !== 'ed25519' || typeof key !== 'string' || typeof sig !== 'string')
    return { status: 'invalid', reason: 'malformed signature field' };
  let publicKey = trusted.get(key);
  if (!publicKey) {
    try {
      publicKey = SigningPublicKey.parse(key);
    } catch {
      return { status: 'invalid', key, reason: 'the signing key id is not a wardensig1... key' };
    }
  }
  // Node's base64 decoder skips stray characters and unused bits: only the one canonical
  // spelling counts, so no byte of the stored record can change without failing the check.
  const raw = Buffer.from(sig, 'base64');
  if (raw.toString('base64') !== sig)
    return { status: 'invalid', key, reason: 'the signature is not canonical base64' };
  if (!publicKey.verify(signedBytes(record, where), raw))
    return { status: 'invalid', key, reason: 'the signature does not match the record' };
  return trusted.has(key) ? { status: 'trusted', key } : { status: 'untrusted', key };
}

/** The error a reader raises for a verdict other than trusted (undefined when acceptable). */
export function signatureError(verdict: SignatureVerdict, where: SignedObject): WardenError | undefined {
  const details = { object: where.object };
  switch (verdict.status) {
    case 'trusted':
      return undefined;
    case 'unsigned':
      return new WardenError('WARDEN_E_UNSIGNED', `${where.object} is not signed`, {
        hint:
          'Records written before signing are unsigned: check the repository with `warden verify --allow-unsigned`, ' +
          'then sign it once with `warden repo sign --yes`; or accept unsigned records with --allow-unsigned (warns).',
        details,
      });
    case 'untrusted':
      return new WardenError(
        'WARDEN_E_SIGNATURE_UNTRUSTED',
        `${where.object} is signed by ${verdict.key}, a key not trusted here`,
        {
          hint:
            'If that key is one of your backup writers (e.g. the key before a rotation), trust it with ' +
            '--trust-key or repository.signing.trustedKeys; otherwise someone else wrote this record.',
          details: { ...details, key: verdict.key },
        },
      );
    case 'invalid':
      return new WardenError(
        'WARDEN_E_SIGNATURE_INVALID',
        `${where.object} fails its signature check: ${verdict.reason}`,
        {
          hint: 'The record was changed after it was signed: the repository has been tampered with or damaged.',
          details: { ...details, ...(verdict.key ? { key: verdict.key } : {}) },
        },
      );
  }
}

/**
 * Throws unless the record is signed by a trusted key; an unsigned record passes only under
 * `allowUnsigned` (reported to `onUnsigned`). Readers call it before acting on a record.
 */
export function assertTrustedRecord(record: unknown, where: SignedObject, trust: TrustPolicy): void {
  const verdict = checkRecordSignature(record, where, trust.keys);
  if (verdict.status === 'unsigned' && trust.allowUnsigned) {
    trust.onUnsigned?.(where.object);
    return;
  }
  const error = signatureError(verdict, where);
  if (error) throw error;
}
