import { execFileSync, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeG711ToFloat, encodeG711FromFloat, type G711Law } from '../../src/audio/g711.js';
import { buildUdpFrame, type Endpoint } from '../../src/audio/pcap-writer.js';
import { serializeRtp } from '../../src/media/rtp-packet.js';

/**
 * Test-side capture surgery: split the project's pcap writer output into records, re-wrap
 * frames in other link layers and byte orders, and ask the real tshark/editcap about files.
 * The reader under test never sees these helpers' own idea of a file: tshark is the referee.
 */

export interface PcapRecord {
  timeMs: number;
  frame: Uint8Array;
}

/** Records of a little-endian µs classic pcap (what src/audio/pcap-writer.ts writes). */
export function pcapRecords(buf: Buffer): PcapRecord[] {
  const out: PcapRecord[] = [];
  for (let o = 24; o < buf.length;) {
    const len = buf.readUInt32LE(o + 8);
    out.push({
      timeMs: buf.readUInt32LE(o) * 1000 + buf.readUInt32LE(o + 4) / 1000,
      frame: buf.subarray(o + 16, o + 16 + len),
    });
    o += 16 + len;
  }
  return out;
}

/** The same classic pcap in big-endian byte order (as a SPARC/PowerPC tcpdump writes it). */
export function toBigEndianPcap(le: Buffer): Buffer {
  const be = Buffer.from(le);
  be.writeUInt32BE(le.readUInt32LE(0), 0);
  be.writeUInt16BE(le.readUInt16LE(4), 4);
  be.writeUInt16BE(le.readUInt16LE(6), 6);
  for (const f of [8, 12, 16, 20]) be.writeUInt32BE(le.readUInt32LE(f), f);
  for (let o = 24; o < le.length;) {
    const len = le.readUInt32LE(o + 8);
    for (let f = 0; f < 16; f += 4) be.writeUInt32BE(le.readUInt32LE(o + f), o + f);
    o += 16 + len;
  }
  return be;
}

export interface PcapngInterface {
  linkType: number;
  /** if_tsresol as a power of ten (default 6, µs). */
  tsresolExp10?: number;
}

/**
 * A pcapng section in either byte order: SHB, the IDBs, optionally a name-resolution block
 * and a block of a local-use type (readers must skip both), then one packet block per record
 * (enhanced, obsolete or simple), each on the interface `iface` (default 0).
 */
export function pcapngSection(
  records: Array<PcapRecord & { iface?: number }>,
  opts: {
    bigEndian: boolean;
    interfaces: PcapngInterface[];
    packetBlock?: 'epb' | 'opb' | 'spb';
    otherBlocks?: boolean;
  },
): Buffer {
  const le = !opts.bigEndian;
  const u32 = (v: number): Buffer => {
    const b = Buffer.alloc(4);
    if (le) b.writeUInt32LE(v >>> 0);
    else b.writeUInt32BE(v >>> 0);
    return b;
  };
  const u16 = (v: number): Buffer => {
    const b = Buffer.alloc(2);
    if (le) b.writeUInt16LE(v);
    else b.writeUInt16BE(v);
    return b;
  };
  const block = (type: number, body: Buffer): Buffer => {
    const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
    const len = 12 + padded.length;
    return Buffer.concat([u32(type), u32(len), padded, u32(len)]);
  };
  const shb = block(
    0x0a0d0d0a,
    Buffer.concat([u32(0x1a2b3c4d), u16(1), u16(0), u32(0xffffffff), u32(0xffffffff)]),
  );
  const idbs = opts.interfaces.map((i) => {
    const tsresol = Buffer.concat([
      u16(9),
      u16(1),
      Buffer.from([i.tsresolExp10 ?? 6, 0, 0, 0]),
      u16(0),
      u16(0),
    ]);
    return block(1, Buffer.concat([u16(i.linkType), u16(0), u32(0), tsresol]));
  });
  const others = opts.otherBlocks
    ? [
        block(
          4,
          Buffer.concat([u16(1), u16(8), Buffer.from([10, 0, 0, 1]), Buffer.from('gw\0\0'), u16(0), u16(0)]),
        ),
        block(0x80000123, Buffer.from('local use')),
      ]
    : [];
  const packets = records.map((r) => {
    const frame = Buffer.from(r.frame);
    const iface = r.iface ?? 0;
    if (opts.packetBlock === 'spb') return block(3, Buffer.concat([u32(frame.length), frame]));
    const exp = opts.interfaces[iface].tsresolExp10 ?? 6;
    const units = (BigInt(Math.round(r.timeMs * 1000)) * 10n ** BigInt(exp)) / 1_000_000n;
    const head = opts.packetBlock === 'opb' ? Buffer.concat([u16(iface), u16(0)]) : u32(iface);
    const ts = [u32(Number(units >> 32n)), u32(Number(units & 0xffffffffn))];
    return block(
      opts.packetBlock === 'opb' ? 2 : 6,
      Buffer.concat([head, ...ts, u32(frame.length), u32(frame.length), frame]),
    );
  });
  return Buffer.concat([shb, ...idbs, ...others, ...packets]);
}

