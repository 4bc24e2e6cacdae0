import { DataLayerError } from '../errors.ts';
import { isLoopbackHost } from './loopback.ts';
import type { TlsMode } from './tls-mode.ts';

// Twin of the Warden tool's copy of this module (src/postgres or src/util); keep the two in step.

/**
 * What one connection to one host does about TLS:
 * - `plain`: no TLS.
 * - `probe`: ask the server (SSLRequest) and use verified TLS if it offers it, else plaintext.
 *   Only ever chosen for loopback and Unix sockets, where nobody can sit in between.
 * - `tls`: TLS or nothing, the certificate chain always verified (system CAs plus the configured
 *   CA); the host name too unless `verifyHost` is false (libpq's verify-ca).
 */
export type TlsPlan =
  | { readonly kind: 'plain'; readonly warning?: TlsWarning }
  | { readonly kind: 'probe' }
  | { readonly kind: 'tls'; readonly verifyHost: boolean; readonly warning?: TlsWarning };

export interface TlsWarning {
  readonly code: 'WARDEN_W_TLS_DISABLED' | 'WARDEN_W_TLS_HOST_UNVERIFIED';
  readonly message: string;
}

/**
 * Decides TLS for one host (a multi-host setup decides per host), from the host alone: no DNS.
 *
 * A host that is not loopback gets verified TLS unless the mode says otherwise explicitly:
 * `prefer` (the default, also libpq's `allow`) and `require` both mean "TLS with a verified
 * certificate and host name" there. libpq's prefer falls back to plaintext when the server
 * answers "no TLS", which is exactly what a man in the middle answers, so it is never honoured
 * off this machine; refusing it outright would break every copied connection string that
 * carries the libpq default. Plaintext (`disable`) and an unverified host name (`verify-ca`)
 * stay possible, each with a warning. A configured CA means the operator expects a certificate:
 * TLS is then required and verified on every host, loopback included.
 */
export function planTls(
  host: string,
  port: number,
  mode: TlsMode,
  ca: string | undefined,
  field = 'tls',
): TlsPlan {
  const loopback = isLoopbackHost(host);
  const where = `${host}:${port}`;
  if (mode === 'disable') {
    if (ca) {
      throw new DataLayerError(
        'WARDEN_E_CONFIG_INVALID',
        `${field}: "disable" contradicts the configured CA (${ca}) for ${where}`,
        {
          hint: 'Remove the CA (tlsCa / sslrootcert) or use tls: require (sslmode=verify-full).',
          details: { field },
        },
      );
    }
    if (loopback) return { kind: 'plain' };
    return {
      kind: 'plain',
      warning: {
        code: 'WARDEN_W_TLS_DISABLED',
        message: `TLS is disabled for ${where}: passwords, backups and WAL cross the network in plaintext`,
      },
    };
  }
  if (mode === 'verify-ca') {
    if (loopback) return { kind: 'tls', verifyHost: false };
    return {
      kind: 'tls',
      verifyHost: false,
      warning: {
        code: 'WARDEN_W_TLS_HOST_UNVERIFIED',
        message: `the certificate of ${where} is checked against the CA but not its host name (verify-ca): any certificate that CA signed is accepted`,
      },
    };
  }
  // PostgreSQL never offers TLS on a Unix socket, and nobody can sit in between: no probe.
  if (mode === 'prefer' && host.startsWith('/') && !ca) return { kind: 'plain' };
  if (mode === 'prefer' && loopback && !ca) return { kind: 'probe' };
  return { kind: 'tls', verifyHost: true };
}
