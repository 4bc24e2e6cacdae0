/**
 * Removes secrets from text bound for a webhook. Error messages of WardenError carry no secret
 * by rule; this is the second line: a password in a URL (`postgres://u:secret@h`), a
 * `password=…` pair, and any value the caller names (the webhooks' own URLs and keys).
 */
export function scrubber(secrets: readonly string[]): (text: string) => string {
  const known = [...new Set(secrets.filter((s) => s.length >= 6))].sort((a, b) => b.length - a.length);
  return (text) => {
    let out = text
      .replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^\s:/@]*:)[^\s@/]*@/gi, '$1***@')
      .replace(
        /\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&]+)/gi,
        '$1$2***',
      );
    for (const secret of known) out = out.split(secret).join('***');
    return out;
  };
}
