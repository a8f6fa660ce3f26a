import { createSocket } from 'node:dgram';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeG711ToFloat, encodeG711FromFloat } from '../../src/audio/g711.js';
import { goertzelPower, meanSquare } from '../../src/audio/tone.js';
import { parseRtp, serializeRtp } from '../../src/media/rtp-packet.js';
import { buildUdpFrame, parseEndpoint, writePcap } from '../../src/audio/pcap-writer.js';
import { loadG729, type G729Codec } from '../../src/audio/g729.js';
import {
  expectBothPassed,
  freeUdpBlock,
  freeUdpPort,
  makePcap,
  runSipp,
  sippCall,
  startGateway,
  type Pcap,
  type LogLine,
  type TestGateway,
  waitUdpBound,
} from './sipp-harness.js';
import { TsPbx } from './ts-pbx.js';
import { audioSdp, G729, type SdpCodec } from '../../bench/sip-text.js';

const G722: SdpCodec = { pt: 9, rtpmap: 'G722/8000' };

/**
 * Calls with real voices end to end: sipp plays RTP (pcaps made at test time from the WAV
 * fixtures with the project's own pcap writer) through the real gateway, media relay and ONNX
 * detector, into sipp or a small TypeScript PBX that decodes what it receives.
 *
 * VG_E2E_MODEL / VG_E2E_FIXTURES point at another model / fixture folder while developing.
 */
const MODEL = process.env.VG_E2E_MODEL ?? 'models/voiceguard-detector.onnx';
const FIXTURES = process.env.VG_E2E_FIXTURES ?? 'test/fixtures';
/** Fixtures whose offline analysis (`voiceguard analyze --json`) is clearly human / synthetic. */
const HUMAN_WAV = process.env.VG_E2E_HUMAN ?? 'human-';
const TTS_WAV = process.env.VG_E2E_TTS ?? 'synthetic-';
const RTP_TIMEOUT_MS = 3000;

const modelOverrides = {
  'detector.modelPath': MODEL,
  'detector.metadataPath': MODEL.replace(/\.onnx$/, '.json'),
};
const metadata = JSON.parse(readFileSync(modelOverrides['detector.metadataPath'], 'utf8')) as {
  decision: {
    maxListenMs: number;
    dropLlr: number;
    warnLlr: number;
    humanLlr: number;
    byCodec?: Record<string, { dropLlr: number; warnLlr: number; humanLlr: number }>;
  };
};

function fixture(prefix: string): string {
  const name = readdirSync(FIXTURES)
    .filter((f) => f.startsWith(prefix) && f.endsWith('.wav'))
    .sort()[0];
  if (!name) throw new Error(`no fixture ${prefix}*.wav in ${FIXTURES}`);
  return join(FIXTURES, name);
}

function t(l: LogLine): number {
  return Number(l.time);
}

/** Log lines of the calls that started after `from` (an index into gw.logs). */
function since(gw: TestGateway, from: number, event: string): LogLine[] {
  return gw.logs.slice(from).filter((l) => l.event === event);
}

