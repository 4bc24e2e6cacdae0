import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, type WardenConfig } from '../config/config.ts';
import { WardenError } from '../errors.ts';
import { createLogger, type Logger } from '../logger.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { openObjectStore } from '../repository/open-object-store.ts';
import { EMBEDDED_STATE_FILE, type EmbeddedState } from '../embedded/embedded-state.ts';
import { processLiveness } from '../util/process-identity.ts';
import type { EncryptionFlags } from '../config/encryption-config.ts';
import type { PasswordFlags } from '../config/connection-settings.ts';
import { hidePasswordsFromProcessList } from './hide-password.ts';
import type { SigningConfig, SigningFlags } from '../config/signing-config.ts';
import { loadSigningKey, loadTrust } from '../pipeline/signing/signing-keyring.ts';
import type { SigningKey } from '../pipeline/signing/signing-keys.ts';
import { loadReadKeys, loadWriteKeys } from '../pipeline/encryption/keyring.ts';
import type { RepositoryKeys } from '../pipeline/encryption/repository-keys.ts';
import type { ObjectStore } from '../repository/object-store.ts';

/** Options every command accepts. */
export interface GlobalOptions extends EncryptionFlags, PasswordFlags, SigningFlags {
  config?: string;
  db?: string;
  repo?: string;
  repoGroup?: string;
  json?: boolean;
  compression?: string;
  serverCompress?: boolean;
  slot?: string;
}

export interface CommandContext {
  config: WardenConfig;
  store: ObjectStore;
  logger: Logger;
  json: boolean;
  /** The cluster to work on; falls back to a running embedded default. */
  cluster(): ConnectionConfig;
  /**
   * Recipients new objects are encrypted to (fails with KEY_MISSING when encryption is on and
   * none is set) and the signing key records are signed with (created on first use).
   */
  writeKeys(store?: ObjectStore): Promise<RepositoryKeys>;
  /**
   * Identities to decrypt with (--identity files, ./.warden/identity.txt, the passphrase's keys)
   * and the trusted signing keys every record read must be signed by.
   */
  readKeys(store?: ObjectStore): Promise<RepositoryKeys>;
  /** The writer's signing key alone (created on first use), for commands that write no data. */
  signingKey(): Promise<SigningKey>;
}

export async function createContext(options: GlobalOptions): Promise<CommandContext> {
  hidePasswordsFromProcessList();
  const config = loadConfig({ flags: options, env: process.env, cwd: process.cwd() });
  const store = await openObjectStore(config.repository);
  return {
    config,
    store,
    writeKeys: async (target = store) => ({
      ...(await loadWriteKeys(config.repository.encryption, target)),
      signingKey: await signingKeyOnce(config.repository.signing),
    }),
    signingKey: () => signingKeyOnce(config.repository.signing),
    readKeys: async (source = store) => ({
      ...(await loadReadKeys(config.repository.encryption, source)),
      trust: await loadTrust(config.repository.signing, warnUnsigned),
    }),
    logger: createLogger(process.env.WARDEN_LOG_LEVEL ?? 'warn'),
    json: options.json === true,
    cluster() {
      if (config.cluster) return config.cluster;
      const embedded = readEmbeddedState();
      if (embedded) return embedded.connection;
      throw new WardenError('WARDEN_E_USAGE', 'no cluster given', {
        hint: 'Pass --db postgres://user@host:port/db (password via --password-file, PGPASSWORD or ~/.pgpass), set PGHOST/PGUSER/..., or name one in warden.yaml (cluster.url).',
      });
    },
  };
}

/** Loads (or on first use creates and announces) the writer's signing key. */
async function signingKeyOnce(config: SigningConfig) {
  const { key, file, created } = await loadSigningKey(config);
  if (created)
    process.stderr.write(
      `warden: created signing key ${path.relative(process.cwd(), file)} (public key ${key.id}); ` +
        `restores on other machines need --trust-key ${key.id}; keep a copy of the file elsewhere\n`,
    );
  return key;
}

const UNSIGNED_WARNINGS = 5;
let unsignedSeen = 0;

/** `--allow-unsigned`: each accepted unsigned record is worth a warning, a few by name. */
function warnUnsigned(object: string): void {
  unsignedSeen += 1;
  if (unsignedSeen <= UNSIGNED_WARNINGS)
    process.stderr.write(`warning: ${object} is unsigned; accepted because of --allow-unsigned\n`);
  else if (unsignedSeen === UNSIGNED_WARNINGS + 1)
    process.stderr.write(
      'warning: more unsigned records accepted (--allow-unsigned); `warden repo sign` signs them once checked\n',
    );
}

/** The running embedded default's record; none while it starts, or when its owner has died. */
function readEmbeddedState(): (EmbeddedState & { connection: ConnectionConfig }) | undefined {
  const file = path.resolve(EMBEDDED_STATE_FILE);
  if (!existsSync(file)) return undefined;
  const state = JSON.parse(readFileSync(file, 'utf8')) as EmbeddedState;
  if (!state.connection || processLiveness(state) === 'dead') return undefined;
  return { ...state, connection: state.connection };
}
