// Runs the test S3-compatible server (s3rver, filesystem-backed) in its own process so the
// harness can stop it by PID. Usage: node s3-server.mjs <directory> <port>. Prints "ready" once
// it listens on 127.0.0.1. Every request's SigV4 signature is checked against the credentials
// S3RVER/S3RVER: a wrong secret is refused with SignatureDoesNotMatch (403).
import { AsyncLocalStorage } from 'node:async_hooks';
import { createRequire } from 'node:module';
import S3rver from '@20minutes/s3rver';

const require = createRequire(import.meta.url);
// s3rver's authentication calls these through the module object, so replacing one here changes it.
const v4 = require('@20minutes/s3rver/lib/signature/v4.js');

// s3rver rebuilds the canonical URI from the bucket and key it routed to, which drops the
// trailing slash that SDK v3 sends on bucket operations (`PUT /bucket/`), so it computes a
// different canonical request than the client signed. SigV4 for S3 signs the path exactly as
// sent, once URI-encoded: use that. Everything else (headers, query, payload hash, HMAC) stays
// s3rver's own check.
const requestPath = new AsyncLocalStorage();
const getStringToSign = v4.getStringToSign;
v4.getStringToSign = (canonicalRequest, request) =>
  getStringToSign({ ...canonicalRequest, uri: requestPath.getStore() ?? canonicalRequest.uri }, request);

const [directory, port] = process.argv.slice(2);
const server = new S3rver({ address: '127.0.0.1', port: Number(port), directory, silent: true });
// Koa composes its middleware when it starts listening: this one runs first, for every request.
server.middleware.unshift((ctx, next) => requestPath.run(ctx.path, next));
// With WARDEN_S3_REQUEST_LOG=1 (benchmarks), one JSON line per request on stdout: its kind, the
// server's own time for it (first byte in to response ready) and the body bytes it received.
if (process.env.WARDEN_S3_REQUEST_LOG === '1') {
  server.middleware.unshift(async (ctx, next) => {
    const started = process.hrtime.bigint();
    try {
      await next();
    } finally {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      const bytes = Number(ctx.get('content-length') || 0);
      process.stdout.write(`${JSON.stringify({ kind: requestKind(ctx), status: ctx.status, ms, bytes })}\n`);
    }
  });
}

/** The S3 operation a request is, from its method, query and path (bucket or object). */
function requestKind(ctx) {
  const q = ctx.query;
  const onObject = ctx.path.split('/').filter(Boolean).length > 1;
  if (ctx.method === 'PUT') return 'partNumber' in q ? 'UploadPart' : onObject ? 'PutObject' : 'CreateBucket';
  if (ctx.method === 'POST')
    return 'uploads' in q
      ? 'CreateMultipartUpload'
      : 'uploadId' in q
        ? 'CompleteMultipartUpload'
        : 'delete' in q
          ? 'DeleteObjects'
          : 'POST';
  if (ctx.method === 'DELETE') return 'uploadId' in q ? 'AbortMultipartUpload' : 'DeleteObject';
  if (ctx.method === 'HEAD') return 'HeadObject';
  if (ctx.method === 'GET')
    return 'uploads' in q ? 'ListMultipartUploads' : onObject ? 'GetObject' : 'ListObjects';
  return ctx.method;
}
await server.run();
process.stdout.write('ready\n');
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => server.close(() => process.exit(0)));
