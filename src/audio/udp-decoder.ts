/**
 * Captured link-layer frames to UDP datagrams: the link types tcpdump, dumpcap and tshark
 * write for VoIP captures, IPv4 (with fragment reassembly) and IPv6 (extension headers and
 * fragments), then UDP. Pure and stateful only for reassembly; frames it cannot use are
 * counted, never thrown on, because one odd packet must not spoil a whole capture.
 */

export interface UdpDatagram {
  /** Capture time of the (last fragment of the) packet, ms since the epoch. */
  timeMs: number;
  srcAddress: string;
  srcPort: number;
  dstAddress: string;
  dstPort: number;
  payload: Uint8Array;
}

/** A TCP segment with data (SIP over TCP in a capture); not reassembled here. */
export interface TcpSegment {
  timeMs: number;
  srcAddress: string;
  srcPort: number;
  dstAddress: string;
  dstPort: number;
  /** The segment's sequence number (of its first data byte). */
  seq: number;
  payload: Uint8Array;
}

export interface UdpDecoderStats {
  frames: number;
  udp: number;
  /** Link types we do not decode (frames skipped). */
  unsupportedLinkType: number;
  /** Not IP, or IP that is not UDP. */
  notUdp: number;
  /** Cut short by the capture's snap length or malformed: skipped. */
  malformed: number;
  /** Datagrams rebuilt from IP fragments. */
  reassembled: number;
  /** Fragments whose datagram never completed (dropped at the end of the capture). */
  orphanFragments: number;
}

