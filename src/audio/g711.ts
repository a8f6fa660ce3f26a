/**
 * ITU-T G.711 mu-law (PCMU) and A-law (PCMA), bit-exact with the ITU-T G.191 reference
 * implementation (`g711.c`: `ulaw_compress/expand`, `alaw_compress/expand`).
 *
 * Linear samples are int16 (left-justified: mu-law uses the top 14 bits, A-law the top 13).
 * Decoding uses two 256-entry tables; encoding uses two 64 Ki-entry tables indexed by the
 * int16 sample (offset by 32768), so the per-sample cost in the media path is one load.
 * The tables are built once at module load from the reference algorithm.
 */

export type G711Law = 'pcmu' | 'pcma';

/** Reference mu-law expansion of one code to int16 (G.191 `ulaw_expand`). */
function ulawExpandRef(code: number): number {
  const sign = code < 0x80 ? -1 : 1;
  const inv = ~code & 0xff;
  const exponent = (inv >> 4) & 0x07;
  const mantissa = inv & 0x0f;
  const step = 4 << (exponent + 1);
  return sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33);
}

/** Reference mu-law compression of one int16 sample (G.191 `ulaw_compress`). */
function ulawCompressRef(sample: number): number {
  // The reference uses one's complement for negatives (~x = -x-1), not negation.
  let absno = (sample < 0 ? ~sample >> 2 : sample >> 2) + 33;
  if (absno > 0x1fff) absno = 0x1fff;
  let i = absno >> 6;
  let segno = 1;
  while (i !== 0) {
    segno++;
    i >>= 1;
  }
  const high = 8 - segno;
  const low = 0x0f - ((absno >> segno) & 0x0f);
  let code = (high << 4) | low;
  if (sample >= 0) code |= 0x80;
  return code;
}

/** Reference A-law expansion of one code to int16 (G.191 `alaw_expand`). */
function alawExpandRef(code: number): number {
  const ix = (code ^ 0x55) & 0x7f;
  const exponent = ix >> 4;
  let mant = ix & 0x0f;
  if (exponent > 0) mant += 16;
  mant = (mant << 4) + 0x08;
  if (exponent > 1) mant <<= exponent - 1;
  return code > 127 ? mant : -mant;
}

/** Reference A-law compression of one int16 sample (G.191 `alaw_compress`). */
function alawCompressRef(sample: number): number {
  let ix = sample < 0 ? ~sample >> 4 : sample >> 4;
  if (ix > 15) {
    let exponent = 1;
    while (ix > 16 + 15) {
      ix >>= 1;
      exponent++;
    }
    ix -= 16;
    ix += exponent << 4;
  }
  if (sample >= 0) ix |= 0x80;
  return ix ^ 0x55;
}

const MULAW_DECODE = new Int16Array(256);
const ALAW_DECODE = new Int16Array(256);
const MULAW_ENCODE = new Uint8Array(65536);
const ALAW_ENCODE = new Uint8Array(65536);
for (let c = 0; c < 256; c++) {
  MULAW_DECODE[c] = ulawExpandRef(c);
  ALAW_DECODE[c] = alawExpandRef(c);
}
for (let s = -32768; s < 32768; s++) {
  MULAW_ENCODE[s + 32768] = ulawCompressRef(s);
  ALAW_ENCODE[s + 32768] = alawCompressRef(s);
}

/** Clamp to int16 and round; encoders accept any number so callers need not pre-clip. */
function toInt16Index(sample: number): number {
  let s = Math.round(sample);
  if (!(s >= -32768)) s = -32768; // also catches NaN
  if (s > 32767) s = 32767;
  return s + 32768;
}

export function muLawToLinear(code: number): number {
  return MULAW_DECODE[code & 0xff];
}

export function linearToMuLaw(sample: number): number {
  return MULAW_ENCODE[toInt16Index(sample)];
}

export function aLawToLinear(code: number): number {
  return ALAW_DECODE[code & 0xff];
}

export function linearToALaw(sample: number): number {
  return ALAW_ENCODE[toInt16Index(sample)];
}

function decodeWith(table: Int16Array, codes: Uint8Array, out?: Int16Array): Int16Array {
  const dst = out ?? new Int16Array(codes.length);
  if (dst.length < codes.length)
    throw new RangeError(`output buffer too small: ${dst.length} < ${codes.length}`);
  for (let i = 0; i < codes.length; i++) dst[i] = table[codes[i]];
  return dst;
}

function encodeWith(table: Uint8Array, pcm: Int16Array, out?: Uint8Array): Uint8Array {
  const dst = out ?? new Uint8Array(pcm.length);
  if (dst.length < pcm.length) throw new RangeError(`output buffer too small: ${dst.length} < ${pcm.length}`);
  // Int16Array values are already in range, so index directly.
  for (let i = 0; i < pcm.length; i++) dst[i] = table[pcm[i] + 32768];
  return dst;
}

export function decodeMuLaw(codes: Uint8Array, out?: Int16Array): Int16Array {
  return decodeWith(MULAW_DECODE, codes, out);
}

export function encodeMuLaw(pcm: Int16Array, out?: Uint8Array): Uint8Array {
  return encodeWith(MULAW_ENCODE, pcm, out);
}

export function decodeALaw(codes: Uint8Array, out?: Int16Array): Int16Array {
  return decodeWith(ALAW_DECODE, codes, out);
}

export function encodeALaw(pcm: Int16Array, out?: Uint8Array): Uint8Array {
  return encodeWith(ALAW_ENCODE, pcm, out);
}

export function decodeG711(law: G711Law, codes: Uint8Array, out?: Int16Array): Int16Array {
  return law === 'pcmu' ? decodeMuLaw(codes, out) : decodeALaw(codes, out);
}

export function encodeG711(law: G711Law, pcm: Int16Array, out?: Uint8Array): Uint8Array {
  return law === 'pcmu' ? encodeMuLaw(pcm, out) : encodeALaw(pcm, out);
}

/** G.711 codes straight to float samples in [-1, 1) (int16 / 32768), for the detector path. */
export function decodeG711ToFloat(law: G711Law, codes: Uint8Array, out?: Float32Array): Float32Array {
  const table = law === 'pcmu' ? MULAW_DECODE : ALAW_DECODE;
  const dst = out ?? new Float32Array(codes.length);
  if (dst.length < codes.length)
    throw new RangeError(`output buffer too small: ${dst.length} < ${codes.length}`);
  for (let i = 0; i < codes.length; i++) dst[i] = table[codes[i]] / 32768;
  return dst;
}

/** Float samples in [-1, 1] to G.711 codes (scaled by 32768, rounded, clipped). */
export function encodeG711FromFloat(law: G711Law, samples: Float32Array, out?: Uint8Array): Uint8Array {
  const table = law === 'pcmu' ? MULAW_ENCODE : ALAW_ENCODE;
  const dst = out ?? new Uint8Array(samples.length);
  if (dst.length < samples.length)
    throw new RangeError(`output buffer too small: ${dst.length} < ${samples.length}`);
  for (let i = 0; i < samples.length; i++) dst[i] = table[toInt16Index(samples[i] * 32768)];
  return dst;
}

/** The code a silent (zero) sample encodes to: 0xFF for mu-law, 0xD5 for A-law. */
export function g711SilenceCode(law: G711Law): number {
  return law === 'pcmu' ? 0xff : 0xd5;
}