/** One Ethernet/IPv4/UDP frame carrying a 20 ms PCMU RTP packet (160 zero bytes of payload). */
export function rtpFrame(src: Endpoint, dst: Endpoint, h: { seq: number; ts: number; ssrc: number }): Buffer {
  const rtp = serializeRtp({
    version: 2,
    padding: false,
    extension: false,
    marker: false,
    payloadType: 0,
    sequenceNumber: h.seq & 0xffff,
    timestamp: h.ts >>> 0,
    ssrc: h.ssrc,
    csrc: [],
    payload: new Uint8Array(160),
  });
  return buildUdpFrame(src, dst, rtp);
}

/** Classic LE pcap of arbitrary link type (the writer's own layout, via its exported writer). */
export { writePcap } from '../../src/audio/pcap-writer.js';

const IP_OFFSET = 14;

/** The IPv4 packet inside one of the writer's Ethernet frames. */
export function ipOf(ethernetFrame: Uint8Array): Buffer {
  return Buffer.from(ethernetFrame.subarray(IP_OFFSET));
}

export function withLinkHeader(
  kind: 'sll' | 'sll2' | 'null' | 'loop' | 'vlan' | 'qinq',
  eth: Uint8Array,
): Buffer {
  const ip = ipOf(eth);
  const mac = Buffer.from(eth.subarray(0, 12));
  switch (kind) {
    case 'sll':
      return Buffer.concat([Buffer.from([0, 4, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00]), ip]);
    case 'sll2':
      return Buffer.concat([
        Buffer.from([0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 4, 6, 2, 0, 0, 0, 0, 1, 0, 0]),
        ip,
      ]);
    case 'null':
      return Buffer.concat([Buffer.from([2, 0, 0, 0]), ip]);
    case 'loop':
      return Buffer.concat([Buffer.from([0, 0, 0, 2]), ip]);
    case 'vlan':
      return Buffer.concat([mac, Buffer.from([0x81, 0x00, 0x00, 0x64, 0x08, 0x00]), ip]);
    case 'qinq':
      return Buffer.concat([
        mac,
        Buffer.from([0x88, 0xa8, 0x00, 0x0a, 0x81, 0x00, 0x00, 0x14, 0x08, 0x00]),
        ip,
      ]);
  }
}

/** Splits the IPv4 packet of an Ethernet frame into two fragments (first payload part 8-aligned). */
export function fragmentIpv4(eth: Uint8Array, firstBytes: number): [Buffer, Buffer] {
  const ip = ipOf(eth);
  const header = ip.subarray(0, 20);
  const payload = ip.subarray(20);
  const part = (data: Uint8Array, offset: number, more: boolean): Buffer => {
    const h = Buffer.from(header);
    h.writeUInt16BE(20 + data.length, 2);
    h.writeUInt16BE((more ? 0x2000 : 0) | (offset / 8), 6);
    h.writeUInt16BE(0, 10);
    h.writeUInt16BE(~ones(h) & 0xffff, 10);
    return Buffer.concat([Buffer.from(eth.subarray(0, IP_OFFSET)), h, data]);
  };
  return [
    part(payload.subarray(0, firstBytes), 0, true),
    part(payload.subarray(firstBytes), firstBytes, false),
  ];
}

