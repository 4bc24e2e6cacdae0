import type http from 'node:http';
import { WardenError } from '../errors.ts';
import type { AccessTokens, HttpIdentity } from './access-tokens.ts';
import type { Route } from './route.ts';
import { clearedSessionCookie, readSessionCookie, sessionCookie } from './session-cookie.ts';
import type { SessionStore } from './session-store.ts';

const MAX_BODY_BYTES = 8 * 1024;

/**
 * Browser sign-in: `POST /api/session` with a token (`Authorization: Bearer …` or the JSON body
 * `{ "token": "…" }`) sets the session cookie; `GET /api/session` says who the caller is;
 * `DELETE /api/session` signs out (ends the session and clears the cookie).
 */
export function sessionRoutes(tokens: AccessTokens, sessions: SessionStore, secure: boolean): Route[] {
  return [
    {
      method: 'POST',
      path: '/api/session',
      access: 'public',
      async handle({ request, identity, logger, send, auditAs }) {
        let signedIn: Omit<HttpIdentity, 'via'> | undefined =
          identity?.via === 'token' ? identity : undefined;
        if (!signedIn) {
          const body = await readJsonBody(request);
          const token = typeof body?.token === 'string' ? body.token : undefined;
          signedIn = token === undefined ? undefined : tokens.verify(token);
        }
        if (!signedIn) {
          logger.warn({ remote: request.socket.remoteAddress }, 'http: sign-in refused');
          throw new WardenError('WARDEN_E_HTTP_AUTH_REQUIRED', 'signing in needs a valid token', {
            hint: 'POST /api/session with {"token": "…"} or Authorization: Bearer <token>.',
          });
        }
        auditAs(signedIn, identity?.via === 'token' ? 'token' : 'sign-in');
        const session = sessions.create(signedIn);
        logger.info({ caller: signedIn.name, role: signedIn.role }, 'http: signed in');
        send(
          200,
          { name: signedIn.name, role: signedIn.role, expiresAt: session.expiresAt.toISOString() },
          { 'set-cookie': sessionCookie(session.id, sessions.ttlSeconds, secure) },
        );
      },
    },
    {
      method: 'GET',
      path: '/api/session',
      access: 'viewer',
      handle({ identity, send }) {
        send(200, { name: identity!.name, role: identity!.role, via: identity!.via });
      },
    },
    {
      method: 'DELETE',
      path: '/api/session',
      access: 'public',
      handle({ request, logger, send }) {
        const id = readSessionCookie(request.headers.cookie, secure);
        if (id !== undefined) sessions.delete(id);
        logger.info('http: signed out');
        send(200, { signedOut: true }, { 'set-cookie': clearedSessionCookie(secure) });
      },
    },
  ];
}

async function readJsonBody(request: http.IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new WardenError('WARDEN_E_USAGE', `request body larger than ${MAX_BODY_BYTES} bytes`);
    }
    chunks.push(chunk);
  }
  if (!size) return undefined;
  if (!/^application\/json\b/i.test(request.headers['content-type'] ?? '')) {
    throw new WardenError('WARDEN_E_USAGE', 'the sign-in body must be application/json: {"token": "…"}');
  }
  try {
    const parsed: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return parsed && typeof parsed === 'object' ? (parsed as Record<string, unknown>) : undefined;
  } catch {
    throw new WardenError('WARDEN_E_USAGE', 'the sign-in body is not valid JSON');
  }
}
