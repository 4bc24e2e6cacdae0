import { WardenError, type ErrorCode } from '../../errors.ts';
import { isTlsVerificationError } from '../../util/verified-tls.ts';
import type { DbConnection } from './driver.ts';

/** Socket-level errno codes that mean "the session is gone", not "the statement failed". */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** SQLSTATEs that end the session: admin/crash shutdown, server starting up or shutting down. */
const SESSION_ENDING_SQLSTATES = new Set(['57P01', '57P02', '57P03']);

/** SQLSTATE of a write sent to a server in recovery: the primary we knew is a replica now. */
export const READ_ONLY_SQLSTATE = '25006';

interface DriverErrorFields {
  code?: unknown;
  severity?: unknown;
  detail?: unknown;
  hint?: unknown;
  constraint?: unknown;
  table?: unknown;
  column?: unknown;
  schema?: unknown;
  routine?: unknown;
}

function fieldsOf(error: unknown): DriverErrorFields {
  return typeof error === 'object' && error !== null ? (error as DriverErrorFields) : {};
}

/** The SQLSTATE of a server error, if the error came from the server. */
export function sqlstateOf(error: unknown): string | undefined {
  const { code, severity } = fieldsOf(error);
  return typeof code === 'string' && typeof severity === 'string' && /^[0-9A-Z]{5}$/.test(code)
    ? code
    : undefined;
}

/**
 * True when the error means the session (not the statement) failed: the connection is broken,
 * the socket errored, or the server ended the session. Decided on codes and connection state,
 * never on message text.
 */
export function isConnectionFailure(error: unknown, connection?: DbConnection): boolean {
  if (connection?.broken) return true;
  const sqlstate = sqlstateOf(error);
  if (sqlstate) return sqlstate.startsWith('08') || SESSION_ENDING_SQLSTATES.has(sqlstate);
  const { code } = fieldsOf(error);
  return typeof code === 'string' && NETWORK_CODES.has(code);
}

/** Server error details kept when wrapping (SQLSTATE and the standard fields). */
export function serverErrorDetails(error: unknown): Record<string, unknown> {
  const f = fieldsOf(error);
  const details: Record<string, unknown> = {};
  const sqlstate = sqlstateOf(error);
  if (sqlstate) details.sqlstate = sqlstate;
  for (const key of [
    'severity',
    'detail',
    'hint',
    'constraint',
    'table',
    'column',
    'schema',
    'routine',
  ] as const) {
    if (typeof f[key] === 'string') details[key] = f[key];
  }
  return details;
}

/** Wraps a statement error (the session is fine), keeping SQLSTATE and fields. */
export function statementError(error: unknown): WardenError {
  if (error instanceof WardenError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code: ErrorCode = sqlstateOf(error) ? 'WARDEN_E_SERVER_ERROR' : 'WARDEN_E_INTERNAL';
  return new WardenError(code, message, { details: serverErrorDetails(error), cause: error });
}

/** Wraps a failure to open a session to `hostKey`. */
export function connectError(error: unknown, hostKey: string): WardenError {
  if (error instanceof WardenError) return error;
  const sqlstate = sqlstateOf(error);
  const message = error instanceof Error ? error.message : String(error);
  const details = { host: hostKey, ...serverErrorDetails(error) };
  if (sqlstate === '28P01' || sqlstate === '28000') {
    return new WardenError('WARDEN_E_AUTH_FAILED', `${hostKey}: ${message}`, { details, cause: error });
  }
  if (isTlsVerificationError(error)) {
    return new WardenError('WARDEN_E_TLS_UNAVAILABLE', `TLS verification of ${hostKey} failed: ${message}`, {
      hint: 'Give the CA that signed the server certificate (tlsCa, or sslrootcert in the URL).',
      details,
      cause: error,
    });
  }
  if (sqlstate && !isConnectionFailure(error)) {
    return new WardenError('WARDEN_E_SERVER_ERROR', `${hostKey}: ${message}`, { details, cause: error });
  }
  return new WardenError('WARDEN_E_DB_UNREACHABLE', `cannot connect to ${hostKey}: ${message}`, {
    details,
    cause: error,
  });
}
