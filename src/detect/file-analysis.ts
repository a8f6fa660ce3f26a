import type { DetectorEngine } from './engine.js';
import type { Verdict } from './sprt-decider.js';
import { speechRegions, VAD_SAMPLE_RATE_HZ, type VadOptions } from './vad.js';

/**
 * Offline analysis of one recorded stream: the same streaming engine the gateway uses, fed
 * from a buffer, plus what a report needs (the whole-file score and the plot series).
 */

export interface AnalysisThresholds {
  upperLlr: number;
  lowerLlr: number;
  maxListenMs: number;
}

export interface WindowScore {
  tMs: number;
  llr: number;
}

export interface StreamAnalysis {
  /** Probability that the voice is synthetic over the whole stream: sigmoid of the mean window LLR; null without speech. */
  score: number | null;
  verdict: Verdict;
  decisionMs: number | null;
  windows: WindowScore[];
  /** Cumulative weighted LLR after each window (same order as `windows`). */
  cumulativeLlr: number[];
  durationMs: number;
  speechMs: number;
}

/** What a plot adds: the waveform envelope and the speech regions. */
export interface PlotSeries {
  /** Per column: [min, max] sample value. */
  envelope: Array<[number, number]>;
  speech: Array<{ startMs: number; endMs: number }>;
}

export class AnalysisError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'AnalysisError';
  }
}

/** Feed size: 1 s, so long files do not hold the event loop for their whole length at once. */
const CHUNK_SAMPLES = VAD_SAMPLE_RATE_HZ;

export async function analyzeSamples(
  engine: DetectorEngine,
  samples8k: Float32Array,
  thresholds: AnalysisThresholds,
  streamId = 'file',
): Promise<StreamAnalysis> {
  const stream = engine.openStream({ streamId, ...thresholds });
  const windows: WindowScore[] = [];
  const cumulativeLlr: number[] = [];
  let firstError: { message: string; cause?: unknown } | null = null;
  let speechMs = 0;
  stream.on('score', (e) => {
    windows.push({ tMs: e.tMs, llr: e.llr });
    cumulativeLlr.push(e.cumulativeLlr);
    speechMs = e.speechMs;
  });
  stream.on('error', (e) => {
    firstError ??= e;
  });
  try {
    for (let i = 0; i < samples8k.length; i += CHUNK_SAMPLES) {
      stream.push(samples8k.subarray(i, i + CHUNK_SAMPLES));
      // Let the batcher run between chunks, as it would between RTP packets.
      if ((i / CHUNK_SAMPLES) % 10 === 9) await new Promise((r) => setImmediate(r));
    }
    const decision = await stream.end();
    if (firstError) {
      const err = firstError as { message: string; cause?: unknown };
      throw new AnalysisError(`detector failed: ${err.message}`, { cause: err.cause });
    }
    if (!decision) throw new AnalysisError('analysis was interrupted (detector closed)');
    const mean = windows.length ? windows.reduce((a, w) => a + w.llr, 0) / windows.length : NaN;
    return {
      score: windows.length ? 1 / (1 + Math.exp(-mean)) : null,
      verdict: decision.verdict,
      decisionMs: decision.decisionMs,
      windows,
      cumulativeLlr,
      durationMs: (samples8k.length * 1000) / VAD_SAMPLE_RATE_HZ,
      speechMs,
    };
  } finally {
    stream.close();
  }
}

export function plotSeries(samples8k: Float32Array, vad: Partial<VadOptions>, columns = 1000): PlotSeries {
  const envelope: Array<[number, number]> = [];
  const per = Math.max(1, Math.ceil(samples8k.length / columns));
  for (let i = 0; i < samples8k.length; i += per) {
    let lo = 0;
    let hi = 0;
    const end = Math.min(samples8k.length, i + per);
    for (let j = i; j < end; j++) {
      const v = samples8k[j];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    envelope.push([lo, hi]);
  }
  return { envelope, speech: speechRegions(samples8k, vad) };
}
