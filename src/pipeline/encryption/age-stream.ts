import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { BlockPool } from '../block-pool.ts';
import { ageCorrupt } from './age-errors.ts';
import { buildHeader, openHeader, parseHeader, type ParsedHeader } from './age-header.ts';
import type { AgeIdentity, AgeRecipient } from './age-keys.ts';

/** age's STREAM: 64 KiB plaintext chunks, each sealed with its counter and a last-chunk flag. */
export const CHUNK = 64 * 1024;
const TAG = 16;
const SEALED = CHUNK + TAG;
const NONCE = 16;

function payloadKey(fileKey: Buffer, nonce: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, nonce, 'payload', 32));
}

function chunkNonce(counter: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

function seal(key: Buffer, counter: number, last: boolean, plain: Buffer): Buffer {
  const cipher = createCipheriv('chacha20-poly1305', key, chunkNonce(counter, last), { authTagLength: TAG });
  const out = Buffer.allocUnsafe(plain.length + TAG);
  cipher.update(plain).copy(out, 0);
  cipher.final();
  cipher.getAuthTag().copy(out, plain.length);
  return out;
}

function open(key: Buffer, counter: number, last: boolean, sealed: Buffer): Buffer | null {
  const decipher = createDecipheriv('chacha20-poly1305', key, chunkNonce(counter, last), {
    authTagLength: TAG,
  });
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG));
  const plain = decipher.update(sealed.subarray(0, sealed.length - TAG));
  try {
    decipher.final();
    return plain;
  } catch {
    return null;
  }
}

/** Encrypts a stream into an age v1 file; memory stays at one chunk plus what is in flight. */
export class AgeEncryptStream extends Transform {
  private key: Buffer | undefined;
  private readonly plain = Buffer.allocUnsafe(CHUNK);
  private filled = 0;
  private counter = 0;

  constructor(private readonly recipients: readonly AgeRecipient[]) {
    super({ highWaterMark: 1024 * 1024 });
  }

  private async start(): Promise<Buffer> {
    const fileKey = randomBytes(16);
    const nonce = randomBytes(NONCE);
    const header = await buildHeader(this.recipients, fileKey);
    this.key = payloadKey(fileKey, nonce);
    return Buffer.concat([header, nonce]);
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (!this.key) {
      this.start().then(
        (head) => {
          this.push(head);
          this._transform(chunk, _encoding, callback);
        },
        (error: Error) => callback(error),
      );
      return;
    }
    const out: Buffer[] = [];
    let offset = 0;
    while (offset < chunk.length) {
      // A full chunk is sealed only once more data proves it is not the last one.
      if (this.filled === CHUNK) {
        out.push(seal(this.key, this.counter, false, this.plain));
        this.counter += 1;
        this.filled = 0;
      }
      const take = Math.min(CHUNK - this.filled, chunk.length - offset);
      chunk.copy(this.plain, this.filled, offset, offset + take);
      this.filled += take;
      offset += take;
    }
    // Copied in: a pooled block (a compressed frame, which nothing else holds once written
    // here) goes back to the pool.
    const blocks = BlockPool.get();
    if (blocks.owns(chunk)) blocks.giveBack(chunk.buffer);
    callback(null, out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out));
  }

  override _flush(callback: TransformCallback): void {
    if (!this.key) {
      this.start().then(
        (head) => {
          this.push(head);
          this._flush(callback);
        },
        (error: Error) => callback(error),
      );
      return;
    }
    callback(null, seal(this.key, this.counter, true, this.plain.subarray(0, this.filled)));
  }
}

export interface DecryptOptions {
  identities: readonly AgeIdentity[];
  /** Repository object name, reported in errors (`details.object`). */
  object?: string;
}

/**
 * Decrypts an age v1 file. Every chunk is authenticated before its plaintext is passed on;
 * truncation, reordered or changed chunks and trailing bytes fail with WARDEN_E_REPO_CORRUPT
 * and `details.problem` saying which.
 */
export class AgeDecryptStream extends Transform {
  private head: Buffer[] = [];
  private headBytes = 0;
  private key: Buffer | undefined;
  private carry: Buffer = Buffer.alloc(0);
  private counter = 0;
  private consumed = 0;

