import { WardenError } from '../../errors.ts';

interface SdkError {
  name?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number; attempts?: number };
  $fault?: string;
}

/** The object (or bucket) is not there: HEAD answers a bare 404, GET a NoSuchKey. */
export function isNotFound(error: unknown): boolean {
  const e = error as SdkError;
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
}

/** A conditional write lost: the key exists (412) or a concurrent conditional write won (409). */
export function isPreconditionFailed(error: unknown): boolean {
  const status = (error as SdkError)?.$metadata?.httpStatusCode;
  return status === 412 || status === 409;
}

/** The server does not implement a request feature (e.g. `If-None-Match` on PutObject). */
export function isNotImplemented(error: unknown): boolean {
  const e = error as SdkError;
  return e?.name === 'NotImplemented' || e?.$metadata?.httpStatusCode === 501;
}

/**
 * Wraps an SDK failure as WARDEN_E_REPO_IO naming the object and the location, with the attempt
 * count: when this surfaces, the SDK's retries are already exhausted (or the error is not one a
 * retry can fix, such as AccessDenied).
 */
export function s3Error(error: unknown, what: string, key: string, location: string): WardenError {
  if (error instanceof WardenError) return error;
  const e = error as SdkError;
  if (e?.name === 'AbortError') {
    return new WardenError('WARDEN_E_ABORTED', `${what} ${key} was cancelled`, { cause: error });
  }
  const status = e?.$metadata?.httpStatusCode;
  if (e?.name === 'InvalidObjectState' || e?.code === 'InvalidObjectState') {
    // An archive class (GLACIER, DEEP_ARCHIVE) answers GET this way until a retrieval restores a copy.
    return new WardenError(
      'WARDEN_E_OBJECT_ARCHIVED',
      `${key} in ${location} is in an archive storage class and must be retrieved before it can be read`,
      {
        hint: 'Start a retrieval (aws s3api restore-object, or the console) for the objects named, wait for it, then retry.',
        details: { object: key, objects: [key], repository: location, ...(status ? { status } : {}) },
        cause: error,
      },
    );
  }
  const attempts = e?.$metadata?.attempts;
  const reason = e?.code ?? e?.name ?? 'error';
  return new WardenError(
    'WARDEN_E_REPO_IO',
    `repository I/O failed ${what} ${key} in ${location}: ${reason}${status ? ` (HTTP ${status})` : ''}` +
      `${attempts && attempts > 1 ? ` after ${attempts} attempts` : ''}`,
    {
      hint: 'Check the endpoint, the bucket and the credentials; transient failures were already retried.',
      details: {
        object: key,
        repository: location,
        ...(status ? { status } : {}),
        ...(attempts ? { attempts } : {}),
        s3Code: reason,
      },
      cause: error,
    },
  );
}
