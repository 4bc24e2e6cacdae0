import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { WardenError } from '../errors.ts';
import { generateSecret } from './generate-secret.ts';
import { deliverSecret, describeSink, type SecretSink } from './secret-sink.ts';

/** Where the admin connection goes: the URL without its password, which comes separately. */
export interface RedisAdminTarget {
  readonly host: string;
  readonly port: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: boolean;
}

export interface RedisRotationReport {
  readonly user: string;
  /** Every node the ACL change was applied to (`host:port`): one, or each node of a cluster. */
  readonly nodes: string[];
  readonly sink: string;
  /** Whether the change was saved to the servers' ACL files (ACL SAVE); false: lost on restart. */
  readonly persisted: boolean;
}

/**
 * `redis://[user[:password]@]host[:port]` (rediss:// for TLS). A password in the URL is allowed
 * but the CLI warns; `WARDEN_REDIS_PASSWORD` is the better place.
 */
export function parseRedisUrl(url: string, envPassword: string | undefined): RedisAdminTarget {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new WardenError('WARDEN_E_USAGE', '--redis: not a valid redis:// URL');
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    throw new WardenError('WARDEN_E_USAGE', '--redis: the URL must start with redis:// or rediss://');
  return {
    host: parsed.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    username: parsed.username ? decodeURIComponent(parsed.username) : undefined,
    password: parsed.password ? decodeURIComponent(parsed.password) : envPassword,
    tls: parsed.protocol === 'rediss:',
  };
}

/**
 * Rotates a Redis ACL user's password with both passwords valid during the switch:
 * 1. `ACL SETUSER user >new` on every node (each node of a cluster keeps its own ACL);
 * 2. the sink receives the new password;
 * 3. after `graceMs` (time for clients to read the new secret), every other password of the
 *    user is removed (`!<sha256>`, so the old cleartext is not needed), on every node;
 * 4. `ACL SAVE` where the servers have an ACL file.
 * If step 1 fails on a node, the new password is taken off the nodes that had it.
 */
export async function rotateRedisUser(
  target: RedisAdminTarget,
  user: string,
  sink: SecretSink,
  options: { graceMs: number },
): Promise<RedisRotationReport> {
  const nodes = await openNodes(target);
  try {
    for (const node of nodes) await aclUserExists(node, user);
    const password = generateSecret();
    const hash = createHash('sha256').update(password).digest('hex');
    const added: Node[] = [];
    try {
      for (const node of nodes) {
        await acl(node, ['SETUSER', user, `>${password}`], password);
        added.push(node);
      }
    } catch (error) {
      for (const node of added) await acl(node, ['SETUSER', user, `!${hash}`]).catch(() => undefined);
      throw error;
    }
    await deliverSecret(sink, { user, password });
    if (options.graceMs > 0) await sleep(options.graceMs);
    let persisted = true;
    for (const node of nodes) {
      const old = (await passwordHashes(node, user)).filter((h) => h !== hash);
      if (old.length > 0) await acl(node, ['SETUSER', user, ...old.map((h) => `!${h}`)]);
      persisted = (await saveAcl(node)) && persisted;
    }
    return { user, nodes: nodes.map((n) => n.key), sink: describeSink(sink), persisted };
  } finally {
    for (const node of nodes) node.client.disconnect();
  }
}

interface Node {
  readonly key: string;
  readonly client: Redis;
}

function open(target: RedisAdminTarget, host: string, port: number): Node {
  const client = new Redis({
    host,
    port,
    ...(target.username ? { username: target.username } : {}),
    ...(target.password ? { password: target.password } : {}),
    ...(target.tls ? { tls: { servername: host } } : {}),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    connectTimeout: 10_000,
  });
  client.on('error', () => undefined);
  return { key: `${host}:${port}`, client };
}

