import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { speechLikeSignal } from '../../bench/detect-signal.js';
import { writeRtpPcap } from '../../src/audio/pcap-writer.js';
import { resample } from '../../src/audio/resampler.js';
import { encodeWav16 } from '../../src/audio/wav.js';
import { analyze, CLI, jsonLines } from './run-analyze.js';

const FIXTURES = 'test/fixtures';

function checkContract(o: Record<string, unknown>, withStream = false): void {
  expect(Object.keys(o)).toEqual(
    withStream
      ? ['file', 'stream', 'score', 'verdict', 'decisionMs', 'windows']
      : ['file', 'score', 'verdict', 'decisionMs', 'windows'],
  );
  expect(['synthetic', 'human', 'unsure']).toContain(o.verdict);
  const windows = o.windows as Array<{ tMs: number; llr: number }>;
  expect(Array.isArray(windows)).toBe(true);
  let prev = -Infinity;
  for (const w of windows) {
    expect(Object.keys(w)).toEqual(['tMs', 'llr']);
    expect(Number.isFinite(w.llr)).toBe(true);
    expect(w.tMs).toBeGreaterThan(prev);
    prev = w.tMs;
  }
  if (windows.length === 0) {
    expect(o.score).toBeNull();
  } else {
    const score = o.score as number;
    expect(score).toBeGreaterThanOrEqual(0);
    expect(score).toBeLessThanOrEqual(1);
    const mean = windows.reduce((a, w) => a + w.llr, 0) / windows.length;
    expect(score).toBeCloseTo(1 / (1 + Math.exp(-mean)), 5);
  }
  if (o.decisionMs !== null) {
    expect(typeof o.decisionMs).toBe('number');
    expect(windows.some((w) => w.tMs === o.decisionMs)).toBe(true);
  }
  if (o.verdict !== 'unsure') expect(o.decisionMs).not.toBeNull();
}

let dir: string;
let speechWav: string;
let speech16kWav: string;
let corruptWav: string;
let textFile: string;
let callPcap: string;
let twoStreamPcap: string;
let tonesWav: string;

beforeAll(() => {
  expect(existsSync(CLI), `${CLI} missing: build first (npx tsc -p tsconfig.build.json)`).toBe(true);
  dir = mkdtempSync(join(tmpdir(), 'vg-analyze-'));
  const speech = speechLikeSignal(6000, 17);
  speechWav = join(dir, 'speech.wav');
  writeFileSync(speechWav, encodeWav16(speech, 8000));
  speech16kWav = join(dir, 'speech-16k.wav');
  writeFileSync(speech16kWav, encodeWav16(resample(speech, 8000, 16000), 16000));
  corruptWav = join(dir, 'corrupt.wav');
  writeFileSync(
    corruptWav,
    Buffer.concat([Buffer.from('RIFF\x24\x00\x00\x00WAVEfmt '), Buffer.alloc(7, 0xff)]),
  );
  textFile = join(dir, 'notes.txt');
  writeFileSync(textFile, 'this is not audio\n');
  tonesWav = join(dir, 'ringback.wav');
  const ring = new Float32Array(8000 * 6);
  for (let i = 0; i < ring.length; i++) {
    const on = i % 48000 < 16000;
    ring[i] = on
      ? 0.2 * (Math.sin((2 * Math.PI * 440 * i) / 8000) + Math.sin((2 * Math.PI * 480 * i) / 8000))
      : 0;
  }
  writeFileSync(tonesWav, encodeWav16(ring, 8000));
  callPcap = join(dir, 'call.pcap');
  const caller = writeRtpPcap({
    samples: speech,
    codec: 'pcmu',
    src: '10.0.0.1:40000',
    dst: '10.0.0.2:20000',
    ssrc: 0x1111,
  });
  writeFileSync(callPcap, caller);
  // Two streams in one capture: the caller's and the callee's, interleaved by time.
  const callee = writeRtpPcap({
    samples: speechLikeSignal(6000, 99),
    codec: 'pcma',
    src: '10.0.0.2:20000',
    dst: '10.0.0.1:40000',
    ssrc: 0x2222,
  });
  twoStreamPcap = join(dir, 'two.pcap');
  writeFileSync(twoStreamPcap, Buffer.concat([caller, callee.subarray(24)]));
});