async function waitFor(cond: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

/** A tone is "present" in a 50 ms block when its Goertzel power dwarfs that of off-tone probes. */
function toneBlocks(pcm: Float32Array, freqHz: number): number[] {
  const block = 400;
  const probes = [500, 800, 1100, 1700, 2400, 2800, 3200];
  const hits: number[] = [];
  for (let i = 0; i + block <= pcm.length; i += block / 2) {
    const x = pcm.subarray(i, i + block);
    const p = goertzelPower(x, freqHz, 8000);
    const off = Math.max(...probes.map((f) => goertzelPower(x, f, 8000)));
    if (p > 1e-6 && p > 30 * off) hits.push(i);
  }
  return hits;
}

/** The gateway's /metrics as name{labels} -> value. */
async function scrape(gw: TestGateway): Promise<Map<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${gw.server.apiPort}/metrics`)).text();
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\S+) (\S+)$/.exec(line);
    if (m && !line.startsWith('#')) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** A pcap of RTP packets (one payload per 20 ms, payload type `pt`) in a new folder for sipp's play_pcap_audio. */
function rtpPcapDir(payloads: Uint8Array[], pt: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'vg-codec-'));
  writeFileSync(
    join(dir, 'caller.pcap'),
    writePcap(
      payloads.map((payload, k) => ({
        timeMs: k * 20,
        frame: buildUdpFrame(
          parseEndpoint('127.0.0.1:40000'),
          parseEndpoint('127.0.0.1:6000'),
          serializeRtp({
            version: 2,
            padding: false,
            extension: false,
            marker: k === 0,
            payloadType: pt,
            sequenceNumber: 500 + k,
            timestamp: 80000 + k * 160,
            ssrc: 0x729,
            csrc: [],
            payload,
          }),
        ),
      })),
    ),
  );
  return dir;
}

/** How much a /metrics series grew since `before` (a scrape). */
async function grewSince(gw: TestGateway, before: Map<string, number>, name: string): Promise<number> {
  return ((await scrape(gw)).get(name) ?? 0) - (before.get(name) ?? 0);
}

/** A sipp caller (`scenario`, which fails on a BYE from the gateway) playing these RTP payloads; it must pass. */
async function codecCaller(
  gw: TestGateway,
  scenario: string,
  payloads: Uint8Array[],
  pt: number,
  pauseMs: number,
): Promise<void> {
  const caller = await runSipp({
    scenario,
    port: await freeUdpPort(),
    target: `127.0.0.1:${gw.sipPort}`,
    pauseMs,
    cwd: rtpPcapDir(payloads, pt),
  }).done;
  expect(caller.code, caller.output + caller.errors).toBe(0);
}

/** The PBX's answer with one codec (and telephone-event). */
function answerSdp(codec: SdpCodec): (port: number) => string {
  return (port) => audioSdp(port, 'tspbx', 1, codec);
}

function g729(): G729Codec {
  const { codec, error } = loadG729();
  if (!codec) throw new Error(`the G.729 codec must be built for these tests: ${error}`);
  return codec;
}

/** A WAV's 8 kHz speech as G.729 RTP payloads (two 10-byte frames per 20 ms packet). */
function g729Payloads(samples: Float32Array): Uint8Array[] {
  const n = Math.floor(samples.length / 160) * 160;
  const enc = new (g729().G729Encoder)();
  const bits = enc.encode(
    Int16Array.from(samples.subarray(0, n), (x) => Math.max(-32768, Math.min(32767, Math.round(x * 32768)))),
  );
  enc.close();
  return Array.from({ length: n / 160 }, (_, k) => bits.slice(k * 20, (k + 1) * 20));
}

const ADMIN_TOKEN = 'media-e2e-admin-token-0123456789abcdef';
let human: Pcap;
let tts: Pcap;
beforeAll(async () => {
  human = await makePcap(fixture(HUMAN_WAV), 8);
  tts = await makePcap(fixture(TTS_WAV), 8);
});

describe('media end to end, policy onSynthetic=drop', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({
      ...modelOverrides,
      'policy.defaults': { onSynthetic: 'drop' },
      'media.rtpTimeoutMs': RTP_TIMEOUT_MS,
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('a human-voice call passes and is never dropped', async () => {
    const from = gw.logs.length;
    const scoredBefore = gw.server.gateway.detectorStats()!.windowsScored;
    const metricsBefore = await scrape(gw);
    // The caller stays for the whole pcap (at most the listening window): the gateway has every
    // chance to drop it; pbx-answer / caller-pcap fail on any BYE they did not expect.
    const r = await sippCall(gw, 'pbx-answer.xml', 'caller-pcap.xml', human, {
      pauseMs: Math.min(human.durationMs - 300, metadata.decision.maxListenMs),
    });
    expectBothPassed(r);
    expect(since(gw, from, 'call.action').map((l) => l.action)).not.toContain('drop');
    expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
    // The detector did hear the caller (the fork ran: windows were scored) and did not call it synthetic:
    // it either reached a human verdict (which ends scoring) or kept scoring through the call.
    const scored = gw.server.gateway.detectorStats()!.windowsScored - scoredBefore;
    const verdicts = since(gw, from, 'call.verdict').map((l) => l.verdict);
    expect(scored).toBeGreaterThanOrEqual(1);
    expect(verdicts).not.toContain('synthetic');
    if (!verdicts.includes('human')) expect(scored).toBeGreaterThanOrEqual(3);
    expect(since(gw, from, 'media.latched').length).toBeGreaterThanOrEqual(1);
    // /metrics saw the same call: relayed packets, scored windows and their latency, the caller's 200.
    const m = await scrape(gw);
    const grew = (name: string) => (m.get(name) ?? 0) - (metricsBefore.get(name) ?? 0);
    expect(grew('voiceguard_rtp_packets_relayed_total')).toBeGreaterThanOrEqual(100);
    expect(grew('voiceguard_detector_windows_scored_total')).toBe(scored);
    expect(grew('voiceguard_inference_latency_ms_count')).toBe(scored);
    expect(grew('voiceguard_sip_responses_total{code="200"}')).toBe(1);
    expect(m.get('voiceguard_detector_windows_shed_total')).toBe(0);
  });

  it('a TTS-voice call is dropped within the listening window, BYE with Reason to both sides', async () => {
    const from = gw.logs.length;
    const r = await sippCall(gw, 'pbx-dropped.xml', 'caller-pcap-dropped.xml', tts);
    expectBothPassed(r);
    const started = since(gw, from, 'call.started')[0]!;
    const drop = since(gw, from, 'call.action').find((l) => l.action === 'drop');
    expect(drop, 'drop action').toBeDefined();
    const verdict = since(gw, from, 'call.verdict')[0]!;
    expect(verdict.verdict).toBe('synthetic');
    expect(Number(verdict.decisionMs)).toBeLessThanOrEqual(metadata.decision.maxListenMs);
    // Wall time from INVITE to the drop: the listening window plus scoring and jitter slack.
    expect(t(drop!) - t(started)).toBeLessThan(metadata.decision.maxListenMs + 2000);
    expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['dropped']);
    // A warn tone cut off by the drop in the same breath is not a fault: no warning about it.
    await new Promise((r) => setTimeout(r, 600));
    expect(since(gw, from, 'media.inject_error').filter((l) => Number(l.level) >= 40)).toEqual([]);
  });

  it('a caller offering only G.722: relayed with its codec and not analysed (fails open), the PBX gets every packet as sent', async () => {
    const pbx = new TsPbx(answerSdp(G722));
    await pbx.start(gw.pbxPort);
    const from = gw.logs.length;
    const scoredBefore = gw.server.gateway.detectorStats()!.windowsScored;
    const metricsBefore = await scrape(gw);
    // 3 s of G.722 packets (160 bytes per 20 ms), each payload unique.
    const packets = Array.from({ length: 150 }, (_, k) =>
      Uint8Array.from({ length: 160 }, (_, i) => (k * 31 + i * 7 + (k >> 3)) & 0xff),
    );
    try {
      await codecCaller(gw, 'caller-g722.xml', packets, 9, 3500);
      await pbx.ended(3000);
      expect(pbx.calls[0]?.invite).toMatch(/m=audio \d+ RTP\/AVP 9 101\r\n/);
      const sent = new Set(packets.map((f) => Buffer.from(f).toString('hex')));
      const got = pbx.rtp.filter((p) => p.payloadType === 9);
      expect(got.length).toBeGreaterThanOrEqual(140);
      expect(got.every((p) => sent.has(p.payload.toString('hex')))).toBe(true);
      expect(since(gw, from, 'media.codec_not_analysed')).toMatchObject([{ leg: 'a', codecs: ['g722'] }]);
      expect(gw.server.gateway.detectorStats()!.windowsScored).toBe(scoredBefore);
      expect(since(gw, from, 'call.verdict')).toEqual([]);
      expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
      expect(await grewSince(gw, metricsBefore, 'voiceguard_detector_errors_total')).toBe(1);
    } finally {
      pbx.close();
    }
  });

  it('a G.722 caller that the policy lets through unanalysed: media.codec_not_analysed is info, not a warning, and no detector error', async () => {
    const pbx = new TsPbx(answerSdp(G722));
    await pbx.start(gw.pbxPort);
    const rule = gw.server.policy.createRule(
      { name: 'let through', match: { fromNumbers: ['+4930123456'] }, analyse: false },
      'test',
    );
    const from = gw.logs.length;
    const metricsBefore = await scrape(gw);
    const packets = Array.from({ length: 50 }, (_, k) => new Uint8Array(160).fill(k));
    try {
      await codecCaller(gw, 'caller-g722.xml', packets, 9, 1200);
      await pbx.ended(3000);
      expect(since(gw, from, 'call.started')).toMatchObject([{ treatment: 'allow', rule: 'let through' }]);
      const notAnalysed = since(gw, from, 'media.codec_not_analysed');
      expect(notAnalysed).toMatchObject([{ leg: 'a', codecs: ['g722'] }]);
      expect(Number(notAnalysed[0]!.level)).toBe(30);
      expect(await grewSince(gw, metricsBefore, 'voiceguard_detector_errors_total')).toBe(0);
    } finally {
      gw.server.policy.deleteRule(rule.id, 'test');
      pbx.close();
    }
  });

  it('RTP timeout ends a call whose caller sends no media', async () => {
    const from = gw.logs.length;
    const r = await sippCall(gw, 'pbx-answer.xml', 'caller-wait-bye.xml', null);
    expectBothPassed(r);
    const started = t(since(gw, from, 'call.started')[0]!);
    const ended = since(gw, from, 'call.ended');
    expect(ended.map((l) => l.reason)).toEqual(['rtp-timeout']);
    const afterMs = t(ended[0]!) - started;
    expect(afterMs).toBeGreaterThanOrEqual(RTP_TIMEOUT_MS);
    expect(afterMs).toBeLessThan(RTP_TIMEOUT_MS + 2500);
  });

  it('RTP injected from a wrong port into the caller-side port is not forwarded to the PBX', async () => {
    const pbx = new TsPbx();
    await pbx.start(gw.pbxPort);
    const from = gw.logs.length;
    const injector = createSocket('udp4');
    await new Promise<void>((r) => injector.bind(0, '127.0.0.1', () => r()));
    const marker = Buffer.alloc(160, 0x2a);
    try {
      const uac = runSipp({
        scenario: 'caller-pcap.xml',
        port: await freeUdpPort(),
        target: `127.0.0.1:${gw.sipPort}`,
        pauseMs: 3000,
        cwd: human.dir,
      });
      // Inject only once the caller's real source is latched (before, the injector would be
      // the first valid source and latching would rightly pick it).
      const latched = await waitFor(() => since(gw, from, 'media.latched').some((l) => l.leg === 'a'), 5000);
      expect(latched, 'caller RTP latched').toBe(true);
      const callerPort = Number(since(gw, from, 'media.allocated')[0]!.a);
      const before = pbx.rtp.length;
      for (let i = 0; i < 50; i++) {
        injector.send(
          serializeRtp({
            version: 2,
            padding: false,
            marker: false,
            payloadType: 0,
            sequenceNumber: 1000 + i,
            timestamp: 160 * i,
            ssrc: 0x0badf00d,
            csrc: [],
            extension: false,
            payload: marker,
          }),
          callerPort,
          '127.0.0.1',
        );
        await new Promise((r) => setTimeout(r, 10));
      }
      const caller = await uac.done;
      expect(caller.code, caller.output + caller.errors).toBe(0);
      await pbx.ended(3000);
      // The real caller's audio kept flowing after the injection started...
      expect(pbx.rtp.length - before).toBeGreaterThan(50);
      // ...and none of the injected packets reached the PBX.
      expect(pbx.rtp.filter((p) => p.payload.equals(marker))).toHaveLength(0);
      expect(pbx.rtp.some((p) => p.ssrc === 0x0badf00d)).toBe(false);
      // (Once latched the relay's socket is connected to the caller, so the kernel itself
      // discards the injected datagrams: they never reach user space to be counted.)
    } finally {
      injector.close();
      pbx.close();
    }
  });

  it('delayed offer: INVITE without SDP, offer in the 200, answer in the ACK; media flows and the caller is latched at its SDP port', async () => {
    const pbx = new TsPbx();
    await pbx.start(gw.pbxPort);
    const from = gw.logs.length;
    try {
      const port = await freeUdpPort();
      const mediaPort = await freeUdpBlock(4, [port]);
      const uac = runSipp({
        scenario: 'caller-delayed-offer.xml',
        port,
        mediaPort,
        target: `127.0.0.1:${gw.sipPort}`,
        pauseMs: 3000,
        cwd: human.dir,
      });
      const caller = await uac.done;
      expect(caller.code, caller.output + caller.errors).toBe(0);
      await pbx.ended(3000);
      expect(pbx.calls).toHaveLength(1);
      const call = pbx.calls[0]!;
      // The PBX got the INVITE without an offer, and the caller's answer in the ACK, rewritten to
      // the gateway's PBX-side media port.
      expect(call.invite).not.toMatch(/m=audio/);
      const allocated = since(gw, from, 'media.allocated')[0]!;
      expect(call.ack, 'ACK toward the PBX').toMatch(
        new RegExp(`m=audio ${String(allocated.b)} RTP/AVP 0 101`),
      );
      expect(call.ack).toMatch(/^Content-Type: application\/sdp/im);
      // The caller's audio reached the PBX, and the caller leg latched where its ACK answer said.
      expect(pbx.rtp.length).toBeGreaterThan(100);
      const latched = since(gw, from, 'media.latched').find((l) => l.leg === 'a' && l.kind === 'rtp');
      expect(latched, 'caller RTP latched').toBeDefined();
      expect(latched!.sdpPort).toBe(mediaPort);
      expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
    } finally {
      pbx.close();
    }
  });

  it('100 parallel calls with media complete and release every port', async () => {
    const from = gw.logs.length;
    const before = gw.server.gateway.mediaStats()!;
    const short = await makePcap(fixture(HUMAN_WAV), 2);
    const started = Date.now();
    const r = await sippCall(gw, 'pbx-answer.xml', 'caller-pcap.xml', short, {
      calls: 100,
      rate: 50,
      pauseMs: 1500,
      timeoutS: 40,
    });
    expect(r.caller.code, r.caller.output.slice(-3000) + r.caller.errors).toBe(0);
    expect(r.pbx.code, r.pbx.output.slice(-3000) + r.pbx.errors).toBe(0);
    expect(since(gw, from, 'call.ended')).toHaveLength(100);
    await waitFor(() => gw.server.gateway.mediaStats()!.sessions === 0, 3000);
    const after = gw.server.gateway.mediaStats()!;
    expect(after.sessions).toBe(0);
    expect(after.portsInUse).toBe(0);
    // Media really flowed: ~75 packets per call relayed caller → PBX.
    expect(after.packetsRelayed - before.packetsRelayed).toBeGreaterThan(100 * 50);
    expect(gw.server.gateway.activeCalls).toBe(0);
    expect(Date.now() - started).toBeLessThan(30000);
  });
});

describe('media.forkOnEarlyMedia: analysis from the 183 instead of the answer', () => {
  let early: TestGateway;
  let late: TestGateway;
  beforeAll(async () => {
    const policy = { 'policy.defaults': { onSynthetic: 'log' } };
    early = await startGateway({ ...modelOverrides, ...policy, 'media.forkOnEarlyMedia': true });
    late = await startGateway({ ...modelOverrides, ...policy });
  });
  afterAll(async () => {
    await early?.stop();
    await late?.stop();
  });

  /** The PBX answers 5 s after its 183; the caller talks (the TTS clip) from the 183 on. */
  async function earlyMediaCall(gw: TestGateway): Promise<{ verdictsBeforeAnswer: string[] }> {
    const from = gw.logs.length;
    const r = await sippCall(gw, 'pbx-early-media-slow.xml', 'caller-pcap-early.xml', tts, { pauseMs: 500 });
    expectBothPassed(r);
    const started = Number(since(gw, from, 'call.started')[0]!.time);
    return {
      verdictsBeforeAnswer: since(gw, from, 'call.verdict')
        .filter((l) => Number(l.time) - started < 5000)
        .map((l) => String(l.verdict)),
    };
  }

  it("on: the caller's early-media speech reaches a verdict before the PBX answers", async () => {
    const { verdictsBeforeAnswer } = await earlyMediaCall(early);
    expect(verdictsBeforeAnswer).toHaveLength(1);
  });

  it('off (default): nothing is analysed before the answer', async () => {
    const { verdictsBeforeAnswer } = await earlyMediaCall(late);
    expect(verdictsBeforeAnswer).toEqual([]);
  });
});

describe('media.undecodable: refuse', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ ...modelOverrides, 'media.undecodable': 'refuse' });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('a caller offering only G.722 gets 488 and the PBX is never called', async () => {
    let toPbx = 0;
    const pbx = createSocket('udp4', () => toPbx++);
    await new Promise<void>((r) => pbx.bind(gw.pbxPort, '127.0.0.1', r));
    const caller = createSocket('udp4');
    const replies: string[] = [];
    caller.on('message', (m) => replies.push(m.toString()));
    await new Promise<void>((r) => caller.bind(0, '127.0.0.1', r));
    const port = caller.address().port;
    const sdp = [
      'v=0',
      'o=caller 1 1 IN IP4 127.0.0.1',
      's=-',
      'c=IN IP4 127.0.0.1',
      't=0 0',
      'm=audio 41000 RTP/AVP 9 101',
      'a=rtpmap:9 G722/8000',
      'a=rtpmap:101 telephone-event/8000',
      '',
    ].join('\r\n');
    const invite = [
      `INVITE sip:1000@127.0.0.1:${gw.sipPort} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bK-g722refuse;rport`,
      `From: <sip:+4930123456@127.0.0.1:${port}>;tag=g722`,
      `To: <sip:1000@127.0.0.1:${gw.sipPort}>`,
      'Call-ID: g722-refuse@test',
      'CSeq: 1 INVITE',
      `Contact: <sip:caller@127.0.0.1:${port}>`,
      'Max-Forwards: 70',
      'Content-Type: application/sdp',
      `Content-Length: ${Buffer.byteLength(sdp)}`,
      '',
      sdp,
    ].join('\r\n');
    try {
      caller.send(invite, gw.sipPort, '127.0.0.1');
      await waitFor(() => replies.some((r) => r.startsWith('SIP/2.0 488')), 3000);
      const final = replies.find((r) => /^SIP\/2\.0 [2-6]\d\d/.test(r));
      expect(final, replies.join('\n---\n')).toMatch(/^SIP\/2\.0 488 /);
      expect(toPbx).toBe(0);
      expect(gw.events('media.codec_not_analysed')).toEqual([]);
    } finally {
      caller.close();
      pbx.close();
    }
  });
});

describe('media end to end, policy onSynthetic=warn (sipp caller + TypeScript PBX)', () => {
  let gw: TestGateway;
  const pbx = new TsPbx();
  beforeAll(async () => {
    gw = await startGateway({
      ...modelOverrides,
      'policy.defaults': { onSynthetic: 'warn' },
      'actions.warnToneMs': 600, // not the default 400, so the length below checks the setting is used
    });
    await pbx.start(gw.pbxPort);
  });
  afterAll(async () => {
    pbx.close();
    await gw?.stop();
  });

  it('a TTS call is warned, not dropped, and the two-tone warning reaches the PBX in its RTP', async () => {
    const from = gw.logs.length;
    const uac = runSipp({
      scenario: 'caller-pcap.xml',
      port: await freeUdpPort(),
      target: `127.0.0.1:${gw.sipPort}`,
      pauseMs: tts.durationMs - 300,
      cwd: tts.dir,
    });
    const caller = await uac.done;
    // caller-pcap fails on a BYE from the gateway: the call was not dropped.
    expect(caller.code, caller.output + caller.errors).toBe(0);
    await pbx.ended(3000);
    expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
    const warn = since(gw, from, 'call.action').filter((l) => l.action === 'warn');
    expect(warn).toHaveLength(1);
    expect(since(gw, from, 'call.action').map((l) => l.action)).not.toContain('drop');

    // What the staff member heard: the PBX-bound stream, decoded in arrival order.
    const rtp = pbx.rtp.filter((p) => p.payloadType === 0);
    expect(rtp.length).toBeGreaterThan(100);
    const pcm = new Float32Array(rtp.length * 160);
    rtp.forEach((p, i) => pcm.set(decodeG711ToFloat('pcmu', p.payload), i * 160));
    const [f1, f2] = gw.server.config.actions.warnToneHz as [number, number];
    const warnAtMs = t(warn[0]!);
    const firstAfterWarn = rtp.findIndex((p) => p.atMs >= warnAtMs);
    const beforeWarn = pcm.subarray(0, Math.max(0, firstAfterWarn) * 160);
    const afterWarn = pcm.subarray(Math.max(0, firstAfterWarn) * 160);
    // Both tones are in the stream after the warn action, and neither before it (nor in the
    // caller's own audio): the tone came from the gateway.
    expect(toneBlocks(afterWarn, f1).length, `${f1} Hz after warn`).toBeGreaterThan(4);
    expect(toneBlocks(afterWarn, f2).length, `${f2} Hz after warn`).toBeGreaterThan(4);
    // Each beep lasts actions.warnToneMs: 50 ms blocks every 25 ms, so about warnToneMs / 25 hits.
    const beepBlocks = gw.server.config.actions.warnToneMs / 25;
    for (const f of [f1, f2]) {
      const n = toneBlocks(afterWarn, f).length;
      expect(n, `${f} Hz beep length`).toBeGreaterThanOrEqual(beepBlocks - 3);
      expect(n, `${f} Hz beep length`).toBeLessThanOrEqual(beepBlocks + 3);
    }
    expect(toneBlocks(beforeWarn, f1)).toHaveLength(0);
    expect(toneBlocks(tts.samples, f1)).toHaveLength(0);
    expect(toneBlocks(tts.samples, f2)).toHaveLength(0);
    // RTP timing stays intact across the injection: one SSRC, sequence numbers without jumps.
    const bySsrc = new Set(rtp.map((p) => p.ssrc));
    expect(bySsrc.size).toBe(1);
    for (let i = 1; i < rtp.length; i++) {
      expect(((rtp[i]!.sequenceNumber - rtp[i - 1]!.sequenceNumber) & 0xffff) === 1, `seq at ${i}`).toBe(
        true,
      );
    }
  });
});

describe('media end to end, a G.729-only caller (bcg729), policy onSynthetic=warn', () => {
  let gw: TestGateway;
  const pbx = new TsPbx(answerSdp(G729));
  beforeAll(async () => {
    gw = await startGateway({
      ...modelOverrides,
      'policy.defaults': { onSynthetic: 'warn' },
      'api.bootstrapAdminToken': ADMIN_TOKEN,
    });
    await pbx.start(gw.pbxPort);
  });
  afterAll(async () => {
    pbx.close();
    await gw?.stop();
  });

  async function g729Call(voice: Pcap) {
    const from = gw.logs.length;
    const rtpBefore = pbx.rtp.length;
    const scoredBefore = gw.server.gateway.detectorStats()!.windowsScored;
    const metricsBefore = await scrape(gw);
    // caller-g729 fails on a BYE from the gateway, and unless the answer it gets is G.729.
    const pauseMs = Math.min(voice.durationMs - 300, metadata.decision.maxListenMs + 1000);
    await codecCaller(gw, 'caller-g729.xml', g729Payloads(voice.samples), 18, pauseMs);
    await pbx.ended(3000);
    expect(pbx.calls.at(-1)?.invite).toMatch(/m=audio \d+ RTP\/AVP 18 101\r\n/);
    expect(since(gw, from, 'media.codec_not_analysed')).toEqual([]);
    expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
    expect(await grewSince(gw, metricsBefore, 'voiceguard_calls_answered_total{codec="g729"}')).toBe(1);
    return {
      from,
      rtp: pbx.rtp.slice(rtpBefore).filter((p) => p.payloadType === 18),
      scored: gw.server.gateway.detectorStats()!.windowsScored - scoredBefore,
      verdicts: since(gw, from, 'call.verdict'),
      actions: since(gw, from, 'call.action').map((l) => l.action),
    };
  }

  it('a TTS voice in G.729 is analysed and warned, and the two-tone warning reaches the PBX as G.729', async () => {
    expect(gw.events('media.g729_ready')).toHaveLength(1); // the startup log says the decoder loaded
    const { from, rtp, scored, verdicts, actions } = await g729Call(tts);
    // No rule names G.729: the model's own G.729 bounds (decision.byCodec) are the call's.
    expect(since(gw, from, 'call.started')).toMatchObject([{ codecBounds: 'g729' }]);
    expect(scored).toBeGreaterThanOrEqual(1);
    expect(verdicts).toMatchObject([{ verdict: 'synthetic', codec: 'g729' }]);
    expect(actions).toEqual(['warn']);
    // What the staff member heard: the PBX-bound G.729 stream, decoded in arrival order.
    expect(rtp.length).toBeGreaterThan(100);
    expect(rtp.every((p) => p.payload.length === 20)).toBe(true);
    const dec = new (g729().G729Decoder)();
    const pcm = new Float32Array(rtp.length * 160);
    rtp.forEach((p, i) => pcm.set(dec.decode(p.payload), i * 160));
    dec.close();
    const [f1, f2] = gw.server.config.actions.warnToneHz as [number, number];
    const warnAtMs = t(since(gw, from, 'call.action')[0]!);
    const firstAfterWarn = rtp.findIndex((p) => p.atMs >= warnAtMs);
    expect(firstAfterWarn).toBeGreaterThan(0);
    const afterWarn = pcm.subarray(firstAfterWarn * 160);
    expect(toneBlocks(afterWarn, f1).length, `${f1} Hz after warn`).toBeGreaterThan(4);
    expect(toneBlocks(afterWarn, f2).length, `${f2} Hz after warn`).toBeGreaterThan(4);
    expect(toneBlocks(pcm.subarray(0, firstAfterWarn * 160), f1)).toHaveLength(0);
  });

  it('a human voice in G.729 is analysed and not warned; a rule that names the codec applies to it', async () => {
    // Rules can match the codec of the offer: here stricter bounds for G.729 calls, as docs/tuning.md advises.
    const rule = gw.server.policy.createRule(
      { name: 'G.729 calls', match: { codecs: ['g729'] }, thresholds: { dropLlr: 7, warnLlr: 7 } },
      'test',
    );
    const { from, scored, verdicts, actions } = await g729Call(human);
    gw.server.policy.deleteRule(rule.id, 'test');
    expect(since(gw, from, 'call.started').map((l) => l.rule)).toEqual(['G.729 calls']);
    expect(scored).toBeGreaterThanOrEqual(1);
    expect(verdicts.map((v) => v.verdict)).not.toContain('synthetic');
    if (!verdicts.some((v) => v.verdict === 'human')) expect(scored).toBeGreaterThanOrEqual(3);
    expect(verdicts.every((v) => v.codec === 'g729')).toBe(true);
    expect(actions).toEqual([]);
  });

  it("a delayed offer answered in G.729: the rule that names the codec applies from the caller's answer on", async () => {
    // The INVITE has no SDP, so when the policy is first decided no codec is known and the default
    // (onSynthetic warn) applies. The caller's ACK answers the PBX's G.729 offer: the G.729 rule
    // (onSynthetic log) then matches, and a TTS voice is logged, not warned.
    const rule = gw.server.policy.createRule(
      { name: 'G.729 calls, log only', match: { codecs: ['g729'] }, onSynthetic: 'log' },
      'test',
    );
    const from = gw.logs.length;
    const metricsBefore = await scrape(gw);
    try {
      const pauseMs = Math.min(tts.durationMs - 300, metadata.decision.maxListenMs + 1000);
      await codecCaller(gw, 'caller-g729-delayed-offer.xml', g729Payloads(tts.samples), 18, pauseMs);
      await pbx.ended(3000);
    } finally {
      gw.server.policy.deleteRule(rule.id, 'test');
    }
    const call = pbx.calls.at(-1)!;
    expect(call.invite).not.toMatch(/m=audio/);
    expect(call.ack).toMatch(/m=audio \d+ RTP\/AVP 18 101\r\n/);
    const started = since(gw, from, 'call.started');
    expect(started).toHaveLength(1);
    expect(started[0]!.rule).not.toBe('G.729 calls, log only');
    expect(since(gw, from, 'policy.rule_by_codec')).toMatchObject([
      { codec: 'g729', rule: 'G.729 calls, log only', previousRule: started[0]!.rule, treatment: 'analyse' },
    ]);
    expect(since(gw, from, 'call.verdict')).toMatchObject([{ verdict: 'synthetic', codec: 'g729' }]);
    expect(since(gw, from, 'call.action').map((l) => l.action)).toEqual(['log']);
    expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
    // The call's record names the rule that applied, and the codec of the answer.
    expect(await grewSince(gw, metricsBefore, 'voiceguard_calls_answered_total{codec="g729"}')).toBe(1);
    const callId = String(started[0]!.callId);
    let stored: Record<string, unknown> | null = null;
    for (let i = 0; i < 50 && stored?.endedAtMs == null; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 100));
      const r = await fetch(`http://127.0.0.1:${gw.server.apiPort}/api/calls/${callId}`, {
        headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
      });
      if (r.status === 200) stored = ((await r.json()) as { call: Record<string, unknown> }).call;
    }
    expect(stored).toMatchObject({ ruleId: rule.id, treatment: 'analyse', codec: 'g729' });
  });

  it("a delayed offer answered in G.729 with no rule for it takes the model's G.729 bounds from the answer on", async () => {
    const from = gw.logs.length;
    const pauseMs = Math.min(tts.durationMs - 300, metadata.decision.maxListenMs + 1000);
    await codecCaller(gw, 'caller-g729-delayed-offer.xml', g729Payloads(tts.samples), 18, pauseMs);
    await pbx.ended(3000);
    // At the INVITE no codec was known: the generic bounds. The answer's G.729 brings the model's own.
    const started = since(gw, from, 'call.started');
    expect(started).toHaveLength(1);
    expect(started[0]!.codecBounds).toBeUndefined();
    const g729Bounds = metadata.decision.byCodec!.g729!;
    expect(since(gw, from, 'policy.rule_by_codec')).toMatchObject([
      {
        codec: 'g729',
        rule: 'defaults',
        previousRule: 'defaults',
        codecBounds: 'g729',
        thresholds: {
          dropLlr: g729Bounds.dropLlr,
          warnLlr: g729Bounds.warnLlr,
          humanLlr: g729Bounds.humanLlr,
        },
      },
    ]);
    expect(since(gw, from, 'call.verdict')).toMatchObject([{ codec: 'g729' }]);
    expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
  });

  it('a delayed offer answered in G.729 that a rule with analyse: false matches is relayed unanalysed', async () => {
    const rule = gw.server.policy.createRule(
      { name: 'G.729 calls pass', match: { codecs: ['g729'] }, analyse: false },
      'test',
    );
    const from = gw.logs.length;
    const rtpBefore = pbx.rtp.length;
    const scoredBefore = gw.server.gateway.detectorStats()!.windowsScored;
    try {
      await codecCaller(gw, 'caller-g729-delayed-offer.xml', g729Payloads(tts.samples), 18, 3000);
      await pbx.ended(3000);
    } finally {
      gw.server.policy.deleteRule(rule.id, 'test');
    }
    expect(since(gw, from, 'call.started').map((l) => l.treatment)).toEqual(['analyse']);
    expect(since(gw, from, 'policy.rule_by_codec')).toMatchObject([
      { codec: 'g729', rule: 'G.729 calls pass', treatment: 'allow' },
    ]);
    // Nothing was scored, judged or done, and the caller's G.729 still reached the PBX.
    expect(gw.server.gateway.detectorStats()!.windowsScored - scoredBefore).toBe(0);
    expect(since(gw, from, 'call.verdict')).toEqual([]);
    expect(since(gw, from, 'call.action')).toEqual([]);
    expect(pbx.rtp.slice(rtpBefore).filter((p) => p.payloadType === 18).length).toBeGreaterThan(100);
    expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
  });
});

