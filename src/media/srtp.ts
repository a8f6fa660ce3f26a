import { createCipheriv, createDecipheriv, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * SRTP and SRTCP (RFC 3711) with SDES keys (RFC 4568), in the suites SIP trunks and PBXes offer:
 * AES_CM_128_HMAC_SHA1_80/_32, AES_256_CM_HMAC_SHA1_80/_32 (RFC 6188) and AEAD_AES_128_GCM /
 * AEAD_AES_256_GCM (RFC 7714). No maintained pure-JS SRTP library exists for Node (the native ones
 * need libsrtp, which this project cannot build offline), and the transform is small: AES in
 * counter or GCM mode from Node's crypto, HMAC-SHA1, the key derivation and the rollover counter.
 * One context protects or unprotects one direction of one leg; key material never leaves it.
 */
export type SrtpSuite =
  | 'AES_CM_128_HMAC_SHA1_80'
  | 'AES_CM_128_HMAC_SHA1_32'
  | 'AES_256_CM_HMAC_SHA1_80'
  | 'AES_256_CM_HMAC_SHA1_32'
  | 'AEAD_AES_128_GCM'
  | 'AEAD_AES_256_GCM';

interface SuiteParams {
  /** Master (and session) encryption key length in bytes. */
  keyBytes: 16 | 32;
  /** Master (and session) salt length: 14 for counter mode, 12 for GCM. */
  saltBytes: 14 | 12;
  /** SRTP authentication tag: the truncated HMAC-SHA1, or GCM's 16-byte tag. */
  rtpTagBytes: number;
  gcm: boolean;
}

const SUITES: Record<SrtpSuite, SuiteParams> = {
  AES_CM_128_HMAC_SHA1_80: { keyBytes: 16, saltBytes: 14, rtpTagBytes: 10, gcm: false },
  AES_CM_128_HMAC_SHA1_32: { keyBytes: 16, saltBytes: 14, rtpTagBytes: 4, gcm: false },
  AES_256_CM_HMAC_SHA1_80: { keyBytes: 32, saltBytes: 14, rtpTagBytes: 10, gcm: false },
  AES_256_CM_HMAC_SHA1_32: { keyBytes: 32, saltBytes: 14, rtpTagBytes: 4, gcm: false },
  AEAD_AES_128_GCM: { keyBytes: 16, saltBytes: 12, rtpTagBytes: 16, gcm: true },
  AEAD_AES_256_GCM: { keyBytes: 32, saltBytes: 12, rtpTagBytes: 16, gcm: true },
};

/** Every suite voiceguard speaks, in the order it offers them by default (most widely deployed first). */
export const SRTP_SUITES: readonly SrtpSuite[] = [
  'AES_CM_128_HMAC_SHA1_80',
  'AEAD_AES_128_GCM',
  'AEAD_AES_256_GCM',
  'AES_256_CM_HMAC_SHA1_80',
  'AES_CM_128_HMAC_SHA1_32',
  'AES_256_CM_HMAC_SHA1_32',
];

function isSrtpSuite(name: string): name is SrtpSuite {
  return Object.hasOwn(SUITES, name);
}

/**
 * The SRTCP tag of the HMAC suites. RFC 5764 (4.1.2) and libsrtp, which most PBXes and SBCs use,
 * keep it at 80 bits for the _32 suites too (RFC 3711 7.5: RTCP carries no stateless playout that
 * would justify a short tag). libre (baresip) sends 32 bits there; a context accepts both and its
 * sending side can follow what the peer sends (see `rtcpTagBytes`).
 */
const SRTCP_HMAC_TAG_BYTES = 10;
const GCM_TAG_BYTES = 16;

export interface SrtpKey {
  suite: SrtpSuite;
  /** The master key followed by the master salt (the SDES inline key): 30, 46, 28 or 44 bytes. */
  keySalt: Buffer;
}

export class SrtpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SrtpError';
  }
}

/** Bytes of an SDES inline key (master key and salt) for a suite. */
export function srtpKeySaltBytes(suite: SrtpSuite): number {
  return SUITES[suite].keyBytes + SUITES[suite].saltBytes;
}

/** Throws an SrtpError unless `keySalt` is a master key and salt for `suite`. */
export function assertSrtpKey(suite: string, keySalt: Uint8Array): asserts suite is SrtpSuite {
  if (!isSrtpSuite(suite)) throw new SrtpError(`unsupported SRTP suite ${suite}`);
  if (keySalt.length !== srtpKeySaltBytes(suite))
    throw new SrtpError(`SRTP master key and salt for ${suite} must be ${srtpKeySaltBytes(suite)} bytes`);
}

