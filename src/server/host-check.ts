import os from 'node:os';
import type { HttpPlan } from '../daemon/http-config.ts';
import { canonicalHost, LOOPBACK_NAMES } from '../util/loopback.ts';

/**
 * Which names the `Host` (and `Origin`) header may carry. A page on an attacker's domain whose
 * name they re-point at this machine (DNS rebinding) reaches the API with their own name in
 * `Host`; refusing every name not configured here keeps the browser from reading the API.
 * Ports are not compared: a proxy or a probe may address the API through another port.
 */
export class HostCheck {
  private readonly names: ReadonlySet<string>;

  constructor(names: Iterable<string>) {
    this.names = new Set([...names, ...LOOPBACK_NAMES].map(canonicalHost));
  }

  /**
   * Loopback names, `allowedHosts` and the listen address; for a wildcard bind (`0.0.0.0`,
   * `::`) the addresses of this machine's interfaces, so a probe on the pod or host IP passes.
   */
  static forPlan(http: Pick<HttpPlan, 'host' | 'allowedHosts'>): HostCheck {
    const host = canonicalHost(http.host);
    const wildcard = host === '0.0.0.0' || host === '::';
    const interfaces = wildcard
      ? Object.values(os.networkInterfaces())
          .flat()
          .filter((info) => info && (host === '::' || info.family === 'IPv4'))
          .map((info) => info!.address)
      : [];
    return new HostCheck([...http.allowedHosts, ...(wildcard ? [] : [host]), ...interfaces]);
  }

  /** `name`, `name:port`, `[v6]` or `[v6]:port`, with a configured name; anything else is refused. */
  allowsHost(header: string | undefined): boolean {
    const name = header === undefined ? undefined : hostOf(header);
    return name !== undefined && this.names.has(canonicalHost(name));
  }

  /** An `Origin` (`https://name:port`) whose host is allowed; `null` and other schemes are not. */
  allowsOrigin(origin: string): boolean {
    let url: URL;
    try {
      url = new URL(origin);
    } catch {
      return false;
    }
    return (
      (url.protocol === 'https:' || url.protocol === 'http:') && this.names.has(canonicalHost(url.hostname))
    );
  }
}

function hostOf(header: string): string | undefined {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(header.trim());
  return match?.[1];
}