/** The node named, or for a Redis Cluster every node the cluster knows (masters and replicas). */
async function openNodes(target: RedisAdminTarget): Promise<Node[]> {
  const seed = open(target, target.host, target.port);
  try {
    await seed.client.connect();
    const info = String(await seed.client.info('cluster'));
    if (!/^cluster_enabled:1\s*$/m.test(info)) return [seed];
    const listing = String(await seed.client.call('CLUSTER', 'NODES'));
    seed.client.disconnect();
    const nodes: Node[] = [];
    for (const line of listing.split('\n')) {
      const fields = line.trim().split(' ');
      if (fields.length < 8) continue;
      const flags = fields[2]!.split(',');
      if (flags.some((f) => f === 'fail' || f === 'noaddr' || f === 'handshake')) {
        throw new WardenError(
          'WARDEN_E_REDIS_ACL',
          `cluster node ${fields[1]} is ${fields[2]}: its ACL cannot be changed`,
          {
            hint: 'Every node must take the new password; rotate once the cluster is healthy.',
            details: { node: fields[1] },
          },
        );
      }
      const address = /^(.*):(\d+)@/.exec(fields[1]!);
      if (!address) continue;
      const host = address[1] === '' ? target.host : address[1]!;
      nodes.push(open(target, host, Number(address[2])));
    }
    await Promise.all(
      nodes.map((n) => n.client.connect().catch((e: unknown) => Promise.reject(nodeError(n, e)))),
    );
    return nodes;
  } catch (error) {
    seed.client.disconnect();
    throw error instanceof WardenError ? error : nodeError(seed, error);
  }
}

async function aclUserExists(node: Node, user: string): Promise<void> {
  const reply = await node.client
    .call('ACL', 'GETUSER', user)
    .catch((e: unknown) => Promise.reject(nodeError(node, e)));
  if (reply === null)
    throw new WardenError('WARDEN_E_REDIS_ACL', `ACL user ${user} does not exist on ${node.key}`, {
      hint: 'Create the user first (ACL SETUSER name on … with its permissions, on every node of a cluster).',
      details: { node: node.key, user },
    });
}

/** SHA-256 hex of each password the user has (ACL GETUSER's `passwords` field). */
async function passwordHashes(node: Node, user: string): Promise<string[]> {
  const reply = (await node.client
    .call('ACL', 'GETUSER', user)
    .catch((e: unknown) => Promise.reject(nodeError(node, e)))) as unknown[] | null;
  if (!reply) return [];
  const index = reply.findIndex((field) => String(field) === 'passwords');
  const hashes = index >= 0 ? reply[index + 1] : [];
  return Array.isArray(hashes) ? hashes.map(String) : [];
}

async function acl(node: Node, args: string[], secret?: string): Promise<void> {
  try {
    await node.client.call('ACL', ...args);
  } catch (error) {
    throw nodeError(node, error, secret);
  }
}

/** ACL SAVE when the node has an ACL file; false when it has none (the change lives in memory). */
async function saveAcl(node: Node): Promise<boolean> {
  const config = (await node.client.call('CONFIG', 'GET', 'aclfile')) as string[];
  if (!config[1]) return false;
  await acl(node, ['SAVE']);
  return true;
}

/**
 * A Redis error, with the node it came from; never the command. Redis quotes a rejected ACL
 * SETUSER modifier (`>password`) in its reply, so with `secret` the message is redacted and the
 * original error (which holds it) is dropped.
 */
function nodeError(node: Node, error: unknown, secret?: string): WardenError {
  let message = (error instanceof Error ? error.message : String(error)).split('\n')[0]!;
  if (secret !== undefined) message = message.split(secret).join('[redacted]');
  return new WardenError('WARDEN_E_REDIS_ACL', `Redis ${node.key}: ${message}`, {
    hint: 'The admin connection needs the ACL permissions (+acl, +config|get, +cluster|nodes, +info).',
    details: { node: node.key },
    ...(secret === undefined ? { cause: error } : {}),
  });
}
