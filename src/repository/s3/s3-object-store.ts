import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  AbortMultipartUploadCommand,
  CopyObjectCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3';
import { WardenError } from '../../errors.ts';
import type { Appender, ObjectStore, PutOptions } from '../object-store.ts';
import { S3Appender } from './s3-appender.ts';
import { uploadStream } from './s3-stream-upload.ts';
import { backoffDelay, createS3Client, DEFAULT_RETRY, type S3ClientSettings } from './s3-client.ts';
import { isNotFound, isNotImplemented, isPreconditionFailed, s3Error } from './s3-errors.ts';

export interface S3Settings extends S3ClientSettings {
  bucket: string;
  /** Key prefix inside the bucket (no leading or trailing `/`); empty for the bucket root. */
  prefix: string;
  /** Multipart part size; memory per upload is partSize × (queueSize + 1) at most. */
  partSize?: number;
  /** Parts uploaded in parallel per object. */
  queueSize?: number;
}

export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
export const DEFAULT_QUEUE_SIZE = 4;
/** DeleteObjects takes at most 1000 keys per request. */
const DELETE_BATCH = 1000;

/**
 * The S3 adapter: objects are keys under `prefix/` in one bucket, on AWS S3 or any S3-compatible
 * server. `put` streams through a multipart upload (bounded memory, parallel parts; one PutObject
 * when the object fits one part) that becomes visible only when completed, and checks the stored
 * size with HeadObject before it resolves; a failed or cancelled upload is aborted, so no partial
 * object is ever visible.
 *
 * @example
 * const store = new S3ObjectStore({ bucket: 'backups', prefix: 'db1', region: 'eu-west-1', forcePathStyle: false });
 * const repository = await Repository.open(store);
 */
export class S3ObjectStore implements ObjectStore {
  readonly location: string;
  private readonly base: string;
  private clientInstance: S3Client | undefined;

  constructor(private readonly settings: S3Settings) {
    const prefix = settings.prefix.replace(/^\/+|\/+$/g, '');
    this.base = prefix ? `${prefix}/` : '';
    this.location = `s3://${settings.bucket}${prefix ? `/${prefix}` : ''}`;
  }

  /** Created on first use: no I/O or sockets in the constructor. */
  private get client(): S3Client {
    this.clientInstance ??= createS3Client(this.settings);
    return this.clientInstance;
  }

  /** Each chunk is copied into a part buffer before the next is read (s3-stream-upload.ts). */
  readonly putConsumesChunks = true;

  async put(key: string, source: Readable | AsyncIterable<Buffer>, options: PutOptions = {}) {
    let size: number;
    try {
      if (options.signal?.aborted) throw new WardenError('WARDEN_E_ABORTED', `writing ${key} was cancelled`);
      size = await uploadStream(source as AsyncIterable<Buffer>, {
        client: this.client,
        bucket: this.settings.bucket,
        key: this.keyOf(key),
        partSize: this.settings.partSize ?? DEFAULT_PART_SIZE,
        queueSize: this.settings.queueSize ?? DEFAULT_QUEUE_SIZE,
        ...(options.storageClass ? { storageClass: options.storageClass } : {}),
        ...(options.signal ? { signal: options.signal } : {}),
      });
    } catch (error) {
      if (options.signal?.aborted) {
        throw new WardenError('WARDEN_E_ABORTED', `writing ${key} was cancelled`, { cause: error });
      }
      throw s3Error(error, 'writing', key, this.location);
    }
    await this.verifySize(key, size);
    return { size };
  }

