import { mkdir, writeFile } from 'node:fs/promises';
import { AudioFormatError } from '../audio/audio-format-error.js';
import { basename, join } from 'node:path';
import { loadAnalysisInputs } from './analysis-input.js';
import { renderAnalysisSvg } from './analysis-plot.js';
import type { DetectorEngine } from './engine.js';
import { analyzeSamples, plotSeries, type AnalysisThresholds } from './file-analysis.js';
import type { Verdict } from './sprt-decider.js';
import type { VadOptions } from './vad.js';

/** One file of a `voiceguard analyze` run, done the same way in the main thread or a worker. */

export interface AnalyzeFileJob {
  file: string;
  allStreams: boolean;
  thresholds: AnalysisThresholds;
  /**
   * A capture's stream in one of these codecs is judged with its thresholds instead (the model's bounds
   * for that codec, decision.byCodec, as the gateway judges such a call); absent with explicit thresholds.
   */
  codecThresholds?: Record<string, AnalysisThresholds>;
  /** Write one SVG per stream here, or null. */
  plotDir: string | null;
  vad: Partial<VadOptions>;
}

/** The stable JSON contract of `analyze --json` (one per line), plus table-only extras. */
export interface StreamReport {
  file: string;
  stream?: string;
  score: number | null;
  verdict: Verdict;
  decisionMs: number | null;
  windows: Array<{ tMs: number; llr: number }>;
  /** Not part of the JSON line. */
  extra: { durationMs: number; speechMs: number; plotFile: string | null };
}

export type FileOutcome =
  | { file: string; ok: true; reports: StreamReport[]; warnings: string[] }
  | { file: string; ok: false; error: string };

export async function runAnalyzeFileJob(engine: DetectorEngine, job: AnalyzeFileJob): Promise<FileOutcome> {
  try {
    const { inputs, warnings } = await loadAnalysisInputs(job.file, { allStreams: job.allStreams });
    const reports: StreamReport[] = [];
    for (const [i, input] of inputs.entries()) {
      const thresholds = (input.codec && job.codecThresholds?.[input.codec]) || job.thresholds;
      const a = await analyzeSamples(engine, input.samples8k, thresholds, `${job.file}#${i}`);
      let plotFile: string | null = null;
      if (job.plotDir) {
        await mkdir(job.plotDir, { recursive: true });
        const stem = basename(job.file).replace(/[^A-Za-z0-9._-]/g, '_');
        plotFile = join(job.plotDir, input.stream === null ? `${stem}.svg` : `${stem}.stream${i + 1}.svg`);
        const title = input.stream === null ? job.file : `${job.file} — ${input.stream}`;
        const svg = renderAnalysisSvg({
          title,
          analysis: a,
          series: plotSeries(input.samples8k, job.vad),
          thresholds,
        });
        await writeFile(plotFile, svg);
      }
      reports.push({
        file: job.file,
        ...(input.stream === null ? {} : { stream: input.stream }),
        score: a.score,
        verdict: a.verdict,
        decisionMs: a.decisionMs,
        windows: a.windows.map((w) => ({ tMs: round(w.tMs, 3), llr: round(w.llr, 6) })),
        extra: { durationMs: a.durationMs, speechMs: a.speechMs, plotFile },
      });
    }
    return { file: job.file, ok: true, reports, warnings };
  } catch (err) {
    return { file: job.file, ok: false, error: oneLine(err) };
  }
}

function round(v: number, digits: number): number {
  const m = 10 ** digits;
  return Math.round(v * m) / m;
}

/** A one-line reason for a failed file: the error's own message, without stack or newlines. */
export function oneLine(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  if (e && e.code === 'ENOENT') return 'no such file';
  if (e && e.code === 'EISDIR') return 'is a directory';
  if (e && e.code === 'EACCES') return 'permission denied';
  // The report line already names the file.
  if (err instanceof AudioFormatError) return err.reason.replace(/\s*\n\s*/g, ' ').trim();
  const msg = err instanceof Error ? err.message : String(err);
  return msg.replace(/\s*\n\s*/g, ' ').trim() || 'unknown error';
}
