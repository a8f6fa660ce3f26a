import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { inviteOfferMedia } from '../../src/audio/capture-sip.js';
import { buildUdpFrame, writeRtpPcap } from '../../src/audio/pcap-writer.js';
import { loadG729 } from '../../src/audio/g729.js';
import { serializeRtp } from '../../src/media/rtp-packet.js';
import { parseCapture, readCapture, scanCapture } from '../../src/audio/pcap.js';
import { AudioFormatError } from '../../src/audio/audio-format-error.js';
import { extractRtpStreams, RtpStreamCollector } from '../../src/audio/rtp-streams.js';
import { encodeWav16 } from '../../src/audio/wav.js';
import {
  pcapRecords,
  rtpFrame,
  save,
  testSignal,
  throughG711,
  tcpFrame,
  tool,
  tsharkRtp,
  tsharkRtpStreams,
  writePcap,
  type PcapRecord,
} from './capture-helpers.js';

/** Stream reconstruction: order, duplicates, loss, wrap, timestamp jumps, and which stream is the caller's. */

const PORT = 30000;
const SSRC = 0xcafe0042;
let dir: string;
const signal = testSignal(8000 * 3, 2);
const expected = throughG711('pcmu', signal);
let records: PcapRecord[];
let basePath: string;

function stream(bytes: Uint8Array) {
  const s = extractRtpStreams(parseCapture(bytes));
  expect(s).toHaveLength(1);
  return s[0];
}

/** The expected audio with the given packets (0-based) silent. */
function withSilence(lost: number[]): Float32Array {
  const out = Float32Array.from(expected);
  for (const k of lost) out.fill(0, k * 160, (k + 1) * 160);
  return out;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'vg-rtp-'));
  // Start near the 16-bit wrap so every test crosses it (150 packets: 65500..65535, 0..113).
  const pcap = writeRtpPcap({
    samples: signal,
    codec: 'pcmu',
    src: '10.1.1.1:40000',
    dst: `10.2.2.2:${PORT}`,
    ssrc: SSRC,
    startSeq: 65500,
  });
  basePath = save(dir, 'base.pcap', pcap);
  records = pcapRecords(pcap);
  expect(records).toHaveLength(150);
});

