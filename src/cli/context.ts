import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadConfig, type WardenConfig } from '../config/config.ts';
import { WardenError } from '../errors.ts';
import { createLogger, type Logger } from '../logger.ts';
import type { ConnectionConfig } from '../postgres/connection-config.ts';
import { FsObjectStore } from '../repository/fs/fs-object-store.ts';
import { EMBEDDED_STATE_FILE, type EmbeddedState } from '../embedded/embedded-state.ts';

/** Options every command accepts. */
export interface GlobalOptions {
  config?: string;
  db?: string;
  repo?: string;
  json?: boolean;
  compression?: string;
  serverCompress?: boolean;
  slot?: string;
}

export interface CommandContext {
  config: WardenConfig;
  store: FsObjectStore;
  logger: Logger;
  json: boolean;
  /** The cluster to work on; falls back to a running embedded default. */
  cluster(): ConnectionConfig;
}

export function createContext(options: GlobalOptions): CommandContext {
  const config = loadConfig({ flags: options, env: process.env, cwd: process.cwd() });
  return {
    config,
    store: new FsObjectStore(config.repository.path),
    logger: createLogger(process.env.WARDEN_LOG_LEVEL ?? 'warn'),
    json: options.json === true,
    cluster() {
      if (config.cluster) return config.cluster;
      const embedded = readEmbeddedState();
      if (embedded) return embedded.connection;
      throw new WardenError('WARDEN_E_USAGE', 'no cluster given', {
        hint: 'Pass --db postgres://user:pass@host:port/db, set PGHOST/PGUSER/..., or name one in warden.yaml (cluster.url).',
      });
    },
  };
}

function readEmbeddedState(): EmbeddedState | undefined {
  const file = path.resolve(EMBEDDED_STATE_FILE);
  if (!existsSync(file)) return undefined;
  return JSON.parse(readFileSync(file, 'utf8')) as EmbeddedState;
}
