import { createHash } from 'node:crypto';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  PutObjectCommand,
  UploadPartCommand,
  type CompletedPart,
  type S3Client,
  type StorageClass,
} from '@aws-sdk/client-s3';

export interface StreamUploadTarget {
  client: S3Client;
  bucket: string;
  key: string;
  /** Bytes per part; every part but the last is exactly this long (S3: 5 MiB at least). */
  partSize: number;
  /** Parts in flight at once; the source is not read further while they all are. */
  queueSize: number;
  storageClass?: string;
  signal?: AbortSignal;
}

/**
 * Streams a source of unknown length into one object, copying each chunk into part buffers
 * before it takes the next (the producer may reuse a chunk's memory then). An object that fits
 * one part is one PutObject with Content-MD5; a larger one is a multipart upload, at most
 * `queueSize` parts in flight, each part's buffer reused once its request settled (at most
 * `queueSize + 1` buffers per object, none allocated per chunk). Nothing is visible before the
 * PutObject or CompleteMultipartUpload succeeds; on any failure the requests in flight are
 * cancelled and the multipart upload is aborted (best effort: an upload left by a crash is
 * found by `list(…, { includeIncomplete })`). Resolves with the bytes sent.
 *
 * Why not `@aws-sdk/lib-storage`'s Upload: it gathers each part by concatenating the stream's
 * chunks into a fresh buffer (after the stream itself concatenated them), which cost a backup
 * to s3rver about three times the client CPU of uploading the same bytes from memory.
 */
export async function uploadStream(
  source: AsyncIterable<Buffer>,
  target: StreamUploadTarget,
): Promise<number> {
  const { client, bucket, key, partSize } = target;
  const spare: Buffer[] = [];
  const take = () => spare.pop() ?? Buffer.allocUnsafe(partSize);
  const requests = new AbortController();
  const cancel = () => requests.abort(target.signal?.reason);
  target.signal?.addEventListener('abort', cancel, { once: true });
  const inFlight = new Set<Promise<void>>();
  const completed: CompletedPart[] = [];
  let failure: { error: unknown } | undefined;
  let uploadId: string | undefined;
  let partNumber = 0;
  let part = take();
  let filled = 0;
  let size = 0;

  const fail = (error: unknown) => {
    failure ??= { error };
    requests.abort(error);
  };
  const check = () => {
    if (failure) throw failure.error;
    if (target.signal?.aborted) throw target.signal.reason;
  };
  const sendPart = async (buffer: Buffer, length: number) => {
    uploadId ??= await createUpload(target, requests.signal);
    const number = (partNumber += 1);
    const id = uploadId;
    // Never rejects: a failure is kept in `failure`, which the loop checks.
    const request: Promise<void> = client
      .send(
        new UploadPartCommand({
          Bucket: bucket,
          Key: key,
          UploadId: id,
          PartNumber: number,
          Body: buffer.subarray(0, length),
          ContentLength: length,
        }),
        { abortSignal: requests.signal },
      )
      .then((response) => {
        if (!response.ETag) throw new Error(`part ${number} of ${key} came back without an ETag`);
        completed.push({ PartNumber: number, ETag: response.ETag });
      })
      .catch(fail)
      .finally(() => {
        // The request (and any retry of it) is over: its body buffer is free for the next part.
        spare.push(buffer);
        inFlight.delete(request);
      });
    inFlight.add(request);
    while (inFlight.size >= target.queueSize) await Promise.race(inFlight);
  };

  try {
    for await (const chunk of source) {
      check();
      for (let offset = 0; offset < chunk.length;) {
        const copied = chunk.copy(part, filled, offset);
        filled += copied;
        offset += copied;
        if (filled === partSize) {
          await sendPart(part, filled);
          check();
          part = take();
          filled = 0;
        }
      }
      size += chunk.length;
    }
    check();
    if (uploadId === undefined && partNumber === 0) {
      await putWhole(target, part.subarray(0, filled), requests.signal);
      return size;
    }
    if (filled > 0) await sendPart(part, filled);
    await Promise.all(inFlight);
    check();
    completed.sort((a, b) => a.PartNumber! - b.PartNumber!);
    await client.send(
      new CompleteMultipartUploadCommand({
        Bucket: bucket,
        Key: key,
        UploadId: uploadId,
        MultipartUpload: { Parts: completed },
      }),
      { abortSignal: requests.signal },
    );
    return size;
  } catch (error) {
    const cause = failure?.error ?? error;
    requests.abort(cause);
    await Promise.all(inFlight);
    if (uploadId !== undefined) await abortUpload(client, bucket, key, uploadId);
    throw cause;
  } finally {
    target.signal?.removeEventListener('abort', cancel);
  }
}

async function createUpload(target: StreamUploadTarget, signal: AbortSignal): Promise<string> {
  const created = await target.client.send(
    new CreateMultipartUploadCommand({
      Bucket: target.bucket,
      Key: target.key,
      ...(target.storageClass ? { StorageClass: target.storageClass as StorageClass } : {}),
    }),
    { abortSignal: signal },
  );
  if (!created.UploadId) throw new Error(`CreateMultipartUpload for ${target.key} returned no UploadId`);
  return created.UploadId;
}

async function putWhole(target: StreamUploadTarget, body: Buffer, signal: AbortSignal): Promise<void> {
  await target.client.send(
    new PutObjectCommand({
      Bucket: target.bucket,
      Key: target.key,
      Body: body,
      ContentLength: body.length,
      // The server refuses a body that does not match (BadDigest) instead of storing it.
      ContentMD5: createHash('md5').update(body).digest('base64'),
      ...(target.storageClass ? { StorageClass: target.storageClass as StorageClass } : {}),
    }),
    { abortSignal: signal },
  );
}

/** Discards an unfinished multipart upload's parts; best effort (a crash leaves them too). */
async function abortUpload(client: S3Client, bucket: string, key: string, uploadId: string): Promise<void> {
  await client
    .send(new AbortMultipartUploadCommand({ Bucket: bucket, Key: key, UploadId: uploadId }))
    .catch(() => undefined);
}
