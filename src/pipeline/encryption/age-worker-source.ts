/**
 * age STREAM chunk sealing and opening for the pipeline's worker threads (plain CommonJS, evaluated
 * inside ZstdPool's worker source; `crypto` is node:crypto there). A job is a run of consecutive
 * chunks: its first counter and whether its last chunk is the file's final one. Chunks of one
 * file are independent given their counter and final flag, so runs seal and open in parallel;
 * the stream puts them back in order. The main-thread twins are `seal`/`open` in age-stream.ts.
 */
export const AGE_WORKER_SOURCE = `
const AGE_CHUNK = 64 * 1024;
const AGE_TAG = 16;
const AGE_SEALED = AGE_CHUNK + AGE_TAG;
function ageNonce(counter, last) {
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}
// Seals 'input' (full chunks, the last one may be short or empty) into 'output'; returns its length.
function ageSeal(key, counter, final, input, output) {
  const count = Math.max(1, Math.ceil(input.length / AGE_CHUNK));
  let written = 0;
  for (let i = 0; i < count; i += 1) {
    const plain = input.subarray(i * AGE_CHUNK, Math.min(input.length, (i + 1) * AGE_CHUNK));
    const cipher = crypto.createCipheriv('chacha20-poly1305', key, ageNonce(counter + i, final && i === count - 1), { authTagLength: AGE_TAG });
    written += cipher.update(plain).copy(output, written);
    cipher.final();
    written += cipher.getAuthTag().copy(output, written);
  }
  return written;
}
// Opens the sealed chunks in 'data', moving each chunk's plaintext to the front of 'data' once it
// is authenticated (chunk i's plaintext ends before chunk i + 1's sealed bytes start). A chunk
// that fails stops the run with its index: its sealed bytes are still in place.
function ageOpen(key, counter, final, data) {
  const count = Math.ceil(data.length / AGE_SEALED);
  let length = 0;
  for (let i = 0; i < count; i += 1) {
    const sealed = data.subarray(i * AGE_SEALED, Math.min(data.length, (i + 1) * AGE_SEALED));
    const decipher = crypto.createDecipheriv('chacha20-poly1305', key, ageNonce(counter + i, final && i === count - 1), { authTagLength: AGE_TAG });
    decipher.setAuthTag(sealed.subarray(sealed.length - AGE_TAG));
    const plain = decipher.update(sealed.subarray(0, sealed.length - AGE_TAG));
    try {
      decipher.final();
    } catch {
      return { length, failed: i };
    }
    length += plain.copy(data, length);
  }
  return { length, failed: undefined };
}
`;
