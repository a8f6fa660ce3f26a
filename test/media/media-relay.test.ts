import dgram from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigSchema, type Config } from '../../src/config/schema.js';
import { silentLogger } from '../../src/log.js';
import {
  createMediaRelay,
  PortPoolExhaustedError,
  type MediaRelay,
  type MediaSession,
} from '../../src/media/media-relay.js';
import { parseRtp, seqDelta, tsDelta } from '../../src/media/rtp-packet.js';
import { SrtpError, type SrtpSuite } from '../../src/media/srtp.js';
import { decodeG711ToFloat, encodeG711FromFloat } from '../../src/audio/g711.js';
import { generateTone, goertzelPower } from '../../src/audio/tone.js';
import { loadG729 } from '../../src/audio/g729.js';
import { peer, rtp, sleep, waitFor, type Peer } from './udp-peer.js';

function mediaCfg(over: Partial<Config['media']> = {}): Config['media'] {
  return ConfigSchema.parse({
    media: { bindHost: '127.0.0.1', portMin: 43000, portMax: 43999, workers: 1, ...over },
  }).media;
}

const cleanup: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const c of cleanup.reverse()) await c();
  cleanup.length = 0;
});

async function setup(over: Partial<Config['media']> = {}, inThread = false) {
  const relay = await createMediaRelay(mediaCfg(over), silentLogger, { inThread });
  const s = await relay.allocate('call-1');
  const a = await peer();
  const b = await peer();
  cleanup.push(
    () => relay.close(),
    () => a.close(),
    () => b.close(),
  );
  s.setPayloadMap('a', { 0: 'pcmu', 101: 'telephone-event' });
  s.setPayloadMap('b', { 0: 'pcmu', 101: 'telephone-event' });
  return { relay, s, a, b };
}

const payload = (n = 160, v = 0x55) => new Uint8Array(n).fill(v);

/** Starts the session's fork into a list: `wait(n)` for n samples, `audio()` joins what came so far. */
async function collectFork(s: MediaSession) {
  const got: Float32Array[] = [];
  s.startFork((x) => got.push(x));
  await sleep(20); // the fork is switched on by a message
  const samples = () => got.reduce((k, x) => k + x.length, 0);
  return {
    wait: (n: number) => waitFor(() => samples() >= n, 3000, 'fork audio'),
    audio: () => {
      const out = new Float32Array(samples());
      let o = 0;
      for (const x of got) {
        out.set(x, o);
        o += x.length;
      }
      return out;
    },
  };
}

/** Packet indexes 0..n-1 in sending order: `lost` never sent, the 6th and 7th sent swapped. */
function lossyOrder(n: number, lost: number): number[] {
  const order: number[] = [];
  for (let i = 0; i < n; i++) if (i !== lost) order.push(i);
  [order[5], order[6]] = [order[6]!, order[5]!];
  return order;
}

/** Both peers talk once, so both legs are latched. */
async function latchBoth(s: MediaSession, a: Peer, b: Peer) {
  s.setRemote('a', { address: '127.0.0.1', rtpPort: a.port });
  s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
  await a.send(rtp(1, 160, 0xa, payload()), s.local('a').rtpPort);
  await waitFor(() => b.got.length === 1, 3000, 'b receives');
  await b.send(rtp(1, 160, 0xb, payload()), s.local('b').rtpPort);
  await waitFor(() => a.got.length === 1, 3000, 'a receives');
}

