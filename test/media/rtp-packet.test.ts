import { describe, expect, it } from 'vitest';
import {
  isRtcp,
  parseRtp,
  serializeRtp,
  seqDelta,
  tsDelta,
  type RtpPacket,
} from '../../src/media/rtp-packet.js';

const base: RtpPacket = {
  version: 2,
  padding: false,
  extension: false,
  marker: true,
  payloadType: 0,
  sequenceNumber: 65535,
  timestamp: 0xfffffff0,
  ssrc: 0xdeadbeef,
  csrc: [1, 2],
  payload: Uint8Array.from([1, 2, 3, 4, 5]),
};

describe('rtp-packet', () => {
  it('round-trips header fields, CSRCs, extension and padding', () => {
    const p: RtpPacket = {
      ...base,
      extension: true,
      headerExtension: { profile: 0xbede, data: Uint8Array.from([9, 9, 9, 9]) },
      padding: true,
      paddingLength: 3,
    };
    const q = parseRtp(serializeRtp(p))!;
    expect(q).not.toBeNull();
    expect(q.marker).toBe(true);
    expect(q.sequenceNumber).toBe(65535);
    expect(q.timestamp).toBe(0xfffffff0);
    expect(q.ssrc).toBe(0xdeadbeef);
    expect(q.csrc).toEqual([1, 2]);
    expect(q.headerExtension!.profile).toBe(0xbede);
    expect(Array.from(q.headerExtension!.data)).toEqual([9, 9, 9, 9]);
    expect(Array.from(q.payload)).toEqual([1, 2, 3, 4, 5]);
  });
  it('rejects short, wrong-version and overflowing packets', () => {
    const good = serializeRtp(base);
    expect(parseRtp(good.subarray(0, 11))).toBeNull();
    const v1 = Buffer.from(good);
    v1[0] = (v1[0] & 0x3f) | 0x40;
    expect(parseRtp(v1)).toBeNull();
    const cc = Buffer.from(good.subarray(0, 14));
    cc[0] = 0x8f;
    expect(parseRtp(cc)).toBeNull();
    const pad = Buffer.from(good);
    pad[0] |= 0x20;
    pad[pad.length - 1] = 200;
    expect(parseRtp(pad)).toBeNull();
    const ext = Buffer.from(good);
    ext[0] |= 0x10;
    expect(parseRtp(ext.subarray(0, 22))).toBeNull();
  });
  it('demultiplexes RTCP (RFC 5761)', () => {
    const rr = Uint8Array.from([0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0]);
    expect(isRtcp(rr)).toBe(true);
    expect(parseRtp(rr)).toBeNull();
    expect(isRtcp(serializeRtp(base))).toBe(false);
  });
  it('computes wraparound deltas', () => {
    expect(seqDelta(65535, 0)).toBe(1);
    expect(seqDelta(0, 65535)).toBe(-1);
    expect(seqDelta(100, 200)).toBe(100);
    expect(tsDelta(0xffffff00, 0x100)).toBe(0x200);
    expect(tsDelta(0x100, 0xffffff00)).toBe(-0x200);
  });
  it('never throws on random bytes', () => {
    let seed = 12345;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let k = 0; k < 20000; k++) {
      const b = Uint8Array.from({ length: rnd() % 64 }, rnd);
      if (k % 2) b[0] = 0x80 | (b[0] & 0x3f);
      expect(() => parseRtp(b)).not.toThrow();
    }
  });
});
