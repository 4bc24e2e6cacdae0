/**
 * The one catalogue of Warden's errors. Every failure a user can meet carries a stable `code`
 * from this table; the CLI maps it to an exit status and the HTTP API to a status code.
 * `docs/errors.md` documents every code (a test keeps the two in step).
 *
 * Tests and callers decide on `.code`, never on message text.
 */

/** Exit statuses of the `warden` CLI (documented in docs/cli.md). */
export const EXIT = {
  ok: 0,
  internal: 1,
  usage: 2,
  server: 3,
  notFound: 4,
  integrity: 5,
  conflict: 6,
  checkFailed: 7,
  unavailable: 8,
  /** Stopped by SIGINT/SIGTERM (128 + SIGINT, as shells report an interrupted command). */
  interrupted: 130,
} as const;

interface CodeInfo {
  readonly exit: (typeof EXIT)[keyof typeof EXIT];
  readonly http: number;
  /** Retrying the same call later may succeed (transient). */
  readonly retryable?: boolean;
}

export const ERROR_CODES = {
  // configuration and usage
  WARDEN_E_CONFIG_INVALID: { exit: EXIT.usage, http: 400 },
  WARDEN_E_USAGE: { exit: EXIT.usage, http: 400 },
  // one daemon per place: a second one would harm the first
  WARDEN_E_ALREADY_RUNNING: { exit: EXIT.usage, http: 409 },
  // reaching and preparing a PostgreSQL server
  WARDEN_E_DB_UNREACHABLE: { exit: EXIT.server, http: 502, retryable: true },
  WARDEN_E_AUTH_FAILED: { exit: EXIT.server, http: 502 },
  WARDEN_E_TLS_UNAVAILABLE: { exit: EXIT.server, http: 502 },
  WARDEN_E_SECRET_UNAVAILABLE: { exit: EXIT.unavailable, http: 503, retryable: true },
  WARDEN_E_WAL_LEVEL_MINIMAL: { exit: EXIT.server, http: 409 },
  WARDEN_E_NO_WAL_SENDERS: { exit: EXIT.server, http: 409 },
  WARDEN_E_NO_REPLICATION_SLOTS: { exit: EXIT.server, http: 409 },
  WARDEN_E_CLOCK_SKEW: { exit: EXIT.checkFailed, http: 409 },
  WARDEN_E_ROLE_NOT_REPLICATION: { exit: EXIT.server, http: 403 },
  WARDEN_E_SERVER_TOO_OLD: { exit: EXIT.server, http: 409 },
  WARDEN_E_PROTOCOL: { exit: EXIT.server, http: 502, retryable: true },
  WARDEN_E_SERVER_ERROR: { exit: EXIT.server, http: 502 },
  WARDEN_E_NO_SERVER_BINARIES: { exit: EXIT.server, http: 500 },
  WARDEN_E_INSTANCE_START_FAILED: { exit: EXIT.server, http: 500 },
  // high availability: a cluster of several members, Patroni
  WARDEN_E_PATRONI_API: { exit: EXIT.unavailable, http: 502, retryable: true },
  WARDEN_E_SWITCHOVER_FAILED: { exit: EXIT.server, http: 502 },
  WARDEN_E_NOT_FENCED: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_PROMOTE_CANDIDATE: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_SLOT_NOT_PERMANENT: { exit: EXIT.checkFailed, http: 409 },
  // backups from a standby (`--from standby|NAME`)
  WARDEN_E_NO_STANDBY: { exit: EXIT.unavailable, http: 503, retryable: true },
  WARDEN_E_MEMBER_UNKNOWN: { exit: EXIT.notFound, http: 404 },
  WARDEN_E_MEMBER_NOT_STANDBY: { exit: EXIT.conflict, http: 409 },
  // repository
  WARDEN_E_REPO_NOT_INITIALIZED: { exit: EXIT.notFound, http: 404 },
  WARDEN_E_REPO_CLUSTER_MISMATCH: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_REPO_LOCKED: { exit: EXIT.conflict, http: 423, retryable: true },
  WARDEN_E_REPO_CORRUPT: { exit: EXIT.integrity, http: 500 },
  WARDEN_E_REPO_FORMAT: { exit: EXIT.integrity, http: 500 },
  WARDEN_E_REPO_IO: { exit: EXIT.unavailable, http: 503, retryable: true },
  // an S3 object in an archive storage class (docs/repository-s3.md#storage-classes)
  WARDEN_E_OBJECT_ARCHIVED: { exit: EXIT.unavailable, http: 409 },
  // replication slots
  WARDEN_E_SLOT_BUSY: { exit: EXIT.conflict, http: 409, retryable: true },
  WARDEN_E_SLOT_NOT_OWNED: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_SLOT_INVALIDATED: { exit: EXIT.integrity, http: 409 },
  WARDEN_E_SLOT_HOLDS_WAL: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_SLOT_NOT_FOUND: { exit: EXIT.notFound, http: 404 },
  // client-side encryption keys
  WARDEN_E_KEY_MISSING: { exit: EXIT.usage, http: 400 },
  WARDEN_E_KEY_MISMATCH: { exit: EXIT.usage, http: 403 },
  // record signatures (authenticity of what a repository holds)
  WARDEN_E_UNSIGNED: { exit: EXIT.integrity, http: 409 },
  WARDEN_E_SIGNATURE_UNTRUSTED: { exit: EXIT.integrity, http: 403 },
  WARDEN_E_SIGNATURE_INVALID: { exit: EXIT.integrity, http: 500 },
  // guarded migrations
  WARDEN_E_MIGRATION_LOCKED: { exit: EXIT.conflict, http: 423, retryable: true },
  WARDEN_E_MIGRATION_FAILED: { exit: EXIT.checkFailed, http: 500 },
  // the native migration runner (@warden/app/migrate)
  WARDEN_E_MIGRATION_INVALID: { exit: EXIT.usage, http: 500 },
  WARDEN_E_MIGRATION_CHECKSUM: { exit: EXIT.integrity, http: 500 },
  WARDEN_E_MIGRATION_ORDER: { exit: EXIT.usage, http: 500 },
  // credential rotation (warden credentials)
  WARDEN_E_ROLE_SHAPE: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_ROLES_NOT_SET_UP: { exit: EXIT.notFound, http: 404 },
  WARDEN_E_ROTATION_LOCKED: { exit: EXIT.conflict, http: 423, retryable: true },
  WARDEN_E_SECRET_SINK: { exit: EXIT.unavailable, http: 502 },
  WARDEN_E_REDIS_ACL: { exit: EXIT.server, http: 502 },
  // the audit log's hash chain and signed head
  WARDEN_E_AUDIT_TAMPERED: { exit: EXIT.integrity, http: 500 },
  // backups, WAL and restore
  WARDEN_E_BACKUP_NOT_FOUND: { exit: EXIT.notFound, http: 404 },
  WARDEN_E_BACKUP_CHAIN_BROKEN: { exit: EXIT.integrity, http: 409 },
  WARDEN_E_INCREMENTAL_UNAVAILABLE: { exit: EXIT.server, http: 409 },
  WARDEN_E_BACKUP_PROTECTED: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_NO_BACKUP: { exit: EXIT.notFound, http: 404 },
  WARDEN_E_TARGET_OUTSIDE_WINDOW: { exit: EXIT.notFound, http: 422 },
  WARDEN_E_RESTORE_POINT_NOT_FOUND: { exit: EXIT.notFound, http: 404 },
  WARDEN_E_TARGET_NOT_EMPTY: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_TARGET_UNREACHABLE: { exit: EXIT.usage, http: 400 },
  WARDEN_E_RESTORE_INCOMPLETE: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_WAL_GAP: { exit: EXIT.integrity, http: 500 },
  WARDEN_E_TIMELINE_COLLISION: { exit: EXIT.integrity, http: 500 },
  WARDEN_E_WAL_FORMAT: { exit: EXIT.integrity, http: 500 },
  WARDEN_E_WAL_NOT_ARCHIVED: { exit: EXIT.checkFailed, http: 504 },
  WARDEN_E_WAL_PUSH_CONFLICT: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_STANDBY_NOT_STREAMING: { exit: EXIT.server, http: 409 },
  WARDEN_E_RECOVERY_FAILED: { exit: EXIT.checkFailed, http: 500 },
  WARDEN_E_RESTORE_CHECK_FAILED: { exit: EXIT.checkFailed, http: 500 },
  WARDEN_E_DRILL_FAILED: { exit: EXIT.checkFailed, http: 500 },
  WARDEN_E_DRILL_MIGRATION_FAILED: { exit: EXIT.checkFailed, http: 500 },
  WARDEN_E_DRILL_MIGRATION_TIMEOUT: { exit: EXIT.checkFailed, http: 500 },
  WARDEN_E_INSUFFICIENT_SPACE: { exit: EXIT.unavailable, http: 507 },
  WARDEN_E_PORT_IN_USE: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_REPO_VERIFY_PROBLEMS: { exit: EXIT.integrity, http: 500 },
  // logical dumps (pg_dump / pg_restore)
  WARDEN_E_TOOL_MISSING: { exit: EXIT.server, http: 500 },
  WARDEN_E_TOOL_TOO_OLD: { exit: EXIT.server, http: 409 },
  WARDEN_E_DUMP_NOT_FOUND: { exit: EXIT.notFound, http: 404 },
  WARDEN_E_DUMP_FAILED: { exit: EXIT.server, http: 502 },
  WARDEN_E_DATABASE_EXISTS: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_ABORTED: { exit: EXIT.interrupted, http: 499 },
  // Redis backups (src/redis-backup)
  WARDEN_E_REDIS_UNREACHABLE: { exit: EXIT.server, http: 502, retryable: true },
  WARDEN_E_REDIS_AUTH_FAILED: { exit: EXIT.server, http: 502 },
  WARDEN_E_REDIS_ERROR: { exit: EXIT.server, http: 502 },
  WARDEN_E_REDIS_TRUNCATED: { exit: EXIT.server, http: 502, retryable: true },
  WARDEN_E_RDB_TOO_LARGE: { exit: EXIT.server, http: 502 },
  WARDEN_E_REDIS_SLOT_MAP: { exit: EXIT.server, http: 502 },
  WARDEN_E_REDIS_BACKUP_NOT_FOUND: { exit: EXIT.notFound, http: 404 },
  WARDEN_E_REDIS_TARGET_NOT_EMPTY: { exit: EXIT.conflict, http: 409 },
  WARDEN_E_RDB_INVALID: { exit: EXIT.integrity, http: 500 },
  // application data layer
  WARDEN_E_POOL_TIMEOUT: { exit: EXIT.unavailable, http: 503, retryable: true },
  WARDEN_E_POOL_CLOSED: { exit: EXIT.unavailable, http: 503 },
  WARDEN_E_FAILOVER: { exit: EXIT.unavailable, http: 503, retryable: true },
  WARDEN_E_NO_PRIMARY: { exit: EXIT.unavailable, http: 503, retryable: true },
  WARDEN_E_SESSION_STORE_UNAVAILABLE: { exit: EXIT.unavailable, http: 503, retryable: true },
  WARDEN_E_SESSION_INVALID: { exit: EXIT.usage, http: 401 },
  WARDEN_E_RATE_LIMIT_UNAVAILABLE: { exit: EXIT.unavailable, http: 503, retryable: true },
  WARDEN_E_CACHE_UNAVAILABLE: { exit: EXIT.unavailable, http: 503, retryable: true },
  // the daemon's HTTP API
  WARDEN_E_HTTP_AUTH_REQUIRED: { exit: EXIT.usage, http: 401 },
  WARDEN_E_HTTP_ROLE_DENIED: { exit: EXIT.usage, http: 403 },
  WARDEN_E_HTTP_HOST_REFUSED: { exit: EXIT.usage, http: 421 },
  WARDEN_E_HTTP_ORIGIN_REFUSED: { exit: EXIT.usage, http: 403 },
  WARDEN_E_ALERTMANAGER_UNAVAILABLE: { exit: EXIT.unavailable, http: 502, retryable: true },
  WARDEN_E_STORE_WRONG_TYPE: { exit: EXIT.conflict, http: 500 },
  // notifications (warden serve's webhooks)
  WARDEN_E_NOTIFY_STATE: { exit: EXIT.unavailable, http: 503 },
  WARDEN_E_WEBHOOK_DELIVERY: { exit: EXIT.unavailable, http: 502, retryable: true },
  // anything not foreseen
  WARDEN_E_INTERNAL: { exit: EXIT.internal, http: 500 },
} as const satisfies Record<string, CodeInfo>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface WardenErrorOptions {
  /** What the user can do about it, when known. */
  hint?: string;
  /** Structured context (names, LSNs, windows); never secrets. */
  details?: Record<string, unknown>;
  cause?: unknown;
}