describe('MediaRelay (worker thread, real UDP)', () => {
  it('latches to the first source even when SDP names another port, and relays both ways', async () => {
    const { s, a, b } = await setup();
    const latched: unknown[] = [];
    s.on('latched', (e) => latched.push(e));
    // SDP says 9 (nobody there); the NAT'd peer really sends from a.port.
    s.setRemote('a', { address: '127.0.0.1', rtpPort: 9 });
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    await a.send(rtp(1, 160, 0xa, payload()), s.local('a').rtpPort);
    await waitFor(() => b.got.length === 1);
    expect(parseRtp(b.got[0])!.ssrc).toBe(0xa);
    await waitFor(() => latched.length === 1);
    expect(latched[0]).toMatchObject({ leg: 'a', kind: 'rtp', port: a.port, sdpPort: 9 });
    await b.send(rtp(7, 160, 0xb, payload()), s.local('b').rtpPort);
    await waitFor(() => a.got.length === 1, 3000, 'answer goes to the latched port, not the SDP port');
    expect(parseRtp(a.got[0])!.sequenceNumber).toBe(7);
  });

  it('a key of the wrong length for its suite is refused in the calling thread; the relay thread and its calls go on', async () => {
    const { s, a, b } = await setup();
    const key30 = new Uint8Array(30);
    expect(() =>
      s.setSrtp('a', {
        remote: { suite: 'AEAD_AES_256_GCM', keySalt: key30 },
        local: { suite: 'AEAD_AES_256_GCM', keySalt: key30 },
      }),
    ).toThrow(SrtpError);
    expect(() =>
      s.setSrtp('a', {
        remote: { suite: 'AES_CM_128_HMAC_SHA1_80', keySalt: key30 },
        local: { suite: 'F8_128_HMAC_SHA1_80' as SrtpSuite, keySalt: key30 },
      }),
    ).toThrow(/unsupported SRTP suite F8_128_HMAC_SHA1_80/);
    await latchBoth(s, a, b);
  });

  it('drops RTP injected from a wrong port after latching and relays RTCP on the +1 ports', async () => {
    const { relay, s, a, b } = await setup();
    await latchBoth(s, a, b);
    const intruder = await peer();
    cleanup.push(() => intruder.close());
    for (let i = 0; i < 5; i++)
      await intruder.send(rtp(100 + i, 999, 0xbad, payload(160, 0x11)), s.local('a').rtpPort);
    await a.send(rtp(2, 320, 0xa, payload()), s.local('a').rtpPort);
    await waitFor(() => b.got.length === 2);
    await sleep(100);
    expect(b.got.map((m) => parseRtp(m)!.ssrc)).toEqual([0xa, 0xa]);
    // RTCP: a receiver report from a's RTCP port reaches b's RTCP port (SDP rtpPort + 1).
    const aRtcp = await peer();
    const bRtcp = await peer(b.port + 1).catch(() => null);
    cleanup.push(() => aRtcp.close());
    if (bRtcp) cleanup.push(() => bRtcp.close());
    const rr = Buffer.from([0x80, 201, 0, 1, 0, 0, 0, 0xa]);
    await aRtcp.send(rr, s.local('a').rtcpPort);
    if (bRtcp) {
      await waitFor(() => bRtcp.got.length === 1, 3000, 'RTCP relayed');
      expect(bRtcp.got[0]).toEqual(rr);
    }
    await waitFor(() => relay.stats().packetsRelayed >= 2, 3000, 'stats');
  });

  it('reports an SSRC change from the latched source and keeps relaying', async () => {
    const { s, a, b } = await setup();
    await latchBoth(s, a, b);
    const changes: unknown[] = [];
    s.on('ssrc-change', (e) => changes.push(e));
    await a.send(rtp(500, 8000, 0xc0ffee, payload()), s.local('a').rtpPort);
    await waitFor(() => b.got.length === 2);
    await waitFor(() => changes.length === 1);
    expect(changes[0]).toEqual({ leg: 'a', oldSsrc: 0xa, newSsrc: 0xc0ffee });
  });

  it('stops forwarding while on hold and resumes after', async () => {
    const { s, a, b } = await setup();
    await latchBoth(s, a, b);
    s.setDirection('b', 'sendonly'); // the PBX put the caller on hold: nothing toward b
    await sleep(20);
    await a.send(rtp(2, 320, 0xa, payload()), s.local('a').rtpPort);
    await b.send(rtp(2, 320, 0xb, payload()), s.local('b').rtpPort);
    await waitFor(() => a.got.length === 2, 3000, 'b still sends toward a');
    await sleep(100);
    expect(b.got.length).toBe(1);
    s.setDirection('b', 'sendrecv');
    await sleep(20);
    await a.send(rtp(3, 480, 0xa, payload()), s.local('a').rtpPort);
    await waitFor(() => b.got.length === 2, 3000, 'resumed');
  });

  it('fires rtp-timeout when no packet flows in either direction', async () => {
    const { s, a, b } = await setup({ rtpTimeoutMs: 1000 });
    const t0 = Date.now();
    const fired = new Promise<number>((resolve) => s.on('rtp-timeout', () => resolve(Date.now() - t0)));
    s.setRemote('a', { address: '127.0.0.1', rtpPort: a.port });
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    const ms = await fired;
    expect(ms).toBeGreaterThanOrEqual(950);
    expect(ms).toBeLessThan(2000);
  });

  it('fork delivers the caller audio decoded, in order, with reordering, duplicates and loss handled', async () => {
    const { s, a, b } = await setup({ jitterBufferMs: 60 });
    const pcm = generateTone({ frequenciesHz: [440], durationMs: 1000, levelDbfs: -6, rampMs: 0 });
    const codes = encodeG711FromFloat('pcmu', pcm);
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    const fork = await collectFork(s);
    const n = 50;
    const lost = 17;
    const order = lossyOrder(n, lost);
    // More reordering, and two packets sent twice.
    [order[30], order[32]] = [order[32]!, order[30]!];
    order.splice(10, 0, 9);
    order.splice(40, 0, 38);
    const base = 65530; // crosses the 16-bit wrap
    for (const i of order) {
      await a.send(
        rtp((base + i) & 0xffff, i * 160, 0xa, codes.subarray(i * 160, (i + 1) * 160)),
        s.local('a').rtpPort,
      );
    }
    // Later packets push the last frames out of the jitter buffer.
    for (let i = n; i < n + 5; i++)
      await a.send(rtp((base + i) & 0xffff, i * 160, 0xa, payload(160, 0xff)), s.local('a').rtpPort);
    await waitFor(() => b.got.length === order.length + 5, 3000, 'all relayed');
    await fork.wait(n * 160);
    const out = fork.audio();
    expect(out.length).toBeGreaterThanOrEqual(n * 160);
    const ref = decodeG711ToFloat('pcmu', codes);
    for (let i = 0; i < n; i++) {
      if (i === lost) continue;
      expect(out.subarray(i * 160, (i + 1) * 160)).toEqual(ref.subarray(i * 160, (i + 1) * 160));
    }
    // The lost frame is concealed by repeating the previous one.
    expect(out.subarray(lost * 160, (lost + 1) * 160)).toEqual(ref.subarray((lost - 1) * 160, lost * 160));
    // And G.711 keeps the original within its precision.
    let maxErr = 0;
    for (let i = 0; i < 160 * 10; i++) maxErr = Math.max(maxErr, Math.abs(out[i] - pcm[i]));
    expect(maxErr).toBeLessThan(0.02);
  });

  it('a gap longer than one packet in an A-law stream is concealed as silence, not as A-law 0xFF', async () => {
    const { s, a, b } = await setup({ jitterBufferMs: 40 });
    s.setPayloadMap('a', { 8: 'pcma' });
    s.setPayloadMap('b', { 8: 'pcma' });
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    const fork = await collectFork(s);
    const tone = encodeG711FromFloat(
      'pcma',
      generateTone({ frequenciesHz: [440], durationMs: 20, levelDbfs: -12, rampMs: 0 }),
    );
    // Packets 0-2, then 3 and 4 lost, then 5-9: 3 is the previous packet again, 4 is silence.
    for (const i of [0, 1, 2, 5, 6, 7, 8, 9])
      await a.send(rtp(i, i * 160, 0xa, tone, 8), s.local('a').rtpPort);
    await fork.wait(8 * 160);
    const out = fork.audio();
    expect(out.subarray(3 * 160, 4 * 160)).toEqual(decodeG711ToFloat('pcma', tone));
    expect(out.subarray(4 * 160, 5 * 160).every((v) => v === 0)).toBe(true);
  });

  it('a slow fork consumer sheds analysis frames but never relayed packets', async () => {
    const { relay, s, a, b } = await setup();
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    s.startFork(() => {
      const until = Date.now() + 100; // a detector stuck for 100 ms per batch
      while (Date.now() < until);
    });
    await sleep(20);
    const n = 200;
    // Bursts of 50 (what a socket buffer holds comfortably); awaiting each send would pace
    // them by the blocked main thread.
    for (let k = 0; k < n; k += 50) {
      await Promise.all(
        Array.from({ length: 50 }, (_, j) =>
          a.send(rtp(k + j, (k + j) * 160, 0xa, payload()), s.local('a').rtpPort),
        ),
      );
    }
    await waitFor(() => b.got.length === n, 20_000, 'every packet relayed').catch((e) => {
      throw new Error(`${(e as Error).message}: ${b.got.length}/${n}`);
    });
    await waitFor(() => relay.stats().forkFramesShed > 0, 5000, 'frames shed');
    expect(relay.stats().packetsRelayed).toBeGreaterThanOrEqual(n);
  });

  it('inject replaces the stream toward b with a beep, keeping seq/ts/SSRC continuous', async () => {
    const { relay, s, a, b } = await setup();
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    const silence = payload(160, 0xff);
    let seq = 40000;
    let ts = 123456;
    let sending = true;
    const sender = (async () => {
      while (sending) {
        await a.send(rtp(seq, ts, 0xa, silence), s.local('a').rtpPort);
        seq = (seq + 1) & 0xffff;
        ts += 160;
        await sleep(20);
      }
    })();
    await waitFor(() => b.got.length >= 10, 3000);
    const beep = generateTone({ frequenciesHz: [1400, 2060], durationMs: 400, levelDbfs: -6 });
    await s.inject('b', beep);
    await sleep(300);
    sending = false;
    await sender;
    await sleep(50);
    const pkts = b.got.map((m) => parseRtp(m)!);
    expect(new Set(pkts.map((p) => p.ssrc))).toEqual(new Set([0xa]));
    for (let i = 1; i < pkts.length; i++) {
      expect(seqDelta(pkts[i - 1].sequenceNumber, pkts[i].sequenceNumber)).toBe(1);
      const dts = tsDelta(pkts[i - 1].timestamp, pkts[i].timestamp);
      expect(dts).toBeGreaterThanOrEqual(160);
      expect(dts % 160).toBe(0);
      expect(dts).toBeLessThanOrEqual(160 * 4);
    }
    const audio = decodeG711ToFloat('pcmu', Buffer.concat(pkts.map((p) => p.payload)));
    expect(goertzelPower(audio, 1400, 8000)).toBeGreaterThan(100 * goertzelPower(audio, 1000, 8000));
    expect(goertzelPower(audio, 2060, 8000)).toBeGreaterThan(100 * goertzelPower(audio, 1000, 8000));
    expect(relay.stats().packetsReplaced).toBeGreaterThan(10);
  });

  it('inject generates its own stream when nothing flows toward the leg', async () => {
    const { s, b } = await setup();
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    s.setPayloadMap('b', { 8: 'pcma' });
    const beep = generateTone({ frequenciesHz: [1400], durationMs: 200, levelDbfs: -6 });
    await s.inject('b', beep);
    await waitFor(() => b.got.length === 10);
    const pkts = b.got.map((m) => parseRtp(m)!);
    expect(pkts[0].marker).toBe(true);
    expect(pkts.every((p) => p.payloadType === 8 && p.ssrc === pkts[0].ssrc)).toBe(true);
    const audio = decodeG711ToFloat('pcma', Buffer.concat(pkts.map((p) => p.payload)));
    expect(goertzelPower(audio, 1400, 8000)).toBeGreaterThan(0.1);
  });
});

