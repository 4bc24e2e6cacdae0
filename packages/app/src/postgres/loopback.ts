import net from 'node:net';

// Twin of the Warden tool's copy of this module (src/postgres or src/util); keep the two in step.

/**
 * True when `host` can only mean this machine: a Unix-socket directory (an absolute path, as
 * libpq writes it), the name `localhost`, an IPv4 address in 127.0.0.0/8, or `::1` (also in
 * brackets, and IPv4-mapped: `::ffff:127.0.0.1`). Wildcards (`0.0.0.0`, `::`) and every other
 * name are not: they may face a network.
 *
 * Decided on the text alone, never by resolving a name: a name that resolves to 127.0.0.1 today
 * may resolve elsewhere tomorrow (or for an attacker who controls DNS), so every other name is
 * remote and gets verified TLS. `localhost` is the exception because resolvers answer it from
 * /etc/hosts (RFC 6761 reserves it for loopback).
 */
export function isLoopbackHost(host: string): boolean {
  if (host.startsWith('/')) return true;
  const name = canonicalHost(host);
  if (name === 'localhost') return true;
  if (net.isIPv4(name)) return name.split('.')[0] === '127';
  if (!net.isIPv6(name)) return false;
  // IPv4-mapped, in its canonical form ::ffff:7f00:1: loopback when its first byte is 127.
  const mapped = /^::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}$/.exec(name)?.[1];
  return name === '::1' || (mapped !== undefined && parseInt(mapped, 16) >> 8 === 127);
}

/** `[::1]` → `::1`; anything else unchanged. */
export function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * One spelling per host: IPv6 addresses in their canonical form (`0:0::1` and `::1` compare
 * equal), names lower-cased without a trailing dot.
 */
export function canonicalHost(host: string): string {
  const name = unbracket(host.trim().toLowerCase()).replace(/\.$/, '');
  // The URL parser prints an IPv6 address in its one canonical (RFC 5952) form.
  return net.isIPv6(name) ? new URL(`http://[${name}]/`).hostname.slice(1, -1) : name;
}
