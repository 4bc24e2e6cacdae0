import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { DataLayerError } from '../errors.ts';

// Twin of the Warden tool's copy of this module (src/postgres or src/util); keep the two in step.

/**
 * Node TLS options that verify the peer: the certificate chain against the system CAs plus the
 * configured CA file (added to them, not instead), and the host name unless `verifyHost` is false.
 */
export function verifiedTlsOptions(verifyHost: boolean, caFile: string | undefined): tls.ConnectionOptions {
  return {
    rejectUnauthorized: true,
    ...(caFile ? { ca: [...tls.rootCertificates, readCa(caFile)] } : {}),
    ...(verifyHost ? {} : { checkServerIdentity: () => undefined }),
  };
}

function readCa(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (cause) {
    throw new DataLayerError('WARDEN_E_CONFIG_INVALID', `tlsCa: cannot read the CA file ${file}`, {
      hint: 'Name a readable PEM file (tlsCa in warden.yaml, sslrootcert in the URL, PGSSLROOTCERT).',
      details: { field: 'tlsCa', file, errno: (cause as { code?: string }).code },
      cause,
    });
  }
}

/**
 * True for the errors Node's TLS layer raises when a certificate or host name fails verification
 * (by their `code`: ERR_TLS_CERT_ALTNAME_INVALID, SELF_SIGNED_CERT_IN_CHAIN, CERT_HAS_EXPIRED, …).
 */
export function isTlsVerificationError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return code.startsWith('ERR_TLS') || code.includes('CERT') || code === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE';
}
