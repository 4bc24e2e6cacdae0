import { readFile } from 'node:fs/promises';
import tls from 'node:tls';
import { WardenError } from '../errors.ts';
import type { HttpPlan } from '../daemon/http-config.ts';

/**
 * Reads `daemon.http.tls`'s certificate and key and checks that they form a usable pair before
 * the daemon listens, so a wrong file is a config error naming the field, not a failed handshake.
 */
export async function loadTlsCredentials(
  files: NonNullable<HttpPlan['tls']>,
): Promise<{ cert: Buffer; key: Buffer }> {
  const read = async (file: string, field: string) => {
    try {
      return await readFile(file);
    } catch (cause) {
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `${field}: cannot read ${file} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
        { details: { field, file }, cause },
      );
    }
  };
  const cert = await read(files.certFile, 'daemon.http.tls.certFile');
  const key = await read(files.keyFile, 'daemon.http.tls.keyFile');
  try {
    tls.createSecureContext({ cert, key });
  } catch (cause) {
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `daemon.http.tls: ${files.certFile} and ${files.keyFile} are not a PEM certificate and its private key (${(cause as Error).message})`,
      { details: { field: 'daemon.http.tls', certFile: files.certFile, keyFile: files.keyFile }, cause },
    );
  }
  return { cert, key };
}
