import type pg from 'pg';
import { WardenError } from '../errors.ts';
import { quoteIdent, quoteLiteral } from '../postgres/replication-client.ts';
import type { PgRoleScheme } from './credentials-config.ts';

/** One role of the scheme as the server has it; undefined fields: the role does not exist. */
interface RoleRow {
  rolname: string;
  rolcanlogin: boolean;
  rolsuper: boolean;
  member_of_owner: boolean;
  comment: string | null;
}

/** The owner role's comment records the active login: `{"wardenCredentials":{"active":…}}`. */
export interface RotationState {
  readonly active: string;
  readonly rotatedAt: string;
}

export interface RoleInspection {
  readonly owner: RoleRow | undefined;
  readonly logins: ReadonlyArray<RoleRow | undefined>;
  /** Undefined before the first rotation. */
  readonly state: RotationState | undefined;
}

const INSPECT_SQL = `
SELECT r.rolname, r.rolcanlogin, r.rolsuper,
       EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles o ON o.oid = m.roleid
               WHERE m.member = r.oid AND o.rolname = $1) AS member_of_owner,
       shobj_description(r.oid, 'pg_authid') AS comment
  FROM pg_roles r
 WHERE r.rolname = ANY($2::text[])`;

/**
 * Reads the three roles and checks each one that exists has the scheme's shape: the owner
 * cannot log in and is no superuser; each login can log in, is no superuser, and is a member of
 * the owner. Anything else is WARDEN_E_ROLE_SHAPE: Warden never alters a role it did not make.
 */
export async function inspectRoles(client: pg.Client, scheme: PgRoleScheme): Promise<RoleInspection> {
  const { rows } = await client.query<RoleRow>(INSPECT_SQL, [scheme.owner, [scheme.owner, ...scheme.logins]]);
  const byName = new Map(rows.map((row) => [row.rolname, row]));
  const owner = byName.get(scheme.owner);
  if (owner && (owner.rolcanlogin || owner.rolsuper))
    throw shapeError(
      scheme,
      scheme.owner,
      owner.rolsuper ? 'is a superuser' : 'can log in (the owner must be NOLOGIN)',
    );
  const logins = scheme.logins.map((name) => {
    const row = byName.get(name);
    if (!row) return undefined;
    if (row.rolsuper) throw shapeError(scheme, name, 'is a superuser');
    if (!row.rolcanlogin) throw shapeError(scheme, name, 'cannot log in');
    if (!row.member_of_owner) throw shapeError(scheme, name, `is not a member of ${scheme.owner}`);
    return row;
  });
  return { owner, logins, state: owner ? parseState(scheme, owner.comment) : undefined };
}

/**
 * The comment is read from the server, so it is checked: a comment that is not Warden's, or
 * names a role outside the scheme, is refused rather than guessed at.
 */
function parseState(scheme: PgRoleScheme, comment: string | null): RotationState | undefined {
  if (comment === null || comment === '') return undefined;
  let state: unknown;
  try {
    state = (JSON.parse(comment) as { wardenCredentials?: unknown }).wardenCredentials;
  } catch {
    state = undefined;
  }
  const active = (state as { active?: unknown } | undefined)?.active;
  const rotatedAt = (state as { rotatedAt?: unknown } | undefined)?.rotatedAt;
  if (typeof active !== 'string' || !scheme.logins.includes(active) || typeof rotatedAt !== 'string')
    throw shapeError(scheme, scheme.owner, 'has a comment that is not a Warden rotation record');
  return { active, rotatedAt };
}

export function stateComment(state: RotationState): string {
  return JSON.stringify({ wardenCredentials: state });
}

function shapeError(scheme: PgRoleScheme, role: string, problem: string): WardenError {
  return new WardenError('WARDEN_E_ROLE_SHAPE', `role ${role} exists but ${problem}`, {
    hint: `Warden only manages roles of its own scheme (owner ${scheme.owner} NOLOGIN; ${scheme.logins.join(' and ')} LOGIN, members of it). Pick other names in credentials.postgres.${scheme.name}, or fix the role by hand.`,
    details: { role, owner: scheme.owner, logins: [...scheme.logins] },
  });
}

export interface SetupReport {
  readonly created: string[];
  readonly existing: string[];
}

/**
 * Creates whatever of the scheme is missing, in one transaction (all or nothing). A new login
 * has no password (it cannot log in until the first rotation) and runs `SET ROLE owner` on
 * login, so what either login creates is owned by the owner and usable by the other.
 */
export async function setUpRoles(client: pg.Client, scheme: PgRoleScheme): Promise<SetupReport> {
  await client.query('BEGIN');
  try {
    // Two setups at once: the second waits here, then sees the roles the first made.
    await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [lockName(scheme)]);
    const found = await inspectRoles(client, scheme);
    const created: string[] = [];
    const existing: string[] = [];
    if (found.owner) existing.push(scheme.owner);
    else {
      await client.query(`CREATE ROLE ${quoteIdent(scheme.owner)} NOLOGIN`);
      created.push(scheme.owner);
    }
    for (const [i, login] of scheme.logins.entries()) {
      if (found.logins[i]) {
        existing.push(login);
        continue;
      }
      await client.query(
        `CREATE ROLE ${quoteIdent(login)} LOGIN INHERIT IN ROLE ${quoteIdent(scheme.owner)}`,
      );
      await client.query(`ALTER ROLE ${quoteIdent(login)} SET role = ${quoteLiteral(scheme.owner)}`);
      created.push(login);
    }
    await client.query('COMMIT');
    return { created, existing };
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  }
}

/** The advisory-lock name of one scheme (hashed to a key on the server). */
export function lockName(scheme: PgRoleScheme): string {
  return `warden-credentials:${scheme.owner}`;
}
