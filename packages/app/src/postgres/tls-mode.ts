import { DataLayerError } from '../errors.ts';

/**
 * How the data layer uses TLS towards a PostgreSQL server (decided per host by `planTls`):
 * - `prefer` (default; libpq's allow and prefer): on loopback or a Unix socket, TLS whenever the
 *   server offers it, verified; on any other host the same as `require`, never plaintext.
 * - `require` (libpq's require and verify-full): TLS with the certificate chain and host name
 *   verified against the system CAs plus the configured CA; plaintext refused.
 * - `verify-ca`: TLS with the chain verified but not the host name (warns off loopback).
 * - `disable`: plaintext (warns off loopback).
 *
 * The same policy as the Warden tool's src/postgres/connection-config.ts (keep the two in step).
 */
export type TlsMode = 'disable' | 'prefer' | 'require' | 'verify-ca';

const TLS_MODES: Record<string, TlsMode> = {
  disable: 'disable',
  allow: 'prefer',
  prefer: 'prefer',
  require: 'require',
  'verify-ca': 'verify-ca',
  'verify-full': 'require',
};

export function parseTlsMode(value: string, field: string): TlsMode {
  const mode = TLS_MODES[value];
  if (!mode) {
    throw new DataLayerError('WARDEN_E_CONFIG_INVALID', `${field}: "${value}" is not a TLS mode`, {
      hint: 'Use disable, prefer, require or verify-ca (libpq sslmode names are accepted too).',
      details: { field },
    });
  }
  return mode;
}

/**
 * Undoes percent-encoding in one part of a URL. A `%` not followed by two hex digits is refused
 * (as libpq refuses it) with a message that names the part but never shows its value.
 */
export function decodeUrlPart(text: string, field: string, part: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new DataLayerError(
      'WARDEN_E_CONFIG_INVALID',
      `${field}: the ${part} holds a % that is not percent-encoding`,
      {
        hint: 'Percent-encode special characters in URLs: % as %25, @ as %40, : as %3A, / as %2F.',
        details: { field, part },
      },
    );
  }
}

/** Where a connection goes, as `user@host:port/db`: never the password, safe for logs. */
export interface ServerAddress {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly database: string;
}

export function describeServer(address: ServerAddress): string {
  return `${address.user}@${address.host}:${address.port}/${address.database}`;
}
