import { WardenError } from '../errors.ts';

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

/**
 * Parses a duration like `15m`, `1h`, `4h30m`, `90s`, `1ms` or `2d` into milliseconds. A bare
 * number is seconds. Errors name the field so config and flag messages point at the input.
 */
export function parseDuration(input: string | number, field: string): number {
  if (typeof input === 'number') {
    if (Number.isFinite(input) && input >= 0) return input * 1000;
  } else {
    const text = input.trim();
    if (/^\d+(\.\d+)?$/.test(text)) return Number(text) * 1000;
    const parts = [...text.matchAll(/(\d+(?:\.\d+)?)\s*(ms|min|s|m|h|d|w)/g)];
    if (parts.length > 0 && parts.map((p) => p[0]).join('') === text.replace(/\s+/g, '')) {
      return parts.reduce((sum, p) => sum + Number(p[1]) * UNITS[p[2]!]!, 0);
    }
  }
  throw new WardenError(
    'WARDEN_E_CONFIG_INVALID',
    `${field}: "${input}" is not a duration (e.g. 15m, 1h, 24h)`,
    {
      details: { field, value: input },
    },
  );
}

/** 90_000 → "1m30s"; the inverse of {@link parseDuration} for messages and reports. */
export function describeDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  let rest = Math.round(ms / 1000);
  const out: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    const n = Math.floor(rest / size);
    if (n > 0) out.push(`${n}${unit}`);
    rest -= n * size;
  }
  return out.join('') || '0s';
}
