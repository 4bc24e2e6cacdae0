import { readFile } from 'node:fs/promises';
import { WardenError } from '../errors.ts';
import type { SecretPayload, SecretSink } from './secret-sink.ts';

/**
 * Reads back what a file sink holds (for `credentials show --reveal` and `warden shell --role`).
 * The file is checked, not trusted: it must be the JSON object a rotation wrote, for `login`.
 * A command sink keeps no copy Warden could read: WARDEN_E_SECRET_SINK says so.
 */
export async function readSinkSecret(sink: SecretSink, login: string): Promise<SecretPayload> {
  if (sink.kind !== 'file')
    throw new WardenError(
      'WARDEN_E_SECRET_SINK',
      'the secret went to a command; Warden keeps no copy to read',
      {
        hint: 'Read it where the command stored it (the Kubernetes Secret, the secrets manager).',
        details: { sink: 'command' },
      },
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(sink.path, 'utf8'));
  } catch (cause) {
    throw new WardenError('WARDEN_E_SECRET_SINK', `cannot read the secret from ${sink.path}`, {
      hint: 'The file is written by `warden credentials rotate`; rotate once if it does not exist yet.',
      details: { sink: 'file', file: sink.path, errno: (cause as { code?: string }).code },
    });
  }
  const { user, password } = (parsed ?? {}) as { user?: unknown; password?: unknown };
  if (typeof user !== 'string' || typeof password !== 'string' || user !== login)
    throw new WardenError('WARDEN_E_SECRET_SINK', `${sink.path} does not hold the password of ${login}`, {
      hint: 'Another program rewrote it, or a rotation failed after setting the password: rotate again.',
      details: { sink: 'file', file: sink.path, expected: login },
    });
  return { user, password };
}
