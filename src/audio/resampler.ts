/**
 * Streaming sample-rate converter for any rational ratio: a polyphase windowed-sinc FIR
 * (Kaiser window) evaluated at exact rational positions.
 *
 * With L/M = outputRate/inputRate in lowest terms, output sample n sits at input position
 * n·M/L = i + p/L (i integer, phase p in [0, L)). It is the sum over input samples x[j] of
 * x[j]·h(n·M/L − j), with h a low-pass sinc cut off just below the lower of the two Nyquist
 * frequencies, tapered by a Kaiser window. One coefficient row per phase p is precomputed;
 * when L is so large that L rows would not fit the coefficient budget, rows are computed on a
 * finer grid and linearly interpolated.
 *
 * The filter is zero-phase (centred), so output sample 0 is aligned with input sample 0 and
 * a one-shot conversion of N samples yields ceil(N·L/M) samples. The streaming object holds
 * back the samples it still needs as look-ahead; `flush()` pads the end with zeros.
 */

export type ResamplerQuality = 'fast' | 'high';

export interface ResamplerOptions {
  quality?: ResamplerQuality;
}

interface FilterDesign {
  /** Stopband attenuation the Kaiser window is designed for, dB. */
  attenuationDb: number;
  /** Passband edge as a fraction of the lower Nyquist frequency; the stopband starts at 1.0. */
  passbandEdge: number;
}

const DESIGNS: Record<ResamplerQuality, FilterDesign> = {
  // Flat to 0.9·Nyquist_out, ≥ 80 dB down from Nyquist_out on.
  high: { attenuationDb: 80, passbandEdge: 0.9 },
  // Shorter filter: flat to 0.8·Nyquist_out, ≥ 60 dB down from Nyquist_out on.
  fast: { attenuationDb: 60, passbandEdge: 0.8 },
};

/** Upper bound on precomputed coefficients (floats) before falling back to interpolated phases. */
const MAX_TABLE_COEFFS = 1 << 21;

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Zeroth-order modified Bessel function of the first kind (power series). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 200; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function kaiserBeta(attenuationDb: number): number {
  if (attenuationDb > 50) return 0.1102 * (attenuationDb - 8.7);
  if (attenuationDb >= 21) return 0.5842 * Math.pow(attenuationDb - 21, 0.4) + 0.07886 * (attenuationDb - 21);
  return 0;
}

export class Resampler {
  readonly inputRateHz: number;
  readonly outputRateHz: number;
  /** Output samples per cycle of the ratio (L) and input samples per cycle (M). */
  private readonly up: number;
  private readonly down: number;
  private readonly identity: boolean;
  /** Taps per output sample; the filter reads x[i - half + 1 .. i + half]. */
  private readonly half: number;
  private readonly taps: number;
  /** Coefficient rows: `rows + 1` rows of `taps` (the last one is phase 1.0, for interpolation). */
  private readonly table: Float32Array;
  private readonly rows: number;
  private readonly exactPhases: boolean;

  /** Buffered input; `buf[k]` is input sample `bufStart + k`. */
  private buf: Float32Array;
  private bufLen = 0;
  private bufStart: number;
  /** Next output: integer input position `pos` and phase `phase` (position = pos + phase/L). */
  private pos = 0;
  private phase = 0;
  private inputCount = 0;
  private outputCount = 0;
  private flushed = false;

  constructor(inputRateHz: number, outputRateHz: number, opts: ResamplerOptions = {}) {
    for (const [name, v] of [
      ['inputRateHz', inputRateHz],
      ['outputRateHz', outputRateHz],
    ] as const) {
      if (!Number.isInteger(v) || v <= 0)
        throw new RangeError(`${name} must be a positive integer, got ${v}`);
    }
    this.inputRateHz = inputRateHz;
    this.outputRateHz = outputRateHz;
    const g = gcd(inputRateHz, outputRateHz);
    this.up = outputRateHz / g;
    this.down = inputRateHz / g;
    this.identity = this.up === this.down;
    const design = DESIGNS[opts.quality ?? 'high'];

    // Work in input-sample units: the lower Nyquist is 0.5·min(1, L/M) cycles per input sample.
    const nyq = 0.5 * Math.min(1, this.up / this.down);
    const cutoff = nyq * (1 + design.passbandEdge) * 0.5; // centre of the transition band
    const transition = nyq * (1 - design.passbandEdge); // width, cycles per input sample
    const beta = kaiserBeta(design.attenuationDb);
    // Kaiser's length estimate N ≈ (A − 7.95) / (14.36 · Δf).
    const length = (design.attenuationDb - 7.95) / (14.36 * transition);
    const halfSpan = length / 2; // window half-width in input samples
    this.half = this.identity ? 0 : Math.ceil(halfSpan);
    this.taps = 2 * this.half;
    this.exactPhases = this.up * this.taps <= MAX_TABLE_COEFFS;
    this.rows = this.identity
      ? 0
      : this.exactPhases
        ? this.up
        : Math.max(1, Math.floor(MAX_TABLE_COEFFS / this.taps) - 1);
    this.table = new Float32Array(this.identity ? 0 : (this.rows + 1) * this.taps);
    if (!this.identity) {
      const i0beta = besselI0(beta);
      for (let r = 0; r <= this.rows; r++) {
        const frac = r / this.rows;
        const base = r * this.taps;
        let sum = 0;
        // Tap t multiplies x[pos - half + 1 + t], at distance d = frac + half - 1 - t.
        for (let t = 0; t < this.taps; t++) {
          const d = frac + this.half - 1 - t;
          const u = d / halfSpan;
          let c = 0;
          if (Math.abs(u) < 1) {
            const x = 2 * cutoff * d;
            const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
            c = 2 * cutoff * sinc * (besselI0(beta * Math.sqrt(1 - u * u)) / i0beta);
          }
          this.table[base + t] = c;
          sum += c;
        }
        // Unity DC gain for every phase, so a constant input gives a constant output.
        if (sum !== 0) for (let t = 0; t < this.taps; t++) this.table[base + t] /= sum;
      }
    }
    // Virtual zeros before the start: the first output needs x[-half + 1 ..].
    this.bufStart = -this.half + 1;
    this.buf = new Float32Array(Math.max(1024, this.taps * 2));
    this.bufLen = this.half - 1 > 0 ? this.half - 1 : 0;
    if (this.bufLen > 0) this.buf.fill(0, 0, this.bufLen);
    if (this.half === 0) this.bufStart = 0;
  }

