/**
 * PostgreSQL WAL positions (`pg_lsn`, printed as `16/B374D848`) as bigints, so they compare
 * with `<` and survive the 32-bit halves.
 */
export type Lsn = bigint;

export function parseLsn(text: string): Lsn {
  const slash = text.indexOf('/');
  if (slash < 0) throw new RangeError(`not an LSN: ${text}`);
  return (BigInt(`0x${text.slice(0, slash)}`) << 32n) | BigInt(`0x${text.slice(slash + 1)}`);
}

export function formatLsn(lsn: Lsn): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Parses a nullable `pg_lsn` column (a replica that replayed nothing yet reports NULL). */
export function parseLsnOrNull(text: unknown): Lsn | null {
  return typeof text === 'string' ? parseLsn(text) : null;
}