describe('voiceguard analyze', () => {
  it('prints one JSON line per good file, a one-line error per bad one, and exits 1', async () => {
    const missing = join(dir, 'missing.wav');
    const r = await analyze(['--json', speechWav, corruptWav, missing, textFile, callPcap]);
    expect(r.code).toBe(1);
    const lines = jsonLines(r.stdout);
    expect(lines.map((l) => l.file)).toEqual([speechWav, callPcap]);
    for (const l of lines) checkContract(l);
    const errors = r.stderr.trim().split('\n');
    expect(errors).toHaveLength(3);
    expect(errors[0]).toContain(corruptWav);
    expect(errors[1]).toContain(missing);
    expect(errors[1]).toMatch(/no such file/);
    expect(errors[2]).toContain(textFile);
    // The pcap carries the same speech through G.711: the same windows, similar evidence.
    const [wav, pcap] = lines as Array<{ windows: Array<{ llr: number }> }>;
    expect(Math.abs(pcap.windows.length - wav.windows.length)).toBeLessThanOrEqual(1);
  });

  it('exits 0 when every file is fine, and is deterministic', async () => {
    const a = await analyze(['--json', speechWav, speech16kWav]);
    const b = await analyze(['--json', speechWav, speech16kWav]);
    expect(a.code).toBe(0);
    expect(a.stdout).toBe(b.stdout);
    const [s8, s16] = jsonLines(a.stdout);
    checkContract(s8);
    checkContract(s16);
    // A 16 kHz recording is resampled to 8 kHz: same number of windows.
    expect((s16.windows as unknown[]).length).toBe((s8.windows as unknown[]).length);
  });

  it('gives the same results with a worker pool as in one thread', async () => {
    const files = [speechWav, callPcap, speech16kWav, tonesWav];
    const one = await analyze(['--json', '--jobs', '1', ...files]);
    const pool = await analyze(['--json', '--jobs', '3', ...files]);
    expect(one.code).toBe(0);
    expect(pool.code).toBe(0);
    const a = jsonLines(one.stdout);
    const b = jsonLines(pool.stdout);
    expect(b.map((l) => l.file)).toEqual(files);
    a.forEach((l, i) => {
      expect(b[i].verdict).toBe(l.verdict);
      const wa = l.windows as Array<{ tMs: number; llr: number }>;
      const wb = b[i].windows as Array<{ tMs: number; llr: number }>;
      expect(wb.length).toBe(wa.length);
      wa.forEach((w, k) => expect(Math.abs(wb[k].llr - w.llr)).toBeLessThan(1e-5));
    });
  });

  it('finds no speech in ringback: no windows, score null, unsure', async () => {
    const r = await analyze(['--json', tonesWav]);
    expect(r.code).toBe(0);
    const [o] = jsonLines(r.stdout);
    checkContract(o);
    expect(o).toMatchObject({ score: null, verdict: 'unsure', decisionMs: null, windows: [] });
  });

  it('analyses every RTP stream with --all-streams, naming each', async () => {
    const r = await analyze(['--json', '--all-streams', twoStreamPcap]);
    expect(r.code).toBe(0);
    const lines = jsonLines(r.stdout);
    expect(lines).toHaveLength(2);
    for (const l of lines) checkContract(l, true);
    const names = lines.map((l) => String(l.stream));
    expect(names.some((n) => n.includes('0x00001111'))).toBe(true);
    expect(names.some((n) => n.includes('0x00002222'))).toBe(true);
    const single = jsonLines((await analyze(['--json', twoStreamPcap])).stdout);
    expect(single).toHaveLength(1);
    checkContract(single[0]);
  });

  it('applies the thresholds: a bound the evidence crosses decides, at a window time', async () => {
    const probe = jsonLines(
      (await analyze(['--json', '--threshold-drop', '1e6', '--threshold-human', '-1e6', speechWav])).stdout,
    )[0];
    const windows = probe.windows as Array<{ tMs: number; llr: number }>;
    expect(windows.length).toBeGreaterThan(3);
    const r = await analyze([
      '--json',
      '--max-listen-ms',
      '2000',
      '--threshold-drop',
      '1e6',
      '--threshold-human',
      '-1e6',
      speechWav,
    ]);
    const o = jsonLines(r.stdout)[0];
    expect(o.verdict).toBe('unsure');
    expect(o.decisionMs).not.toBeNull();
    expect(o.decisionMs as number).toBeLessThan(windows[windows.length - 1].tMs);
    // Scores keep coming after the decision: all windows are reported.
    expect((o.windows as unknown[]).length).toBe(windows.length);
  });

  it('prints a readable table without --json', async () => {
    const r = await analyze([speechWav, tonesWav]);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/VERDICT.*P\(SYNTH\).*DECIDED.*FILE/);
    expect(lines[1]).toContain(speechWav);
    expect(lines[2]).toContain(tonesWav);
    expect(lines[2]).toMatch(/^unsure\s+-\s+-\s+0\s/);
  });

  it('writes one SVG chart per file with --plot', async () => {
    const plots = join(dir, 'plots');
    const r = await analyze(['--plot', plots, '--json', speechWav, callPcap]);
    expect(r.code).toBe(0);
    const files = readdirSync(plots).sort();
    expect(files).toEqual(['call.pcap.svg', 'speech.wav.svg']);
    const svg = readFileSync(join(plots, 'speech.wav.svg'), 'utf8');
    const verdict = String(jsonLines(r.stdout)[0].verdict);
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toContain(speechWav);
    expect(svg).toContain(verdict.toUpperCase());
    expect(svg).toMatch(/<polyline /); // cumulative evidence
    expect(svg).toMatch(/speech<\/text>/); // legend of the shaded speech regions
    expect(svg.trim().endsWith('</svg>')).toBe(true);
  });

  it('exits 2 on usage errors', async () => {
    for (const args of [
      [],
      ['--threshold-drop', 'abc', speechWav],
      ['--threshold-human', '1', speechWav],
      ['--max-listen-ms', '0', speechWav],
      ['--jobs', '0', speechWav],
      ['--no-such-option', speechWav],
    ]) {
      const r = await analyze(args);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.length).toBeGreaterThan(0);
    }
  });

  it('scores the labelled synthetic fixtures above the human ones on average', async () => {
    const all = existsSync(FIXTURES)
      ? readdirSync(FIXTURES).filter((f) => /\.(wav|pcap|pcapng)$/i.test(f))
      : [];
    const human = all.filter((f) => f.startsWith('human-')).map((f) => join(FIXTURES, f));
    const synthetic = all.filter((f) => f.startsWith('synthetic-')).map((f) => join(FIXTURES, f));
    expect(human.length, 'labelled human-* fixtures in test/fixtures').toBeGreaterThan(0);
    expect(synthetic.length, 'labelled synthetic-* fixtures in test/fixtures').toBeGreaterThan(0);
    const r = await analyze(['--json', ...human, ...synthetic]);
    expect(r.code).toBe(0);
    const lines = jsonLines(r.stdout);
    const mean = (files: string[]) => {
      const scores = lines.filter((l) => files.includes(String(l.file))).map((l) => l.score as number | null);
      const real = scores.filter((s): s is number => s !== null);
      expect(real.length).toBe(files.length);
      return real.reduce((a, s) => a + s, 0) / real.length;
    };
    expect(mean(synthetic)).toBeGreaterThan(mean(human));
    // No fixture may be called the opposite of its label.
    for (const l of lines) {
      const label = String(l.file).includes('/synthetic-') ? 'synthetic' : 'human';
      expect(
        l.verdict === (label === 'synthetic' ? 'human' : 'synthetic'),
        `${String(l.file)} → ${String(l.verdict)}`,
      ).toBe(false);
    }
  });
});
