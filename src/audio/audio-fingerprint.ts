import { powerSpectrum512, SPECTRUM_FFT_SIZE } from './spectrum.js';

/**
 * A robust audio fingerprint of 8 kHz PCM, after Haitsma & Kalker ("A highly robust audio
 * fingerprinting system", ISMIR 2002): every 8 ms, 32 bits, one per pair of neighbouring bands of
 * 33 log-spaced bands over 250-3500 Hz, each the sign of the band-energy difference's change
 * from the previous frame. Signs of differences ignore gain, a fixed line colouring and G.711's
 * quantisation noise, so two plays of the same recording over two calls give nearly the same
 * bits, while two different utterances (even of the same words by the same person) differ in
 * about half of them. It cannot be turned back into audio.
 *
 * Pure: PCM in, bits out.
 */

export const FINGERPRINT_HOP_SAMPLES = 64;
export const FINGERPRINT_SAMPLE_RATE_HZ = 8000;
const BANDS = 33;
const LOW_HZ = 250;
const HIGH_HZ = 3500;
/** Frames whose 64 ms window is quieter than this carry no bits worth comparing (silence). */
const SPEECH_FLOOR_DBFS = -45;

export interface AudioFingerprint {
  /** One 32-bit sub-fingerprint per frame (frame i ends at sample 512 + 64 i). */
  bits: Uint32Array;
  /** 1 where the frame's window is loud enough to compare, else 0. */
  audible: Uint8Array;
}

const BIN_HZ = FINGERPRINT_SAMPLE_RATE_HZ / SPECTRUM_FFT_SIZE;
/** Band b spans bins [edges[b], edges[b + 1]). */
const edges = new Uint16Array(BANDS + 1);
for (let b = 0; b <= BANDS; b++) {
  const hz = LOW_HZ * (HIGH_HZ / LOW_HZ) ** (b / BANDS);
  edges[b] = Math.max(b === 0 ? 0 : edges[b - 1] + 1, Math.round(hz / BIN_HZ));
}

/** Frames a fingerprint of `samples` samples has. */
export function fingerprintFrames(samples: number): number {
  return samples < SPECTRUM_FFT_SIZE
    ? 0
    : 1 + Math.floor((samples - SPECTRUM_FFT_SIZE) / FINGERPRINT_HOP_SAMPLES);
}

/** The fingerprint of `pcm` (8 kHz float PCM in [-1, 1]). */
export function fingerprint(pcm: Float32Array): AudioFingerprint {
  const frames = fingerprintFrames(pcm.length);
  const bits = new Uint32Array(frames);
  const audible = new Uint8Array(frames);
  const power = new Float64Array(SPECTRUM_FFT_SIZE / 2 + 1);
  let prev = new Float64Array(BANDS);
  let cur = new Float64Array(BANDS);
  const floor = SPECTRUM_FFT_SIZE * 10 ** (SPEECH_FLOOR_DBFS / 10);
  // Frame -1 (the window one hop before the first) seeds the time difference of frame 0.
  for (let f = -1; f < frames; f++) {
    const end = SPECTRUM_FFT_SIZE + f * FINGERPRINT_HOP_SAMPLES;
    powerSpectrum512(pcm, end, power);
    for (let b = 0; b < BANDS; b++) {
      let e = 0;
      for (let k = edges[b]; k < edges[b + 1]; k++) e += power[k];
      cur[b] = Math.log(e + 1e-12);
    }
    if (f >= 0) {
      let word = 0;
      for (let b = 0; b < BANDS - 1; b++) {
        const d = cur[b] - cur[b + 1] - (prev[b] - prev[b + 1]);
        if (d > 0) word |= 1 << b;
      }
      bits[f] = word >>> 0;
      let energy = 0;
      for (let n = Math.max(0, end - SPECTRUM_FFT_SIZE); n < end; n++) energy += pcm[n] * pcm[n];
      audible[f] = energy >= floor ? 1 : 0;
    }
    const t = prev;
    prev = cur;
    cur = t;
  }
  return { bits, audible };
}

/** Set bits of a 32-bit word. */
export function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

/**
 * Bit error rate between `a` and `b` with b's frame i + offset aligned to a's frame i, over the
 * frames audible in both; `frames` is how many that was (0: nothing to compare, rate 1).
 */
export function bitErrorRate(
  a: AudioFingerprint,
  b: AudioFingerprint,
  offset: number,
): { rate: number; frames: number } {
  let errors = 0;
  let frames = 0;
  const lo = Math.max(0, -offset);
  const hi = Math.min(a.bits.length, b.bits.length - offset);
  for (let i = lo; i < hi; i++) {
    if (!a.audible[i] || !b.audible[i + offset]) continue;
    errors += popcount32((a.bits[i] ^ b.bits[i + offset]) >>> 0);
    frames++;
  }
  return { rate: frames ? errors / (32 * frames) : 1, frames };
}