function ones(b: Buffer, initial = 0): number {
  let s = initial;
  for (let i = 0; i + 1 < b.length; i += 2) s += b.readUInt16BE(i);
  if (b.length & 1) s += b[b.length - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return s;
}

/**
 * One Ethernet/IPv4/TCP frame (PSH+ACK, no options) with valid checksums, so tshark can
 * reassemble the stream. The Ethernet and IP headers are the UDP writer's, re-marked as TCP.
 */
export function tcpFrame(src: Endpoint, dst: Endpoint, seq: number, data: Uint8Array): Buffer {
  const tcpLen = 20 + data.length;
  const f = Buffer.alloc(IP_OFFSET + 20 + tcpLen);
  buildUdpFrame(src, dst, new Uint8Array(0)).copy(f, 0, 0, IP_OFFSET + 20);
  const ip = f.subarray(IP_OFFSET, IP_OFFSET + 20);
  ip.writeUInt16BE(20 + tcpLen, 2);
  ip[9] = 6;
  ip.writeUInt16BE(0, 10);
  ip.writeUInt16BE(~ones(ip) & 0xffff, 10);
  const tcp = f.subarray(IP_OFFSET + 20);
  tcp.writeUInt16BE(src.port, 0);
  tcp.writeUInt16BE(dst.port, 2);
  tcp.writeUInt32BE(seq >>> 0, 4);
  tcp.writeUInt32BE(1, 8);
  tcp[12] = 5 << 4;
  tcp[13] = 0x18;
  tcp.writeUInt16BE(65535, 14);
  tcp.set(data, 20);
  const pseudo = ones(ip.subarray(12, 20)) + 6 + tcpLen;
  tcp.writeUInt16BE(~ones(tcp, pseudo) & 0xffff, 16);
  return f;
}

/** An Ethernet/IPv6/UDP frame (optionally with a hop-by-hop options header before UDP). */
export function ipv6Frame(
  src: string,
  dst: string,
  sport: number,
  dport: number,
  payload: Uint8Array,
  hopByHop = false,
): Buffer {
  const addr = (a: string): Buffer => {
    const [head, tail] = a.split('::');
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    const words = [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
    return Buffer.from(words.flatMap((w) => [parseInt(w, 16) >> 8, parseInt(w, 16) & 0xff]));
  };
  const udp = Buffer.alloc(8);
  udp.writeUInt16BE(sport, 0);
  udp.writeUInt16BE(dport, 2);
  udp.writeUInt16BE(8 + payload.length, 4);
  const ext = hopByHop ? Buffer.from([17, 0, 1, 4, 0, 0, 0, 0]) : Buffer.alloc(0);
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(ext.length + 8 + payload.length, 4);
  ip[6] = hopByHop ? 0 : 17;
  ip[7] = 64;
  addr(src).copy(ip, 8);
  addr(dst).copy(ip, 24);
  const eth = Buffer.from([2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x86, 0xdd]);
  return Buffer.concat([eth, ip, ext, udp, Buffer.from(payload)]);
}

/** What the source signal sounds like after G.711 (padded to whole packets, as the writer sends). */
export function throughG711(law: G711Law, samples: Float32Array, samplesPerPacket = 160): Float32Array {
  const n = Math.ceil(samples.length / samplesPerPacket) * samplesPerPacket;
  const padded = new Float32Array(n);
  padded.set(samples);
  return decodeG711ToFloat(law, encodeG711FromFloat(law, padded));
}

export function tool(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/**
 * tshark's view of the RTP on `port`: one `{seq, ssrc}` per packet, and what it said on
 * stderr (it reads a truncated file up to the cut, then complains and exits 2).
 */
export function tsharkRtp(
  file: string,
  port: number,
): Array<{ seq: number; ssrc: number }> & { stderr: string } {
  const r = spawnSync(
    'tshark',
    [
      '-r',
      file,
      '-Y',
      'rtp',
      '-d',
      `udp.port==${port},rtp`,
      '-T',
      'fields',
      '-e',
      'rtp.seq',
      '-e',
      'rtp.ssrc',
    ],
    {
      encoding: 'utf8',
    },
  );
  if (r.error) throw r.error;
  const rows = r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => {
      const [seq, ssrc] = l.split('\t');
      return { seq: Number(seq), ssrc: Number(ssrc) };
    });
  if (r.status !== 0 && rows.length === 0) throw new Error(`tshark failed: ${r.stderr}`);
  return Object.assign(rows, { stderr: r.stderr });
}

/** tshark's own RTP stream analysis (`-z rtp,streams`): packets and lost per SSRC. */
export function tsharkRtpStreams(
  file: string,
  port: number,
): Array<{ ssrc: number; packets: number; lost: number }> {
  const out = tool('tshark', ['-r', file, '-d', `udp.port==${port},rtp`, '-q', '-z', 'rtp,streams']);
  return [...out.matchAll(/\s(0x[0-9A-Fa-f]+)\s+\S+\s+(\d+)\s+(-?\d+) \(/g)].map((m) => ({
    ssrc: Number(m[1]),
    packets: Number(m[2]),
    lost: Number(m[3]),
  }));
}

export function save(dir: string, name: string, data: Uint8Array): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

/** A deterministic speech-band test signal (sum of tones with a slow envelope). */
export function testSignal(n: number, seed = 1): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => {
    const env = 0.5 + 0.5 * Math.sin((2 * Math.PI * i) / (8000 * (0.3 + seed * 0.1)));
    return (
      0.25 *
      env *
      (Math.sin((2 * Math.PI * 330 * i) / 8000) +
        0.5 * Math.sin((2 * Math.PI * (1170 + seed * 13) * i) / 8000))
    );
  });
}