describe('MediaRelay inject: which codec', () => {
  it('after a telephone-event packet, the injected audio goes under the PCMU payload type, not the event one', async () => {
    const { s, a, b } = await setup();
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    await a.send(rtp(10, 160, 0xa, payload()), s.local('a').rtpPort);
    // An RFC 4733 event (digit 5, end bit) is the last packet relayed before the injection.
    await a.send(rtp(11, 320, 0xa, Uint8Array.from([5, 0x80, 0, 160]), 101), s.local('a').rtpPort);
    await waitFor(() => b.got.length === 2, 3000, 'b receives the tone and the event');
    await s.inject('b', generateTone({ frequenciesHz: [1400], durationMs: 100, levelDbfs: -6 }));
    await waitFor(() => b.got.length === 7, 3000, 'b receives 100 ms of tone');
    const injected = b.got.slice(2).map((m) => parseRtp(m)!);
    expect(injected.every((p) => p.payloadType === 0 && p.ssrc === 0xa)).toBe(true);
  });

  it('a stream in a codec the relay cannot encode (Opus) gets nothing: the injection fails with the reason', async () => {
    const { s, a, b } = await setup();
    s.setPayloadMap('a', { 111: 'opus', 101: 'telephone-event' });
    s.setPayloadMap('b', { 111: 'opus', 101: 'telephone-event' });
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    await a.send(rtp(1, 160, 0xa, payload(40), 111), s.local('a').rtpPort);
    await waitFor(() => b.got.length === 1, 3000, 'b receives the Opus packet');
    const beep = generateTone({ frequenciesHz: [1400], durationMs: 100, levelDbfs: -6 });
    await expect(s.inject('b', beep)).rejects.toThrow(
      /neither G\.711 nor G\.729 with its codec built \(telephone-event, opus\): nothing injected/,
    );
    // Nothing flowing: the same.
    await expect(s.inject('a', beep)).rejects.toThrow(/neither G\.711 nor G\.729/);
    await sleep(150);
    expect(b.got.length).toBe(1);
  });
});

