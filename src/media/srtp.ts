import { createCipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * SRTP and SRTCP (RFC 3711) with SDES keys (RFC 4568): AES_CM_128_HMAC_SHA1_80 and _32, the
 * suites every SIP trunk offers. No maintained pure-JS SRTP library exists for Node (the native
 * ones need libsrtp, which this project cannot build offline), and the transform is small: AES-128
 * in counter mode from Node's crypto, HMAC-SHA1, the key derivation and the rollover counter.
 * One context protects or unprotects one direction of one leg; key material never leaves it.
 */
export type SrtpSuite = 'AES_CM_128_HMAC_SHA1_80' | 'AES_CM_128_HMAC_SHA1_32';
export const SRTP_SUITES: readonly SrtpSuite[] = ['AES_CM_128_HMAC_SHA1_80', 'AES_CM_128_HMAC_SHA1_32'];

export interface SrtpKey {
  suite: SrtpSuite;
  /** 16-byte master key followed by the 14-byte master salt (the SDES inline key). */
  keySalt: Buffer;
}

export class SrtpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SrtpError';
  }
}

/** A fresh master key and salt for our side of a leg. */
export function newSrtpKey(suite: SrtpSuite): SrtpKey {
  return { suite, keySalt: randomBytes(30) };
}

/** `inline:<base64>` of an a=crypto line (lifetime and MKI parameters are refused). */
export function parseInlineKey(keyParams: string): Buffer {
  const m = /^inline:([A-Za-z0-9+/=]+)$/.exec(keyParams.trim());
  if (!m)
    throw new SrtpError(
      `unsupported SDES key parameters (lifetime/MKI or not inline): ${keyParams.slice(0, 40)}`,
    );
  const keySalt = Buffer.from(m[1]!, 'base64');
  if (keySalt.length !== 30) throw new SrtpError(`SDES inline key is ${keySalt.length} bytes, expected 30`);
  return keySalt;
}

function aesCm(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const c = createCipheriv('aes-128-ctr', key, iv);
  return Buffer.concat([c.update(data), c.final()]);
}

/** RFC 3711 4.3.1 with key_derivation_rate 0: AES-CM of zeros under IV (master_salt XOR label). */
export function deriveKey(master: Buffer, salt: Buffer, label: number, length: number): Buffer {
  const iv = Buffer.alloc(16);
  salt.copy(iv, 0, 0, 14);
  iv[7]! ^= label;
  return aesCm(master, iv, Buffer.alloc(length));
}

interface SessionKeys {
  enc: Buffer;
  auth: Buffer;
  salt: Buffer;
}

function sessionKeys(key: SrtpKey, rtcp: boolean): SessionKeys {
  const master = key.keySalt.subarray(0, 16);
  const salt = key.keySalt.subarray(16, 30);
  const base = rtcp ? 3 : 0;
  return {
    enc: deriveKey(master, salt, base, 16),
    auth: deriveKey(master, salt, base + 1, 20),
    salt: deriveKey(master, salt, base + 2, 14),
  };
}

/** IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16). */
function packetIv(salt: Buffer, ssrc: number, index: bigint): Buffer {
  const iv = Buffer.alloc(16);
  salt.copy(iv, 0, 0, 14);
  iv.writeUInt32BE((iv.readUInt32BE(4) ^ ssrc) >>> 0, 4);
  const hi = Number(index >> 32n) & 0xffff;
  const lo = Number(index & 0xffffffffn);
  iv.writeUInt16BE((iv.readUInt16BE(8) ^ hi) & 0xffff, 8);
  iv.writeUInt32BE((iv.readUInt32BE(10) ^ lo) >>> 0, 10);
  return iv;
}

function tagLength(suite: SrtpSuite): number {
  return suite === 'AES_CM_128_HMAC_SHA1_80' ? 10 : 4;
}

/** Length of the RTP header with CSRCs and extension, or -1 when the packet is shorter than it says. */
function rtpHeaderLength(p: Buffer): number {
  let n = 12 + (p[0]! & 0x0f) * 4;
  if (p[0]! & 0x10) {
    if (p.length < n + 4) return -1;
    n += 4 + p.readUInt16BE(n + 2) * 4;
  }
  return n <= p.length ? n : -1;
}

const REPLAY_WINDOW = 128n;

/** Per SSRC: the rollover counter, the highest sequence number, and a replay window. */
interface SsrcState {
  roc: number;
  seq: number;
  /** Highest accepted index, and bit i set for index (highest - i) seen. */
  top: bigint;
  seen: bigint;
}

/** One direction of SRTP+SRTCP on one leg. */
export class SrtpContext {
  private readonly rtp: SessionKeys;
  private readonly rtcp: SessionKeys;
  private readonly tag: number;
  private readonly states = new Map<number, SsrcState>();
  private srtcpIndex = 0;

  constructor(readonly key: SrtpKey) {
    if (key.keySalt.length !== 30) throw new SrtpError('SRTP master key and salt must be 30 bytes');
    this.rtp = sessionKeys(key, false);
    this.rtcp = sessionKeys(key, true);
    this.tag = tagLength(key.suite);
  }

