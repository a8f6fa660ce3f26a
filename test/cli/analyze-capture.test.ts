import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { speechLikeSignal } from '../../bench/detect-signal.js';
import { buildUdpFrame, writeRtpPcap } from '../../src/audio/pcap-writer.js';
import { encodeWav16 } from '../../src/audio/wav.js';
import { pcapRecords, throughG711, tool, writePcap } from '../audio/capture-helpers.js';
import { loadAudioFile, to8k } from '../../src/audio/load-audio.js';
import { MODEL_PATH } from '../detect/helpers.js';
import { analyze, CLI, jsonLines } from './run-analyze.js';

/**
 * `voiceguard analyze` on captures, run as a user runs it (built CLI, real model): the caller's
 * stream is what gets scored, --all-streams scores and names each, damage is reported.
 */

type Line = {
  file: string;
  stream?: string;
  score: number | null;
  verdict: string;
  decisionMs: number | null;
  windows: Array<{ tMs: number; llr: number }>;
};
const lines = (stdout: string): Line[] => jsonLines(stdout) as unknown as Line[];

let dir: string;
let callPcapng: string;
let callerWav: string;
let calleeWav: string;
const callerSpeech = speechLikeSignal(6000, 17);
const calleeSpeech = speechLikeSignal(6000, 99);

beforeAll(() => {
  expect(existsSync(CLI), `${CLI} missing: build first (npx tsc -p tsconfig.build.json)`).toBe(true);
  expect(existsSync(MODEL_PATH), `${MODEL_PATH} missing (the trained model)`).toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'vg-analyze-cap-'));
  const caller = { address: '203.0.113.7', port: 16384 };
  const callee = { address: '10.9.9.9', port: 20002 };
  const sdp = `v=0\r\no=- 1 1 IN IP4 ${caller.address}\r\ns=-\r\nc=IN IP4 ${caller.address}\r\nt=0 0\r\nm=audio ${caller.port} RTP/AVP 0\r\n`;
  const invite = `INVITE sip:100@10.9.9.9 SIP/2.0\r\nVia: SIP/2.0/UDP ${caller.address}:5060;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:100@10.9.9.9>\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: ${sdp.length}\r\n\r\n${sdp}`;
  // The callee's stream starts first, so only the SIP can tell which is the caller.
  const recs = [
    ...pcapRecords(
      writeRtpPcap({
        samples: calleeSpeech,
        codec: 'pcma',
        src: callee,
        dst: caller,
        ssrc: 0x2222,
        startTimeMs: 10,
      }),
    ),
    ...pcapRecords(
      writeRtpPcap({
        samples: callerSpeech,
        codec: 'pcmu',
        src: caller,
        dst: callee,
        ssrc: 0x1111,
        startTimeMs: 30,
      }),
    ),
  ].sort((x, y) => x.timeMs - y.timeMs);
  const sip = {
    timeMs: 0,
    frame: buildUdpFrame(
      { address: caller.address, port: 5060 },
      { address: '10.9.9.9', port: 5060 },
      Buffer.from(invite),
    ),
  };
  const pcap = join(dir, 'call.pcap');
  writeFileSync(pcap, writePcap([sip, ...recs], 1));
  callPcapng = join(dir, 'call.pcapng');
  tool('editcap', ['-F', 'pcapng', pcap, callPcapng]);
  // The same audio as WAV files: G.711 decodes to int16, so the WAV holds it exactly.
  callerWav = join(dir, 'caller.wav');
  writeFileSync(callerWav, encodeWav16(throughG711('pcmu', callerSpeech), 8000));
  calleeWav = join(dir, 'callee.wav');
  writeFileSync(calleeWav, encodeWav16(throughG711('pcma', calleeSpeech), 8000));
});

function sameAnalysis(a: Line, b: Line): void {
  expect(a.verdict).toBe(b.verdict);
  expect(a.decisionMs).toBe(b.decisionMs);
  expect(a.windows.length).toBeGreaterThan(3);
  expect(a.windows.length).toBe(b.windows.length);
  a.windows.forEach((w, i) => {
    expect(w.tMs).toBe(b.windows[i].tMs);
    expect(Math.abs(w.llr - b.windows[i].llr)).toBeLessThan(1e-5);
  });
}