  constructor(private readonly options: DecryptOptions) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    if (this.key) {
      try {
        callback(null, this.decryptAvailable(chunk));
      } catch (error) {
        callback(error as Error);
      }
      return;
    }
    this.head.push(chunk);
    this.headBytes += chunk.length;
    const data = this.head.length === 1 ? this.head[0]! : Buffer.concat(this.head);
    this.head = [data];
    let header: ParsedHeader | undefined;
    try {
      header = parseHeader(data, this.options.object);
    } catch (error) {
      callback(error as Error);
      return;
    }
    if (!header || data.length < header.length + NONCE) {
      callback();
      return;
    }
    const parsed = header;
    openHeader(parsed, this.options.identities, this.options.object).then(
      (fileKey) => {
        this.key = payloadKey(fileKey, data.subarray(parsed.length, parsed.length + NONCE));
        this.head = [];
        this.consumed = parsed.length + NONCE;
        try {
          callback(null, this.decryptAvailable(data.subarray(parsed.length + NONCE)));
        } catch (error) {
          callback(error as Error);
        }
      },
      (error: Error) => callback(error),
    );
  }

  private decryptAvailable(chunk: Buffer): Buffer | undefined {
    const data = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk;
    const out: Buffer[] = [];
    let offset = 0;
    // Only a chunk followed by more bytes is known not to be the last one.
    while (data.length - offset > SEALED) {
      const sealed = data.subarray(offset, offset + SEALED);
      const plain = open(this.key!, this.counter, false, sealed);
      if (!plain) throw this.diagnose(sealed, false);
      out.push(plain);
      this.counter += 1;
      offset += SEALED;
      this.consumed += SEALED;
    }
    this.carry = Buffer.from(data.subarray(offset));
    return out.length === 0 ? undefined : out.length === 1 ? out[0] : Buffer.concat(out);
  }

  override _flush(callback: TransformCallback): void {
    const object = this.options.object;
    if (!this.key) {
      callback(ageCorrupt('truncated', 'the file ends inside its header', object, { bytes: this.headBytes }));
      return;
    }
    if (this.carry.length < TAG) {
      callback(
        ageCorrupt(
          'truncated',
          `the file ends before its final chunk (after chunk ${this.counter})`,
          object,
          {
            chunk: this.counter,
          },
        ),
      );
      return;
    }
    const plain = open(this.key, this.counter, true, this.carry);
    if (!plain) {
      callback(this.diagnose(this.carry, true));
      return;
    }
    if (plain.length === 0 && this.counter > 0) {
      callback(ageCorrupt('empty-last-chunk', 'the final chunk is empty', object, { chunk: this.counter }));
      return;
    }
    callback(null, plain);
  }

  /** Names why a chunk failed: cut short, moved, followed by extra bytes, or changed. */
  private diagnose(sealed: Buffer, atEnd: boolean): Error {
    const object = this.options.object;
    const key = this.key!;
    const at = { chunk: this.counter, offset: this.consumed };
    if (atEnd && open(key, this.counter, false, sealed))
      return ageCorrupt(
        'truncated',
        `the file ends after chunk ${this.counter} without its final chunk`,
        object,
        at,
      );
    if (!atEnd && open(key, this.counter, true, sealed))
      return ageCorrupt('trailing-data', `bytes follow the final chunk ${this.counter}`, object, at);
    for (let other = Math.max(0, this.counter - 64); other <= this.counter + 64; other += 1) {
      if (other === this.counter) continue;
      if (open(key, other, false, sealed) || open(key, other, true, sealed))
        return ageCorrupt(
          'chunks-reordered',
          `chunk ${this.counter} holds chunk ${other} (chunks reordered)`,
          object,
          {
            ...at,
            foundChunk: other,
          },
        );
    }
    return ageCorrupt(
      'chunk-authentication-failed',
      `chunk ${this.counter} fails authentication (bytes changed)`,
      object,
      at,
    );
  }
}

/** Encrypts a whole buffer (a WAL segment) in one go. */
export async function encryptBuffer(data: Buffer, recipients: readonly AgeRecipient[]): Promise<Buffer> {
  const stream = new AgeEncryptStream(recipients);
  return collect(stream, data);
}

/** Decrypts a whole buffer; errors as AgeDecryptStream. */
export async function decryptBuffer(data: Buffer, options: DecryptOptions): Promise<Buffer> {
  return collect(new AgeDecryptStream(options), data);
}

async function collect(stream: Transform, data: Buffer): Promise<Buffer> {
  const parts: Buffer[] = [];
  stream.on('data', (part: Buffer) => parts.push(part));
  const done = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('error', reject);
  });
  stream.end(data);
  await done;
  return Buffer.concat(parts);
}

/**
 * Reads just the header of an age file and opens it with the identities (then stops reading):
 * the up-front key check before a restore writes anything.
 */
export async function probeHeader(source: AsyncIterable<Buffer>, options: DecryptOptions): Promise<void> {
  let data = Buffer.alloc(0);
  for await (const chunk of source) {
    data = Buffer.concat([data, chunk]);
    const header = parseHeader(data, options.object);
    if (header) {
      await openHeader(header, options.identities, options.object);
      return;
    }
  }
  throw ageCorrupt('truncated', 'the file ends inside its header', options.object);
}