describe('MediaRelay: G.729 through the native codec (bcg729)', () => {
  const codec = () => {
    const { codec, error } = loadG729();
    if (!codec) throw new Error(`the G.729 addon must be built for these tests: ${error}`);
    return codec;
  };

  it("the relay thread decodes the caller's G.729 for the fork, in order, with a lost packet concealed by the decoder", async () => {
    const { G729Decoder, G729Encoder } = codec();
    const { s, a, b } = await setup({ jitterBufferMs: 60 });
    s.setPayloadMap('a', { 18: 'g729', 101: 'telephone-event' });
    s.setPayloadMap('b', { 18: 'g729', 101: 'telephone-event' });
    const pcm = generateTone({ frequenciesHz: [440, 1200], durationMs: 1000, levelDbfs: -12, rampMs: 0 });
    const enc = new G729Encoder();
    const bits = enc.encode(Int16Array.from(pcm, (x) => Math.round(x * 32767)));
    enc.close();
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    const fork = await collectFork(s);
    const n = 50;
    const lost = 17;
    const order = lossyOrder(n, lost);
    for (const i of order)
      await a.send(
        rtp(1000 + i, i * 160, 0xa, bits.subarray(i * 20, (i + 1) * 20), 18),
        s.local('a').rtpPort,
      );
    // Later packets push the last frames out of the jitter buffer.
    for (let i = n; i < n + 5; i++)
      await a.send(rtp(1000 + i, i * 160, 0xa, new Uint8Array(20), 18), s.local('a').rtpPort);
    await waitFor(() => b.got.length === order.length + 5, 3000, 'all relayed');
    await fork.wait(n * 160);
    const out = fork.audio();
    // Relayed untouched: the PBX gets the caller's G.729 bytes.
    expect(Array.from(parseRtp(b.got[0]!)!.payload)).toEqual(Array.from(bits.subarray(0, 20)));
    // The same packets through a decoder here, the lost one concealed, give the same samples.
    const ref = new G729Decoder();
    for (let i = 0; i < n; i++) {
      const want = i === lost ? ref.conceal(2) : ref.decode(bits.subarray(i * 20, (i + 1) * 20));
      expect(Array.from(out.subarray(i * 160, (i + 1) * 160)), `frame ${i}`).toEqual(Array.from(want));
    }
    ref.close();
    expect(goertzelPower(out.subarray(1600, 8000), 440, 8000)).toBeGreaterThan(
      10 * goertzelPower(out.subarray(1600, 8000), 2500, 8000),
    );
  });

  it('a switch from PCMU to G.729 (a re-INVITE) decodes every buffered packet with its own codec', async () => {
    const { G729Decoder, G729Encoder } = codec();
    const { s, a, b } = await setup({ jitterBufferMs: 60 });
    s.setPayloadMap('a', { 0: 'pcmu', 18: 'g729' });
    s.setPayloadMap('b', { 0: 'pcmu', 18: 'g729' });
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    const pcm = generateTone({ frequenciesHz: [440], durationMs: 400, levelDbfs: -12, rampMs: 0 });
    const mu = encodeG711FromFloat('pcmu', pcm.subarray(0, 1600));
    const enc = new G729Encoder();
    const bits = enc.encode(Int16Array.from(pcm.subarray(1600), (x) => Math.round(x * 32767)));
    enc.close();
    const fork = await collectFork(s);
    // Ten PCMU packets, then ten G.729 ones, the last PCMU packet overtaken by the first G.729 one: it waits
    // in the jitter buffer while the stream is already G.729.
    const pcmuPacket = (i: number) => rtp(100 + i, i * 160, 0xa, mu.subarray(i * 160, (i + 1) * 160));
    const g729Packet = (i: number) =>
      rtp(110 + i, (10 + i) * 160, 0xa, bits.subarray(i * 20, (i + 1) * 20), 18);
    for (let i = 0; i < 9; i++) await a.send(pcmuPacket(i), s.local('a').rtpPort);
    await a.send(g729Packet(0), s.local('a').rtpPort);
    await a.send(pcmuPacket(9), s.local('a').rtpPort);
    for (let i = 1; i < 10; i++) await a.send(g729Packet(i), s.local('a').rtpPort);
    await waitFor(() => b.got.length === 20, 3000, 'all relayed');
    await fork.wait(17 * 160);
    const out = fork.audio();
    expect(out.subarray(0, 1600)).toEqual(decodeG711ToFloat('pcmu', mu));
    const dec = new G729Decoder();
    const want = Float32Array.from(
      Array.from({ length: 7 }, (_, i) => Array.from(dec.decode(bits.subarray(i * 20, (i + 1) * 20)))).flat(),
    );
    dec.close();
    expect(out.subarray(1600, 1600 + 7 * 160)).toEqual(want);
  });

  it('the warn tone goes into a G.729 stream as G.729 (20-byte payloads under its payload type), seq/ts/SSRC continuous', async () => {
    const { G729Decoder } = codec();
    const { s, a, b } = await setup();
    s.setPayloadMap('a', { 18: 'g729', 101: 'telephone-event' });
    s.setPayloadMap('b', { 18: 'g729', 101: 'telephone-event' });
    s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
    await a.send(rtp(1, 160, 0xa, new Uint8Array(20), 18), s.local('a').rtpPort);
    await waitFor(() => b.got.length === 1, 3000, 'b receives the G.729 packet');
    await s.inject('b', generateTone({ frequenciesHz: [1400], durationMs: 400, levelDbfs: -6 }));
    await waitFor(() => b.got.length === 21, 3000, 'b receives 400 ms of tone');
    const pkts = b.got.map((m) => parseRtp(m)!);
    expect(pkts.every((p) => p.payloadType === 18 && p.ssrc === 0xa && p.payload.length === 20)).toBe(true);
    for (let i = 1; i < pkts.length; i++)
      expect(seqDelta(pkts[i - 1]!.sequenceNumber, pkts[i]!.sequenceNumber)).toBe(1);
    const dec = new G729Decoder();
    const audio = Float32Array.from(pkts.slice(1).flatMap((p) => Array.from(dec.decode(p.payload))));
    dec.close();
    expect(goertzelPower(audio, 1400, 8000)).toBeGreaterThan(100 * goertzelPower(audio, 700, 8000));
  });
});

