/**
 * The data layer's errors. Each carries a stable `code` (the same `WARDEN_E_*` names the data
 * layer has always used, documented in docs/errors.md) and the HTTP status a service would answer
 * with; unlike the Warden tool's errors they carry no CLI exit status: a library has no exit.
 *
 * Callers decide on `.code` (or `retryable`), never on message text.
 */

interface CodeInfo {
  readonly http: number;
  /** Retrying the same call later may succeed (transient). */
  readonly retryable?: boolean;
}

export const DATA_ERROR_CODES = {
  WARDEN_E_CONFIG_INVALID: { http: 400 },
  WARDEN_E_USAGE: { http: 400 },
  WARDEN_E_DB_UNREACHABLE: { http: 502, retryable: true },
  WARDEN_E_AUTH_FAILED: { http: 502 },
  WARDEN_E_TLS_UNAVAILABLE: { http: 502 },
  WARDEN_E_SECRET_UNAVAILABLE: { http: 503, retryable: true },
  WARDEN_E_SERVER_ERROR: { http: 502 },
  WARDEN_E_POOL_TIMEOUT: { http: 503, retryable: true },
  WARDEN_E_POOL_CLOSED: { http: 503 },
  WARDEN_E_FAILOVER: { http: 503, retryable: true },
  WARDEN_E_NO_PRIMARY: { http: 503, retryable: true },
  WARDEN_E_SESSION_STORE_UNAVAILABLE: { http: 503, retryable: true },
  WARDEN_E_SESSION_INVALID: { http: 401 },
  WARDEN_E_RATE_LIMIT_UNAVAILABLE: { http: 503, retryable: true },
  WARDEN_E_CACHE_UNAVAILABLE: { http: 503, retryable: true },
  WARDEN_E_STORE_WRONG_TYPE: { http: 500 },
  WARDEN_E_MIGRATION_INVALID: { http: 500 },
  WARDEN_E_MIGRATION_CHECKSUM: { http: 500 },
  WARDEN_E_MIGRATION_ORDER: { http: 500 },
  WARDEN_E_MIGRATION_LOCKED: { http: 423, retryable: true },
  WARDEN_E_MIGRATION_FAILED: { http: 500 },
  WARDEN_E_INTERNAL: { http: 500 },
} as const satisfies Record<string, CodeInfo>;

export type DataErrorCode = keyof typeof DATA_ERROR_CODES;

export interface DataLayerErrorOptions {
  /** What the caller can do about it, when known. */
  hint?: string;
  /** Structured context (hosts, keys, limits); never secrets. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class DataLayerError extends Error {
  override readonly name = 'DataLayerError';
  readonly code: DataErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: DataErrorCode, message: string, options: DataLayerErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  get retryable(): boolean {
    return (DATA_ERROR_CODES[this.code] as CodeInfo).retryable === true;
  }

  /** The HTTP status a service would answer with (503 for a transient outage, 401, 400, …). */
  get httpStatus(): number {
    return DATA_ERROR_CODES[this.code].http;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

export function isDataLayerError(error: unknown, code?: DataErrorCode): error is DataLayerError {
  return error instanceof DataLayerError && (code === undefined || error.code === code);
}

/** Wraps anything thrown into a DataLayerError, keeping one that already is. */
export function toDataLayerError(
  error: unknown,
  fallback: DataErrorCode = 'WARDEN_E_INTERNAL',
): DataLayerError {
  if (error instanceof DataLayerError) return error;
  const message = error instanceof Error ? error.message : String(error);
  return new DataLayerError(fallback, message, { cause: error });
}
