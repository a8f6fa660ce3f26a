import { ConfigSchema, type Config } from '../../src/config/schema.js';

/**
 * The committed model is what the tests run against. VOICEGUARD_TEST_MODEL points them at
 * another ONNX file (with its .json next to it) while a model is being developed.
 */
export const MODEL_PATH = process.env.VOICEGUARD_TEST_MODEL ?? 'models/voiceguard-detector.onnx';
export const METADATA_PATH = MODEL_PATH.replace(/\.onnx$/i, '') + '.json';

export function detectorConfig(over: Partial<Config['detector']> = {}): Config['detector'] {
  return { ...ConfigSchema.parse({}).detector, modelPath: MODEL_PATH, metadataPath: METADATA_PATH, ...over };
}

/** Seeded PRNG (LCG), so property tests replay exactly. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296;
  };
}

export function concat(parts: Float32Array[]): Float32Array {
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function silence(ms: number): Float32Array {
  return new Float32Array(Math.round(ms * 8));
}