describe('MediaRelay lifecycle and port pool', () => {
  it('100 sessions allocated and closed leave no port bound and no timer running', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const relay: MediaRelay = await createMediaRelay(
      mediaCfg({ portMin: 44000, portMax: 44999 }),
      silentLogger,
      { inThread: true },
    );
    const sessions = await Promise.all(Array.from({ length: 100 }, (_, i) => relay.allocate(`c${i}`)));
    expect(relay.stats()).toMatchObject({ sessions: 100, portsInUse: 400 });
    const ports = sessions.flatMap((s) => [
      s.local('a').rtpPort,
      s.local('a').rtcpPort,
      s.local('b').rtpPort,
      s.local('b').rtcpPort,
    ]);
    expect(new Set(ports).size).toBe(400);
    expect(timers()).toBeGreaterThan(before);
    await Promise.all(sessions.map((s) => s.close()));
    await sessions[0].close(); // idempotent
    expect(sessions.every((s) => s.closed)).toBe(true);
    expect(relay.stats()).toMatchObject({ sessions: 0, portsInUse: 0 });
    expect(timers()).toBe(before);
    for (const p of ports) {
      const sock = dgram.createSocket('udp4');
      await new Promise<void>((resolve, reject) => {
        sock.once('error', reject);
        sock.bind({ port: p, address: '127.0.0.1', exclusive: true }, () => resolve());
      });
      await new Promise<void>((r) => sock.close(() => r()));
    }
    await relay.close();
  });

  it('skips ports used by another program and throws a typed error when the pool is exhausted', async () => {
    const squatter = await peer(45000);
    cleanup.push(() => squatter.close());
    const relay = await createMediaRelay(mediaCfg({ portMin: 45000, portMax: 45007 }), silentLogger);
    cleanup.push(() => relay.close());
    const s1 = await relay.allocate('x');
    expect([s1.local('a').rtpPort, s1.local('b').rtpPort]).not.toContain(45000);
    await expect(relay.allocate('y')).rejects.toBeInstanceOf(PortPoolExhaustedError);
    await s1.close();
    expect(relay.stats().portsInUse).toBe(0);
    const s2 = await relay.allocate('z');
    await s2.close();
  });
});

