import { readFileSync } from 'node:fs';
import { z } from 'zod';

/**
 * The contract between the training pipeline (models/) and the runtime (src/detect).
 * models/voiceguard-detector.json is validated against this schema at load time, so a
 * model exported with a different shape fails loudly at start-up instead of mis-scoring calls.
 *
 * LLR convention everywhere: natural-log likelihood ratio of "synthetic" over "human".
 * Positive means synthetic. llr = calibration.scale * logit + calibration.bias.
 */
export const ModelMetadataSchema = z.object({
  name: z.string(),
  version: z.string(),
  createdAt: z.string(),
  sampleRateHz: z.literal(8000),
  /** Samples per analysis window fed to the model (float32 PCM in [-1, 1]). */
  windowSamples: z.number().int().positive(),
  /** Recommended hop between consecutive windows, in samples. */
  hopSamples: z.number().int().positive(),
  input: z.object({
    name: z.string(),
    /** e.g. ["batch", 12000]: dynamic batch, fixed window. */
    shape: z.array(z.union([z.string(), z.number()])),
    dtype: z.literal('float32'),
  }),
  output: z.object({
    name: z.string(),
    /** e.g. ["batch"]: one raw logit per window. */
    shape: z.array(z.union([z.string(), z.number()])),
  }),
  calibration: z.object({
    method: z.string(),
    scale: z.number(),
    bias: z.number(),
    /** Which data the calibration was fitted on (held-out systems, never training systems). */
    fittedOn: z.string().optional(),
  }),
  /**
   * Recommended sequential-test settings. Evidence from overlapping windows is correlated, so
   * the runtime multiplies each window LLR by evidenceWeight (about hop/window) before summing.
   */
  decision: z.object({
    dropLlr: z.number(),
    warnLlr: z.number(),
    humanLlr: z.number(),
    maxListenMs: z.number().int().positive(),
    evidenceWeight: z.number().positive().max(1),
    /**
     * Bounds of the model's own for calls heard in a codec other than G.711 (e.g. g729), fitted on
     * validation humans coded through it: the gateway's defaults for such calls.
     */
    byCodec: z
      .record(z.string(), z.object({ dropLlr: z.number(), warnLlr: z.number(), humanLlr: z.number() }))
      .optional(),
  }),
  training: z.record(z.string(), z.unknown()).optional(),
  metrics: z.record(z.string(), z.unknown()).optional(),
});

export type ModelMetadata = z.infer<typeof ModelMetadataSchema>;

export class ModelMetadataError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = 'ModelMetadataError';
  }
}

export function loadModelMetadata(file: string): ModelMetadata {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ModelMetadataError(file, `cannot read model metadata: ${(err as Error).message}`);
  }
  const parsed = ModelMetadataSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ModelMetadataError(
      file,
      `invalid model metadata at '${issue?.path.join('.')}': ${issue?.message}`,
    );
  }
  return parsed.data;
}
