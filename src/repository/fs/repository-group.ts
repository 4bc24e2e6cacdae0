import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { WardenError } from '../../errors.ts';

/** The OS group that may read a filesystem repository besides its owner (`repository.group`). */
export interface RepositoryGroup {
  readonly name: string;
  readonly gid: number;
}

/**
 * Resolves a group name or numeric id, as the system knows it (`getent group`, which also asks
 * LDAP/SSSD; /etc/group when getent is missing). Refuses a group this process could not give
 * its files to: chown to a group needs root or membership of it.
 */
export function resolveRepositoryGroup(spec: string, field: string): RepositoryGroup {
  const fail = (why: string) =>
    new WardenError('WARDEN_E_CONFIG_INVALID', `${field}: ${why}`, {
      hint: 'Name an existing group (getent group lists them) that the user running Warden belongs to, or run Warden as root.',
      details: { field, group: spec },
    });
  const entry = lookupGroup(spec);
  if (!entry) throw fail(`no group "${spec}" on this system`);
  const root = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!root && typeof process.getgroups === 'function' && !process.getgroups().includes(entry.gid))
    throw fail(`this user is not a member of group "${entry.name}", so it cannot give files to it`);
  return entry;
}

function lookupGroup(spec: string): RepositoryGroup | undefined {
  let lines: string[];
  try {
    lines = execFileSync('getent', ['group', spec], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
      .trim()
      .split('\n');
  } catch (error) {
    // getent exits 2 for "no such group"; anything else (ENOENT: no getent) falls back to the file.
    if ((error as { status?: number }).status === 2) return undefined;
    lines = readGroupFile();
  }
  for (const line of lines) {
    const [name, , gidText] = line.split(':');
    if (!name || !gidText || !/^\d+$/.test(gidText)) continue;
    if (name === spec || gidText === spec) return { name, gid: Number(gidText) };
  }
  return undefined;
}

function readGroupFile(): string[] {
  try {
    return readFileSync('/etc/group', 'utf8').split('\n');
  } catch {
    return [];
  }
}