describe('voiceguard analyze on captures', () => {
  it('scores the caller stream (from the INVITE SDP) of a pcapng exactly as its audio as WAV', async () => {
    const r = await analyze(['--json', callPcapng, callerWav, calleeWav]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const [cap, callerRef, calleeRef] = lines(r.stdout);
    expect(Object.keys(cap)).toEqual(['file', 'score', 'verdict', 'decisionMs', 'windows']);
    expect(cap.file).toBe(callPcapng);
    sameAnalysis(cap, callerRef);
    // And it is not the callee's audio.
    expect(cap.windows.map((w) => w.llr)).not.toEqual(calleeRef.windows.map((w) => w.llr));
  });

  it('--all-streams: one JSON line per stream, labelled, the caller marked', async () => {
    const r = await analyze(['--json', '--all-streams', callPcapng, calleeWav]);
    expect(r.code).toBe(0);
    const [callee, caller, wav] = lines(r.stdout);
    expect(Object.keys(caller)).toEqual(['file', 'stream', 'score', 'verdict', 'decisionMs', 'windows']);
    expect(callee.stream).toBe('ssrc=0x00002222 10.9.9.9:20002->203.0.113.7:16384 pcma');
    expect(caller.stream).toBe('ssrc=0x00001111 203.0.113.7:16384->10.9.9.9:20002 pcmu caller');
    sameAnalysis(callee, wav);
    expect(wav.stream).toBeUndefined();
  });

  it('a truncated capture is analysed with a warning; a corrupt one fails with one line', async () => {
    const bytes = readFileSync(callPcapng);
    const cut = join(dir, 'cut.pcapng');
    writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    const corrupt = join(dir, 'corrupt.pcap');
    const bad = Buffer.from(readFileSync(join(dir, 'call.pcap')));
    bad.writeUInt32LE(0x7fffffff, 24 + 8);
    writeFileSync(corrupt, bad);
    const r = await analyze(['--json', cut, corrupt]);
    expect(r.code).toBe(1);
    expect(lines(r.stdout).map((l) => l.file)).toEqual([cut]);
    expect(r.stderr.trim().split('\n')).toEqual([
      `voiceguard analyze: ${cut}: warning: capture ends mid-packet (truncated file); read the 600 packets before the cut`,
      `voiceguard analyze: ${corrupt}: corrupt pcap record 1 at byte 24 (captured length 2147483647)`,
    ]);
  });

  it("a G.729 stream is judged with the model's G.729 bounds, as the gateway judges such a call", async () => {
    const meta = JSON.parse(readFileSync(MODEL_PATH.replace(/\.onnx$/, '.json'), 'utf8')) as {
      decision: {
        dropLlr: number;
        humanLlr: number;
        byCodec: { g729: { dropLlr: number; humanLlr: number } };
      };
    };
    const g729 = meta.decision.byCodec.g729;
    const file = join(dir, 'g729.pcap');
    const samples = to8k(await loadAudioFile('test/fixtures/synthetic-mimic3-1.wav'));
    writeFileSync(
      file,
      writeRtpPcap({
        samples,
        codec: 'g729',
        src: { address: '203.0.113.7', port: 16384 },
        dst: { address: '10.9.9.9', port: 20002 },
        ssrc: 0x3333,
        startTimeMs: 0,
      }),
    );
    const run = async (args: string[]) => {
      const r = await analyze(['--json', ...args, file]);
      expect(r.code, r.stderr).toBe(0);
      const [l] = lines(r.stdout);
      return { verdict: l!.verdict, decisionMs: l!.decisionMs };
    };
    const byDefault = await run([]);
    const atG729 = await run([
      '--threshold-drop',
      String(g729.dropLlr),
      '--threshold-human',
      String(g729.humanLlr),
    ]);
    const atGeneric = await run([
      '--threshold-drop',
      String(meta.decision.dropLlr),
      '--threshold-human',
      String(meta.decision.humanLlr),
    ]);
    expect(byDefault).toEqual(atG729);
    // This clip reaches the generic drop bound earlier than the G.729 one, so the two runs differ.
    expect(atGeneric.verdict).toBe('synthetic');
    expect(atGeneric).not.toEqual(atG729);
  });
});
