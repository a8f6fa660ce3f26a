import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * G.729 through the optional native addon in native/g729 (Belledonne's bcg729, built by `npm ci`
 * when libbcg729-dev is installed). Without it, loadG729() says why, and G.729-only calls are relayed
 * unanalysed (media.undecodable). The decoder turns RTP payloads (10-byte frames, optionally ending
 * in a 2-byte Annex B SID frame) into 8 kHz float samples; the encoder exists for audio voiceguard
 * plays into a G.729 stream (the warn tone, the drop announcement) and for tests.
 */
export interface G729Decoder {
  /** N 10-byte frames (+ an optional 2-byte SID frame) -> N*80 (+80) samples in [-1, 1). Throws RangeError. */
  decode(payload: Uint8Array): Float32Array;
  /** `frames` lost frames -> bcg729's concealment, frames*80 samples. */
  conceal(frames: number): Float32Array;
  close(): void;
}

export interface G729Encoder {
  /** N*80 16-bit samples -> N*10 bytes. The channel keeps its state between calls. */
  encode(pcm: Int16Array): Uint8Array;
  close(): void;
}

export interface G729Codec {
  G729Decoder: new () => G729Decoder;
  G729Encoder: new () => G729Encoder;
}

export const G729_FRAME_SAMPLES = 80;
export const G729_FRAME_BYTES = 10;

/** Float samples in [-1, 1] as the encoder's 16-bit input (scaled by 32768, rounded, clipped), zero-padded to `length`. */
export function toInt16(samples: Float32Array, length = samples.length): Int16Array {
  const out = new Int16Array(length);
  const n = Math.min(length, samples.length);
  for (let i = 0; i < n; i++) out[i] = Math.max(-32768, Math.min(32767, Math.round(samples[i]! * 32768)));
  return out;
}

/** A payload through `dec`; one that is not whole G.729 frames is heard as `frames` lost frames instead. */
export function decodeOrConceal(dec: G729Decoder, payload: Uint8Array, frames: number): Float32Array {
  try {
    return dec.decode(payload);
  } catch {
    return dec.conceal(frames);
  }
}

const ADDON = join('native', 'g729', 'build', 'Release', 'g729.node');

let cached: { codec: G729Codec | null; error: string | null } | null = null;

/** The project root: the nearest folder above this module with a package.json (src/ and dist/src/ alike). */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}

/**
 * Loads the addon once per thread (relay workers each load it). `path` is for tests; a failed
 * load is remembered as the reason, never thrown.
 */
export function loadG729(path?: string): { codec: G729Codec | null; error: string | null } {
  if (!path && cached) return cached;
  const file = path ?? join(projectRoot(), ADDON);
  let result: { codec: G729Codec | null; error: string | null };
  if (!existsSync(file)) {
    result = {
      codec: null,
      error: `${file} is not built (install libbcg729-dev, then npm run build:g729)`,
    };
  } else {
    try {
      const codec = createRequire(import.meta.url)(file) as G729Codec;
      if (typeof codec.G729Decoder !== 'function' || typeof codec.G729Encoder !== 'function')
        throw new Error('it has no G729Decoder/G729Encoder');
      result = { codec, error: null };
    } catch (err) {
      result = { codec: null, error: `${file} did not load: ${(err as Error).message}` };
    }
  }
  if (!path) cached = result;
  return result;
}
