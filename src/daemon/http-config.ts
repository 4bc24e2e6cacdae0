import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import { WardenError } from '../errors.ts';
import { parseDuration } from '../util/duration.ts';
import { canonicalHost, isLoopbackHost } from '../util/loopback.ts';

/** Roles of the HTTP API, weakest first: an operator may do everything a viewer may. */
export const HTTP_ROLES = ['viewer', 'operator'] as const;
export type HttpRole = (typeof HTTP_ROLES)[number];

/** Tokens shorter than this are refused: they must be long random strings, not passwords. */
export const MIN_TOKEN_LENGTH = 32;

const tokenSchema = z
  .object({
    name: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/, 'letters, digits, _ . @ - only (at most 64)'),
    role: z.enum(HTTP_ROLES),
    tokenFile: z.string().min(1).optional(),
    tokenSha256: z
      .string()
      .regex(/^[0-9a-fA-F]{64}$/, '64 hex digits (the SHA-256 of the token)')
      .optional(),
  })
  .strict();

/** `daemon.http` in warden.yaml. */
export const httpSectionSchema = z
  .object({
    host: z.string().min(1).optional(),
    port: z.number().int().min(0).max(65535).optional(),
    allowedHosts: z.array(z.string().min(1)).optional(),
    tls: z
      .object({ certFile: z.string().min(1), keyFile: z.string().min(1) })
      .strict()
      .optional(),
    tokens: z.array(tokenSchema).optional(),
    sessionTtl: z.union([z.string(), z.number()]).optional(),
  })
  .strict();

export type HttpSection = z.infer<typeof httpSectionSchema>;

/** A configured bearer token: its name is the caller's identity; only its SHA-256 is kept. */
export interface HttpToken {
  name: string;
  role: HttpRole;
  sha256: string;
}

/** The status API's listen address and access rules, fully resolved. */
export interface HttpPlan {
  host: string;
  port: number;
  /** Names the Host header may carry besides loopback names and the listen address (canonical). */
  allowedHosts: string[];
  /** Certificate and key files (absolute); set, the API is served over HTTPS only. */
  tls?: { certFile: string; keyFile: string };
  /** Empty: no sign-in, every request is an anonymous viewer (loopback binds only). */
  tokens: HttpToken[];
  /** How long a browser session cookie stays valid after sign-in. */
  sessionTtlMs: number;
}

export const HTTP_DEFAULTS = { host: '127.0.0.1', port: 7480, sessionTtl: '12h' } as const;

/**
 * Resolves `daemon.http`. A bind that is not loopback must have TLS and at least one token;
 * otherwise the daemon refuses to start and the error names the missing fields. Token files are
 * read here and only their SHA-256 is kept.
 */
export function resolveHttpPlan(
  section: HttpSection | undefined,
  baseDir: string,
  portFlag: number | undefined,
): HttpPlan {
  const host = section?.host ?? HTTP_DEFAULTS.host;
  const tls = section?.tls
    ? {
        certFile: path.resolve(baseDir, section.tls.certFile),
        keyFile: path.resolve(baseDir, section.tls.keyFile),
      }
    : undefined;
  const tokens = resolveTokens(section?.tokens ?? [], baseDir);
  if (!isLoopbackHost(host)) {
    const missing = [...(tls ? [] : ['daemon.http.tls']), ...(tokens.length ? [] : ['daemon.http.tokens'])];
    if (missing.length) {
      throw new WardenError(
        'WARDEN_E_CONFIG_INVALID',
        `${missing.join(' and ')}: required when daemon.http.host ("${host}") is not a loopback address`,
        {
          hint:
            'Serve the API over TLS (daemon.http.tls.certFile and keyFile) with named bearer tokens ' +
            '(daemon.http.tokens: [{ name, role, tokenFile }]), or bind it to 127.0.0.1.',
          details: { field: missing[0], fields: missing, host },
        },
      );
    }
  }
  const sessionTtlMs = parseDuration(
    section?.sessionTtl ?? HTTP_DEFAULTS.sessionTtl,
    'daemon.http.sessionTtl',
  );
  if (sessionTtlMs < 60_000) {
    throw configError(
      `daemon.http.sessionTtl: at least 1m (a cookie counts whole seconds)`,
      'daemon.http.sessionTtl',
    );
  }
  return {
    host,
    port: portFlag ?? section?.port ?? HTTP_DEFAULTS.port,
    allowedHosts: (section?.allowedHosts ?? []).map((name, i) =>
      allowedHost(name, `daemon.http.allowedHosts.${i}`),
    ),
    ...(tls ? { tls } : {}),
    tokens,
    sessionTtlMs,
  };
}

/** SHA-256 (hex) of a token, as `tokenSha256` holds it (`printf %s "$TOKEN" | sha256sum`). */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

function resolveTokens(entries: NonNullable<HttpSection['tokens']>, baseDir: string): HttpToken[] {
  const names = new Set<string>();
  const digests = new Set<string>();
  return entries.map((entry, i) => {
    const field = `daemon.http.tokens.${i}`;
    if ((entry.tokenFile === undefined) === (entry.tokenSha256 === undefined)) {
      throw configError(`${field}: set exactly one of tokenFile and tokenSha256`, field);
    }
    if (names.has(entry.name)) {
      throw configError(`${field}.name: "${entry.name}" is used by another token`, `${field}.name`);
    }
    const sha256 =
      entry.tokenSha256?.toLowerCase() ?? tokenDigest(readToken(entry.tokenFile!, baseDir, field));
    if (digests.has(sha256)) {
      const where = entry.tokenFile ? `${field}.tokenFile` : `${field}.tokenSha256`;
      throw configError(`${where}: the same token as another entry (each name needs its own token)`, where);
    }
    names.add(entry.name);
    digests.add(sha256);
    return { name: entry.name, role: entry.role, sha256 };
  });
}

function readToken(file: string, baseDir: string, field: string): string {
  const resolved = path.resolve(baseDir, file);
  let token: string;
  try {
    token = readFileSync(resolved, 'utf8').trim();
  } catch (cause) {
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `${field}.tokenFile: cannot read ${resolved} (${(cause as NodeJS.ErrnoException).code ?? 'error'})`,
      { details: { field: `${field}.tokenFile`, file: resolved }, cause },
    );
  }
  if (token.length < MIN_TOKEN_LENGTH || /\s/.test(token)) {
    // Never echo the token itself: only its length.
    throw new WardenError(
      'WARDEN_E_CONFIG_INVALID',
      `${field}.tokenFile: ${resolved} must hold one token of at least ${MIN_TOKEN_LENGTH} characters without spaces (it has ${token.length})`,
      {
        hint: `Generate one: openssl rand -base64 32 > ${resolved}`,
        details: { field: `${field}.tokenFile`, file: resolved },
      },
    );
  }
  return token;
}

function allowedHost(name: string, field: string): string {
  const host = canonicalHost(name);
  const plainName = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(host);
  if (!plainName && !net.isIP(host)) {
    throw configError(
      `${field}: "${name}" is not a host name or IP address (no scheme, port or path)`,
      field,
    );
  }
  return host;
}

function configError(message: string, field: string): WardenError {
  return new WardenError('WARDEN_E_CONFIG_INVALID', message, { details: { field } });
}
