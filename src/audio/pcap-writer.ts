/**
 * Writes 8 kHz audio as a classic pcap of Ethernet/IPv4/UDP/RTP G.711 packets, one per ptime,
 * with pcap timestamps spaced by ptime. This is the shape sipp's `play_pcap_audio` reads
 * (prepare_pcap.c: link type EN10MB or LINUX_SLL, every packet UDP, caplen == len, and it
 * replays the UDP payloads with the recorded inter-packet timing).
 */
import { encodeG711FromFloat, type G711Law } from './g711.js';
import { G729_FRAME_SAMPLES, loadG729, toInt16, type G729Encoder } from './g729.js';
import { serializeRtp } from '../media/rtp-packet.js';

export interface Endpoint {
  address: string;
  port: number;
}

export interface WriteRtpPcapOptions {
  /** Audio at 8000 Hz in [-1, 1]. */
  samples: Float32Array;
  /** G.711, or G.729 (payload type 18) through the bcg729 addon; its ptime must then be a multiple of 10 ms. */
  codec: G711Law | 'g729';
  ptimeMs?: number;
  /** `{address, port}` or `"ip:port"`. */
  src: Endpoint | string;
  dst: Endpoint | string;
  ssrc?: number;
  startSeq?: number;
  startTs?: number;
  linkType?: 'ethernet';
  /** pcap timestamp of the first packet, ms since the epoch (default 0). */
  startTimeMs?: number;
}

function ipv4Bytes(address: string): number[] {
  const parts = address.split('.').map((p) => Number(p));
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) {
    throw new RangeError(`not an IPv4 address: ${address}`);
  }
  return parts;
}

function onesComplementSum(buf: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  for (let i = start; i + 1 < end; i += 2) sum += (buf[i] << 8) | buf[i + 1];
  if ((end - start) & 1) sum += buf[end - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

/** One Ethernet/IPv4/UDP frame around `payload`, with valid IP and UDP checksums. */
export function buildUdpFrame(src: Endpoint, dst: Endpoint, payload: Uint8Array, ipId = 0): Buffer {
  const srcIp = ipv4Bytes(src.address);
  const dstIp = ipv4Bytes(dst.address);
  const udpLen = 8 + payload.length;
  const ipLen = 20 + udpLen;
  const frame = Buffer.alloc(14 + ipLen);
  // Locally administered MACs; sipp looks only at the ethertype.
  frame.set([0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01], 0);
  frame.writeUInt16BE(0x0800, 12);
  const ip = 14;
  frame[ip] = 0x45;
  frame.writeUInt16BE(ipLen, ip + 2);
  frame.writeUInt16BE(ipId & 0xffff, ip + 4);
  frame.writeUInt16BE(0x4000, ip + 6); // don't fragment
  frame[ip + 8] = 64;
  frame[ip + 9] = 17;
  frame.set(srcIp, ip + 12);
  frame.set(dstIp, ip + 16);
  frame.writeUInt16BE(~onesComplementSum(frame, ip, ip + 20) & 0xffff, ip + 10);
  const udp = ip + 20;
  frame.writeUInt16BE(src.port, udp);
  frame.writeUInt16BE(dst.port, udp + 2);
  frame.writeUInt16BE(udpLen, udp + 4);
  frame.set(payload, udp + 8);
  const pseudo = onesComplementSum(frame, ip + 12, ip + 20) + 17 + udpLen;
  const ck = ~onesComplementSum(frame, udp, udp + udpLen, pseudo) & 0xffff;
  frame.writeUInt16BE(ck === 0 ? 0xffff : ck, udp + 6);
  return frame;
}

/** Classic pcap (little-endian, µs) from (timestamp, frame) records. */
export function writePcap(records: { timeMs: number; frame: Uint8Array }[], linkType = 1): Buffer {
  const total = 24 + records.reduce((a, r) => a + 16 + r.frame.length, 0);
  const out = Buffer.alloc(total);
  out.writeUInt32LE(0xa1b2c3d4, 0);
  out.writeUInt16LE(2, 4);
  out.writeUInt16LE(4, 6);
  out.writeUInt32LE(65535, 16);
  out.writeUInt32LE(linkType, 20);
  let o = 24;
  for (const r of records) {
    const us = Math.round(r.timeMs * 1000);
    out.writeUInt32LE(Math.floor(us / 1e6), o);
    out.writeUInt32LE(us % 1e6, o + 4);
    out.writeUInt32LE(r.frame.length, o + 8);
    out.writeUInt32LE(r.frame.length, o + 12);
    out.set(r.frame, o + 16);
    o += 16 + r.frame.length;
  }
  return out;
}

/** Parses `"ip:port"` (IPv4) into an Endpoint; throws RangeError on anything else. */
export function parseEndpoint(spec: Endpoint | string): Endpoint {
  if (typeof spec !== 'string') return spec;
  const m = /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(spec.trim());
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) throw new RangeError(`not an IPv4 ip:port endpoint: ${spec}`);
  ipv4Bytes(m[1]);
  return { address: m[1], port };
}

export function writeRtpPcap(opts: WriteRtpPcapOptions): Buffer {
  const src = parseEndpoint(opts.src);
  const dst = parseEndpoint(opts.dst);
  const ptimeMs = opts.ptimeMs ?? 20;
  const samplesPerPacket = Math.round((ptimeMs * 8000) / 1000);
  if (!(samplesPerPacket > 0)) throw new RangeError(`ptimeMs must be positive, got ${ptimeMs}`);
  const ssrc = (opts.ssrc ?? 0x1234abcd) >>> 0;
  const seq0 = opts.startSeq ?? 1000;
  const ts0 = opts.startTs ?? 160000;
  const t0 = opts.startTimeMs ?? 0;
  const codec = opts.codec;
  const pt = codec === 'pcmu' ? 0 : codec === 'pcma' ? 8 : 18;
  let g729: G729Encoder | null = null;
  if (codec === 'g729') {
    if (samplesPerPacket % G729_FRAME_SAMPLES !== 0)
      throw new RangeError(
        `G.729 packets hold whole 10 ms frames: ptimeMs ${ptimeMs} is not a multiple of 10`,
      );
    const { codec: addon, error } = loadG729();
    if (!addon) throw new Error(`cannot write G.729: ${error}`);
    g729 = new addon.G729Encoder(); // one channel for the stream: its state carries across packets
  }
  const records: { timeMs: number; frame: Uint8Array }[] = [];
  const packetCount = Math.ceil(opts.samples.length / samplesPerPacket);
  for (let k = 0; k < packetCount; k++) {
    // The last packet is padded with silence to a full ptime, as a phone would send it.
    const chunk = new Float32Array(samplesPerPacket);
    chunk.set(opts.samples.subarray(k * samplesPerPacket, (k + 1) * samplesPerPacket));
    const payload = g729 ? g729.encode(toInt16(chunk)) : encodeG711FromFloat(codec as G711Law, chunk);
    const rtp = serializeRtp({
      version: 2,
      padding: false,
      extension: false,
      marker: k === 0,
      payloadType: pt,
      sequenceNumber: (seq0 + k) & 0xffff,
      timestamp: (ts0 + k * samplesPerPacket) >>> 0,
      ssrc,
      csrc: [],
      payload,
    });
    records.push({ timeMs: t0 + k * ptimeMs, frame: buildUdpFrame(src, dst, rtp, k) });
  }
  g729?.close();
  return writePcap(records, 1);
}
