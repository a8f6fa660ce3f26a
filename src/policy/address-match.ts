import { BlockList, isIP } from 'node:net';

/**
 * Source-address matching for rules: single IPs or CIDR ranges, IPv4 and IPv6. Pure
 * (node:net BlockList is an in-memory matcher, no I/O). IPv4-mapped IPv6 sources
 * (`::ffff:192.0.2.1`) are matched as IPv4.
 */
export type AddressMatcher = (address: string) => boolean;

export class AddressPatternError extends Error {
  constructor(readonly entry: string) {
    super(
      `invalid source address '${entry}': use an IP address (192.0.2.10, 2001:db8::1) or a CIDR range (10.0.0.0/8, 2001:db8::/32)`,
    );
    this.name = 'AddressPatternError';
  }
}

export function parseAddressEntry(entry: string): {
  address: string;
  prefix: number | null;
  family: 'ipv4' | 'ipv6';
} {
  const [addr = '', prefixText, extra] = entry.trim().split('/');
  const v = isIP(addr);
  if (v === 0 || extra !== undefined) throw new AddressPatternError(entry);
  const family = v === 4 ? 'ipv4' : 'ipv6';
  if (prefixText === undefined) return { address: addr, prefix: null, family };
  if (!/^\d{1,3}$/.test(prefixText)) throw new AddressPatternError(entry);
  const prefix = Number(prefixText);
  if (prefix > (v === 4 ? 32 : 128)) throw new AddressPatternError(entry);
  return { address: addr, prefix, family };
}

export function compileAddressList(entries: readonly string[]): AddressMatcher {
  const list = new BlockList();
  for (const e of entries) {
    const { address, prefix, family } = parseAddressEntry(e);
    if (prefix === null) list.addAddress(address, family);
    else list.addSubnet(address, prefix, family);
  }
  return (source) => {
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(source);
    const addr = mapped ? mapped[1]! : source;
    const v = isIP(addr);
    if (v === 0) return false;
    return list.check(addr, v === 4 ? 'ipv4' : 'ipv6');
  };
}
