import { WardenError } from '../../errors.ts';
import { isLoopbackHost } from '../../util/loopback.ts';
import { warnOnce } from '../../util/security-warning.ts';

/**
 * Refuses a plaintext (`http://`) S3 endpoint on a host that is not loopback unless `allowHttp`
 * says so explicitly, and then warns once per endpoint host: request signatures do not hide the
 * data, and without TLS anyone on the path reads (unencrypted repositories) and can replay or
 * delay what Warden writes. `https://` endpoints are always verified (system CAs plus `tlsCa`).
 */
export function checkS3Endpoint(endpoint: string | undefined, allowHttp: boolean, field: string): void {
  if (!endpoint) return;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: "${endpoint}" is not a URL`, {
      details: { field },
    });
  }
  if (url.protocol !== 'http:' || isLoopbackHost(url.hostname)) return;
  if (!allowHttp) {
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `${field}: ${url.protocol}//${url.host} is plaintext HTTP to a host that is not loopback`,
      {
        hint:
          'Use an https:// endpoint (tlsCa names a private CA), or on a network you trust set ' +
          'repository.s3.allowHttp: true (WARDEN_S3_ALLOW_HTTP=1).',
        details: { field, endpoint: `${url.protocol}//${url.host}` },
      },
    );
  }
  warnOnce(
    `s3-http:${url.host}`,
    'WARDEN_W_TLS_DISABLED',
    `the S3 endpoint ${url.protocol}//${url.host} is plaintext HTTP (allowHttp): requests and objects cross the network unprotected`,
  );
}
