import type { ConnectionConfig } from '../postgres/connection-config.ts';

/** Where the embedded default keeps its cluster, repository and connection details. */
export const EMBEDDED_DIR = '.warden';
export const EMBEDDED_STATE_FILE = '.warden/embedded.json';

/** Written (mode 0600) while the embedded cluster runs, so other commands find it. */
export interface EmbeddedState {
  pid: number;
  connection: ConnectionConfig;
}