  async putBuffer(key: string, data: Buffer): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.settings.bucket,
          Key: this.keyOf(key),
          Body: data,
          ContentLength: data.length,
          // The server refuses a body that does not match (BadDigest) instead of storing it.
          ContentMD5: createHash('md5').update(data).digest('base64'),
        }),
      );
    } catch (error) {
      throw s3Error(error, 'writing', key, this.location);
    }
  }

  /**
   * Streams an object. A connection that drops mid-body is resumed with a ranged GET from the
   * byte where it broke (pinned to the first response's ETag), with the client's backoff.
   */
  get(key: string): Readable {
    return Readable.from(this.readChunks(key), { objectMode: false, highWaterMark: 1024 * 1024 });
  }

  private async *readChunks(key: string): AsyncGenerator<Buffer> {
    const retry = { ...DEFAULT_RETRY, ...this.settings.retry };
    let offset = 0;
    let etag: string | undefined;
    for (let attempt = 1; ; attempt += 1) {
      try {
        const response = await this.client.send(
          new GetObjectCommand({
            Bucket: this.settings.bucket,
            Key: this.keyOf(key),
            ...(offset > 0 ? { Range: `bytes=${offset}-` } : {}),
            ...(etag ? { IfMatch: etag } : {}),
          }),
        );
        etag ??= response.ETag;
        for await (const chunk of response.Body as AsyncIterable<Buffer>) {
          offset += chunk.length;
          yield chunk;
        }
        return;
      } catch (error) {
        if (isNotFound(error)) throw notFound(key, this.location, error);
        if (!isBodyInterruption(error) || attempt >= retry.maxAttempts)
          throw s3Error(error, 'reading', key, this.location);
        await sleep(backoffDelay(attempt, retry.baseDelayMs, retry.maxDelayMs));
      }
    }
  }

  /**
   * Reads an object whole. When the object is replaced while a resumed read is under way (the
   * partial WAL segment is re-uploaded on every sync) the ranged GET pinned to the old ETag fails
   * (412, or 416 when the new version is shorter): the read then starts over on the new version.
   */
  async getBuffer(key: string): Promise<Buffer> {
    for (let attempt = 1; ; attempt += 1) {
      const chunks: Buffer[] = [];
      try {
        for await (const chunk of this.get(key)) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks);
      } catch (error) {
        const status = ((error as WardenError).details?.status ?? 0) as number;
        if ((status === 412 || status === 416) && attempt < 3) continue;
        if (error instanceof WardenError) throw error;
        throw s3Error(error, 'reading', key, this.location);
      }
    }
  }

  async stat(key: string): Promise<{ size: number } | undefined> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.keyOf(key) }),
      );
      return { size: head.ContentLength ?? 0 };
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw s3Error(error, 'inspecting', key, this.location);
    }
  }

  /** The objects under `prefix`, page by page (ListObjectsV2, 1000 a page); errors as the SDK's. */
  private async *objectsUnder(prefix: string): AsyncGenerator<{ Key: string; StorageClass?: string }> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.settings.bucket,
          Prefix: this.keyOf(prefix),
          ...(token ? { ContinuationToken: token } : {}),
        }),
      );
      for (const object of page.Contents ?? [])
        if (object.Key)
          yield { Key: object.Key, ...(object.StorageClass ? { StorageClass: object.StorageClass } : {}) };
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /**
   * Every key under `prefix`, sorted (ListObjectsV2, 1000 a page). `includeIncomplete` adds the
   * keys of multipart uploads still in progress (an upload cut off by a crash), so the cleanup of
   * unfinished backups finds and aborts them.
   */
  async list(prefix: string, options: { includeIncomplete?: boolean } = {}): Promise<string[]> {
    const keys = new Set<string>();
    try {
      for await (const object of this.objectsUnder(prefix)) keys.add(this.relative(object.Key));
      if (options.includeIncomplete) {
        for (const upload of await this.pendingUploads(prefix)) keys.add(this.relative(upload.key));
      }
    } catch (error) {
      throw s3Error(error, 'listing', prefix, this.location);
    }
    return [...keys].sort();
  }

  /**
   * Deletes `key`, and everything under `key/` (or under `key` when it ends in `/`), like
   * `rm -r` on the filesystem adapter; multipart uploads in progress there are aborted too.
   */
  async delete(key: string): Promise<void> {
    const dir = key.endsWith('/') ? key : `${key}/`;
    try {
      // Independent of each other: one round trip instead of three (most deletes are of one
      // object with nothing under it: a claim, a lock, a partial segment).
      const [, keys, pending] = await Promise.all([
        key.endsWith('/')
          ? undefined
          : this.client.send(new DeleteObjectCommand({ Bucket: this.settings.bucket, Key: this.keyOf(key) })),
        this.list(dir),
        this.pendingUploads(dir),
      ]);
      for (let i = 0; i < keys.length; i += DELETE_BATCH) {
        const batch = keys.slice(i, i + DELETE_BATCH);
        const result = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.settings.bucket,
            Delete: { Objects: batch.map((k) => ({ Key: this.keyOf(k) })), Quiet: true },
          }),
        );
        const failed = result.Errors?.[0];
        if (failed) {
          throw new WardenError(
            'WARDEN_E_REPO_IO',
            `repository I/O failed deleting ${failed.Key ?? dir} in ${this.location}: ${failed.Code ?? 'error'}`,
            { details: { object: failed.Key, s3Code: failed.Code, failed: result.Errors?.length } },
          );
        }
      }
      for (const upload of pending) {
        await this.client.send(
          new AbortMultipartUploadCommand({
            Bucket: this.settings.bucket,
            Key: upload.key,
            UploadId: upload.uploadId,
          }),
        );
      }
    } catch (error) {
      throw s3Error(error, 'deleting', key, this.location);
    }
  }

  async openAppender(key: string): Promise<Appender> {
    const existing = (await this.stat(key)) ? await this.getBuffer(key) : Buffer.alloc(0);
    return new S3Appender(existing, (data) => this.putBuffer(key, data));
  }

  /**
   * Conditional PutObject with `If-None-Match: *`: the server creates the key only if absent
   * (412 otherwise), which makes this a real lock primitive on AWS S3, MinIO, R2 and others.
   * Servers that reject the header (501 NotImplemented) get a HEAD-then-PUT instead, which is
   * only safe against writers that are not racing within the same instant. Servers that ignore
   * the header silently (some emulators) are covered by the HEAD that runs first.
   */
  async createExclusive(key: string, data: Buffer): Promise<boolean> {
    if (await this.stat(key)) return false;
    const params = {
      Bucket: this.settings.bucket,
      Key: this.keyOf(key),
      Body: data,
      ContentLength: data.length,
      ContentMD5: createHash('md5').update(data).digest('base64'),
    };
    try {
      await this.client.send(new PutObjectCommand({ ...params, IfNoneMatch: '*' }));
      return true;
    } catch (error) {
      if (isPreconditionFailed(error)) return false;
      if (!isNotImplemented(error)) throw s3Error(error, 'creating', key, this.location);
    }
    try {
      await this.client.send(new PutObjectCommand(params));
      return true;
    } catch (error) {
      throw s3Error(error, 'creating', key, this.location);
    }
  }

  /** Each object's class as ListObjectsV2 reports it (some servers always answer STANDARD). */
  async listStorageClasses(prefix: string): Promise<Map<string, string>> {
    const classes = new Map<string, string>();
    try {
      for await (const object of this.objectsUnder(prefix))
        classes.set(this.relative(object.Key), object.StorageClass ?? 'STANDARD');
    } catch (error) {
      throw s3Error(error, 'listing', prefix, this.location);
    }
    return classes;
  }

  /** The class HeadObject reports (S3 omits the header for STANDARD). */
  async storageClassOf(key: string): Promise<string> {
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.settings.bucket, Key: this.keyOf(key) }),
      );
      return head.StorageClass ?? 'STANDARD';
    } catch (error) {
      throw s3Error(error, 'inspecting', key, this.location);
    }
  }

  /**
   * CopyObject onto itself with the new class: S3 changes an object's class only by rewriting
   * it. `REPLACE` because some servers refuse a copy onto itself that changes "nothing" else;
   * Warden sets no metadata of its own, so nothing is lost. Objects over 5 GiB need a multipart
   * copy, which this does not do: S3 refuses them (reported as WARDEN_E_REPO_IO).
   */
  async setStorageClass(key: string, storageClass: string): Promise<void> {
    const fullKey = this.keyOf(key);
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.settings.bucket,
          Key: fullKey,
          CopySource: `${this.settings.bucket}/${fullKey.split('/').map(encodeURIComponent).join('/')}`,
          MetadataDirective: 'REPLACE',
          StorageClass: storageClass as StorageClass,
        }),
      );
    } catch (error) {
      throw s3Error(error, 'changing the storage class of', key, this.location);
    }
  }

  /** Releases the client's sockets. */
  destroy(): void {
    this.clientInstance?.destroy();
    this.clientInstance = undefined;
  }

  private async verifySize(key: string, size: number): Promise<void> {
    const stored = await this.stat(key);
    if (stored?.size !== size) {
      await this.delete(key).catch(() => undefined);
      throw new WardenError(
        'WARDEN_E_REPO_IO',
        `repository I/O failed writing ${key} in ${this.location}: stored size ${stored?.size ?? 'none'}, sent ${size}`,
        { details: { object: key, repository: this.location, expected: size, actual: stored?.size } },
      );
    }
  }

  private async pendingUploads(prefix: string): Promise<Array<{ key: string; uploadId: string }>> {
    const uploads: Array<{ key: string; uploadId: string }> = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    try {
      do {
        const page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.settings.bucket,
            Prefix: this.keyOf(prefix),
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
          }),
        );
        for (const upload of page.Uploads ?? [])
          if (upload.Key && upload.UploadId) uploads.push({ key: upload.Key, uploadId: upload.UploadId });
        keyMarker = page.IsTruncated ? page.NextKeyMarker : undefined;
        uploadIdMarker = page.IsTruncated ? page.NextUploadIdMarker : undefined;
      } while (keyMarker);
    } catch (error) {
      // Some S3-compatible servers do not list multipart uploads; there is nothing to clean then.
      if (isNotImplemented(error)) return [];
      throw error;
    }
    return uploads;
  }

  private keyOf(key: string): string {
    if (key.split('/').some((part) => part === '..' || part === '.')) {
      throw new WardenError('WARDEN_E_INTERNAL', `object key escapes the repository: ${key}`);
    }
    return `${this.base}${key}`;
  }

  private relative(fullKey: string): string {
    return fullKey.slice(this.base.length);
  }
}

/** A GET that broke while the body was streaming (reset, timeout), as opposed to an S3 error. */
function isBodyInterruption(error: unknown): boolean {
  const e = error as { code?: string; name?: string; $metadata?: unknown };
  if (e?.$metadata) return false; // an S3 error response: the SDK already retried it
  return (
    ['ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ERR_STREAM_PREMATURE_CLOSE'].includes(e?.code ?? '') ||
    e?.name === 'TimeoutError'
  );
}

function notFound(key: string, location: string, cause: unknown): Error {
  // Same shape as the filesystem adapter's missing file, which readers already recognize.
  const error = new Error(`object ${key} does not exist in ${location}`, { cause }) as NodeJS.ErrnoException;
  error.code = 'ENOENT';
  return error;
}
