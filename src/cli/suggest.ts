/**
 * Levenshtein distance (insertions, deletions, substitutions), for "did you mean …?" on a
 * mistyped command. Names are a few letters long, so the plain O(n·m) table is plenty.
 */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The closest of `candidates` to `typed`, when it is close enough to be a typo: at most a third
 * of the longer name's letters differ (`backups` → `backup`, `resore` → `restore`), or the typed
 * word is a prefix of exactly one candidate (`ver` → `verify`).
 */
export function closestName(typed: string, candidates: readonly string[]): string | undefined {
  const word = typed.toLowerCase();
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = editDistance(word, name);
    if (!best || distance < best.distance) best = { name, distance };
  }
  if (best && best.distance <= Math.max(1, Math.floor(Math.max(word.length, best.name.length) / 3)))
    return best.name;
  const prefixed = candidates.filter((name) => word.length >= 2 && name.startsWith(word));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}