describe('MediaRelay sharding over worker threads', () => {
  it('opens a new worker per media.callsPerWorker calls up to media.workers, then fills the least busy; calls on every worker relay', async () => {
    const relay = await createMediaRelay(mediaCfg({ workers: 2, callsPerWorker: 2 }), silentLogger);
    cleanup.push(() => relay.close());
    const sessions: MediaSession[] = [];
    const workersAfter: number[] = [];
    for (let i = 0; i < 5; i++) {
      sessions.push(await relay.allocate(`call-${i}`));
      workersAfter.push(relay.stats().workers);
    }
    // Calls 1-2 share the first worker, call 3 opens the second; at the cap of 2 the rest are spread.
    expect(workersAfter).toEqual([1, 1, 2, 2, 2]);
    // Every session relays, whichever worker holds it.
    for (const [i, s] of sessions.entries()) {
      const a = await peer();
      const b = await peer();
      cleanup.push(
        () => a.close(),
        () => b.close(),
      );
      s.setPayloadMap('a', { 0: 'pcmu' });
      s.setPayloadMap('b', { 0: 'pcmu' });
      s.setRemote('a', { address: '127.0.0.1', rtpPort: a.port });
      s.setRemote('b', { address: '127.0.0.1', rtpPort: b.port });
      await a.send(rtp(1, 160, 0x100 + i, payload()), s.local('a').rtpPort);
      await waitFor(() => b.got.length === 1, 3000, `call ${i} relays`);
    }
    await waitFor(() => relay.stats().sessions === 5, 3000, 'five sessions');
    // Below the cap, a worker with a free place is used before another one is opened.
    const wide = await createMediaRelay(mediaCfg({ workers: 3, callsPerWorker: 2 }), silentLogger);
    cleanup.push(() => wide.close());
    const w = [];
    for (let i = 0; i < 4; i++) w.push(await wide.allocate(`wide-${i}`));
    expect(wide.stats().workers).toBe(2);
    await w[0]!.close();
    await wide.allocate('wide-4');
    expect(wide.stats().workers).toBe(2);
    await wide.allocate('wide-5');
    expect(wide.stats().workers).toBe(3);
  });
});