describe('extractRtpStreams: sequence and timeline', () => {
  it('decodes sample-exact across the sequence-number wrap', () => {
    const s = stream(readFileSync(basePath));
    expect(s).toMatchObject({
      packetCount: 150,
      lostCount: 0,
      duplicateCount: 0,
      reorderedCount: 0,
      durationMs: 3000,
    });
    expect(s.samples8k).toEqual(expected);
  });

  it('puts reordered packets back in place (also across the wrap) and counts them apart from duplicates', () => {
    const r = [...records];
    // Swap neighbours at the wrap (65535 <-> 0) and hold one packet back by 5.
    [r[35], r[36]] = [r[36], r[35]];
    const [late] = r.splice(80, 1);
    r.splice(85, 0, late);
    // An in-place duplicate is neither a reordering nor cancels one.
    r.splice(120, 0, r[120]);
    const s = stream(writePcap(r, 1));
    expect(s.duplicateCount).toBe(1);
    expect(s.reorderedCount).toBe(2);
    expect(s.lostCount).toBe(0);
    expect(s.samples8k).toEqual(expected);
  });

  it('drops duplicates, in place or late', () => {
    const r = [...records];
    r.splice(10, 0, records[10]);
    r.splice(100, 0, records[40]);
    const file = save(dir, 'dups.pcap', writePcap(r, 1));
    const s = stream(readFileSync(file));
    expect(s.duplicateCount).toBe(2);
    expect(s.reorderedCount).toBe(0);
    expect(s.packetCount).toBe(150);
    expect(s.samples8k).toEqual(expected);
    // tshark sees all 152 on the wire; editcap -D removes exactly our two duplicates.
    expect(tsharkRtp(file, PORT)).toHaveLength(152);
    const dedup = join(dir, 'dedup.pcap');
    tool('editcap', ['-D', '200', file, dedup]);
    expect(tsharkRtp(dedup, PORT)).toHaveLength(150);
  });

  it('fills packets deleted with editcap by silence, keeping the timeline', () => {
    const file = join(dir, 'lossy.pcap');
    // editcap numbers packets from 1: delete packets 11, 36-38 (the wrap) and 150 (the last).
    tool('editcap', [basePath, file, '11', '36-38', '150']);
    const s = stream(readFileSync(file));
    expect(s.packetCount).toBe(145);
    expect(s.lostCount).toBe(4); // a lost last packet cannot be known
    expect(s.samples8k).toEqual(withSilence([10, 35, 36, 37]).subarray(0, 149 * 160));
    expect(tsharkRtpStreams(file, PORT)).toEqual([{ ssrc: SSRC, packets: 145, lost: 4 }]);
  });

  /** 1 s of audio (50 packets), then the next 1 s with consecutive sequence numbers but another timestamp. */
  function twoSpurts(secondTs: number, secondStartMs: number): Uint8Array {
    const spurt = (samples: Float32Array, startSeq: number, startTs: number, startTimeMs: number): Buffer =>
      writeRtpPcap({
        samples,
        codec: 'pcmu',
        src: '10.1.1.1:40000',
        dst: `10.2.2.2:${PORT}`,
        ssrc: SSRC,
        startSeq,
        startTs,
        startTimeMs,
      });
    return Buffer.concat([
      spurt(signal.subarray(0, 8000), 1, 0, 0),
      spurt(signal.subarray(8000, 16000), 51, secondTs, secondStartMs).subarray(24),
    ]);
  }

  it('treats a timestamp gap with consecutive sequence numbers as silence (DTX)', () => {
    // A 0.5 s talk-spurt gap in RTP time: timestamp 8000 + 4000.
    const s = stream(twoSpurts(12000, 1500));
    expect(s.lostCount).toBe(0);
    expect(s.durationMs).toBe(2500);
    const x = s.samples8k;
    expect(x.subarray(0, 8000)).toEqual(expected.subarray(0, 8000));
    expect(x.subarray(8000, 12000).every((v) => v === 0)).toBe(true);
    expect(x.subarray(12000)).toEqual(expected.subarray(8000, 16000));
  });

  it('bridges an implausible timestamp jump (new base) by the capture-time gap', () => {
    // Timestamp base jumps by ~2^31 (a sender restarting its clock); 250 ms later on the wire.
    const s = stream(twoSpurts(0x80001234, 1250));
    expect(s.durationMs).toBe(2250);
    expect(s.samples8k.subarray(8000, 10000).every((v) => v === 0)).toBe(true);
    expect(s.samples8k.subarray(10000)).toEqual(expected.subarray(8000, 16000));
  });
  it('decodes a G.729 stream (PT 18) through bcg729 in sequence order, a lost packet placed as silence', () => {
    const { codec, error } = loadG729();
    if (!codec) throw new Error(`the G.729 addon must be built for this test: ${error}`);
    const enc = new codec.G729Encoder();
    const bits = enc.encode(Int16Array.from(signal, (x) => Math.round(x * 32767)));
    enc.close();
    const a = { address: '10.1.1.1', port: 40000 };
    const b = { address: '10.2.2.2', port: PORT };
    const lost = 40;
    const recs = Array.from({ length: 150 }, (_, k) => k)
      .filter((k) => k !== lost)
      .map((k) => ({
        timeMs: k * 20,
        frame: buildUdpFrame(
          a,
          b,
          serializeRtp({
            version: 2,
            padding: false,
            extension: false,
            marker: false,
            payloadType: 18,
            sequenceNumber: (65500 + k) & 0xffff,
            timestamp: k * 160,
            ssrc: SSRC,
            csrc: [],
            payload: bits.subarray(k * 20, (k + 1) * 20),
          }),
        ),
      }));
    const s = stream(writePcap(recs, 1));
    expect(s).toMatchObject({
      codec: 'g729',
      payloadType: 18,
      packetCount: 149,
      lostCount: 1,
      durationMs: 3000,
    });
    // The same packets through one decoder here, the lost one skipped (silence in its place).
    const dec = new codec.G729Decoder();
    const want = new Float32Array(150 * 160);
    for (let k = 0; k < 150; k++)
      if (k !== lost) want.set(dec.decode(bits.subarray(k * 20, (k + 1) * 20)), k * 160);
    dec.close();
    expect(s.samples8k).toEqual(want);
  });

  it('refuses a stream whose timestamps would span more than 4 hours (no 16 GB allocation)', () => {
    const a = { address: '10.1.1.1', port: 40000 };
    const b = { address: '10.2.2.2', port: PORT };
    const recs = Array.from({ length: 1500 }, (_, k) => ({
      timeMs: k * 20,
      frame: rtpFrame(a, b, { seq: k, ts: k * 80_000, ssrc: SSRC }),
    }));
    expect(() => extractRtpStreams(parseCapture(writePcap(recs, 1)))).toThrow(AudioFormatError);
    expect(() => extractRtpStreams(parseCapture(writePcap(recs, 1)))).toThrow(
      /spans more than 4 h of RTP time/,
    );
    // The same timestamps over fewer packets are a long but legitimate DTX call.
    expect(extractRtpStreams(parseCapture(writePcap(recs.slice(0, 300), 1)))[0].durationMs).toBe(
      299 * 10_000 + 20,
    );
  });
});

