/**
 * Tone synthesis and single-bin detection. The gateway plays a two-tone "warn" beep into a
 * call; tests use the Goertzel power to check that it arrived at the far end.
 */

export interface ToneOptions {
  frequenciesHz: number[];
  durationMs: number;
  sampleRateHz?: number;
  /** Peak level of the summed tone, in dB relative to full scale. */
  levelDbfs?: number;
  /** Raised-cosine fade-in and fade-out, so the beep does not click. */
  rampMs?: number;
}

export function generateTone(opts: ToneOptions): Float32Array {
  const sampleRateHz = opts.sampleRateHz ?? 8000;
  const levelDbfs = opts.levelDbfs ?? -12;
  const rampMs = opts.rampMs ?? 10;
  if (!(sampleRateHz > 0)) throw new RangeError(`sampleRateHz must be positive, got ${sampleRateHz}`);
  if (!(opts.durationMs >= 0)) throw new RangeError(`durationMs must be >= 0, got ${opts.durationMs}`);
  const n = Math.round((opts.durationMs * sampleRateHz) / 1000);
  const out = new Float32Array(n);
  const freqs = opts.frequenciesHz;
  if (freqs.length === 0 || n === 0) return out;
  // Each component gets an equal share of the peak, so the sum never exceeds the level.
  const amp = Math.pow(10, levelDbfs / 20) / freqs.length;
  const ramp = Math.min(Math.round((rampMs * sampleRateHz) / 1000), Math.floor(n / 2));
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (const f of freqs) s += Math.sin((2 * Math.PI * f * i) / sampleRateHz);
    let g = amp;
    if (ramp > 0) {
      if (i < ramp) g *= 0.5 - 0.5 * Math.cos((Math.PI * i) / ramp);
      else if (i >= n - ramp) g *= 0.5 - 0.5 * Math.cos((Math.PI * (n - 1 - i)) / ramp);
    }
    out[i] = s * g;
  }
  return out;
}

/**
 * Goertzel algorithm: the squared amplitude of the `freqHz` component of `samples`, i.e.
 * (|X(f)| / (N/2))². A sine of amplitude A at that frequency yields about A² whatever N is,
 * so results from windows of different lengths compare directly.
 */
export function goertzelPower(samples: Float32Array, freqHz: number, sampleRateHz: number): number {
  const n = samples.length;
  if (n === 0) return 0;
  const w = (2 * Math.PI * freqHz) / sampleRateHz;
  const coeff = 2 * Math.cos(w);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < n; i++) {
    const s0 = samples[i] + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  const power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
  return power / ((n / 2) * (n / 2));
}

/** Mean square of the samples (the power an amplitude-A sine has is A²/2). */
export function meanSquare(samples: Float32Array): number {
  let acc = 0;
  for (let i = 0; i < samples.length; i++) acc += samples[i] * samples[i];
  return samples.length === 0 ? 0 : acc / samples.length;
}

/** Power ratio in decibels, with a floor so silence does not give -Infinity. */
export function toDb(power: number, floor = 1e-20): number {
  return 10 * Math.log10(Math.max(power, floor));
}
