import type { ConnectionConfig } from '../postgres/connection-config.ts';
import type { ProcessIdentity } from '../util/process-identity.ts';

/** Where the embedded default keeps its cluster, repository and connection details. */
export const EMBEDDED_DIR = '.warden';
/** The owner record of the embedded default, inside {@link EMBEDDED_DIR}. */
export const EMBEDDED_STATE_NAME = 'embedded.json';
export const EMBEDDED_STATE_FILE = `${EMBEDDED_DIR}/${EMBEDDED_STATE_NAME}`;

/**
 * The owner record (mode 0600) of a running embedded default: the Warden process that owns the
 * state folder (PID and start time, so a second run can tell it still lives), and once its
 * server accepts connections, how other commands reach it.
 */
export interface EmbeddedState extends ProcessIdentity {
  /** Absent while the owner is still starting its server. */
  connection?: ConnectionConfig;
}
