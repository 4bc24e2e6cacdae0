import net from 'node:net';

/**
 * True when `host` can only mean this machine: a Unix-socket directory (an absolute path, as
 * libpq writes it), the name `localhost`, an IPv4 address in 127.0.0.0/8, or `::1` (also in
 * brackets or IPv4-mapped, `::ffff:127.0.0.1`).
 *
 * Decided on the text alone, never by resolving a name: a name that resolves to 127.0.0.1 today
 * may resolve elsewhere tomorrow (or for an attacker who controls DNS), so every other name is
 * remote and gets verified TLS. `localhost` is the exception because resolvers answer it from
 * /etc/hosts (RFC 6761 reserves it for loopback).
 */
export function isLoopbackHost(host: string): boolean {
  if (host.startsWith('/')) return true;
  let name = host.trim().toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name === 'localhost') return true;
  if (name.startsWith('[') && name.endsWith(']')) name = name.slice(1, -1);
  const version = net.isIP(name);
  if (version === 4) return name.split('.')[0] === '127';
  if (version === 6) {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(name);
    if (mapped) return mapped[1]!.split('.')[0] === '127';
    return normalizeV6(name) === '0:0:0:0:0:0:0:1';
  }
  return false;
}

/** `::1`, `0::1`, `0:0:0:0:0:0:0:1` and `0000::0001` all become `0:0:0:0:0:0:0:1`. */
function normalizeV6(address: string): string {
  const [head = '', tail] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const middle = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...middle, ...right].map((group) => String(parseInt(group, 16))).join(':');
}
