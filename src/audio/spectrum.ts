/**
 * The 512-point power spectrum of 8 kHz PCM (64 ms, 15.6 Hz bins) that the voice-activity gate and the
 * audio fingerprint share. Pure and synchronous.
 */

export const SPECTRUM_FFT_SIZE = 512;
const FFT_SIZE = SPECTRUM_FFT_SIZE;
const LOG2_FFT = 9;

const hann = new Float64Array(FFT_SIZE);
for (let i = 0; i < FFT_SIZE; i++) hann[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / (FFT_SIZE - 1));
// The real 512-point transform is done as a 256-point complex FFT of the even/odd samples
// packed as re/im, then split: half the work of a complex 512-point FFT (the VAD runs it on every
// 40 ms frame of every call).
const M = FFT_SIZE / 2;
const LOG2_M = LOG2_FFT - 1;
const bitrev = new Uint16Array(M);
for (let i = 0; i < M; i++) {
  let r = 0;
  for (let b = 0, x = i; b < LOG2_M; b++, x >>= 1) r = (r << 1) | (x & 1);
  bitrev[i] = r;
}
/** Twiddles of the 512-point transform: e^{-2πik/512}, k < 256 (the 256-point FFT uses every other one). */
const cosTab = new Float64Array(M);
const sinTab = new Float64Array(M);
for (let i = 0; i < M; i++) {
  cosTab[i] = Math.cos((2 * Math.PI * i) / FFT_SIZE);
  sinTab[i] = -Math.sin((2 * Math.PI * i) / FFT_SIZE);
}
// Scratch buffers: the transform is synchronous, so one set per process is enough.
const re = new Float64Array(M);
const im = new Float64Array(M);

/**
 * Power spectrum (bins 0..256, into `power`) of the Hann-windowed 512 samples of `x` ending at `end`
 * (zeros before the start of `x`).
 */
export function powerSpectrum512(x: Float32Array, end: number, power: Float64Array): void {
  const start = end - FFT_SIZE;
  for (let n = 0; n < M; n++) {
    const j = start + 2 * n;
    const r = bitrev[n];
    re[r] = j >= 0 ? x[j] * hann[2 * n] : 0;
    im[r] = j + 1 >= 0 ? x[j + 1] * hann[2 * n + 1] : 0;
  }
  for (let size = 2; size <= M; size <<= 1) {
    const half = size >> 1;
    const step = (M / size) * 2;
    for (let s0 = 0; s0 < M; s0 += size) {
      for (let j = 0, t = 0; j < half; j++, t += step) {
        const a = s0 + j;
        const b = a + half;
        const wr = cosTab[t];
        const wi = sinTab[t];
        const xr = re[b] * wr - im[b] * wi;
        const xi = re[b] * wi + im[b] * wr;
        re[b] = re[a] - xr;
        im[b] = im[a] - xi;
        re[a] += xr;
        im[a] += xi;
      }
    }
  }
  // Split: X[k] = E[k] + W^k O[k], E = (Z[k] + conj Z[M-k]) / 2, O = (Z[k] - conj Z[M-k]) / 2i.
  for (let k = 0; k <= M; k++) {
    const ka = k % M;
    const kb = (M - k) % M;
    const ar = re[ka];
    const ai = im[ka];
    const br = re[kb];
    const bi = -im[kb];
    const er = 0.5 * (ar + br);
    const ei = 0.5 * (ai + bi);
    const or = 0.5 * (ai - bi);
    const oi = -0.5 * (ar - br);
    const wr = k < M ? cosTab[k] : -1;
    const wi = k < M ? sinTab[k] : 0;
    const xr = er + wr * or - wi * oi;
    const xi = ei + wr * oi + wi * or;
    power[k] = xr * xr + xi * xi;
  }
}
