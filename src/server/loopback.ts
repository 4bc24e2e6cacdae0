import net from 'node:net';

/** The names a loopback client may put in the Host header (besides the listen address). */
export const LOOPBACK_NAMES = ['localhost', '127.0.0.1', '::1'] as const;

/**
 * True when `host` (a listen address or name, IPv6 with or without brackets) can only be
 * reached from this machine: `localhost`, 127.0.0.0/8, `::1` and their IPv4-mapped form.
 * Wildcards (`0.0.0.0`, `::`) and every other name are not: they may face a network.
 */
export function isLoopbackHost(host: string): boolean {
  const name = unbracket(host.trim().toLowerCase());
  if (name === 'localhost') return true;
  if (net.isIPv4(name)) return name.split('.')[0] === '127';
  if (!net.isIPv6(name)) return false;
  const address = normalizeIPv6(name);
  // IPv4-mapped (::ffff:127.0.0.1, printed ::ffff:7f00:1): loopback when its first byte is 127.
  const mapped = /^::ffff:([0-9a-f]{1,4}):[0-9a-f]{1,4}$/.exec(address)?.[1];
  return address === '::1' || (mapped !== undefined && parseInt(mapped, 16) >> 8 === 127);
}

/** `[::1]` → `::1`; anything else unchanged. */
export function unbracket(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** One spelling per IPv6 address (`0:0::1` and `::1` compare equal); other names lower-cased. */
export function canonicalHost(host: string): string {
  const name = unbracket(host.trim().toLowerCase()).replace(/\.$/, '');
  return net.isIPv6(name) ? normalizeIPv6(name) : name;
}

function normalizeIPv6(address: string): string {
  // The URL parser prints an IPv6 address in its one canonical (RFC 5952) form.
  return new URL(`http://[${address}]/`).hostname.slice(1, -1);
}
