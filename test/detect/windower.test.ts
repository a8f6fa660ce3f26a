import { describe, expect, it } from 'vitest';
import { Windower } from '../../src/detect/windower.js';
import { rng } from './helpers.js';

function ramp(n: number, from = 0): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => (from + i) / 1e6);
}

describe('Windower', () => {
  it('emits floor((N-W)/H)+1 windows with the right contents, whatever the chunking', () => {
    const r = rng(3);
    for (const [W, H] of [
      [8000, 4000],
      [8000, 8000],
      [12000, 4000],
      [1000, 300],
    ]) {
      for (let trial = 0; trial < 6; trial++) {
        const N = Math.floor(r() * 5 * W);
        const all = ramp(N);
        const w = new Windower({ windowSamples: W, hopSamples: H, sampleRateHz: 8000 });
        const got = [];
        for (let i = 0; i < N;) {
          const n = 1 + Math.floor(r() * 3000);
          got.push(...w.push(all.subarray(i, i + n), i));
          i += n;
        }
        const expected = N >= W ? Math.floor((N - W) / H) + 1 : 0;
        expect(got.length).toBe(expected);
        got.forEach((win, k) => {
          expect(win.index).toBe(k);
          expect(win.samples).toEqual(all.subarray(k * H, k * H + W));
          expect(win.tMs).toBe(((k * H + W) * 1000) / 8000);
          expect(win.speechMs).toBe(((k * H + W) * 1000) / 8000);
        });
      }
    }
  });

  it('skips speech between windows when the hop is longer than the window', () => {
    const w = new Windower({ windowSamples: 100, hopSamples: 250, sampleRateHz: 8000 });
    const all = ramp(1000);
    const got = w.push(all, 0);
    expect(got.map((x) => x.samples[0] * 1e6)).toEqual([0, 250, 500, 750].map((v) => expect.closeTo(v, 3)));
  });

  it('stamps windows with stream time across pauses, and speech time without them', () => {
    const w = new Windower({ windowSamples: 800, hopSamples: 400, sampleRateHz: 8000 });
    // 500 samples of speech at stream 0, then a pause, then 700 at stream 8000 (1 s later).
    expect(w.push(ramp(500), 0)).toEqual([]);
    const got = w.push(ramp(700, 500), 8000);
    expect(got.map((x) => [x.tMs, x.speechMs])).toEqual([
      [((8000 + 300) * 1000) / 8000, 100],
      [((8000 + 700) * 1000) / 8000, 150],
    ]);
  });

  it('finish() fills one window from a short utterance by repetition, else nothing', () => {
    const w = new Windower({ windowSamples: 1000, hopSamples: 500, sampleRateHz: 8000 });
    w.push(ramp(600), 0);
    const last = w.finish(800);
    expect(last).not.toBeNull();
    expect(last!.samples.length).toBe(1000);
    expect(last!.samples.subarray(600, 1000)).toEqual(ramp(400));
    expect(last!.tMs).toBe(100);
    expect(w.finish(800)).toBeNull();

    const tooShort = new Windower({ windowSamples: 1000, hopSamples: 500, sampleRateHz: 8000 });
    tooShort.push(ramp(400), 0);
    expect(tooShort.finish(400)).toBeNull();

    const hadWindows = new Windower({ windowSamples: 1000, hopSamples: 500, sampleRateHz: 8000 });
    hadWindows.push(ramp(1400), 0);
    expect(hadWindows.finish(1400)).toBeNull();
  });

  it('rejects non-positive sizes', () => {
    expect(() => new Windower({ windowSamples: 0, hopSamples: 1, sampleRateHz: 8000 })).toThrow(RangeError);
    expect(() => new Windower({ windowSamples: 10, hopSamples: 0, sampleRateHz: 8000 })).toThrow(RangeError);
  });
});
