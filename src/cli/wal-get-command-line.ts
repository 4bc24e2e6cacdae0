import { existsSync } from 'node:fs';
import path from 'node:path';
import type { CommandContext } from './context.ts';

/**
 * The `restore_command` a standby restored by `warden restore --standby` runs: this very
 * `warden` with what it needs to read this repository as the server's OS user — the config
 * file when one was used (S3 credentials and key paths come from it), else the repository
 * location, identity files and passphrase file (absolute paths; that user must be able to read
 * them, docs/wal-archive-commands.md), and the trusted signing keys (public keys). No secret is
 * on the command line: identities and passphrases are named by file.
 */
export async function walGetCommandLine(context: CommandContext, configFile?: string): Promise<string> {
  const script = path.resolve(process.argv[1] ?? 'warden');
  const words = [process.execPath, script, 'wal', 'get', '%f', '%p'];
  if (configFile !== undefined) {
    words.push('--config', path.resolve(configFile));
  } else {
    const { repository } = context.config;
    words.push('--repo', repository.path);
    const encryption = repository.encryption;
    const identities = encryption.identityFiles.length
      ? encryption.identityFiles
      : existsSync(encryption.defaultIdentityFile)
        ? [encryption.defaultIdentityFile]
        : [];
    for (const file of identities) words.push('--identity', path.resolve(file));
    if (encryption.passphraseFile) words.push('--passphrase-file', path.resolve(encryption.passphraseFile));
    if (repository.signing.allowUnsigned) words.push('--allow-unsigned');
  }
  const trust = (await context.readKeys()).trust;
  for (const id of trust?.keys.keys() ?? []) words.push('--trust-key', id);
  return words.map(shellWord).join(' ');
}

/** restore_command runs through /bin/sh: quote what is not plainly safe (`%f`/`%p` stay bare). */
function shellWord(word: string): string {
  return /^[\w./=:@%+,-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}
