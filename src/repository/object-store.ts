import type { Readable } from 'node:stream';

/**
 * The storage port: what a repository backend (a directory: fs/, an S3 bucket: s3/) must do.
 * Keys are `/`-separated relative paths. `put` is atomic: a reader sees the whole object or
 * nothing, and once it resolves the object is durable.
 */
export interface ObjectStore {
  /** Human description for messages (`/var/backups/warden`, `s3://bucket/prefix`). */
  readonly location: string;
  put(key: string, source: Readable | AsyncIterable<Buffer>, options?: PutOptions): Promise<{ size: number }>;
  /**
   * True when `put` has written each chunk of its source before it takes the next, so the
   * producer may reuse a chunk's memory once the next one is asked for (recycled compression
   * blocks). Stores that buffer chunks (multipart uploads) leave it unset.
   */
  readonly putConsumesChunks?: boolean;
  putBuffer(key: string, data: Buffer): Promise<void>;
  get(key: string): Readable;
  getBuffer(key: string): Promise<Buffer>;
  /** Size of an object, or undefined when absent. */
  stat(key: string): Promise<{ size: number } | undefined>;
  /** Keys directly or indirectly under a prefix, sorted. `includeIncomplete` adds unfinished writes. */
  list(prefix: string, options?: { includeIncomplete?: boolean }): Promise<string[]>;
  delete(key: string): Promise<void>;
  /** An object that grows by appends and is made durable on `sync()` (the partial WAL segment). */
  openAppender(key: string): Promise<Appender>;
  /** Creates `key` only if absent; true when this caller created it (the lock primitive). */
  createExclusive(key: string, data: Buffer): Promise<boolean>;
  /**
   * Directory stores only (an object store has no directories): the directories below `prefix`
   * that hold no file at any depth, outermost only, as keys ending in `/`.
   */
  listEmptyDirectories?(prefix: string): Promise<string[]>;
  /**
   * Removes a directory listed by `listEmptyDirectories` and the empty ones inside it, never a
   * file: a file written there meanwhile keeps it (false).
   */
  removeEmptyDirectory?(key: string): Promise<boolean>;
  /**
   * Stores with storage classes only (S3): each object's class under `prefix` as the listing
   * reports it (`STANDARD` when the listing names none).
   */
  listStorageClasses?(prefix: string): Promise<Map<string, string>>;
  /** Stores with storage classes only: one object's class as the object itself reports it. */
  storageClassOf?(key: string): Promise<string>;
  /** Stores with storage classes only: rewrites the object onto itself in `storageClass`. */
  setStorageClass?(key: string, storageClass: string): Promise<void>;
}

export interface PutOptions {
  signal?: AbortSignal;
  /**
   * The storage class to store the object in (S3: `x-amz-storage-class`, e.g. `STANDARD_IA`);
   * stores without classes ignore it.
   */
  storageClass?: string;
}

export interface Appender {
  readonly size: number;
  /**
   * How often syncing is worth its cost, in ms: 0 for a local file (fdatasync is cheap), about a
   * second for object stores where each sync uploads the whole object again.
   */
  readonly syncIntervalMs: number;
  append(data: Buffer): Promise<void>;
  /** Makes everything appended so far durable. */
  sync(): Promise<void>;
  /** Cuts the object to `size` bytes (used when resuming after a crash). */
  truncate(size: number): Promise<void>;
  close(): Promise<void>;
}
