import type { RespConnection } from './resp-connection.ts';
import { replyText } from './resp-connection.ts';

/** `INFO <section>` as field → value. */
export async function readInfo(connection: RespConnection, section: string): Promise<Map<string, string>> {
  const text = replyText(await connection.command('INFO', section), connection.endpoint.display, 'INFO');
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0 && !line.startsWith('#')) fields.set(line.slice(0, at), line.slice(at + 1));
  }
  return fields;
}

/** Keys per database from `INFO keyspace` (`db0:keys=3,expires=1,...`). */
export async function keyspace(connection: RespConnection): Promise<Map<number, number>> {
  const counts = new Map<number, number>();
  for (const [field, value] of await readInfo(connection, 'keyspace')) {
    const db = /^db(\d{1,5})$/.exec(field);
    const keys = /(?:^|,)keys=(\d+)/.exec(value);
    if (db && keys) counts.set(Number(db[1]), Number(keys[1]));
  }
  return counts;
}