export class WardenError extends Error {
  override readonly name = 'WardenError';
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  readonly details: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options: WardenErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.hint = options.hint;
    this.details = options.details ?? {};
  }

  get retryable(): boolean {
    return (ERROR_CODES[this.code] as CodeInfo).retryable === true;
  }

  get exitCode(): number {
    return ERROR_CODES[this.code].exit;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code].http;
  }

  toJSON(): Record<string, unknown> {
    return { code: this.code, message: this.message, hint: this.hint, details: this.details };
  }
}

export function isWardenError(error: unknown, code?: ErrorCode): error is WardenError {
  return error instanceof WardenError && (code === undefined || error.code === code);
}

/** Wraps anything thrown into a WardenError, keeping one that already is. */
export function toWardenError(error: unknown, fallback: ErrorCode = 'WARDEN_E_INTERNAL'): WardenError {
  if (error instanceof WardenError) return error;
  if (isDiskFull(error)) return diskFullError(error, 'writing');
  const message = error instanceof Error ? error.message : String(error);
  return new WardenError(fallback, message, { cause: error });
}

/** ENOSPC or EDQUOT: the filesystem being written to is full (or the user's quota is spent). */
export function isDiskFull(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * A full disk as the I/O failure it is (WARDEN_E_REPO_IO, exit 8), whichever disk it was — the
 * repository's, a restore target's — so it never passes for an internal error or for corruption.
 */
export function diskFullError(error: unknown, what: string): WardenError {
  const code = (error as NodeJS.ErrnoException).code;
  return new WardenError('WARDEN_E_REPO_IO', `${what} failed: ${code} (no space left on device)`, {
    hint: 'Free space on that filesystem, or use one with more room.',
    details: { errno: code },
    cause: error,
  });
}
