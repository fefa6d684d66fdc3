import type { BlockList } from 'node:net';
import { isIPv4 } from 'node:net';

/**
 * The client address a policy should judge (Traefik's `ip.Strategy`): the socket peer,
 * unless that peer is a trusted proxy, in which case X-Forwarded-For is walked from the
 * right, skipping trusted hops, and the first untrusted address is the client. An
 * untrusted peer's X-Forwarded-For is ignored, so it cannot claim another network.
 */
export function clientIp(peer: string, peerTrusted: boolean, xff: string | string[] | undefined, trusted: BlockList | undefined): string {
  if (!trusted || !xff || !peerTrusted) return peer;
  const hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',');
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = normalize(hops[i]!.trim());
    if (!hop) continue;
    if (!isTrusted(trusted, hop)) return hop;
  }
  // Every hop is a trusted proxy: the leftmost is the closest we know to the client.
  return normalize(hops[0]!.trim()) || peer;
}

/** `::ffff:10.0.0.1` → `10.0.0.1`, so IPv4 CIDRs match IPv4 clients on dual-stack sockets. */
export function normalize(ip: string): string {
  if (ip.startsWith('::ffff:') && isIPv4(ip.slice(7))) return ip.slice(7);
  return ip;
}

/** True when `ip` falls in `list` (either family). */
export function isTrusted(list: BlockList, ip: string): boolean {
  if (!ip) return false;
  return list.check(ip, isIPv4(ip) ? 'ipv4' : 'ipv6');
}
