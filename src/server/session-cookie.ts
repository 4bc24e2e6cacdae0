/**
 * The session cookie. Over TLS it is `Secure` and carries the `__Host-` prefix, which browsers
 * accept only from a secure origin, for `Path=/` and without `Domain`, so a sibling subdomain
 * cannot plant or shadow it. `HttpOnly` keeps page scripts from reading it; `SameSite=Strict`
 * keeps other sites' pages from sending it.
 */
export function sessionCookieName(secure: boolean): string {
  return secure ? '__Host-warden_session' : 'warden_session';
}

export function sessionCookie(value: string, maxAgeSeconds: number, secure: boolean): string {
  return [
    `${sessionCookieName(secure)}=${value}`,
    'Path=/',
    `Max-Age=${maxAgeSeconds}`,
    'HttpOnly',
    'SameSite=Strict',
    ...(secure ? ['Secure'] : []),
  ].join('; ');
}

/** A `Set-Cookie` value that makes the browser drop the session cookie. */
export function clearedSessionCookie(secure: boolean): string {
  return sessionCookie('', 0, secure);
}

/** The session id from a `Cookie` header, if it carries a well-formed one. */
export function readSessionCookie(header: string | undefined, secure: boolean): string | undefined {
  const name = sessionCookieName(secure);
  for (const pair of (header ?? '').split(';')) {
    const at = pair.indexOf('=');
    if (at > 0 && pair.slice(0, at).trim() === name) {
      const value = pair.slice(at + 1).trim();
      return /^[A-Za-z0-9_-]{43}$/.test(value) ? value : undefined;
    }
  }
  return undefined;
}
