/**
 * RTP packets (RFC 3550 §5.1): parse and serialize, plus the RTP/RTCP demultiplexing rule of
 * RFC 5761 §4 and wraparound-aware sequence/timestamp arithmetic.
 *
 * `parseRtp` is a pure validator for bytes from the network: it returns `null` for anything
 * that is not a well-formed RTP v2 packet and never throws.
 */

export interface RtpHeaderExtension {
  /** The 16-bit "defined by profile" field (0xBEDE for RFC 8285 one-byte headers). */
  profile: number;
  /** Extension data, a multiple of 4 bytes. */
  data: Uint8Array;
}

export interface RtpPacket {
  version: 2;
  /** Whether the packet carried padding. `payload` never includes the padding bytes. */
  padding: boolean;
  extension: boolean;
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  csrc: number[];
  headerExtension?: RtpHeaderExtension;
  payload: Uint8Array;
  /** On serialize with `padding: true`: how many padding bytes to append (1..255, default to a 4-byte boundary). */
  paddingLength?: number;
}

export const RTP_HEADER_BYTES = 12;

/**
 * RFC 5761 §4: with RTP and RTCP multiplexed on one port, the second byte tells them apart.
 * RTCP packet types 192..223 occupy that byte; RTP payload types 64..95 (with or without the
 * marker bit) would collide, which is why they must not be used. We treat 192..223 as RTCP
 * (SR 200, RR 201, SDES 202, BYE 203, APP 204, plus RTPFB/PSFB/XR and the like).
 */
export function isRtcp(buf: Uint8Array): boolean {
  if (buf.length < 4) return false;
  if (buf[0] >> 6 !== 2) return false;
  const pt = buf[1];
  return pt >= 192 && pt <= 223;
}

export function parseRtp(buf: Uint8Array): RtpPacket | null {
  if (!(buf instanceof Uint8Array) || buf.length < RTP_HEADER_BYTES) return null;
  const b0 = buf[0];
  if (b0 >> 6 !== 2) return null;
  if (isRtcp(buf)) return null;
  const padding = (b0 & 0x20) !== 0;
  const extension = (b0 & 0x10) !== 0;
  const cc = b0 & 0x0f;
  const b1 = buf[1];
  let offset = RTP_HEADER_BYTES + cc * 4;
  if (offset > buf.length) return null;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const csrc: number[] = [];
  for (let i = 0; i < cc; i++) csrc.push(dv.getUint32(RTP_HEADER_BYTES + i * 4));
  let headerExtension: RtpHeaderExtension | undefined;
  if (extension) {
    if (offset + 4 > buf.length) return null;
    const profile = dv.getUint16(offset);
    const words = dv.getUint16(offset + 2);
    const start = offset + 4;
    const end = start + words * 4;
    if (end > buf.length) return null;
    headerExtension = { profile, data: buf.subarray(start, end) };
    offset = end;
  }
  let end = buf.length;
  if (padding) {
    const padLen = buf[buf.length - 1];
    // RFC 3550: the last octet counts itself, so 0 is invalid.
    if (padLen === 0 || offset + padLen > buf.length) return null;
    end = buf.length - padLen;
  }
  const packet: RtpPacket = {
    version: 2,
    padding,
    extension,
    marker: (b1 & 0x80) !== 0,
    payloadType: b1 & 0x7f,
    sequenceNumber: dv.getUint16(2),
    timestamp: dv.getUint32(4),
    ssrc: dv.getUint32(8),
    csrc,
    payload: buf.subarray(offset, end),
  };
  if (headerExtension) packet.headerExtension = headerExtension;
  return packet;
}

/** Serialize an RTP packet. Throws RangeError on values that cannot be encoded (a programming error, not network input). */
export function serializeRtp(p: RtpPacket): Buffer {
  if (p.csrc.length > 15) throw new RangeError(`too many CSRCs: ${p.csrc.length} (max 15)`);
  if (!Number.isInteger(p.payloadType) || p.payloadType < 0 || p.payloadType > 127) {
    throw new RangeError(`payload type out of range: ${p.payloadType}`);
  }
  const ext = p.extension ? (p.headerExtension ?? { profile: 0, data: new Uint8Array(0) }) : undefined;
  if (ext && ext.data.length % 4 !== 0)
    throw new RangeError(`header extension length ${ext.data.length} is not a multiple of 4`);
  if (ext && ext.data.length / 4 > 0xffff) throw new RangeError('header extension too long');
  let padLen = 0;
  if (p.padding) {
    const unpadded =
      RTP_HEADER_BYTES + p.csrc.length * 4 + (ext ? 4 + ext.data.length : 0) + p.payload.length;
    padLen = p.paddingLength ?? 4 - (unpadded % 4);
    if (!Number.isInteger(padLen) || padLen < 1 || padLen > 255)
      throw new RangeError(`padding length out of range: ${padLen}`);
  }
  const total =
    RTP_HEADER_BYTES + p.csrc.length * 4 + (ext ? 4 + ext.data.length : 0) + p.payload.length + padLen;
  const out = Buffer.alloc(total);
  out[0] = 0x80 | (p.padding ? 0x20 : 0) | (ext ? 0x10 : 0) | p.csrc.length;
  out[1] = (p.marker ? 0x80 : 0) | p.payloadType;
  out.writeUInt16BE(p.sequenceNumber & 0xffff, 2);
  out.writeUInt32BE(p.timestamp >>> 0, 4);
  out.writeUInt32BE(p.ssrc >>> 0, 8);
  let o = RTP_HEADER_BYTES;
  for (const c of p.csrc) {
    out.writeUInt32BE(c >>> 0, o);
    o += 4;
  }
  if (ext) {
    out.writeUInt16BE(ext.profile & 0xffff, o);
    out.writeUInt16BE(ext.data.length / 4, o + 2);
    out.set(ext.data, o + 4);
    o += 4 + ext.data.length;
  }
  out.set(p.payload, o);
  o += p.payload.length;
  if (padLen > 0) out[total - 1] = padLen;
  return out;
}

/** Signed distance b - a between two 16-bit sequence numbers, in [-32768, 32767]. */
export function seqDelta(a: number, b: number): number {
  return (((b - a) & 0xffff) << 16) >> 16;
}

/** Signed distance b - a between two 32-bit RTP timestamps, in [-2^31, 2^31 - 1]. */
export function tsDelta(a: number, b: number): number {
  return (b - a) | 0;
}

/**
 * Unwraps 16-bit sequence numbers into a monotonic-ish extended counter (RFC 3550 A.1 idea):
 * each new number is placed at the extended value nearest to the previous one.
 */
export class SequenceUnwrapper {
  private last: number | undefined;

  extend(seq: number): number {
    if (this.last === undefined) {
      this.last = seq & 0xffff;
      return this.last;
    }
    this.last = this.last + seqDelta(this.last & 0xffff, seq);
    return this.last;
  }
}

/** Same as SequenceUnwrapper for 32-bit RTP timestamps. */
export class TimestampUnwrapper {
  private last: number | undefined;

  extend(ts: number): number {
    if (this.last === undefined) {
      this.last = ts >>> 0;
      return this.last;
    }
    this.last = this.last + tsDelta(this.last >>> 0, ts >>> 0);
    return this.last;
  }
}
