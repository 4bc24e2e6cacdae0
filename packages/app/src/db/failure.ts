import { DataLayerError, type DataErrorCode } from '../errors.ts';
import { isTlsVerificationError } from '../postgres/verified-tls.ts';
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
export function statementError(error: unknown): DataLayerError {
  if (error instanceof DataLayerError) return error;
  const message = error instanceof Error ? error.message : String(error);
  const code: DataErrorCode = sqlstateOf(error) ? 'WARDEN_E_SERVER_ERROR' : 'WARDEN_E_INTERNAL';
  return new DataLayerError(code, message, { details: serverErrorDetails(error), cause: error });
}

/** Wraps a failure to open a session to `hostKey`. */
export function connectError(error: unknown, hostKey: string): DataLayerError {
  if (error instanceof DataLayerError) return error;
  const sqlstate = sqlstateOf(error);
  const message = error instanceof Error ? error.message : String(error);
  const details = { host: hostKey, ...serverErrorDetails(error) };
  if (sqlstate === '28P01' || sqlstate === '28000') {
    return new DataLayerError('WARDEN_E_AUTH_FAILED', `${hostKey}: ${message}`, { details, cause: error });
  }
  if (isTlsVerificationError(error)) {
    return new DataLayerError(
      'WARDEN_E_TLS_UNAVAILABLE',
      `TLS verification of ${hostKey} failed: ${message}`,
      {
        hint: 'Give the CA that signed the server certificate (tlsCa, or sslrootcert in the URL).',
        details,
        cause: error,
      },
    );
  }
  if (sqlstate && !isConnectionFailure(error)) {
    return new DataLayerError('WARDEN_E_SERVER_ERROR', `${hostKey}: ${message}`, { details, cause: error });
  }
  return new DataLayerError('WARDEN_E_DB_UNREACHABLE', `cannot connect to ${hostKey}: ${message}`, {
    details,
    cause: error,
  });
}

/** Codes that mean no session to a primary was obtained: nothing was sent. */
export const NOT_SENT = new Set(['WARDEN_E_NO_PRIMARY', 'WARDEN_E_DB_UNREACHABLE']);

/**
 * True only when the error proves the statement did not run, so repeating it cannot apply it
 * twice: no session to a primary could be opened (also when the pool timed out waiting for one
 * that could not be opened), or a server in recovery refused it (SQLSTATE 25006, the statement
 * was rejected, its implicit transaction rolled back). A session lost mid-statement is never
 * such a proof: the write may have committed.
 */
export function neverRan(error: unknown): boolean {
  if (!(error instanceof DataLayerError)) return false;
  if (NOT_SENT.has(error.code)) return true;
  if (error.code === 'WARDEN_E_POOL_TIMEOUT')
    return error.cause instanceof DataLayerError && NOT_SENT.has(error.cause.code);
  if (error.code === 'WARDEN_E_FAILOVER') return error.details.statementOutcome === 'not-run';
  return false;
}

/**
 * The `WARDEN_E_FAILOVER` raised when the primary was lost under a statement (`host`, when
 * known): `details.statementOutcome` says whether the statement may have run.
 */
export function failoverError(error: unknown, host: string | undefined): DataLayerError {
  const details: Record<string, unknown> = { host, ...serverErrorDetails(error) };
  const outcome = (error as { commitOutcome?: unknown }).commitOutcome;
  if (outcome !== undefined) details.commitOutcome = outcome;
  // Whether the statement may have run: callers must not blindly repeat an `unknown` one.
  details.statementOutcome =
    details.sqlstate === READ_ONLY_SQLSTATE || (error instanceof DataLayerError && NOT_SENT.has(error.code))
      ? 'not-run'
      : 'unknown';
  const message = error instanceof Error ? error.message : String(error);
  return new DataLayerError('WARDEN_E_FAILOVER', `lost the primary${host ? ` ${host}` : ''}: ${message}`, {
    hint: 'Retry: the next attempt connects to whichever server is primary then.',
    details,
    cause: error,
  });
}

export function isFailover(error: unknown): boolean {
  return error instanceof DataLayerError && error.code === 'WARDEN_E_FAILOVER';
}

/** SQLSTATE of a driver error or of a DataLayerError wrapping one. */
export function sqlstateIn(error: unknown): string | undefined {
  if (error instanceof DataLayerError)
    return typeof error.details.sqlstate === 'string' ? error.details.sqlstate : undefined;
  return sqlstateOf(error);
}