  /** Delay the filter needs before it can emit, in input samples (look-ahead). */
  get lookaheadSamples(): number {
    return this.half;
  }

  /** Feed input samples; returns every output sample that can be computed so far. */
  process(input: Float32Array): Float32Array {
    if (this.flushed) throw new Error('Resampler.process() called after flush()');
    if (this.identity) {
      this.inputCount += input.length;
      this.outputCount += input.length;
      return input.slice();
    }
    this.append(input);
    this.inputCount += input.length;
    return this.drain(this.bufStart + this.bufLen);
  }

  /** Ends the stream: pads with zeros and returns the remaining outputs (total ceil(N·L/M)). */
  flush(): Float32Array {
    if (this.flushed) return new Float32Array(0);
    this.flushed = true;
    if (this.identity) return new Float32Array(0);
    const total = Math.ceil((this.inputCount * this.up) / this.down);
    this.append(new Float32Array(this.half + 1));
    const out = this.drain(this.bufStart + this.bufLen, total);
    this.bufLen = 0;
    return out;
  }

  private append(input: Float32Array): void {
    // Drop samples no future output needs: the next output reads from pos - half + 1.
    const keepFrom = this.pos - this.half + 1;
    const drop = Math.min(Math.max(0, keepFrom - this.bufStart), this.bufLen);
    if (drop > 0) {
      this.buf.copyWithin(0, drop, this.bufLen);
      this.bufLen -= drop;
      this.bufStart += drop;
    }
    const need = this.bufLen + input.length;
    if (need > this.buf.length) {
      const grown = new Float32Array(Math.max(need, this.buf.length * 2));
      grown.set(this.buf.subarray(0, this.bufLen));
      this.buf = grown;
    }
    this.buf.set(input, this.bufLen);
    this.bufLen += input.length;
  }

  /** Emit outputs whose taps lie below `available` (exclusive input index), up to `limit` outputs in total. */
  private drain(available: number, limit = Infinity): Float32Array {
    const L = this.up;
    const M = this.down;
    const taps = this.taps;
    const half = this.half;
    const table = this.table;
    const buf = this.buf;
    // Upper bound on outputs n with floor(n·M/L) + half < available; the loop stops exactly.
    const maxOut = Math.max(0, Math.ceil(((available - half) * L) / M) - this.outputCount + 1);
    const out = new Float32Array(Math.max(0, Math.min(maxOut, limit - this.outputCount)));
    let n = 0;
    let pos = this.pos;
    let phase = this.phase;
    while (n < out.length && pos + half < available) {
      const start = pos - half + 1 - this.bufStart;
      let acc = 0;
      if (this.exactPhases) {
        const base = phase * taps;
        for (let t = 0; t < taps; t++) acc += buf[start + t] * table[base + t];
      } else {
        const f = (phase / L) * this.rows;
        const r = Math.min(Math.floor(f), this.rows - 1);
        const a = f - r;
        const b0 = r * taps;
        const b1 = b0 + taps;
        for (let t = 0; t < taps; t++)
          acc += buf[start + t] * (table[b0 + t] + a * (table[b1 + t] - table[b0 + t]));
      }
      out[n++] = acc;
      phase += M;
      if (phase >= L) {
        pos += Math.floor(phase / L);
        phase %= L;
      }
    }
    this.pos = pos;
    this.phase = phase;
    this.outputCount += n;
    return n === out.length ? out : out.slice(0, n);
  }
}

/** One-shot conversion; identical to feeding a Resampler once and flushing. */
export function resample(
  input: Float32Array,
  inputRateHz: number,
  outputRateHz: number,
  opts: ResamplerOptions = {},
): Float32Array {
  if (inputRateHz === outputRateHz) return input.slice();
  const r = new Resampler(inputRateHz, outputRateHz, opts);
  const a = r.process(input);
  const b = r.flush();
  const out = new Float32Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}
