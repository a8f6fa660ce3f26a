import { describe, expect, it } from 'vitest';
import {
  deriveKey,
  newSrtpKey,
  parseInlineKey,
  SrtpContext,
  SrtpError,
  type SrtpKey,
} from '../../src/media/srtp.js';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

function rtp(seq: number, ssrc = 0x11223344, payload = Buffer.alloc(160, 0x55)): Buffer {
  const p = Buffer.alloc(12 + payload.length);
  p[0] = 0x80;
  p[1] = 0;
  p.writeUInt16BE(seq, 2);
  p.writeUInt32BE(seq * 160, 4);
  p.writeUInt32BE(ssrc, 8);
  payload.copy(p, 12);
  return p;
}

function pair(suite: SrtpKey['suite'] = 'AES_CM_128_HMAC_SHA1_80') {
  const key = newSrtpKey(suite);
  return { tx: new SrtpContext(key), rx: new SrtpContext({ suite, keySalt: Buffer.from(key.keySalt) }) };
}

describe('SRTP (RFC 3711)', () => {
  it('derives the session keys of the RFC 3711 B.3 test vectors', () => {
    const master = hex('E1F97A0D3E018BE0D64FA32C06DE4139');
    const salt = hex('0EC675AD498AFEEBB6960B3AABE6');
    expect(deriveKey(master, salt, 0, 16).toString('hex').toUpperCase()).toBe(
      'C61E7A93744F39EE10734AFE3FF7A087',
    );
    expect(deriveKey(master, salt, 2, 14).toString('hex').toUpperCase()).toBe('30CBBC08863D8C85D49DB34A9AE1');
    expect(deriveKey(master, salt, 1, 20).toString('hex').toUpperCase()).toMatch(
      /^CEBE321F6FF7716B6FD4AB49AF256A15/,
    );
  });

  it('encrypts the payload, keeps the header, appends an 80- or 32-bit tag, and decrypts back', () => {
    for (const [suite, tag] of [
      ['AES_CM_128_HMAC_SHA1_80', 10],
      ['AES_CM_128_HMAC_SHA1_32', 4],
    ] as const) {
      const { tx, rx } = pair(suite);
      const plain = rtp(7);
      const sealed = tx.protectRtp(plain);
      expect(sealed.length).toBe(plain.length + tag);
      expect(sealed.subarray(0, 12)).toEqual(plain.subarray(0, 12));
      expect(sealed.subarray(12, plain.length)).not.toEqual(plain.subarray(12));
      expect(rx.unprotectRtp(sealed)).toEqual(plain);
    }
  });

  it('drops a tampered packet, a packet under another key, and a replay', () => {
    const { tx, rx } = pair();
    const sealed = tx.protectRtp(rtp(1));
    const bad = Buffer.from(sealed);
    bad[20] = bad[20]! ^ 1;
    expect(rx.unprotectRtp(bad)).toBeNull();
    expect(new SrtpContext(newSrtpKey('AES_CM_128_HMAC_SHA1_80')).unprotectRtp(sealed)).toBeNull();
    expect(rx.unprotectRtp(sealed)).not.toBeNull();
    expect(rx.unprotectRtp(sealed)).toBeNull();
  });

  it('follows the rollover counter across the 16-bit sequence wrap, and accepts reordering', () => {
    const { tx, rx } = pair();
    const seqs = [65530, 65531, 65533, 65532, 65534, 65535, 0, 2, 1, 3, 4];
    const sealed = [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3, 4].map((s) => ({
      s,
      p: tx.protectRtp(rtp(s)),
    }));
    const bySeq = new Map(sealed.map((x) => [x.s, x.p]));
    for (const s of seqs) expect(rx.unprotectRtp(bySeq.get(s)!), `seq ${s}`).toEqual(rtp(s));
    // Sequence 5 after the wrap is index 65536 + 5: a receiver that missed the wrap could not read it.
    expect(rx.unprotectRtp(tx.protectRtp(rtp(5)))).toEqual(rtp(5));
  });

  it('SRTCP: encrypts after the first 8 bytes with the E flag and index, and decrypts back', () => {
    const { tx, rx } = pair();
    const rr = Buffer.from('81c90007' + '11223344' + '55667788' + '00000000'.repeat(5), 'hex');
    const sealed = tx.protectRtcp(rr);
    expect(sealed.length).toBe(rr.length + 4 + 10);
    expect(sealed.readUInt32BE(rr.length) >>> 0).toBe(0x80000000);
    expect(rx.unprotectRtcp(sealed)).toEqual(rr);
    expect(tx.protectRtcp(rr).readUInt32BE(rr.length) >>> 0).toBe(0x80000001);
    const bad = Buffer.from(sealed);
    bad[9] = bad[9]! ^ 1;
    expect(rx.unprotectRtcp(bad)).toBeNull();
  });

  it('reads only plain 30-byte inline SDES keys', () => {
    const key = newSrtpKey('AES_CM_128_HMAC_SHA1_80').keySalt;
    expect(parseInlineKey(`inline:${key.toString('base64')}`)).toEqual(key);
    expect(() => parseInlineKey(`inline:${key.toString('base64')}|2^20|1:4`)).toThrow(SrtpError);
    expect(() => parseInlineKey('inline:AAAA')).toThrow(/3 bytes, expected 30/);
  });
});
