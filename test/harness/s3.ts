import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { S3ObjectStore, type S3Settings } from '../../src/repository/s3/s3-object-store.ts';
import { freePort } from '../../src/util/free-port.ts';
import { onExit } from './cleanup.ts';

const HOST = '127.0.0.1';
const LAUNCHER = path.join(path.dirname(fileURLToPath(import.meta.url)), 's3-server.mjs');
/** s3rver's fixed credentials; it checks signatures, so requests must be signed with them. */
const CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/** One request as the server saw it (with `logRequests`): its S3 operation and its own time. */
export interface ServerRequest {
  kind: string;
  status: number;
  /** The server's time for it, from the request's arrival to its response being ready. */
  ms: number;
  /** Request body bytes (Content-Length). */
  bytes: number;
}

export interface TestS3 {
  readonly endpoint: string;
  /** The server process (benchmarks read its CPU time). */
  readonly pid: number;
  /** With `logRequests`: every request served so far, in order of completion; else empty. */
  readonly requests: ReadonlyArray<ServerRequest>;
  readonly port: number;
  readonly region: string;
  readonly credentials: { accessKeyId: string; secretAccessKey: string };
  /** Creates a fresh, uniquely named bucket. */
  createBucket(): Promise<string>;
  /** An S3ObjectStore on a new bucket (or the given one), with a unique prefix. */
  newStore(overrides?: Partial<S3Settings>): Promise<S3ObjectStore>;
  stop(): Promise<void>;
}

/**
 * Starts a real S3-compatible server (s3rver: multipart upload, ListObjectsV2, DeleteObjects,
 * SigV4) on a free loopback port with its data in a temp directory, in a child process that an
 * exit hook kills by PID.
 */
