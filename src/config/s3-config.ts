import path from 'node:path';
import { z } from 'zod';
import { WardenError } from '../errors.ts';
import { checkS3Endpoint } from '../repository/s3/s3-endpoint-policy.ts';

const required = (what: string) => ({
  error: (issue: { input: unknown }) =>
    issue.input === undefined ? `required: ${what}` : `must be a string (${what})`,
});

/** `repository.s3` in warden.yaml. Secrets may also come from the AWS environment or profile. */
export const s3SectionSchema = z
  .object({
    bucket: z.string(required('the bucket name')).min(1, 'required: the bucket name'),
    prefix: z.string().optional(),
    region: z.string().optional(),
    endpoint: z.url('an http(s) URL, e.g. https://minio.internal:9000').optional(),
    forcePathStyle: z.boolean().optional(),
    /** Permit an http:// endpoint on a host that is not loopback (plaintext; warns). */
    allowHttp: z.boolean().optional(),
    /** PEM file of a CA to trust for an https:// endpoint, besides the system CAs. */
    tlsCa: z.string().optional(),
    accessKeyId: z.string().optional(),
    secretAccessKey: z.string().optional(),
  })
  .strict();

export type S3Section = z.infer<typeof s3SectionSchema>;

/** A resolved S3 repository. Without `credentials` the AWS SDK's default chain applies. */
export interface S3RepositoryConfig {
  bucket: string;
  prefix: string;
  region: string;
  endpoint?: string;
  forcePathStyle: boolean;
  /** http:// to a host that is not loopback was explicitly allowed. */
  allowHttp?: boolean;
  tlsCa?: string;
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

const S3_URL = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/;

/**
 * The S3 repository named by `--repo s3://bucket/prefix` (or WARDEN_REPO, or repository.path),
 * or by a `repository.s3` section when nothing else names a repository. Endpoint and region come
 * from the section or from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and AWS_REGION /
 * AWS_DEFAULT_REGION; credentials from the section, else the SDK's chain (AWS_ACCESS_KEY_ID and
 * AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, web identity, instance roles).
 */
export function resolveS3Repository(
  repoPath: string,
  fromDefault: boolean,
  section: S3Section | undefined,
  env: NodeJS.ProcessEnv,
  baseDir = process.cwd(),
): S3RepositoryConfig | undefined {
  let bucket: string;
  let prefix: string;
  if (repoPath.startsWith('s3://')) {
    const match = S3_URL.exec(repoPath);
    if (!match) {
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `repository: "${repoPath}" is not s3://bucket/prefix`,
        {
          hint: 'Bucket names are 3-63 lower-case letters, digits, dots and hyphens.',
          details: { field: 'repository.path' },
        },
      );
    }
    bucket = match[1]!;
    prefix = match[2] ?? section?.prefix ?? '';
  } else if (fromDefault && section) {
    bucket = section.bucket;
    prefix = section.prefix ?? '';
  } else {
    return undefined;
  }
  if ((section?.accessKeyId === undefined) !== (section?.secretAccessKey === undefined)) {
    const missing = section?.accessKeyId === undefined ? 'accessKeyId' : 'secretAccessKey';
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `repository.s3.${missing}: required when the other half of the key pair is set`,
      { details: { field: `repository.s3.${missing}` } },
    );
  }
  const endpoint = section?.endpoint ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
  const allowHttp = section?.allowHttp ?? env.WARDEN_S3_ALLOW_HTTP === '1';
  checkS3Endpoint(
    endpoint,
    allowHttp,
    section?.endpoint
      ? 'repository.s3.endpoint'
      : env.AWS_ENDPOINT_URL_S3
        ? 'AWS_ENDPOINT_URL_S3'
        : 'AWS_ENDPOINT_URL',
  );
  return {
    bucket,
    prefix: prefix.replace(/^\/+|\/+$/g, ''),
    region: section?.region ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? 'us-east-1',
    ...(endpoint ? { endpoint } : {}),
    // Custom endpoints (MinIO, Ceph, local servers) mostly need path-style addressing.
    forcePathStyle: section?.forcePathStyle ?? endpoint !== undefined,
    ...(allowHttp ? { allowHttp } : {}),
    ...(section?.tlsCa ? { tlsCa: path.resolve(baseDir, section.tlsCa) } : {}),
    ...(section?.accessKeyId && section.secretAccessKey
      ? { credentials: { accessKeyId: section.accessKeyId, secretAccessKey: section.secretAccessKey } }
      : {}),
  };
}

/** `s3://bucket/prefix`: how an S3 repository is named in messages (never with credentials). */
export function describeS3(config: S3RepositoryConfig): string {
  return `s3://${config.bucket}${config.prefix ? `/${config.prefix}` : ''}`;
}
