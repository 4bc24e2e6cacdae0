import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { ageCorrupt, keyMismatch, keyMissing } from './age-errors.ts';
import { b64, unb64, type AgeIdentity, type AgeRecipient, type Stanza } from './age-keys.ts';

const VERSION_LINE = 'age-encryption.org/v1';
/** Headers past this size are refused rather than buffered without bound. */
export const MAX_HEADER_BYTES = 64 * 1024;

export interface ParsedHeader {
  stanzas: Stanza[];
  /** The header up to and including `---`: what the MAC covers. */
  macInput: Buffer;
  mac: Buffer;
  /** Bytes the header occupies, including the final newline. */
  length: number;
}

function macKey(fileKey: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', fileKey, Buffer.alloc(0), 'header', 32));
}

/** Wraps the file key to every recipient and writes the header with its MAC. */
export async function buildHeader(recipients: readonly AgeRecipient[], fileKey: Buffer): Promise<Buffer> {
  if (recipients.length === 0) throw new Error('an age file needs at least one recipient');
  const stanzas = (await Promise.all(recipients.map((r) => r.wrap(fileKey)))).flat();
  if (stanzas.some((s) => s.args[0] === 'scrypt') && stanzas.length > 1)
    throw new Error('a passphrase (scrypt) cannot be combined with other recipients');
  let text = `${VERSION_LINE}\n`;
  for (const stanza of stanzas) {
    text += `-> ${stanza.args.join(' ')}\n`;
    const body = b64(stanza.body);
    for (let i = 0; i < body.length; i += 64) text += `${body.slice(i, i + 64)}\n`;
    // The body's last line is always shorter than 64 columns, so a full one is followed by an empty one.
    if (body.length % 64 === 0) text += '\n';
  }
  text += '---';
  const mac = createHmac('sha256', macKey(fileKey)).update(text).digest();
  return Buffer.from(`${text} ${b64(mac)}\n`);
}

/**
 * Parses a header from the start of `data`; returns undefined while more bytes are needed.
 * Throws WARDEN_E_REPO_CORRUPT (problem `bad-header`) when the bytes cannot be an age header,
 * problem `scrypt-not-alone` when a scrypt stanza shares the header with any other.
 */
export function parseHeader(data: Buffer, object?: string): ParsedHeader | undefined {
  const bad = (why: string) => ageCorrupt('bad-header', `not a valid age header (${why})`, object);
  const probe = data.subarray(0, Math.min(data.length, VERSION_LINE.length + 1));
  if (!Buffer.from(`${VERSION_LINE}\n`).subarray(0, probe.length).equals(probe))
    throw bad('no age-encryption.org/v1 line');
  const macLineStart = data.indexOf('\n---');
  const end = macLineStart === -1 ? -1 : data.indexOf(0x0a, macLineStart + 1);
  if (end === -1) {
    if (data.length > MAX_HEADER_BYTES) throw bad('header too long');
    return undefined;
  }
  const text = data.toString('latin1', 0, end);
  const lines = text.split('\n');
  const stanzas: Stanza[] = [];
  let parsed: ParsedHeader;
  let i = 1;
  try {
    while (i < lines.length - 1) {
      const line = lines[i]!;
      if (!line.startsWith('-> ')) throw new Error('expected a stanza');
      const args = line.slice(3).split(' ');
      if (args.some((arg) => arg.length === 0 || !/^[\x21-\x7e]+$/.test(arg)))
        throw new Error('bad stanza argument');
      i += 1;
      const body: Buffer[] = [];
      for (;;) {
        const bodyLine = lines[i];
        if (bodyLine === undefined || i >= lines.length - 1) throw new Error('stanza body not terminated');
        if (bodyLine.length > 64) throw new Error('stanza body line too long');
        body.push(unb64(bodyLine));
        i += 1;
        if (bodyLine.length < 64) break;
      }
      stanzas.push({ args, body: Buffer.concat(body) });
    }
    const macLine = lines[lines.length - 1]!;
    if (!macLine.startsWith('--- ')) throw new Error('bad MAC line');
    const mac = unb64(macLine.slice(4));
    if (mac.length !== 32) throw new Error('bad MAC length');
    if (stanzas.length === 0) throw new Error('no recipient stanza');
    const macInput = data.subarray(0, end - macLine.length + 3);
    parsed = { stanzas, macInput: Buffer.from(macInput), mac, length: end + 1 };
  } catch (error) {
    throw bad((error as Error).message);
  }
  // The age spec: a scrypt stanza must be the only one. Checked here, for every identity, so a
  // file that also names an X25519 recipient cannot pass as passphrase-protected (or the reverse).
  if (stanzas.length > 1 && stanzas.some((stanza) => stanza.args[0] === 'scrypt')) {
    throw ageCorrupt(
      'scrypt-not-alone',
      `not a valid age header (a scrypt stanza must be the only stanza; this one has ${stanzas.length})`,
      object,
      { stanzas: stanzas.map((stanza) => stanza.args[0]) },
    );
  }
  return parsed;
}

/**
 * Finds the file key with the first identity that opens a stanza, then checks the header MAC.
 * No identity: WARDEN_E_KEY_MISSING; none fits: WARDEN_E_KEY_MISMATCH; bad MAC: REPO_CORRUPT.
 */
export async function openHeader(
  header: ParsedHeader,
  identities: readonly AgeIdentity[],
  object?: string,
): Promise<Buffer> {
  const types = header.stanzas.map((s) => s.args[0]!);
  if (identities.length === 0) throw keyMissing(object, types);
  let fileKey: Buffer | null = null;
  for (const identity of identities) {
    try {
      fileKey = await identity.unwrap(header.stanzas);
    } catch (error) {
      throw ageCorrupt('bad-header', (error as Error).message, object);
    }
    if (fileKey) break;
  }
  if (!fileKey)
    throw keyMismatch(
      object,
      types,
      identities.map((identity) => identity.label),
    );
  const expected = createHmac('sha256', macKey(fileKey)).update(header.macInput).digest();
  if (!timingSafeEqual(expected, header.mac))
    throw ageCorrupt('header-mac-mismatch', 'the header MAC does not match (header modified)', object);
  return fileKey;
}
