/**
 * The storage path's own limit for `bench/s3.ts`: the objects a backup stored, uploaded with
 * nothing but the AWS SDK (`@aws-sdk/lib-storage` Upload: one PutObject for an object that fits
 * one part, multipart otherwise) to the same S3 server, with the same part size and parallelism
 * as the repository's adapter. Bodies are in memory (read before the clock starts), so this is
 * the best case a streaming uploader could approach.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { randomBytes } from 'node:crypto';

export interface BaselineResult {
  ms: number;
  /** CPU seconds (user + system) of this process during the upload. */
  clientCpuS: number;
  bytes: number;
}

/**
 * Uploads each file (relative keys under `root`, e.g. a filesystem repository's backup objects)
 * one after the other, as a backup writes its archives, into a new bucket.
 */
export async function uploadWithSdk(
  client: S3Client,
  root: string,
  keys: string[],
  settings: { partSize: number; queueSize: number },
): Promise<BaselineResult> {
  const bodies = await Promise.all(keys.map((key) => readFile(path.join(root, key))));
  const bucket = `baseline-${randomBytes(6).toString('hex')}`;
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (const [index, body] of bodies.entries()) {
    await new Upload({
      client,
      params: { Bucket: bucket, Key: keys[index]!, Body: body },
      partSize: settings.partSize,
      queueSize: settings.queueSize,
    }).done();
  }
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  return {
    ms,
    clientCpuS: (used.user + used.system) / 1e6,
    bytes: bodies.reduce((n, b) => n + b.length, 0),
  };
}
