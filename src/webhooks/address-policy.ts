import { BlockList, isIP } from 'node:net';

/**
 * Which addresses a webhook may be delivered to: checked on every address a hostname resolves
 * to, when connecting (so a name that re-resolves to a private address later is caught), in
 * IPv4 and IPv6, numeric and IPv4-mapped forms alike. Ranges from the IANA special-purpose
 * registries (RFC 6890 and updates).
 */

function blockList(ranges: readonly [string, number, 'ipv4' | 'ipv6'][]): BlockList {
  const list = new BlockList();
  for (const [network, prefix, type] of ranges) {
    list.addSubnet(network, prefix, type);
  }
  return list;
}

/** Never a webhook's address, whatever the settings: the clouds' instance metadata services. */
const METADATA = blockList([
  ['169.254.169.254', 32, 'ipv4'], // AWS, GCP, Azure, OpenStack, ...
  ['169.254.170.2', 32, 'ipv4'], // AWS ECS task metadata
  ['100.100.100.200', 32, 'ipv4'], // Alibaba Cloud
  ['168.63.129.16', 32, 'ipv4'], // Azure wire server
  ['fd00:ec2::254', 128, 'ipv6'], // AWS over IPv6
]);

/** Nowhere to deliver to at all: unspecified, multicast, reserved, documentation. */
const UNROUTABLE = blockList([
  ['0.0.0.0', 8, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['192.0.2.0', 24, 'ipv4'],
  ['192.88.99.0', 24, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['198.51.100.0', 24, 'ipv4'],
  ['203.0.113.0', 24, 'ipv4'],
  ['224.0.0.0', 4, 'ipv4'],
  ['240.0.0.0', 4, 'ipv4'],
  ['::', 128, 'ipv6'],
  ['100::', 64, 'ipv6'],
  ['2001::', 23, 'ipv6'],
  ['2001:db8::', 32, 'ipv6'],
  ['fec0::', 10, 'ipv6'],
  ['ff00::', 8, 'ipv6'],
]);

/** This machine and private networks: allowed only with WEBHOOK_ALLOW_PRIVATE_NETWORKS. */
const PRIVATE = blockList([
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'],
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'],
  ['172.16.0.0', 12, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['::1', 128, 'ipv6'],
  ['64:ff9b:1::', 48, 'ipv6'],
  ['fc00::', 7, 'ipv6'],
  ['fe80::', 10, 'ipv6'],
]);

/**
 * The IPv4 address an IPv6 one carries, where it is a form of one: IPv4-mapped
 * (::ffff:a.b.c.d, in either notation), IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and
 * 6to4 (2002:AABB:CCDD::/48). Null otherwise.
 */
export function embeddedIpv4(address: string): string | null {
  const groups = expandIpv6(address);
  if (!groups) {
    return null;
  }
  const v4 = (high: number, low: number) =>
    [high >> 8, high & 0xff, low >> 8, low & 0xff].join('.');
  const zeros = (from: number, to: number) => groups.slice(from, to).every((g) => g === 0);
  if (
    zeros(0, 5) &&
    (groups[5] === 0xffff || (groups[5] === 0 && (groups[6] !== 0 || groups[7] > 1)))
  ) {
    return v4(groups[6], groups[7]);
  }
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zeros(2, 6)) {
    return v4(groups[6], groups[7]);
  }
  if (groups[0] === 0x2002) {
    return v4(groups[1], groups[2]);
  }
  return null;
}

/** The eight 16-bit groups of an IPv6 address (a dotted IPv4 tail read as two groups). */
function expandIpv6(address: string): number[] | null {
  if (isIP(address) !== 6) {
    return null;
  }
  let text = address.split('%')[0].toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number);
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::');
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => parseInt(g, 16)) : []);
  const left = part(head);
  const right = part(tail);
  const fill = tail === undefined ? [] : new Array<number>(8 - left.length - right.length).fill(0);
  return [...left, ...fill, ...right];
}

/**
 * Why a webhook may not be delivered to `address` (an IP address, as resolved), or null when it
 * may. `allowPrivate` (WEBHOOK_ALLOW_PRIVATE_NETWORKS) lets loopback, private, shared and
 * link-local addresses through, never the metadata services or unroutable ones.
 */
export function addressRefusal(address: string, allowPrivate: boolean): string | null {
  const family = isIP(address);
  if (family === 0) {
    return 'not an IP address';
  }
  const checks: [string, 'ipv4' | 'ipv6'][] = [[address, family === 4 ? 'ipv4' : 'ipv6']];
  const embedded = family === 6 ? embeddedIpv4(address) : null;
  if (embedded) {
    checks.push([embedded, 'ipv4']);
  }
  for (const [ip, type] of checks) {
    if (METADATA.check(ip, type)) {
      return 'a cloud metadata address';
    }
    if (UNROUTABLE.check(ip, type)) {
      return 'an unroutable, multicast or reserved address';
    }
    if (!allowPrivate && PRIVATE.check(ip, type)) {
      return 'a loopback, private or link-local address (WEBHOOK_ALLOW_PRIVATE_NETWORKS allows it)';
    }
  }
  return null;
}
