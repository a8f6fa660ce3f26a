import { describe, expect, it } from 'vitest';
import { readSdp, rewriteSdp, SdpError } from '../../src/sip/sdp-rewrite.js';

const OFFER = [
  'v=0',
  'o=carrier 1 1 IN IP4 198.51.100.7',
  's=-',
  'c=IN IP4 198.51.100.7',
  't=0 0',
  'm=audio 40000 RTP/AVP 9 111 0 8 101',
  'a=rtpmap:9 G722/8000',
  'a=rtpmap:111 opus/48000/2',
  'a=fmtp:111 useinbandfec=1',
  'a=rtpmap:0 PCMU/8000',
  'a=rtpmap:8 PCMA/8000',
  'a=rtpmap:101 telephone-event/8000',
  'a=fmtp:101 0-16',
  'a=ptime:20',
  'a=sendonly',
  '',
].join('\r\n');

describe('rewriteSdp', () => {
  it('points c= and m= at the gateway and keeps only G.711 plus telephone-event', () => {
    const out = rewriteSdp(OFFER, { address: '203.0.113.1', rtpPort: 20000 }, ['PCMU', 'PCMA']);
    expect(out.sdp).toContain('c=IN IP4 203.0.113.1');
    expect(out.sdp).toContain('m=audio 20000 RTP/AVP 0 8 101');
    expect(out.sdp).not.toMatch(/G722|opus|useinbandfec/);
    expect(out.sdp).toContain('a=fmtp:101 0-16');
    expect(out.sdp).toContain('a=ptime:20');
    expect(out.sdp).toContain('a=sendonly');
    expect(out.media).toEqual({
      remote: { address: '198.51.100.7', rtpPort: 40000, rtcpPort: undefined },
      payloadMap: { 0: 'pcmu', 8: 'pcma', 101: 'telephone-event' },
      direction: 'sendonly',
      codec: 'pcmu',
      decodable: true,
      srtp: 'none',
      profile: 'RTP/AVP',
      crypto: [],
    });
  });

  it('honours the configured codec order restriction (PCMA only)', () => {
    const out = rewriteSdp(OFFER, { address: '203.0.113.1', rtpPort: 20002 }, ['PCMA']);
    expect(out.sdp).toContain('m=audio 20002 RTP/AVP 8 101');
    expect(out.media.codec).toBe('pcma');
  });

  it('refuses an offer without a decodable codec', () => {
    const g722only = OFFER.replace('m=audio 40000 RTP/AVP 9 111 0 8 101', 'm=audio 40000 RTP/AVP 9 101');
    expect(() => rewriteSdp(g722only, { address: '203.0.113.1', rtpPort: 20000 }, ['PCMU', 'PCMA'])).toThrow(
      SdpError,
    );
  });

  describe("undecodable: 'keep' (media.undecodable: relay)", () => {
    const local = { address: '203.0.113.1', rtpPort: 20000 };
    const only = (m: string) => OFFER.replace('m=audio 40000 RTP/AVP 9 111 0 8 101', m);

    it('an offer with none of the codecs keeps all of its own, marked undecodable; addresses still rewritten', () => {
      const out = rewriteSdp(only('m=audio 40000 RTP/AVP 9 111 101'), local, ['PCMU', 'PCMA'], {}, 'keep');
      expect(out.sdp).toContain('m=audio 20000 RTP/AVP 9 111 101');
      expect(out.sdp).toContain('c=IN IP4 203.0.113.1');
      expect(out.sdp).toContain('a=fmtp:111 useinbandfec=1');
      expect(out.media).toMatchObject({
        payloadMap: { 9: 'g722', 111: 'opus', 101: 'telephone-event' },
        codec: 'g722',
        decodable: false,
      });
      const g729 = only('m=audio 40000 RTP/AVP 18 101').replace('a=rtpmap:9 G722/8000', '');
      expect(rewriteSdp(g729, local, ['PCMU'], {}, 'keep').media).toMatchObject({
        payloadMap: { 18: 'g729', 101: 'telephone-event' },
        codec: 'g729',
        decodable: false,
      });
    });

    it('an offer with a decodable codec is filtered as before', () => {
      const out = rewriteSdp(OFFER, local, ['PCMU', 'PCMA'], {}, 'keep');
      expect(out.sdp).toContain('m=audio 20000 RTP/AVP 0 8 101');
      expect(out.media.decodable).toBe(true);
    });

    it('an offer with no audio codec at all (telephone-event only) is still refused', () => {
      expect(() => rewriteSdp(only('m=audio 40000 RTP/AVP 101'), local, ['PCMU'], {}, 'keep')).toThrow(
        /no acceptable audio codec offered \(TELEPHONE-EVENT\)/,
      );
    });
  });

  describe('fallback codecs (media.fallbackCodecs: G.729)', () => {
    const local = { address: '203.0.113.1', rtpPort: 20000 };
    const offer = (m: string, extra: string[] = []) =>
      OFFER.replace(
        'm=audio 40000 RTP/AVP 9 111 0 8 101',
        [m, 'a=rtpmap:18 G729/8000', ...extra].join('\r\n'),
      );

    it('an offer without G.711 keeps only its G.729 (and telephone-event), decodable', () => {
      const out = rewriteSdp(
        offer('m=audio 40000 RTP/AVP 9 18 111 101', ['a=fmtp:18 annexb=no']),
        local,
        ['PCMU', 'PCMA'],
        {},
        'keep',
        ['G729'],
      );
      expect(out.sdp).toContain('m=audio 20000 RTP/AVP 18 101');
      expect(out.sdp).toContain('a=fmtp:18 annexb=no');
      expect(out.sdp).not.toMatch(/G722|opus/);
      expect(out.media).toMatchObject({
        payloadMap: { 18: 'g729', 101: 'telephone-event' },
        codec: 'g729',
        decodable: true,
      });
      // With undecodable 'refuse' too: G.729 is not refused when it can be decoded.
      expect(
        rewriteSdp(offer('m=audio 40000 RTP/AVP 18 101'), local, ['PCMU'], {}, 'refuse', ['G729']).media
          .codec,
      ).toBe('g729');
    });

    it("G.711 wins over G.729 when both are offered, whatever the offer's order", () => {
      const out = rewriteSdp(offer('m=audio 40000 RTP/AVP 18 0 101'), local, ['PCMU', 'PCMA'], {}, 'keep', [
        'G729',
      ]);
      expect(out.sdp).toContain('m=audio 20000 RTP/AVP 0 101');
      expect(out.sdp).not.toContain('G729');
      expect(out.media.codec).toBe('pcmu');
    });

    it('without G.729 in the fallback list (or the offer), the undecodable rules apply as before', () => {
      expect(
        rewriteSdp(offer('m=audio 40000 RTP/AVP 18 101'), local, ['PCMU'], {}, 'keep', []).media,
      ).toMatchObject({
        codec: 'g729',
        decodable: false,
      });
      expect(() =>
        rewriteSdp(offer('m=audio 40000 RTP/AVP 9 101'), local, ['PCMU'], {}, 'refuse', ['G729']),
      ).toThrow(/no acceptable audio codec offered \(G722, TELEPHONE-EVENT\)/);
    });
  });

  it('reads direction and static payload types without rtpmap lines', () => {
    const sdp =
      'v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=inactive\r\n';
    expect(readSdp(sdp)).toMatchObject({ direction: 'inactive', payloadMap: { 0: 'pcmu' }, codec: 'pcmu' });
  });

  const CRYPTO = 'a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz';
  const withProfile = (profile: string, extra: string[]) =>
    OFFER.replace('m=audio 40000 RTP/AVP', `m=audio 40000 ${profile}`).replace(
      'a=sendonly\r\n',
      `a=sendonly\r\n${extra.join('\r\n')}\r\n`,
    );

  it('removes best-effort SRTP keys (a=crypto on RTP/AVP) so that both ends use plain RTP', () => {
    const sdp = withProfile('RTP/AVP', [CRYPTO]);
    expect(readSdp(sdp).srtp).toBe('declined');
    const out = rewriteSdp(sdp, { address: '203.0.113.1', rtpPort: 20000 }, ['PCMU', 'PCMA']);
    expect(out.media.srtp).toBe('declined');
    expect(out.sdp).toContain('m=audio 20000 RTP/AVP 0 8 101');
    expect(out.sdp).not.toContain('a=crypto');
    // Unanchored (no rewrite of addresses): the body goes end to end, keys and all.
    expect(rewriteSdp(sdp, null, null).sdp).toContain('a=crypto');
  });

  it('marks a secure profile as required and leaves its keys alone (the caller decides what to do)', () => {
    for (const profile of ['RTP/SAVP', 'RTP/SAVPF', 'UDP/TLS/RTP/SAVPF']) {
      const sdp = withProfile(
        profile,
        profile.startsWith('UDP/TLS') ? ['a=setup:actpass', 'a=fingerprint:sha-256 AB:CD'] : [CRYPTO],
      );
      const out = rewriteSdp(sdp, { address: '203.0.113.1', rtpPort: 20000 }, ['PCMU', 'PCMA']);
      expect(out.media.srtp, profile).toBe('required');
      expect(out.sdp).toContain(`m=audio 20000 ${profile} 0 8 101`);
      expect(out.sdp).toMatch(/a=crypto|a=fingerprint/);
    }
  });

  it('terminated SRTP: the offer goes on as plain RTP, the answer comes back with our key', () => {
    const offer = withProfile('RTP/SAVP', [
      CRYPTO,
      'a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz',
    ]);
    const seen = readSdp(offer);
    expect(seen.crypto.map((c) => [c.tag, c.suite])).toEqual([
      [1, 'AES_CM_128_HMAC_SHA1_80'],
      [2, 'AES_CM_128_HMAC_SHA1_32'],
    ]);
    const plain = rewriteSdp(offer, { address: '203.0.113.1', rtpPort: 20000 }, ['PCMU'], { plain: true });
    expect(plain.sdp).toContain('m=audio 20000 RTP/AVP 0 101');
    expect(plain.sdp).not.toContain('a=crypto');
    const answer = rewriteSdp(OFFER, { address: '203.0.113.1', rtpPort: 20002 }, ['PCMU'], {
      secure: {
        profile: 'RTP/SAVP',
        crypto: [{ tag: 1, suite: 'AES_CM_128_HMAC_SHA1_80', keyParams: 'inline:OURKEY' }],
      },
    });
    expect(answer.sdp).toContain('m=audio 20002 RTP/SAVP 0 101');
    expect(answer.sdp).toContain('a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:OURKEY');
    // An offer toward an SRTP PBX: one key per suite, in our order, replacing whatever came in.
    const offerOut = rewriteSdp(offer, { address: '203.0.113.1', rtpPort: 20004 }, ['PCMU'], {
      plain: true,
      secure: {
        profile: 'RTP/SAVP',
        crypto: [
          { tag: 1, suite: 'AEAD_AES_256_GCM', keyParams: 'inline:K1' },
          { tag: 2, suite: 'AES_CM_128_HMAC_SHA1_80', keyParams: 'inline:K2' },
        ],
      },
    });
    expect(readSdp(offerOut.sdp).crypto).toEqual([
      { tag: 1, suite: 'AEAD_AES_256_GCM', keyParams: 'inline:K1' },
      { tag: 2, suite: 'AES_CM_128_HMAC_SHA1_80', keyParams: 'inline:K2' },
    ]);
    expect(offerOut.sdp).toContain('m=audio 20004 RTP/SAVP 0 101');
  });

  it('throws a typed error for garbage', () => {
    expect(() => rewriteSdp('hello', null, null)).toThrow(SdpError);
  });
});