describe('extractRtpStreams: the caller', () => {
  const caller = { address: '203.0.113.7', port: 16384 };
  const callee = { address: '10.9.9.9', port: 20002 };
  const sig2 = testSignal(8000, 5);
  const invite = (toTag: string, mediaAddr: string, mediaPort: number, from = caller): Buffer => {
    const sdp = [
      'v=0',
      `o=- 1 1 IN IP4 ${mediaAddr}`,
      's=-',
      `c=IN IP4 ${mediaAddr}`,
      't=0 0',
      `m=audio ${mediaPort} RTP/AVP 0 8 101`,
      'a=sendrecv',
      '',
    ].join('\r\n');
    const msg = [
      'INVITE sip:100@10.9.9.9:5080 SIP/2.0',
      `Via: SIP/2.0/UDP ${from.address}:5060;branch=z9hG4bK1`,
      'From: <sip:alice@example.com>;tag=a1',
      `To: <sip:100@10.9.9.9>${toTag}`,
      'Call-ID: call-1@example.com',
      'CSeq: 1 INVITE',
      'Content-Type: application/sdp',
      `Content-Length: ${sdp.length}`,
      '',
      sdp,
    ].join('\r\n');
    return buildUdpFrame(
      { address: from.address, port: 5060 },
      { address: '10.9.9.9', port: 5080 },
      Buffer.from(msg),
    );
  };
  /** The Call-IDs of the INVITEs tshark finds (SIP decoded as `decodeAs` says), one per line. */
  const tsharkInviteCallIds = (file: string, decodeAs: string[]): string =>
    tool('tshark', [
      '-r',
      file,
      ...decodeAs,
      '-Y',
      'sip.Method == "INVITE"',
      '-T',
      'fields',
      '-e',
      'sip.Call-ID',
    ]).trim();
  /** The callee's stream starts first (early media), so "earliest" alone would be wrong. */
  function call(sip: Buffer[]): Buffer {
    const fromCallee = writeRtpPcap({
      samples: sig2,
      codec: 'pcma',
      src: callee,
      dst: caller,
      ssrc: 0x2222,
      startTimeMs: 0,
    });
    const fromCaller = writeRtpPcap({
      samples: signal.subarray(0, 8000),
      codec: 'pcmu',
      src: caller,
      dst: callee,
      ssrc: 0x1111,
      startTimeMs: 100,
    });
    const recs = [...pcapRecords(fromCallee), ...pcapRecords(fromCaller)].sort((x, y) => x.timeMs - y.timeMs);
    return writePcap([...sip.map((frame) => ({ timeMs: 0, frame })), ...recs], 1);
  }

  it('is the stream sent from the INVITE SDP address (SIP on a non-5060 port)', () => {
    const file = save(dir, 'call.pcap', call([invite('', caller.address, caller.port)]));
    const streams = extractRtpStreams(parseCapture(readFileSync(file)));
    expect(streams.map((s) => [s.ssrc, s.isCaller])).toEqual([
      [0x2222, false],
      [0x1111, true],
    ]);
    expect(streams[1].samples8k).toEqual(expected.subarray(0, 8000));
    // tshark agrees there is one INVITE and these two SSRCs.
    expect(tsharkInviteCallIds(file, ['-d', 'udp.port==5080,sip'])).toBe('call-1@example.com');
    const ssrcs = new Set(
      [...tsharkRtp(file, caller.port), ...tsharkRtp(file, callee.port)].map((r) => r.ssrc),
    );
    expect(ssrcs).toEqual(new Set([0x1111, 0x2222]));
  });

  it('survives NAT (private SDP address, same port) and ignores re-INVITEs with a To tag', () => {
    const reInviteFromCallee = invite(';tag=b2', callee.address, callee.port, callee);
    const streams = extractRtpStreams(
      parseCapture(call([reInviteFromCallee, invite('', '192.168.1.20', caller.port)])),
    );
    expect(streams.find((s) => s.isCaller)?.ssrc).toBe(0x1111);
  });

  const pbxSip = { address: '10.9.9.9', port: 5080 };
  const tcpFrom = (port: number, seq: number, data: Uint8Array) =>
    tcpFrame({ address: caller.address, port }, pbxSip, seq, data);
  /** What analyze does: the capture streamed, SIP over TCP included. */
  const streamed = async (file: string) => {
    const collector = new RtpStreamCollector();
    await scanCapture(file, (d) => collector.add(d), { onTcpSegment: (seg) => collector.addTcp(seg) });
    return collector.finish();
  };

  it('is named by SIP over TCP too: an INVITE in three segments, out of order and retransmitted', async () => {
    // The same INVITE, carried over TCP instead of UDP (the UDP/IP headers are 42 bytes).
    const msg = invite('', caller.address, caller.port).subarray(42);
    const seq0 = 0xfffffe00; // the sequence number wraps inside the message
    expect(msg.length).toBeGreaterThan(300);
    const cuts = [0, 120, 260, msg.length];
    const seg = (k: number) => tcpFrom(5060, seq0 + cuts[k], msg.subarray(cuts[k], cuts[k + 1]));
    const junk = tcpFrom(5061, 77, Buffer.from('\x16\x03\x01 not SIP (TLS)'));
    const file = save(dir, 'call-tcp.pcap', call([junk, seg(0), seg(2), seg(0), seg(1)]));
    const streams = await streamed(file);
    expect(streams.find((s) => s.isCaller)?.ssrc).toBe(0x1111);
    // Read as UDP only, the capture has no SIP, so the earliest stream would be taken.
    expect(extractRtpStreams(parseCapture(readFileSync(file))).find((s) => s.isCaller)?.ssrc).toBe(0x2222);
    // tshark reassembles the same INVITE from the TCP stream.
    expect(
      tsharkInviteCallIds(file, ['-o', 'tcp.reassemble_out_of_order:TRUE', '-d', 'tcp.port==5080,sip']),
    ).toBe('call-1@example.com');
  });

  it('a TCP INVITE whose last segment never came names no caller', async () => {
    const msg = invite('', caller.address, caller.port).subarray(42);
    const file = save(dir, 'call-tcp-cut.pcap', call([tcpFrom(5060, 1000, msg.subarray(0, 300))]));
    const streams = await streamed(file);
    expect(streams.find((s) => s.isCaller)?.ssrc).toBe(0x2222);
  });

  it('without SIP falls back to the earliest stream', () => {
    const streams = extractRtpStreams(parseCapture(call([])));
    expect(streams.find((s) => s.isCaller)?.ssrc).toBe(0x2222);
  });

  describe("audio: 'caller' keeps only the caller's payloads once the caller is certain", () => {
    /** call() plus a stream of another call that starts after the caller's (500 ms). */
    const withThird = (sip: Buffer[]): Buffer => {
      const third = writeRtpPcap({
        samples: sig2,
        codec: 'pcmu',
        src: '10.7.7.7:50000',
        dst: '10.9.9.9:20010',
        ssrc: 0x3333,
        startTimeMs: 500,
      });
      const recs = [...pcapRecords(call(sip)), ...pcapRecords(third)].sort((x, y) => x.timeMs - y.timeMs);
      return writePcap(recs, 1);
    };
    const collect = async (file: string, audio: 'all' | 'caller') => {
      const collector = new RtpStreamCollector({ audio });
      await scanCapture(file, (d) => collector.add(d), { onTcpSegment: (seg) => collector.addTcp(seg) });
      return collector.finish().sort((a, b) => a.ssrc - b.ssrc);
    };

    it('drops the streams that started before it and never stores those that start after', async () => {
      const file = save(dir, 'caller-only.pcap', withThird([invite('', caller.address, caller.port)]));
      const all = await collect(file, 'all');
      const only = await collect(file, 'caller');
      expect(only.map((s) => [s.ssrc, s.isCaller, s.audioKept])).toEqual([
        [0x1111, true, true],
        [0x2222, false, false], // started first (early media), dropped when the caller became certain
        [0x3333, false, false], // started later, never stored
      ]);
      expect(all.every((s) => s.audioKept)).toBe(true);
      // Everything but the audio is the same, and the caller's audio is exact.
      // (A spread copies the enumerable properties only: a dropped stream's samples8k is not one.)
      const meta = (list: typeof all) => list.map((st) => ({ ...st, samples8k: null, audioKept: null }));
      expect(meta(only)).toEqual(meta(all));
      expect(only[0].samples8k).toEqual(expected.subarray(0, 8000));
      expect(only[0].samples8k).toEqual(all[0].samples8k);
      // A dropped stream's audio is an error, never silence.
      expect(() => only[1].samples8k).toThrow(/ssrc=0x00002222 .* was not kept/);
      expect(all[1].samples8k.some((v) => v !== 0)).toBe(true);
    });

    it('keeps everything where the choice needs every stream: behind NAT, or without SIP', async () => {
      for (const sip of [[invite('', '192.168.1.20', caller.port)], []]) {
        const only = await collect(save(dir, 'caller-nat.pcap', withThird(sip)), 'caller');
        expect(only.every((s) => s.audioKept)).toBe(true);
        expect(only.find((s) => s.isCaller)?.ssrc).toBe(sip.length ? 0x1111 : 0x2222);
      }
    });
  });

  it('inviteOfferMedia reads c= at media level, compact headers, and rejects junk', () => {
    const msg =
      'INVITE sip:x SIP/2.0\r\ni: abc\r\nt: <sip:x>\r\n\r\nv=0\r\no=- 1 1 IN IP4 1.1.1.1\r\ns=-\r\nc=IN IP4 1.1.1.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nc=IN IP4 2.2.2.2\r\n';
    expect(inviteOfferMedia(msg)).toEqual({ address: '2.2.2.2', port: 4000, callId: 'abc' });
    const v6 = msg.replace('c=IN IP4 2.2.2.2', 'c=IN IP6 2001:DB8:0:0:0:0:0:7');
    expect(inviteOfferMedia(v6)).toEqual({ address: '2001:db8::7', port: 4000, callId: 'abc' });
    expect(inviteOfferMedia('INVITE sip:x SIP/2.0\r\n\r\nnot sdp')).toBeNull();
    expect(inviteOfferMedia('INVITE garbage')).toBeNull();
  });
});

describe('readCapture + extractRtpStreams on a wav2pcap file', () => {
  it('decodes `voiceguard wav2pcap` output (the built CLI) sample-exact', async () => {
    const wav = join(dir, 'in.wav');
    writeFileSync(wav, encodeWav16(signal, 8000));
    const out = join(dir, 'w2p.pcap');
    expect(existsSync('dist/src/cli/main.js'), 'build first (npm run build)').toBe(true);
    tool(process.execPath, ['dist/src/cli/main.js', 'wav2pcap', wav, out, '--dst', `127.0.0.1:${PORT}`]);
    const streams = extractRtpStreams(await readCapture(out));
    expect(streams).toHaveLength(1);
    expect(streams[0]).toMatchObject({
      packetCount: 150,
      src: '127.0.0.1:40000',
      dst: `127.0.0.1:${PORT}`,
      codec: 'pcmu',
    });
    expect(streams[0].samples8k).toEqual(expected);
  });
});
