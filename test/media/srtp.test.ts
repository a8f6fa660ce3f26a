import { describe, expect, it } from 'vitest';
import {
  deriveKey,
  newSrtpKey,
  parseInlineKey,
  SrtpContext,
  SRTP_SUITES,
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

  it('reads only plain inline SDES keys of the length its suite needs', () => {
    const key = newSrtpKey('AES_CM_128_HMAC_SHA1_80').keySalt;
    expect(parseInlineKey(`inline:${key.toString('base64')}`, 'AES_CM_128_HMAC_SHA1_80')).toEqual(key);
    expect(() =>
      parseInlineKey(`inline:${key.toString('base64')}|2^20|1:4`, 'AES_CM_128_HMAC_SHA1_80'),
    ).toThrow(SrtpError);
    expect(() => parseInlineKey('inline:AAAA', 'AES_CM_128_HMAC_SHA1_80')).toThrow(/3 bytes, expected 30/);
    // A 30-byte key is too short for AES-256 (32 + 14) and too long for AES-128-GCM (16 + 12).
    expect(() => parseInlineKey(`inline:${key.toString('base64')}`, 'AES_256_CM_HMAC_SHA1_80')).toThrow(
      /expected 46/,
    );
    expect(() => parseInlineKey(`inline:${key.toString('base64')}`, 'AEAD_AES_128_GCM')).toThrow(
      /expected 28/,
    );
    for (const [suite, bytes] of [
      ['AES_256_CM_HMAC_SHA1_32', 46],
      ['AEAD_AES_128_GCM', 28],
      ['AEAD_AES_256_GCM', 44],
    ] as const)
      expect(newSrtpKey(suite).keySalt.length, suite).toBe(bytes);
  });

  it("SRTCP of a _32 suite: writes the 80-bit tag (RFC 5764, libsrtp), reads libre's 32-bit one too", () => {
    const key = newSrtpKey('AES_CM_128_HMAC_SHA1_32');
    const tx = new SrtpContext(key);
    const rx = new SrtpContext({ ...key, keySalt: Buffer.from(key.keySalt) });
    const rr = Buffer.from('81c90007' + '11223344' + '55667788' + '00000000'.repeat(5), 'hex');
    const sealed = tx.protectRtcp(rr);
    expect(sealed.length).toBe(rr.length + 4 + 10);
    expect(rx.unprotectRtcp(sealed)).toEqual(rr);
    expect(rx.rtcpTagBytes).toBe(10);
    // A libre peer: the same transform with a 4-byte tag. The receiver reads it and says so.
    const libre = new SrtpContext({ ...key, keySalt: Buffer.from(key.keySalt) });
    libre.rtcpTagBytes = 4;
    const short = libre.protectRtcp(rr);
    expect(short.length).toBe(rr.length + 4 + 4);
    expect(rx.unprotectRtcp(short)).toEqual(rr);
    expect(rx.rtcpTagBytes).toBe(4);
    const bad = Buffer.from(short);
    bad[bad.length - 1] = bad[bad.length - 1]! ^ 1;
    expect(rx.unprotectRtcp(bad)).toBeNull();
    // An _80 suite never accepts a short tag.
    const k80 = newSrtpKey('AES_CM_128_HMAC_SHA1_80');
    const tx80 = new SrtpContext(k80);
    tx80.rtcpTagBytes = 4;
    expect(
      new SrtpContext({ ...k80, keySalt: Buffer.from(k80.keySalt) }).unprotectRtcp(tx80.protectRtcp(rr)),
    ).toBeNull();
  });
});

/** libsrtp's srtp_driver known answers: RTP sequence 0x1234, SSRC 0xcafebabe, 16 bytes of 0xab. */
const DRIVER_RTP = hex('800f1234decafbadcafebabe' + 'ab'.repeat(16));