export const LINKTYPE = {
  NULL: 0,
  ETHERNET: 1,
  RAW: 101,
  LOOP: 108,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

const ETHERTYPE_IPV4 = 0x0800;
const ETHERTYPE_IPV6 = 0x86dd;
const VLAN_TAGS = new Set([0x8100, 0x88a8, 0x9100]);
/** BSD/Linux address-family values of AF_INET6 in DLT_NULL/DLT_LOOP headers. */
const AF_INET6 = new Set([10, 24, 28, 30]);
const IPPROTO_UDP = 17;
const IPPROTO_TCP = 6;
/** A fragmented datagram older than this (capture time) is abandoned, as a host would. */
const REASSEMBLY_TIMEOUT_MS = 30_000;

interface PendingDatagram {
  firstTimeMs: number;
  pieces: Array<{ offset: number; data: Uint8Array }>;
  totalLength: number | null;
  src: string;
  dst: string;
  protocol: number;
}

export class UdpDecoder {
  readonly stats: UdpDecoderStats = {
    frames: 0,
    udp: 0,
    unsupportedLinkType: 0,
    notUdp: 0,
    malformed: 0,
    reassembled: 0,
    orphanFragments: 0,
  };
  private readonly pending = new Map<string, PendingDatagram>();

  /** `onTcp`: also hand over TCP segments that carry data (still counted as not UDP). */
  constructor(private readonly onTcp?: (s: TcpSegment) => void) {}

  /** The UDP datagram in one captured frame, or null (counted in `stats`). */
  decode(linkType: number, frame: Uint8Array, timeMs: number): UdpDatagram | null {
    this.stats.frames++;
    const ip = ipPayloadOf(linkType, frame);
    if (ip === 'unsupported') {
      this.stats.unsupportedLinkType++;
      return null;
    }
    if (ip === null || ip.length < 1) {
      this.stats.notUdp++;
      return null;
    }
    const version = ip[0] >> 4;
    if (version === 4) return this.ipv4(ip, timeMs);
    if (version === 6) return this.ipv6(ip, timeMs);
    this.stats.notUdp++;
    return null;
  }

  /** Call at the end of the capture: counts fragments that never completed. */
  finish(): void {
    for (const p of this.pending.values()) this.stats.orphanFragments += p.pieces.length;
    this.pending.clear();
  }

  private ipv4(ip: Uint8Array, timeMs: number): UdpDatagram | null {
    const ihl = (ip[0] & 0x0f) * 4;
    if (ip.length < 20 || ihl < 20 || ip.length < ihl) return this.bad();
    const totalLength = (ip[2] << 8) | ip[3];
    // A capture cut by its snap length holds less than the IP header says.
    if (totalLength < ihl || totalLength > ip.length) return this.bad();
    const src = ip.subarray(12, 16).join('.');
    const dst = ip.subarray(16, 20).join('.');
    const protocol = ip[9];
    const flagsOffset = (ip[6] << 8) | ip[7];
    const moreFragments = (flagsOffset & 0x2000) !== 0;
    const fragOffset = (flagsOffset & 0x1fff) * 8;
    const body = ip.subarray(ihl, totalLength);
    if (!moreFragments && fragOffset === 0) return this.udp(protocol, src, dst, body, timeMs);
    const id = (ip[4] << 8) | ip[5];
    const whole = this.fragment(
      `4|${src}|${dst}|${protocol}|${id}`,
      src,
      dst,
      protocol,
      fragOffset,
      moreFragments,
      body,
      timeMs,
    );
    return whole ? this.udp(whole.protocol, src, dst, whole.data, timeMs) : null;
  }

  private ipv6(ip: Uint8Array, timeMs: number): UdpDatagram | null {
    if (ip.length < 40) return this.bad();
    const payloadLength = (ip[4] << 8) | ip[5];
    if (40 + payloadLength > ip.length) return this.bad();
    const src = ipv6Text(ip.subarray(8, 24));
    const dst = ipv6Text(ip.subarray(24, 40));
    let next = ip[6];
    let offset = 40;
    const end = 40 + payloadLength;
    // Hop-by-hop, routing and destination options: skip. Fragment: reassemble.
    for (;;) {
      if (next === 0 || next === 43 || next === 60) {
        if (offset + 8 > end) return this.bad();
        const len = (ip[offset + 1] + 1) * 8;
        next = ip[offset];
        offset += len;
        continue;
      }
      if (next === 44) {
        if (offset + 8 > end) return this.bad();
        const protocol = ip[offset];
        const fo = (ip[offset + 2] << 8) | ip[offset + 3];
        const id = new DataView(ip.buffer, ip.byteOffset + offset + 4, 4).getUint32(0);
        const body = ip.subarray(offset + 8, end);
        const key = `6|${src}|${dst}|${id}`;
        const whole = this.fragment(key, src, dst, protocol, fo & 0xfff8, (fo & 1) !== 0, body, timeMs);
        return whole ? this.udp(whole.protocol, src, dst, whole.data, timeMs) : null;
      }
      break;
    }
    if (offset > end) return this.bad();
    return this.udp(next, src, dst, ip.subarray(offset, end), timeMs);
  }

  private fragment(
    key: string,
    src: string,
    dst: string,
    protocol: number,
    offset: number,
    more: boolean,
    data: Uint8Array,
    timeMs: number,
  ): { protocol: number; data: Uint8Array } | null {
    let p = this.pending.get(key);
    if (p && timeMs - p.firstTimeMs > REASSEMBLY_TIMEOUT_MS) {
      this.stats.orphanFragments += p.pieces.length;
      this.pending.delete(key);
      p = undefined;
    }
    if (!p) {
      p = { firstTimeMs: timeMs, pieces: [], totalLength: null, src, dst, protocol };
      this.pending.set(key, p);
    }
    // A retransmitted fragment (same offset) replaces nothing: the first copy wins.
    if (!p.pieces.some((q) => q.offset === offset)) p.pieces.push({ offset, data });
    if (!more) p.totalLength = offset + data.length;
    if (p.totalLength === null) return null;
    p.pieces.sort((a, b) => a.offset - b.offset);
    let covered = 0;
    for (const q of p.pieces) {
      if (q.offset > covered) return null;
      covered = Math.max(covered, q.offset + q.data.length);
    }
    if (covered < p.totalLength) return null;
    const out = new Uint8Array(p.totalLength);
    for (const q of p.pieces) out.set(q.data.subarray(0, Math.max(0, p.totalLength - q.offset)), q.offset);
    this.pending.delete(key);
    this.stats.reassembled++;
    return { protocol: p.protocol, data: out };
  }

  private udp(
    protocol: number,
    src: string,
    dst: string,
    seg: Uint8Array,
    timeMs: number,
  ): UdpDatagram | null {
    if (protocol !== IPPROTO_UDP) {
      this.stats.notUdp++;
      if (protocol === IPPROTO_TCP && this.onTcp && seg.length >= 20) {
        const dataOffset = (seg[12] >> 4) * 4;
        if (dataOffset >= 20 && dataOffset < seg.length) {
          this.onTcp({
            timeMs,
            srcAddress: src,
            srcPort: (seg[0] << 8) | seg[1],
            dstAddress: dst,
            dstPort: (seg[2] << 8) | seg[3],
            seq: new DataView(seg.buffer, seg.byteOffset + 4, 4).getUint32(0),
            payload: seg.subarray(dataOffset),
          });
        }
      }
      return null;
    }
    if (seg.length < 8) return this.bad();
    const length = (seg[4] << 8) | seg[5];
    if (length < 8 || length > seg.length) return this.bad();
    this.stats.udp++;
    return {
      timeMs,
      srcAddress: src,
      srcPort: (seg[0] << 8) | seg[1],
      dstAddress: dst,
      dstPort: (seg[2] << 8) | seg[3],
      payload: seg.subarray(8, length),
    };
  }

  private bad(): null {
    this.stats.malformed++;
    return null;
  }
}

/** The IP packet inside a link-layer frame; null when the frame is not IP. */
function ipPayloadOf(linkType: number, f: Uint8Array): Uint8Array | null | 'unsupported' {
  switch (linkType) {
    case LINKTYPE.ETHERNET: {
      let off = 12;
      if (f.length < off + 2) return null;
      let type = (f[off] << 8) | f[off + 1];
      // 802.1Q / 802.1ad (QinQ) tags: 4 bytes each before the real ethertype.
      while (VLAN_TAGS.has(type)) {
        off += 4;
        if (f.length < off + 2) return null;
        type = (f[off] << 8) | f[off + 1];
      }
      return ipByEthertype(type, f.subarray(off + 2));
    }
    case LINKTYPE.RAW:
    case LINKTYPE.IPV4:
    case LINKTYPE.IPV6:
      return f;
    case LINKTYPE.LINUX_SLL:
      return f.length < 16 ? null : ipByEthertype((f[14] << 8) | f[15], f.subarray(16));
    case LINKTYPE.LINUX_SLL2:
      return f.length < 20 ? null : ipByEthertype((f[0] << 8) | f[1], f.subarray(20));
    case LINKTYPE.NULL:
    case LINKTYPE.LOOP: {
      if (f.length < 4) return null;
      // DLT_NULL is in the capturing host's byte order, DLT_LOOP in network order: accept both.
      const le = f[0] | (f[1] << 8);
      const be = (f[2] << 8) | f[3];
      const family = f[0] === 0 && f[1] === 0 ? be : le;
      return family === 2 || AF_INET6.has(family) ? f.subarray(4) : null;
    }
    default:
      return 'unsupported';
  }
}

function ipByEthertype(type: number, rest: Uint8Array): Uint8Array | null {
  return type === ETHERTYPE_IPV4 || type === ETHERTYPE_IPV6 ? rest : null;
}

/** RFC 5952 text form (lower case, longest zero run compressed). */
function ipv6Text(b: Uint8Array): string {
  const words: number[] = [];
  for (let i = 0; i < 16; i += 2) words.push((b[i] << 8) | b[i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
