import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdtemp } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { serverRunAs } from '../../src/postgres/os-user.ts';

export interface TestCertificates {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
}

/**
 * A private CA and a server certificate it signs for `altNames` (`IP:127.0.0.1`, `DNS:localhost`),
 * made with the openssl CLI in a temp directory readable by PostgreSQL's OS user (the key is
 * owned by it, mode 0600, as the server demands). The caller removes `dir`.
 */
export async function makeCertificates(altNames: string[]): Promise<TestCertificates> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-tls-'));
  const caKey = path.join(dir, 'ca.key');
  const caFile = path.join(dir, 'ca.pem');
  const keyFile = path.join(dir, 'server.key');
  const csr = path.join(dir, 'server.csr');
  const certFile = path.join(dir, 'server.pem');
  const ext = path.join(dir, 'ext.cnf');
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    caFile,
    '-days',
    '2',
    '-subj',
    '/CN=Warden test CA',
  );
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    keyFile,
    '-out',
    csr,
    '-subj',
    '/CN=warden-test-server',
  );
  execFileSync('sh', ['-c', `printf 'subjectAltName=%s\\n' "$1" > "$2"`, 'sh', altNames.join(','), ext]);
  openssl(
    'x509',
    '-req',
    '-in',
    csr,
    '-CA',
    caFile,
    '-CAkey',
    caKey,
    '-CAcreateserial',
    '-out',
    certFile,
    '-days',
    '2',
    '-extfile',
    ext,
  );
  await chmod(dir, 0o755);
  await chmod(keyFile, 0o600);
  const runAs = serverRunAs();
  if (runAs) await chown(keyFile, runAs.uid, runAs.gid);
  return { dir, caFile, certFile, keyFile };
}

/** This machine's first address that is not loopback (IPv4 or IPv6), or undefined. */
export function nonLoopbackAddress(family: 'IPv4' | 'IPv6'): string | undefined {
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.internal || address.family !== family) continue;
      if (family === 'IPv6' && address.address.toLowerCase().startsWith('fe80')) continue;
      return address.address;
    }
  }
  return undefined;
}