describe('SRTP known answers for every suite', () => {
  it('AES_CM_128_HMAC_SHA1_80: the RFC 3711 B.3 master key protects as libsrtp does', () => {
    const key = hex('e1f97a0d3e018be0d64fa32c06de4139' + '0ec675ad498afeebb6960b3aabe6');
    const sealed = hex('800f1234decafbadcafebabe4e55dc4ce79978d88ca4d215949d2402b78d6acc99ea179b8dbb');
    expect(
      new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_80', keySalt: key }).protectRtp(DRIVER_RTP),
    ).toEqual(sealed);
    expect(
      new SrtpContext({ suite: 'AES_CM_128_HMAC_SHA1_80', keySalt: Buffer.from(key) }).unprotectRtp(sealed),
    ).toEqual(DRIVER_RTP);
  });

  it("AES_256_CM (RFC 6188): the 7.2 key derivation, and libsrtp's packet under that key", () => {
    const master = hex('f0f04914b513f2763a1b1fa130f10e2998f6f6e43e4309d1e622a0e332b9f1b6');
    const salt = hex('3b04803de51ee7c96423ab5b78d2');
    expect(deriveKey(master, salt, 0, 32).toString('hex')).toBe(
      '5ba1064e30ec51613cad926c5a28ef731ec7fb397f70a960653caf06554cd8c4',
    );
    expect(deriveKey(master, salt, 2, 14).toString('hex')).toBe('fa31791685ca444a9e07c6c64e93');
    expect(deriveKey(master, salt, 1, 20).toString('hex')).toBe('fd9c32d39ed5fbb5a9dc96b30818454d1313dc05');
    const keySalt = Buffer.concat([master, salt]);
    const sealed = hex(
      '800f1234decafbadcafebabe' + 'f1d9de17ff251ff1aa007774' + 'b0b4b40da08d9d9a5b3a55d8873b',
    );
    expect(new SrtpContext({ suite: 'AES_256_CM_HMAC_SHA1_80', keySalt }).protectRtp(DRIVER_RTP)).toEqual(
      sealed,
    );
    expect(
      new SrtpContext({ suite: 'AES_256_CM_HMAC_SHA1_80', keySalt: Buffer.from(keySalt) }).unprotectRtp(
        sealed,
      ),
    ).toEqual(DRIVER_RTP);
    // The _32 form is the same packet with the tag cut to 4 bytes.
    expect(new SrtpContext({ suite: 'AES_256_CM_HMAC_SHA1_32', keySalt }).protectRtp(DRIVER_RTP)).toEqual(
      sealed.subarray(0, sealed.length - 6),
    );
  });

  // RFC 7714 sections 16 and 17 state session keys: key 00 01 02 ..., salt "Quid pro quo".
  const GCM_SALT = hex('517569642070726f2071756f');
  const GCM_KEY = {
    AEAD_AES_128_GCM: hex('000102030405060708090a0b0c0d0e0f'),
    AEAD_AES_256_GCM: hex('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f'),
  };
  const gcm = (suite: keyof typeof GCM_KEY) =>
    SrtpContext.withSessionKeys(suite, { enc: GCM_KEY[suite], salt: GCM_SALT });
  const GCM_RTP = hex(
    '8040f17b8041f8d35501a0b2' +
      '47616c6c696120657374206f6d6e697320646976697361' +
      '20696e207061727465732074726573',
  );
  const GCM_RTCP = hex(
    '81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61' + 'deadbeef'.repeat(5),
  );

  it.each([
    [
      'AEAD_AES_128_GCM',
      '8040f17b8041f8d35501a0b2f24de3a3fb34de6cacba861c9d7e4bcabe633bd50d294e6f42a5f47a51c7d19b36de3adf8833899d7f27beb16a9152cf765ee4390cce',
      '81c8000d4d61727363e94885dcdab67ca727d7662f6b7e997ff5c0f76c06f32dc676a5f1730d6fda4ce09b4686303ded0bb9275bc84aa45896cf4d2fc5abf87245d9eade800005d4',
    ],
    [
      'AEAD_AES_256_GCM',
      '8040f17b8041f8d35501a0b232b1de78a822fe12ef9f78fa332e33aab18012389a58e2f3b50b2a0276ffae0f1ba63799b87b7aa3db36dfffd6b0f9bb7878d7a76c13',
      '81c8000d4d617273d50ae4d1f5ce5d304ba297e47d470c282c3ece5dbffe0a50a2eaa5c1110555be8415f658c61de0476f1b6fad1d1eb30c4446839f57ff6f6cb26ac3be800005d4',
    ],
  ] as const)('%s: the RFC 7714 SRTP (16) and SRTCP (17) packets', (suite, srtpHex, srtcpHex) => {
    expect(gcm(suite).protectRtp(GCM_RTP).toString('hex')).toBe(srtpHex);
    expect(gcm(suite).unprotectRtp(hex(srtpHex))).toEqual(GCM_RTP);
    const tampered = hex(srtpHex);
    tampered[20] = tampered[20]! ^ 1;
    expect(gcm(suite).unprotectRtp(tampered)).toBeNull();
    // SRTCP index 0x5d4: the sender counts from 0.
    const tx = gcm(suite);
    for (let i = 0; i < 0x5d4; i++) tx.protectRtcp(GCM_RTCP);
    expect(tx.protectRtcp(GCM_RTCP).toString('hex')).toBe(srtcpHex);
    expect(gcm(suite).unprotectRtcp(hex(srtcpHex))).toEqual(GCM_RTCP);
    const badIndex = hex(srtcpHex);
    badIndex[badIndex.length - 1] = badIndex[badIndex.length - 1]! ^ 1;
    expect(gcm(suite).unprotectRtcp(badIndex)).toBeNull();
  });

  it('AEAD_AES_128_GCM: SRTCP sent authenticated but not encrypted (RFC 7714 17.3) is read', () => {
    const tagged = hex(
      '81c8000d4d6172734e5450314e545032525450200000042a0000e9304c756e61deadbeefdeadbeefdeadbeefdeadbeef' +
        'deadbeef841dd9683dd78ec92ae58790125f62b3000005d4',
    );
    expect(gcm('AEAD_AES_128_GCM').unprotectRtcp(tagged)).toEqual(GCM_RTCP);
  });

  it('every suite: a fresh key protects and unprotects RTP and RTCP, and refuses another key', () => {
    for (const suite of SRTP_SUITES) {
      const { tx, rx } = pair(suite);
      const plain = rtp(9);
      expect(rx.unprotectRtp(tx.protectRtp(plain)), suite).toEqual(plain);
      const rr = Buffer.from('81c90007' + '11223344' + '55667788' + '00000000'.repeat(5), 'hex');
      expect(rx.unprotectRtcp(tx.protectRtcp(rr)), suite).toEqual(rr);
      expect(new SrtpContext(newSrtpKey(suite)).unprotectRtp(tx.protectRtp(rtp(10))), suite).toBeNull();
    }
  });
});