describe('media end to end, detector fault (fail open)', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    // A real fault: the model file on disk is corrupt (a truncated copy), the metadata is fine.
    const dir = mkdtempSync(join(tmpdir(), 'vg-broken-model-'));
    const broken = join(dir, 'broken.onnx');
    writeFileSync(broken, readFileSync(MODEL).subarray(0, 4096));
    gw = await startGateway({
      ...modelOverrides,
      'detector.modelPath': broken,
      'policy.defaults': { onSynthetic: 'drop' },
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('a TTS-voice call goes on untouched when the model cannot load, and the fault is logged', async () => {
    expect(gw.events('detector.unavailable')).toHaveLength(1);
    const from = gw.logs.length;
    const r = await sippCall(gw, 'pbx-answer.xml', 'caller-pcap.xml', tts, { pauseMs: 4000 });
    expectBothPassed(r);
    expect(since(gw, from, 'call.action').map((l) => l.action)).not.toContain('drop');
    expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['bye-caller']);
    expect(gw.server.gateway.detectorStats()).toBeNull();
  });
});

describe('media end to end, drop with an announcement to the caller', () => {
  let gw: TestGateway;
  const ANNOUNCEMENT_MS = 1500;
  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vg-announce-'));
    const wav = join(dir, 'announce.wav');
    // A 16 kHz WAV on purpose: the gateway resamples announcements to 8 kHz itself.
    execFileSync('sox', [
      '-n',
      '-r',
      '16000',
      '-b',
      '16',
      '-c',
      '1',
      wav,
      'synth',
      String(ANNOUNCEMENT_MS / 1000),
      'sine',
      '600',
    ]);
    gw = await startGateway({
      ...modelOverrides,
      'policy.defaults': { onSynthetic: 'drop' },
      'actions.dropAnnouncement': wav,
    });
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('plays the announcement toward the caller, then hangs up', async () => {
    const loaded = gw.events('actions.announcement_loaded');
    expect(loaded.map((l) => [l.kind, l.ms])).toEqual([['drop', ANNOUNCEMENT_MS]]);
    const from = gw.logs.length;
    const r = await sippCall(gw, 'pbx-dropped.xml', 'caller-pcap-dropped.xml', tts);
    expect(r.caller.code, r.caller.output + r.caller.errors).toBe(0);
    const drop = since(gw, from, 'call.action').find((l) => l.action === 'drop');
    expect(drop, 'drop action').toBeDefined();
    const ended = since(gw, from, 'call.ended');
    expect(ended.map((l) => l.reason)).toEqual(['dropped']);
    // The BYE waits for the announcement's playout (20 ms packets in real time).
    expect(t(ended[0]!) - t(drop!)).toBeGreaterThanOrEqual(ANNOUNCEMENT_MS - 100);
  });

  it('the caller hears the announcement: its RTP, decoded at the caller, is the 600 Hz file for its length', async () => {
    // The caller's media is this test's own UDP socket (sipp only signals, with this socket's
    // port in its SDP), so the test can decode what the gateway sends back to the caller.
    const media = createSocket('udp4');
    await new Promise<void>((r) => media.bind(0, '127.0.0.1', () => r()));
    const heard: { atMs: number; payloadType: number; payload: Buffer }[] = [];
    media.on('message', (buf) => {
      const p = parseRtp(buf);
      if (p) heard.push({ atMs: Date.now(), payloadType: p.payloadType, payload: Buffer.from(p.payload) });
    });
    const pbx = runSipp({ scenario: 'pbx-dropped.xml', port: gw.pbxPort, timeoutS: 30 });
    await waitUdpBound(gw.pbxPort);
    const from = gw.logs.length;
    let sending = true;
    try {
      const uac = runSipp({
        scenario: 'caller-extmedia-dropped.xml',
        port: await freeUdpPort(),
        target: `127.0.0.1:${gw.sipPort}`,
        keys: { mport: String(media.address().port) },
        timeoutS: 30,
      });
      const allocated = await waitFor(() => since(gw, from, 'media.allocated').length > 0, 5000);
      expect(allocated, 'media allocated').toBe(true);
      const callerPort = Number(since(gw, from, 'media.allocated')[0]!.a);
      // The TTS fixture as PCMU, 20 ms packets in real time, until the gateway hangs up.
      const t0 = Date.now();
      void (async () => {
        for (let i = 0; sending && (i + 1) * 160 <= tts.samples.length; i++) {
          const payload = encodeG711FromFloat('pcmu', tts.samples.subarray(i * 160, (i + 1) * 160));
          media.send(
            serializeRtp({
              version: 2,
              padding: false,
              extension: false,
              marker: i === 0,
              payloadType: 0,
              sequenceNumber: i,
              timestamp: i * 160,
              ssrc: 0x5ca11e5,
              csrc: [],
              payload,
            }),
            callerPort,
            '127.0.0.1',
          );
          await new Promise((r) => setTimeout(r, Math.max(0, t0 + (i + 1) * 20 - Date.now())));
        }
      })();
      const caller = await uac.done;
      sending = false;
      expect(caller.code, caller.output + caller.errors).toBe(0);
      const drop = since(gw, from, 'call.action').find((l) => l.action === 'drop');
      expect(drop, 'drop action').toBeDefined();
      expect(since(gw, from, 'call.ended').map((l) => l.reason)).toEqual(['dropped']);
      // The PBX leg was silent (sipp's PBX sends no RTP), so everything the caller heard is the
      // gateway's own audio, and none of it before the drop.
      expect(heard.filter((p) => p.atMs < t(drop!) - 50)).toHaveLength(0);
      expect(new Set(heard.map((p) => p.payloadType))).toEqual(new Set([0])); // the codec the call negotiated
      const pcm = new Float32Array(heard.length * 160);
      heard.forEach((p, i) => pcm.set(decodeG711ToFloat('pcmu', p.payload), i * 160));
      // 25 ms steps of 50 ms blocks: a 1.5 s tone gives about 59; a 1.2 s floor allows for the
      // first and last packets and for block edges.
      const hits = toneBlocks(pcm, 600);
      expect(hits.length, `600 Hz blocks in ${heard.length} packets`).toBeGreaterThanOrEqual(48);
      expect(heard.length * 20).toBeGreaterThanOrEqual(ANNOUNCEMENT_MS - 100);
      expect(heard.length * 20).toBeLessThanOrEqual(ANNOUNCEMENT_MS + 200);
      // Nearly all of the audio's power is the 600 Hz sine (a sine of amplitude A has Goertzel power
      // A² and mean square A²/2): it is the file, not noise or the caller's own voice looped back.
      const shares: number[] = [];
      for (let i = 400; i + 400 <= pcm.length - 400; i += 400) {
        const x = pcm.subarray(i, i + 400);
        shares.push(goertzelPower(x, 600, 8000) / (2 * meanSquare(x) + 1e-12));
      }
      shares.sort((a, b) => a - b);
      expect(shares[Math.floor(shares.length / 2)], 'median share of 600 Hz').toBeGreaterThan(0.9);
    } finally {
      sending = false;
      const k = setTimeout(() => pbx.kill(), 5000);
      await pbx.done;
      clearTimeout(k);
      media.close();
    }
  });

  it('refuses to start when the configured announcement cannot be read, naming the key and file', async () => {
    await expect(
      startGateway({ ...modelOverrides, 'actions.warnAnnouncement': '/nonexistent/warn.wav' }),
    ).rejects.toThrow(/actions\.warnAnnouncement: cannot read \/nonexistent\/warn\.wav/);
  });
});
