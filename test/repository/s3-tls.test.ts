import assert from 'node:assert/strict';
import net from 'node:net';
import { rm } from 'node:fs/promises';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { isWardenError } from '../../src/errors.ts';
import { startS3, type TestS3 } from '../harness/s3.ts';
import { startTcpProxy, type TcpProxy } from '../harness/tcp-proxy.ts';
import { makeCertificates, nonLoopbackAddress, type TestCertificates } from '../harness/tls.ts';

/**
 * S3 endpoints: https:// verified against the system CAs plus `tlsCa` (a TLS terminator with a
 * private CA's certificate in front of the test S3 server), and http:// to a host that is not
 * loopback refused unless `allowHttp`.
 */

const ipv4 = nonLoopbackAddress('IPv4');
let s3: TestS3;
let certs: TestCertificates;
let terminator: tls.Server;
let terminatorPort: number;
const sockets = new Set<net.Socket>();
const proxies: TcpProxy[] = [];

before(async () => {
  s3 = await startS3();
  certs = await makeCertificates(['IP:127.0.0.1', 'DNS:localhost']);
  terminator = tls.createServer(
    { cert: readFileSync(certs.certFile), key: readFileSync(certs.keyFile) },
    (client) => {
      const upstream = net.connect({ host: '127.0.0.1', port: s3.port });
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    },
  );
  terminator.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => terminator.listen(0, '127.0.0.1', () => resolve()));
  terminatorPort = (terminator.address() as net.AddressInfo).port;
});
after(async () => {
  for (const socket of sockets) socket.destroy();
  if (terminator) await new Promise((resolve) => terminator.close(resolve));
  for (const proxy of proxies) await proxy.close();
  await s3?.stop();
  if (certs) await rm(certs.dir, { recursive: true, force: true });
});

test('an https:// endpoint with a private CA works with tlsCa and is refused without it', async () => {
  const endpoint = `https://127.0.0.1:${terminatorPort}`;
  const bucket = await s3.createBucket();
  const trusted = await s3.newStore({ bucket, endpoint, tlsCa: certs.caFile });
  await trusted.putBuffer('a', Buffer.from('over verified TLS'));
  assert.equal((await trusted.getBuffer('a')).toString(), 'over verified TLS');
  const untrusted = await s3.newStore({ bucket, endpoint, retry: { maxAttempts: 1 } });
  await assert.rejects(untrusted.putBuffer('b', Buffer.from('never')), (error: unknown) =>
    isWardenError(error),
  );
  assert.deepEqual(await trusted.list(''), ['a'], 'nothing written without verification');
});

test(
  'http:// to a host that is not loopback is refused, and allowed with allowHttp (warning once)',
  { skip: ipv4 ? false : 'no non-loopback IPv4 address' },
  async () => {
    const proxy = await startTcpProxy({
      host: ipv4!,
      upstream: { host: '127.0.0.1', port: s3.port },
      mode: 'transparent',
    });
    proxies.push(proxy);
    const endpoint = `http://${ipv4}:${proxy.port}`;
    const refused = await s3.newStore({ endpoint });
    await assert.rejects(refused.putBuffer('x', Buffer.from('x')), (error: unknown) =>
      isWardenError(error, 'WARDEN_E_CONFIG_INVALID'),
    );
    assert.equal(proxy.forwarded, 0, 'no request was sent');
    const codes: string[] = [];
    const listener = (warning: Error & { code?: string }) => codes.push(warning.code ?? '');
    process.on('warning', listener);
    try {
      const allowed = await s3.newStore({ endpoint, allowHttp: true });
      await allowed.putBuffer('x', Buffer.from('plaintext, on purpose'));
      const again = await s3.newStore({ endpoint, allowHttp: true });
      await again.putBuffer('y', Buffer.from('again'));
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', listener);
    }
    assert.deepEqual(codes, ['WARDEN_W_TLS_DISABLED']);
  },
);