  private authTag(keys: SessionKeys, ...parts: Buffer[]): Buffer {
    const h = createHmac('sha1', keys.auth);
    for (const p of parts) h.update(p);
    return h.digest().subarray(0, this.tag);
  }

  /** RTP → SRTP (a new buffer). The sender's rollover counter follows its sequence numbers. */
  protectRtp(p: Buffer): Buffer {
    const hl = rtpHeaderLength(p);
    if (hl < 0) throw new SrtpError('RTP header longer than the packet');
    const ssrc = p.readUInt32BE(8);
    const seq = p.readUInt16BE(2);
    let st = this.states.get(ssrc);
    if (!st) this.states.set(ssrc, (st = { roc: 0, seq, top: BigInt(seq), seen: 1n }));
    else if (seq < st.seq && st.seq - seq > 0x8000) st.roc = (st.roc + 1) >>> 0;
    if (((seq - st.seq) & 0xffff) < 0x8000) st.seq = seq;
    const index = (BigInt(st.roc) << 16n) | BigInt(seq);
    const out = Buffer.allocUnsafe(p.length + this.tag);
    p.copy(out, 0, 0, hl);
    aesCm(this.rtp.enc, packetIv(this.rtp.salt, ssrc, index), p.subarray(hl)).copy(out, hl);
    const roc = Buffer.allocUnsafe(4);
    roc.writeUInt32BE(st.roc, 0);
    this.authTag(this.rtp, out.subarray(0, p.length), roc).copy(out, p.length);
    return out;
  }

  /** SRTP → RTP, or null when the packet fails authentication or is a replay. */
  unprotectRtp(p: Buffer): Buffer | null {
    const hl = rtpHeaderLength(p);
    if (hl < 0 || p.length < hl + this.tag) return null;
    const ssrc = p.readUInt32BE(8);
    const seq = p.readUInt16BE(2);
    const st = this.states.get(ssrc);
    // RFC 3711 3.3.1: guess the rollover counter from the highest sequence number seen.
    let roc = st?.roc ?? 0;
    if (st) {
      if (st.seq < 0x8000) {
        if (seq - st.seq > 0x8000) roc = (st.roc - 1) >>> 0;
      } else if (st.seq - 0x8000 > seq) roc = (st.roc + 1) >>> 0;
    }
    const index = (BigInt(roc) << 16n) | BigInt(seq);
    if (st) {
      const behind = st.top - index;
      if (behind >= REPLAY_WINDOW) return null;
      if (behind >= 0n && (st.seen >> behind) & 1n) return null;
    }
    const body = p.subarray(0, p.length - this.tag);
    const rocBuf = Buffer.allocUnsafe(4);
    rocBuf.writeUInt32BE(roc, 0);
    const tag = this.authTag(this.rtp, body, rocBuf);
    if (!timingSafeEqual(tag, p.subarray(p.length - this.tag))) return null;
    const out = Buffer.allocUnsafe(body.length);
    body.copy(out, 0, 0, hl);
    aesCm(this.rtp.enc, packetIv(this.rtp.salt, ssrc, index), body.subarray(hl)).copy(out, hl);
    if (!st) this.states.set(ssrc, { roc, seq, top: index, seen: 1n });
    else if (index > st.top) {
      const ahead = index - st.top;
      st.seen = ahead >= REPLAY_WINDOW ? 1n : ((st.seen << ahead) | 1n) & ((1n << REPLAY_WINDOW) - 1n);
      st.top = index;
      st.roc = roc;
      st.seq = seq;
    } else st.seen |= 1n << (st.top - index);
    return out;
  }

  /** RTCP → SRTCP: the part after the first 8 bytes is encrypted, E flag and index appended. */
  protectRtcp(p: Buffer): Buffer {
    if (p.length < 8) throw new SrtpError('RTCP packet shorter than 8 bytes');
    const index = this.srtcpIndex;
    this.srtcpIndex = (this.srtcpIndex + 1) & 0x7fffffff;
    const ssrc = p.readUInt32BE(4);
    const enc = aesCm(this.rtcp.enc, packetIv(this.rtcp.salt, ssrc, BigInt(index)), p.subarray(8));
    const eIndex = Buffer.allocUnsafe(4);
    eIndex.writeUInt32BE((0x80000000 | index) >>> 0, 0);
    const body = Buffer.concat([p.subarray(0, 8), enc, eIndex]);
    return Buffer.concat([body, this.authTag(this.rtcp, body)]);
  }

  /** SRTCP → RTCP, or null when it fails authentication. */
  unprotectRtcp(p: Buffer): Buffer | null {
    if (p.length < 8 + 4 + this.tag) return null;
    const body = p.subarray(0, p.length - this.tag);
    if (!timingSafeEqual(this.authTag(this.rtcp, body), p.subarray(p.length - this.tag))) return null;
    const eIndex = body.readUInt32BE(body.length - 4);
    const payload = body.subarray(8, body.length - 4);
    if (!(eIndex & 0x80000000)) return Buffer.concat([body.subarray(0, 8), payload]);
    const ssrc = p.readUInt32BE(4);
    const plain = aesCm(this.rtcp.enc, packetIv(this.rtcp.salt, ssrc, BigInt(eIndex & 0x7fffffff)), payload);
    return Buffer.concat([body.subarray(0, 8), plain]);
  }
}
