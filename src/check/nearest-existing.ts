import { existsSync } from 'node:fs';
import path from 'node:path';

/** `directory` itself when it exists, else its nearest parent that does. */
export function nearestExisting(directory: string): string {
  let current = path.resolve(directory);
  while (!existsSync(current) && path.dirname(current) !== current) current = path.dirname(current);
  return current;
}
