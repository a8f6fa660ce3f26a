import { describe, expect, it } from 'vitest';
import { resample, Resampler } from '../../src/audio/resampler.js';

function sine(f: number, rate: number, n: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin((2 * Math.PI * f * i) / rate));
}
function rms(x: Float32Array, from: number, to: number): number {
  let a = 0;
  for (let i = from; i < to; i++) a += x[i] * x[i];
  return Math.sqrt(a / (to - from));
}

describe('Resampler', () => {
  for (const inRate of [44100, 48000, 16000, 22050]) {
    it(`${inRate} -> 8000: flat passband below 0.9*Nyquist, >= 60 dB stopband from Nyquist`, () => {
      const n = inRate / 2;
      let worstPass = 0;
      let worstStop = -Infinity;
      for (let f = 100; f < 3600; f += 250) {
        const y = resample(sine(f, inRate, n), inRate, 8000);
        const g = 20 * Math.log10(rms(y, 400, y.length - 400) / Math.SQRT1_2);
        worstPass = Math.max(worstPass, Math.abs(g));
      }
      for (let f = 4000; f < inRate / 2; f += 173) {
        const y = resample(sine(f, inRate, n), inRate, 8000);
        worstStop = Math.max(worstStop, 20 * Math.log10(rms(y, 400, y.length - 400) / Math.SQRT1_2 + 1e-12));
      }
      expect(worstPass).toBeLessThan(0.01);
      expect(worstStop).toBeLessThan(-60);
    });
  }
  it('streaming in chunks equals one-shot, and length is ceil(N*L/M)', () => {
    const x = sine(440, 44100, 44100 + 17);
    const one = resample(x, 44100, 8000);
    expect(one.length).toBe(Math.ceil((x.length * 8000) / 44100));
    const r = new Resampler(44100, 8000);
    const parts: number[] = [];
    for (let i = 0; i < x.length; i += 1000 + (i % 7))
      parts.push(...r.process(x.subarray(i, i + 1000 + (i % 7))));
    parts.push(...r.flush());
    expect(parts.length).toBe(one.length);
    for (let i = 0; i < one.length; i++) expect(parts[i]).toBe(one[i]);
  });
  it('is the identity at equal rates', () => {
    const x = sine(1000, 8000, 999);
    expect(Array.from(resample(x, 8000, 8000))).toEqual(Array.from(x));
  });
  it('upsamples 8000 -> 16000 without delay', () => {
    const y = resample(sine(1000, 8000, 8000), 8000, 16000);
    expect(y.length).toBe(16000);
    let err = 0;
    for (let i = 500; i < 15500; i++)
      err = Math.max(err, Math.abs(y[i] - Math.sin((2 * Math.PI * 1000 * i) / 16000)));
    expect(err).toBeLessThan(1e-3);
  });
});
