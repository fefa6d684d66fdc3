import { isIP, type BlockList } from 'node:net';

/**
 * Parse `10.0.0.0/8`, `::1/128` or a bare address into a BlockList, or say why not. The
 * reason never quotes the input (config messages never echo values; the path names it).
 */
export function addCidr(list: BlockList, cidr: string): string | undefined {
  const [addr = '', bits, extra] = cidr.split('/');
  const family = isIP(addr);
  if (!family || extra !== undefined) return 'not an IP address or CIDR (such as 10.0.0.0/8 or ::1)';
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (bits === undefined) {
    list.addAddress(addr, type);
    return undefined;
  }
  const prefix = Number(bits);
  if (!/^\d+$/.test(bits) || prefix > (family === 4 ? 32 : 128)) return `bad prefix length (0-${family === 4 ? 32 : 128} for IPv${family})`;
  list.addSubnet(addr, prefix, type);
  return undefined;
}