/** A fresh master key and salt for our side of a leg. */
export function newSrtpKey(suite: SrtpSuite): SrtpKey {
  return { suite, keySalt: randomBytes(srtpKeySaltBytes(suite)) };
}

/** The key parameters of our a=crypto line: `inline:<base64 of master key and salt>`. */
export function inlineKey(keySalt: Uint8Array): string {
  return `inline:${Buffer.from(keySalt).toString('base64')}`;
}

/** `inline:<base64>` of an a=crypto line for `suite` (lifetime and MKI parameters are refused). */
export function parseInlineKey(keyParams: string, suite: SrtpSuite): Buffer {
  const m = /^inline:([A-Za-z0-9+/=]+)$/.exec(keyParams.trim());
  if (!m)
    throw new SrtpError(
      `unsupported SDES key parameters (lifetime/MKI or not inline): ${keyParams.slice(0, 40)}`,
    );
  const keySalt = Buffer.from(m[1]!, 'base64');
  const expected = srtpKeySaltBytes(suite);
  if (keySalt.length !== expected)
    throw new SrtpError(`SDES inline key for ${suite} is ${keySalt.length} bytes, expected ${expected}`);
  return keySalt;
}

function aesCm(key: Buffer, iv: Buffer, data: Buffer): Buffer {
  const c = createCipheriv(key.length === 32 ? 'aes-256-ctr' : 'aes-128-ctr', key, iv);
  return Buffer.concat([c.update(data), c.final()]);
}

/**
 * RFC 3711 4.3.1 with key_derivation_rate 0: AES-CM (AES-256 for a 32-byte master key, RFC 6188)
 * of zeros under IV (master_salt XOR label). A GCM suite's 12-byte salt is padded with zeros on
 * the right, as RFC 7714 section 11 and libsrtp do.
 */
export function deriveKey(master: Buffer, salt: Buffer, label: number, length: number): Buffer {
  const iv = Buffer.alloc(16);
  salt.copy(iv, 0, 0, 14);
  iv[7]! ^= label;
  return aesCm(master, iv, Buffer.alloc(length));
}

interface SessionKeys {
  enc: Buffer;
  /** The HMAC-SHA1 key (counter-mode suites; GCM authenticates with enc). */
  auth: Buffer;
  salt: Buffer;
}

function sessionKeys(key: SrtpKey, rtcp: boolean): SessionKeys {
  const p = SUITES[key.suite];
  const master = key.keySalt.subarray(0, p.keyBytes);
  const salt = key.keySalt.subarray(p.keyBytes, p.keyBytes + p.saltBytes);
  const base = rtcp ? 3 : 0;
  return {
    enc: deriveKey(master, salt, base, p.keyBytes),
    auth: p.gcm ? Buffer.alloc(0) : deriveKey(master, salt, base + 1, 20),
    salt: deriveKey(master, salt, base + 2, p.saltBytes),
  };
}

/** Counter mode: IV = (k_s * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16). */
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

/**
 * GCM (RFC 7714 8.1 and 9.1): a 12-byte IV, (00 00 || SSRC || high || low) XOR salt, where high
 * and low are the rollover counter and sequence number for SRTP, and 00 00 and the 31-bit index
 * for SRTCP.
 */
function gcmIv(salt: Buffer, ssrc: number, high: number, low: number, lowBytes: 2 | 4): Buffer {
  const iv = Buffer.alloc(12);
  iv.writeUInt32BE(ssrc >>> 0, 2);
  if (lowBytes === 2) {
    iv.writeUInt32BE(high >>> 0, 6);
    iv.writeUInt16BE(low & 0xffff, 10);
  } else iv.writeUInt32BE(low >>> 0, 8);
  for (let i = 0; i < 12; i++) iv[i]! ^= salt[i]!;
  return iv;
}

function gcmSeal(key: Buffer, iv: Buffer, aad: Buffer, plain: Buffer): Buffer {
  const c = createCipheriv(key.length === 32 ? 'aes-256-gcm' : 'aes-128-gcm', key, iv);
  c.setAAD(aad);
  return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
}

