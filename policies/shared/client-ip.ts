import type { BlockList } from 'node:net';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * The client address a policy should judge (Traefik's `ip.Strategy`): the socket peer,
 * unless that peer is a trusted proxy, in which case X-Forwarded-For is walked from the
 * right, skipping trusted hops, and the first untrusted address is the client. An
 * untrusted peer's X-Forwarded-For is ignored, so it cannot claim another network.
 *
 * A hop that is not an IP address (`unknown`, a host name, `<script>`) breaks the chain:
 * whoever wrote it, nothing to its left can be believed, so the client is unknown and ''
 * is returned. `allowed_networks` then fails closed (403) and the access log shows no
 * forged text. Empty list elements are skipped (RFC 9110 §5.6.1); a port after the
 * address (`10.0.0.1:5432`, `[2001:db8::1]:5432`, as Azure Application Gateway writes it)
 * is dropped.
 */
export function clientIp(peer: string, peerTrusted: boolean, xff: string | string[] | undefined, trusted: BlockList | undefined): string {
  if (!trusted || !xff || !peerTrusted) return peer;
  const hops = (Array.isArray(xff) ? xff.join(',') : xff).split(',');
  let leftmost = '';
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!.trim();
    if (!hop) continue;
    const ip = hopAddress(hop);
    if (!ip) return '';
    // A checked address: IPv6 if and only if it has a colon (no second regex test).
    if (!trusted.check(ip, ip.indexOf(':') < 0 ? 'ipv4' : 'ipv6')) return ip;
    leftmost = ip;
  }
  // Every hop is a trusted proxy: the leftmost is the closest we know to the client.
  return leftmost || peer;
}

/** `s[from..]` is a port: one to five digits. */
function isPort(s: string, from: number): boolean {
  if (from >= s.length || s.length - from > 5) return false;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/**
 * One X-Forwarded-For element as an address (IPv4-mapped IPv6 unwrapped), its port
 * dropped; '' when it is not an address. The usual case, a bare IPv4, costs one check.
 */
export function hopAddress(hop: string): string {
  if (isIPv4(hop)) return hop;
  if (isIPv6(hop)) return normalize(hop);
  if (hop.charCodeAt(0) === 0x5b /* [ */) {
    const close = hop.indexOf(']');
    if (close < 0 || (close + 1 !== hop.length && (hop.charCodeAt(close + 1) !== 0x3a /* : */ || !isPort(hop, close + 2)))) return '';
    const ip = hop.slice(1, close);
    return isIPv6(ip) ? normalize(ip) : '';
  }
  const colon = hop.indexOf(':');
  if (colon <= 0 || !isPort(hop, colon + 1)) return '';
  const ip = hop.slice(0, colon);
  return isIPv4(ip) ? ip : '';
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
