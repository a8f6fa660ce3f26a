import { describe, expect, it } from 'vitest';
import { generateTone } from '../../src/audio/tone.js';
import {
  classifyFrame,
  DEFAULT_VAD_OPTIONS,
  frameFeatures,
  speechRegions,
  VoiceActivityGate,
} from '../../src/detect/vad.js';
import { speechLikeSignal } from '../../bench/detect-signal.js';
import { concat, rng, silence } from './helpers.js';

const DTMF_LOW = [697, 770, 852, 941];
const DTMF_HIGH = [1209, 1336, 1477, 1633];

function speechMs(x: Float32Array): number {
  return speechRegions(x).reduce((n, r) => n + r.endMs - r.startMs, 0);
}

function whiteNoise(ms: number, amplitude: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: ms * 8 }, () => (r() * 2 - 1) * amplitude);
}

/** Tone bursts with a cadence, e.g. ringback 1 s on / 4 s off. */
function cadence(
  freqs: number[],
  onMs: number,
  offMs: number,
  cycles: number,
  levelDbfs: number,
): Float32Array {
  const parts: Float32Array[] = [];
  for (let i = 0; i < cycles; i++) {
    parts.push(
      generateTone({ frequenciesHz: freqs, durationMs: onMs, levelDbfs, rampMs: 5 }),
      silence(offMs),
    );
  }
  return concat(parts);
}

describe('voice-activity gate', () => {
  it('passes speech-like audio', () => {
    const x = speechLikeSignal(6000, 11);
    expect(speechMs(x)).toBeGreaterThan(0.9 * 6000);
  });

  it('rejects digital silence and quiet line noise', () => {
    expect(speechMs(silence(5000))).toBe(0);
    expect(speechMs(whiteNoise(5000, 0.004, 1))).toBe(0); // about -54 dBFS
  });

  it('rejects loud white noise (flat spectrum)', () => {
    expect(speechMs(whiteNoise(5000, 0.3, 2))).toBe(0);
  });

  it.each([
    ['European ringback 425 Hz, 1 s on / 4 s off', [425], 1000, 4000],
    ['North American ringback 440+480 Hz, 2 s on / 4 s off', [440, 480], 2000, 4000],
    ['UK ringback 400+450 Hz, 0.4 s on / 0.2 s off', [400, 450], 400, 200],
    ['busy 480+620 Hz', [480, 620], 500, 500],
    ['dial tone 350+440 Hz', [350, 440], 3000, 0],
  ])('rejects %s at any level', (_name, freqs, on, off) => {
    for (const level of [-10, -20, -30]) {
      expect(speechMs(cadence(freqs as number[], on as number, off as number, 2, level))).toBe(0);
    }
  });

  it('rejects all 16 DTMF digits, dialled fast and slow', () => {
    for (const [onMs, offMs] of [
      [50, 50],
      [100, 100],
      [300, 100],
    ]) {
      const parts: Float32Array[] = [];
      for (const lo of DTMF_LOW)
        for (const hi of DTMF_HIGH) {
          parts.push(
            generateTone({ frequenciesHz: [lo, hi], durationMs: onMs, levelDbfs: -12, rampMs: 2 }),
            silence(offMs),
          );
        }
      expect(speechMs(concat(parts))).toBe(0);
    }
  });

  it('classifies steady tone frames as tones and speech frames as voiced', () => {
    const tone = generateTone({ frequenciesHz: [941, 1477], durationMs: 200, levelDbfs: -15, rampMs: 0 });
    expect(classifyFrame(frameFeatures(tone, 800), DEFAULT_VAD_OPTIONS)).toBe('tone');
    const speech = speechLikeSignal(3000, 4);
    let voiced = 0;
    let frames = 0;
    for (let o = 480; o + 160 <= speech.length; o += 160) {
      const f = frameFeatures(speech, o);
      if (f.energyDbfs < -45) continue;
      frames++;
      if (classifyFrame(f, DEFAULT_VAD_OPTIONS) === 'voiced') voiced++;
    }
    expect(voiced / frames).toBeGreaterThan(0.8);
  });

  it('keeps speech and drops the DTMF and ringback around it', () => {
    const speech = speechLikeSignal(3000, 8);
    const x = concat([
      cadence([440, 480], 2000, 1000, 1, -15),
      speech,
      silence(500),
      ...DTMF_LOW.map((lo) =>
        generateTone({ frequenciesHz: [lo, 1336], durationMs: 120, levelDbfs: -10, rampMs: 2 }),
      ),
      silence(500),
    ]);
    const regions = speechRegions(x);
    const total = regions.reduce((n, r) => n + r.endMs - r.startMs, 0);
    expect(total).toBeGreaterThan(2700);
    // Everything reported lies in the speech stretch (3000..6000 ms), give or take the hangover.
    for (const r of regions) {
      expect(r.startMs).toBeGreaterThanOrEqual(2900);
      expect(r.endMs).toBeLessThanOrEqual(6000 + DEFAULT_VAD_OPTIONS.hangoverMs + 20);
    }
  });

  it('gives the same segments whatever the chunk size', () => {
    const x = concat([silence(300), speechLikeSignal(2500, 2), silence(700), speechLikeSignal(1500, 3)]);
    const run = (chunk: (i: number) => number) => {
      const gate = new VoiceActivityGate();
      const segs: Array<[number, number[]]> = [];
      for (let i = 0, k = 0; i < x.length; k++) {
        const n = chunk(k);
        for (const s of gate.process(x.subarray(i, i + n))) segs.push([s.startSample, Array.from(s.samples)]);
        i += n;
      }
      // Flatten into one sample→position map so different segment boundaries compare equal.
      const flat = new Map<number, number>();
      for (const [start, samples] of segs) samples.forEach((v, j) => flat.set(start + j, v));
      return flat;
    };
    const r = rng(1);
    const whole = run(() => x.length);
    expect(whole.size).toBeGreaterThan(3000 * 8);
    for (const sizes of [() => 160, () => 1, () => 37, () => 1 + Math.floor(r() * 2000)]) {
      expect(run(sizes)).toEqual(whole);
    }
  });

  it('respects the energy threshold and minimum speech time', () => {
    const quiet = speechLikeSignal(3000, 6).map((v) => v * 0.003); // far below -45 dBFS
    expect(speechMs(quiet)).toBe(0);
    const click = concat([silence(500), speechLikeSignal(80, 9), silence(500)]);
    expect(speechMs(click)).toBe(0);
    const lowThreshold = speechRegions(quiet, { energyThresholdDbfs: -90 });
    expect(lowThreshold.length).toBeGreaterThan(0);
  });
});

describe('voice-activity gate options', () => {
  it('minSpeechMs: a voiced run shorter than it is not speech, a longer one is', () => {
    // Three 120 ms bursts of speech-like audio, 600 ms apart.
    const burst = speechLikeSignal(120, 5);
    const short = concat([silence(400), burst, silence(600), burst, silence(600), burst, silence(400)]);
    expect(speechRegions(short)).toEqual([]); // the default 200 ms
    expect(speechRegions(short, { minSpeechMs: 80 }).length).toBe(3);
    // One 600 ms run.
    const long = concat([silence(400), speechLikeSignal(600, 6), silence(400)]);
    expect(speechRegions(long).length).toBe(1);
    expect(speechRegions(long, { minSpeechMs: 1000 })).toEqual([]);
  });
});