export async function startS3(options: { logRequests?: boolean } = {}): Promise<TestS3> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'warden-s3-'));
  const port = await freePort();
  // s3rver encrypts ListObjectsV2 continuation tokens with DES, which OpenSSL 3 keeps in its legacy provider.
  const child: ChildProcess = spawn(
    process.execPath,
    ['--openssl-legacy-provider', LAUNCHER, dir, String(port)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, WARDEN_S3_REQUEST_LOG: options.logRequests ? '1' : '0' },
    },
  );
  const requests: ServerRequest[] = [];
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const removeHook = onExit(() => {
    if (child.pid !== undefined && child.exitCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(dir, { recursive: true, force: true });
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3 server did not start: ${stderr}`)), 20_000);
    let pending = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (line === 'ready') {
          clearTimeout(timer);
          resolve();
        } else if (line.startsWith('{')) requests.push(JSON.parse(line) as ServerRequest);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3 server exited with ${code}: ${stderr}`));
    });
  });
  const endpoint = `http://${HOST}:${port}`;
  const region = 'us-east-1';
  const admin = new S3Client({ endpoint, region, forcePathStyle: true, credentials: CREDENTIALS });
  const createBucket = async () => {
    const bucket = `warden-${randomBytes(6).toString('hex')}`;
    await admin.send(new CreateBucketCommand({ Bucket: bucket }));
    return bucket;
  };
  return {
    endpoint,
    pid: child.pid!,
    requests,
    port,
    region,
    credentials: CREDENTIALS,
    createBucket,
    async newStore(overrides = {}) {
      return new S3ObjectStore({
        bucket: overrides.bucket ?? (await createBucket()),
        prefix: `repo-${randomBytes(3).toString('hex')}`,
        region,
        endpoint,
        forcePathStyle: true,
        credentials: CREDENTIALS,
        ...overrides,
      });
    },
    async stop() {
      admin.destroy();
      if (child.exitCode === null && child.pid !== undefined) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        process.kill(child.pid, 'SIGKILL');
        await exited;
      }
      removeHook();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** What the fault proxy does to one request. */
export type Fault =
  | { kind: 'status'; status: number; code?: string }
  | { kind: 'slow'; delayMs: number }
  /** Closes the connection at once, forwarding nothing (the server is unreachable). */
  | { kind: 'reset' }
  /** Reads part of the request body, then destroys the connection (a reset mid-upload). */
  | { kind: 'drop-mid-upload'; afterBytes: number }
  /** Forwards the request, then destroys the connection before the response reaches the client. */
  | { kind: 'drop-response' }
  /** Forwards the response's status, headers and first `afterBytes` of body, then destroys the connection. */
  | { kind: 'drop-mid-body'; afterBytes: number };

export interface FaultRule {
  /** Which requests it applies to; all when absent. */
  match?: (request: { method: string; url: string }) => boolean;
  fault: Fault;
  /** How many requests it hits before it stops (bounded fault injection). */
  times: number;
}

export interface ProxiedRequest {
  method: string;
  url: string;
  range?: string;
  storageClass?: string;
  copySource?: string;
}

export interface FaultProxy {
  readonly endpoint: string;
  /** Replaces the fault plan; rules apply in order, each for its `times`. */
  setFaults(rules: FaultRule[]): void;
  /** Faults injected so far, by kind. */
  readonly injected: Record<string, number>;
  /**
   * Every request that reached the proxy, in order, with its Range header when it had one, and
   * the storage class and copy source it asked for (s3rver keeps no storage classes, so this is
   * where a test sees the class Warden requested).
   */
  readonly requests: ReadonlyArray<ProxiedRequest>;
  stop(): Promise<void>;
}

/**
 * An HTTP proxy on loopback in front of the test S3 server that injects bounded faults: error
 * statuses (503 SlowDown, 500), slow responses and connections dropped mid-upload or before the
 * response. The SDK signs requests for the proxy's host, and s3rver checks the signature against
 * the Host header it receives, which the proxy passes through unchanged.
 */
export async function startFaultProxy(target: TestS3): Promise<FaultProxy> {
  let rules: FaultRule[] = [];
  const injected: Record<string, number> = {};
  const take = (method: string, url: string): Fault | undefined => {
    const rule = rules.find((r) => r.times > 0 && (!r.match || r.match({ method, url })));
    if (!rule) return undefined;
    rule.times -= 1;
    injected[rule.fault.kind] = (injected[rule.fault.kind] ?? 0) + 1;
    return rule.fault;
  };
  const requests: ProxiedRequest[] = [];
  const server = http.createServer((req, res) => {
    const storageClass = req.headers['x-amz-storage-class'];
    const copySource = req.headers['x-amz-copy-source'];
    requests.push({
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      ...(req.headers.range ? { range: req.headers.range } : {}),
      ...(typeof storageClass === 'string' ? { storageClass } : {}),
      ...(typeof copySource === 'string' ? { copySource } : {}),
    });
    const fault = take(req.method ?? 'GET', req.url ?? '/');
    if (fault?.kind === 'status') {
      req.resume();
      req.once('end', () => {
        const code = fault.code ?? (fault.status === 503 ? 'SlowDown' : 'InternalError');
        res.writeHead(fault.status, { 'content-type': 'application/xml' });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected</Message></Error>`,
        );
      });
      return;
    }
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'drop-mid-upload') {
      let seen = 0;
      req.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen >= fault.afterBytes) req.socket.destroy();
      });
      req.once('end', () => req.socket.destroy());
      return;
    }
    const upstream = http.request(
      { host: HOST, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (response) => {
        if (fault?.kind === 'drop-response') {
          response.resume();
          response.once('end', () => req.socket.destroy());
          return;
        }
        if (fault?.kind === 'drop-mid-body') {
          res.writeHead(response.statusCode ?? 502, response.headers);
          let sent = 0;
          response.on('data', (chunk: Buffer) => {
            if (sent >= fault.afterBytes) return;
            const part = chunk.subarray(0, fault.afterBytes - sent);
            sent += part.length;
            // Cut once the bytes promised are on their way, mid-body of a longer response.
            res.write(part, () => {
              if (sent >= fault.afterBytes) req.socket.destroy();
            });
          });
          return;
        }
        const forward = () => {
          res.writeHead(response.statusCode ?? 502, response.headers);
          response.pipe(res);
        };
        if (fault?.kind === 'slow') setTimeout(forward, fault.delayMs);
        else forward();
      },
    );
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, HOST, resolve));
  return {
    endpoint: `http://${HOST}:${port}`,
    setFaults(next) {
      rules = next.map((rule) => ({ ...rule }));
    },
    injected,
    requests,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