/** GCM decryption of ciphertext||tag, or null when the tag does not verify. */
function gcmOpen(key: Buffer, iv: Buffer, aad: Buffer, sealed: Buffer): Buffer | null {
  if (sealed.length < GCM_TAG_BYTES) return null;
  const d = createDecipheriv(key.length === 32 ? 'aes-256-gcm' : 'aes-128-gcm', key, iv);
  d.setAAD(aad);
  d.setAuthTag(sealed.subarray(sealed.length - GCM_TAG_BYTES));
  try {
    return Buffer.concat([d.update(sealed.subarray(0, sealed.length - GCM_TAG_BYTES)), d.final()]);
  } catch {
    return null;
  }
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
  private readonly params: SuiteParams;
  private readonly states = new Map<number, SsrcState>();
  private srtcpIndex = 0;
  /**
   * The SRTCP tag this context writes (HMAC suites): 80 bits by default. On a receiving context,
   * the length of the last SRTCP tag that verified, so the sending side toward the same peer can
   * answer in kind (a _32 peer built on libre sends 32-bit SRTCP tags).
   */
  rtcpTagBytes = SRTCP_HMAC_TAG_BYTES;

  /**
   * A context on given session keys, skipping the key derivation: for the known-answer tests of
   * RFC 7714, whose vectors state session keys (for GCM: encryption key and salt).
   */
  static withSessionKeys(
    suite: SrtpSuite,
    rtp: { enc: Buffer; salt: Buffer },
    rtcp: { enc: Buffer; salt: Buffer } = rtp,
  ): SrtpContext {
    const ctx = new SrtpContext(newSrtpKey(suite));
    Object.assign(ctx.rtp, rtp);
    Object.assign(ctx.rtcp, rtcp);
    return ctx;
  }

  constructor(readonly key: SrtpKey) {
    assertSrtpKey(key.suite, key.keySalt);
    this.params = SUITES[key.suite];
    this.rtp = sessionKeys(key, false);
    this.rtcp = sessionKeys(key, true);
  }

  private hmac(keys: SessionKeys, tagBytes: number, ...parts: Buffer[]): Buffer {
    const h = createHmac('sha1', keys.auth);
    for (const p of parts) h.update(p);
    return h.digest().subarray(0, tagBytes);
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
    const header = p.subarray(0, hl);
    if (this.params.gcm) {
      const iv = gcmIv(this.rtp.salt, ssrc, st.roc, seq, 2);
      return Buffer.concat([header, gcmSeal(this.rtp.enc, iv, header, p.subarray(hl))]);
    }
    const index = (BigInt(st.roc) << 16n) | BigInt(seq);
    const tag = this.params.rtpTagBytes;
    const out = Buffer.allocUnsafe(p.length + tag);
    header.copy(out, 0);
    aesCm(this.rtp.enc, packetIv(this.rtp.salt, ssrc, index), p.subarray(hl)).copy(out, hl);
    const roc = Buffer.allocUnsafe(4);
    roc.writeUInt32BE(st.roc, 0);
    this.hmac(this.rtp, tag, out.subarray(0, p.length), roc).copy(out, p.length);
    return out;
  }

  /** SRTP → RTP, or null when the packet fails authentication or is a replay. */
  unprotectRtp(p: Buffer): Buffer | null {
    const hl = rtpHeaderLength(p);
    const tagBytes = this.params.rtpTagBytes;
    if (hl < 0 || p.length < hl + tagBytes) return null;
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
    const header = p.subarray(0, hl);
    let payload: Buffer | null;
    if (this.params.gcm) {
      payload = gcmOpen(this.rtp.enc, gcmIv(this.rtp.salt, ssrc, roc, seq, 2), header, p.subarray(hl));
    } else {
      const body = p.subarray(0, p.length - tagBytes);
      const rocBuf = Buffer.allocUnsafe(4);
      rocBuf.writeUInt32BE(roc, 0);
      const tag = this.hmac(this.rtp, tagBytes, body, rocBuf);
      payload = timingSafeEqual(tag, p.subarray(p.length - tagBytes))
        ? aesCm(this.rtp.enc, packetIv(this.rtp.salt, ssrc, index), body.subarray(hl))
        : null;
    }
    if (!payload) return null;
    if (!st) this.states.set(ssrc, { roc, seq, top: index, seen: 1n });
    else if (index > st.top) {
      const ahead = index - st.top;
      st.seen = ahead >= REPLAY_WINDOW ? 1n : ((st.seen << ahead) | 1n) & ((1n << REPLAY_WINDOW) - 1n);
      st.top = index;
      st.roc = roc;
      st.seq = seq;
    } else st.seen |= 1n << (st.top - index);
    return Buffer.concat([header, payload]);
  }

  /**
   * RTCP → SRTCP: the part after the first 8 bytes is encrypted, the E flag and index appended;
   * the HMAC tag follows the index, GCM's tag precedes it (RFC 7714 9.2).
   */
  protectRtcp(p: Buffer): Buffer {
    if (p.length < 8) throw new SrtpError('RTCP packet shorter than 8 bytes');
    const index = this.srtcpIndex;
    this.srtcpIndex = (this.srtcpIndex + 1) & 0x7fffffff;
    const ssrc = p.readUInt32BE(4);
    const eIndex = Buffer.allocUnsafe(4);
    eIndex.writeUInt32BE((0x80000000 | index) >>> 0, 0);
    const head = p.subarray(0, 8);
    if (this.params.gcm) {
      const iv = gcmIv(this.rtcp.salt, ssrc, 0, index, 4);
      return Buffer.concat([
        head,
        gcmSeal(this.rtcp.enc, iv, Buffer.concat([head, eIndex]), p.subarray(8)),
        eIndex,
      ]);
    }
    const enc = aesCm(this.rtcp.enc, packetIv(this.rtcp.salt, ssrc, BigInt(index)), p.subarray(8));
    const body = Buffer.concat([head, enc, eIndex]);
    return Buffer.concat([body, this.hmac(this.rtcp, this.rtcpTagBytes, body)]);
  }

  /** SRTCP → RTCP, or null when it fails authentication. */
  unprotectRtcp(p: Buffer): Buffer | null {
    if (this.params.gcm) return this.unprotectRtcpGcm(p);
    // The 80-bit tag first; a _32 suite's peer may send a 32-bit one instead (see rtcpTagBytes).
    const lengths =
      this.params.rtpTagBytes < SRTCP_HMAC_TAG_BYTES
        ? [SRTCP_HMAC_TAG_BYTES, this.params.rtpTagBytes]
        : [SRTCP_HMAC_TAG_BYTES];
    for (const tagBytes of lengths) {
      if (p.length < 8 + 4 + tagBytes) continue;
      const body = p.subarray(0, p.length - tagBytes);
      if (!timingSafeEqual(this.hmac(this.rtcp, tagBytes, body), p.subarray(p.length - tagBytes))) continue;
      this.rtcpTagBytes = tagBytes;
      const eIndex = body.readUInt32BE(body.length - 4);
      const payload = body.subarray(8, body.length - 4);
      if (!(eIndex & 0x80000000)) return Buffer.concat([body.subarray(0, 8), payload]);
      const ssrc = p.readUInt32BE(4);
      const plain = aesCm(
        this.rtcp.enc,
        packetIv(this.rtcp.salt, ssrc, BigInt(eIndex & 0x7fffffff)),
        payload,
      );
      return Buffer.concat([body.subarray(0, 8), plain]);
    }
    return null;
  }

  /** RFC 7714 9.2-9.3: header(8) || ciphertext || tag || E+index; with E clear, all of it is AAD. */
  private unprotectRtcpGcm(p: Buffer): Buffer | null {
    if (p.length < 8 + GCM_TAG_BYTES + 4) return null;
    const eIndexBuf = p.subarray(p.length - 4);
    const eIndex = eIndexBuf.readUInt32BE(0);
    const ssrc = p.readUInt32BE(4);
    const iv = gcmIv(this.rtcp.salt, ssrc, 0, eIndex & 0x7fffffff, 4);
    const sealed = p.subarray(8, p.length - 4);
    if (eIndex & 0x80000000) {
      const plain = gcmOpen(this.rtcp.enc, iv, Buffer.concat([p.subarray(0, 8), eIndexBuf]), sealed);
      return plain ? Buffer.concat([p.subarray(0, 8), plain]) : null;
    }
    const clear = p.subarray(0, p.length - 4 - GCM_TAG_BYTES);
    const tagOnly = p.subarray(p.length - 4 - GCM_TAG_BYTES, p.length - 4);
    return gcmOpen(this.rtcp.enc, iv, Buffer.concat([clear, eIndexBuf]), tagOnly) ? Buffer.from(clear) : null;
  }
}
