import { readFileSync } from 'node:fs';

/**
 * The version of the installed package, read from its package.json: two levels up from both
 * src/cli/ (a clone) and dist/cli/ (an installed package), so it is never out of step.
 */
export function wardenVersion(): string {
  const manifest: unknown = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8'));
  const version = (manifest as { version?: unknown }).version;
  return typeof version === 'string' ? version : 'unknown';
}
