import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Command, CommanderError } from 'commander';
import { ConfigError, loadConfig } from '../config/load-config.js';
import type { Config } from '../config/schema.js';
import {
  runAnalyzeFileJob,
  type AnalyzeFileJob,
  type FileOutcome,
  type StreamReport,
} from '../detect/analysis-job.js';
import { AnalysisPool } from '../detect/analysis-pool.js';
import { DetectorEngine } from '../detect/engine.js';
import { loadModelMetadata } from '../detect/model-metadata.js';
import { validateSprtOptions } from '../detect/sprt-decider.js';

interface AnalyzeOptions {
  json?: boolean;
  plot?: string;
  thresholdDrop?: string;
  thresholdHuman?: string;
  maxListenMs?: string;
  allStreams?: boolean;
  jobs?: string;
  config?: string;
  model?: string;
}

class UsageError extends Error {}

/** The package root (dist/src/cli/analyze.js → ../../..), where the bundled model lives. */
const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

export function registerAnalyze(program: Command): void {
  program
    .command('analyze')
    .description(
      'Analyse recorded calls offline with the same detector the gateway runs live. ' +
        'FILE is a WAV recording (PCM, float or G.711; any rate, mono or stereo) or a pcap/pcapng ' +
        "capture of the call's RTP (PCMU/PCMA, or G.729 where its codec is built); from a capture the caller's stream is analysed.\n" +
        'Prints, per file, the verdict (synthetic / human / unsure), when it was reached, and the ' +
        'probability that the voice is synthetic. Exit code 1 if any file failed, 2 for usage errors.',
    )
    .argument('<FILE...>', 'WAV or pcap/pcapng files')
    .option('--json', 'one JSON object per file (per stream with --all-streams) on stdout, one per line')
    .option('--plot <DIR>', 'write one SVG chart per file into DIR (waveform, speech, evidence, decision)')
    .option(
      '--threshold-drop <LLR>',
      'evidence at which the verdict is "synthetic" (default: from the model)',
    )
    .option(
      '--threshold-human <LLR>',
      'evidence at which the verdict is "human" (negative; default: from the model)',
    )
    .option(
      '--max-listen-ms <MS>',
      'speech listened to before the verdict is "unsure" (default: from the model)',
    )
    .option('--all-streams', 'analyse every RTP stream of a capture, not just the caller')
    .option('--jobs <N>', 'files analysed in parallel (default: number of CPUs)')
    .option(
      '-c, --config <file>',
      'voiceguard config file for detector settings (default: voiceguard.yaml if present)',
    )
    .option('--model <file.onnx>', 'ONNX model to use (its metadata is the .json next to it)')
    .exitOverride((err: CommanderError) => {
      // Help and version are not errors; anything else commander rejects is a usage error.
      process.exit(err.exitCode === 0 ? 0 : 2);
    })
    .action(async (files: string[], opts: AnalyzeOptions) => {
      try {
        process.exitCode = await runAnalyze(files, opts);
      } catch (err) {
        if (err instanceof UsageError || err instanceof ConfigError) {
          process.stderr.write(`voiceguard analyze: ${err.message}\n`);
          process.exitCode = 2;
          return;
        }
        throw err;
      }
    });
}

async function runAnalyze(files: string[], opts: AnalyzeOptions): Promise<number> {
  const detector = detectorConfig(opts);
  const metadata = loadModelMetadata(detector.metadataPath);
  const thresholds = {
    upperLlr: num(opts.thresholdDrop, '--threshold-drop') ?? metadata.decision.dropLlr,
    lowerLlr: num(opts.thresholdHuman, '--threshold-human') ?? metadata.decision.humanLlr,
    maxListenMs: num(opts.maxListenMs, '--max-listen-ms') ?? metadata.decision.maxListenMs,
  };
  try {
    validateSprtOptions({ ...thresholds, evidenceWeight: metadata.decision.evidenceWeight });
  } catch (err) {
    throw new UsageError(
      (err as Error).message
        .replace('upperLlr', '--threshold-drop')
        .replace('lowerLlr', '--threshold-human')
        .replace('maxListenMs', '--max-listen-ms'),
    );
  }
  // Without explicit bounds, a stream in a codec that the model has bounds of its own for (G.729) is
  // judged with those, as the gateway judges such a call.
  const explicit = opts.thresholdDrop !== undefined || opts.thresholdHuman !== undefined;
  const codecThresholds = explicit
    ? undefined
    : Object.fromEntries(
        Object.entries(metadata.decision.byCodec ?? {}).map(([codec, b]) => [
          codec,
          { ...thresholds, upperLlr: b.dropLlr, lowerLlr: b.humanLlr },
        ]),
      );
  const jobsOpt = num(opts.jobs, '--jobs');
  if (jobsOpt !== undefined && !(Number.isInteger(jobsOpt) && jobsOpt >= 1))
    throw new UsageError('--jobs must be a whole number >= 1');
  const jobs = Math.max(1, Math.min(jobsOpt ?? availableParallelism(), files.length));

  const mkJob = (file: string): AnalyzeFileJob => ({
    file,
    allStreams: Boolean(opts.allStreams),
    thresholds,
    ...(codecThresholds ? { codecThresholds } : {}),
    plotDir: opts.plot ?? null,
    vad: detector.vad,
  });
  const progress = new Progress(files.length);
  const printer = new OrderedPrinter(files.length, (o) => report(o, Boolean(opts.json)));
  let failed = 0;
  const done = (i: number, o: FileOutcome): void => {
    if (!o.ok) failed++;
    progress.tick();
    printer.put(i, o);
  };
  if (!opts.json) process.stdout.write(tableHeader());

  if (jobs === 1) {
    // One file at a time: the session gets the configured intra-op threads.
    const engine = await DetectorEngine.create(detector);
    try {
      for (const [i, file] of files.entries()) done(i, await runAnalyzeFileJob(engine, mkJob(file)));
    } finally {
      await engine.close();
    }
  } else {
    const pool = await AnalysisPool.create(jobs, detector);
    try {
      await Promise.all(files.map((file, i) => pool.run(mkJob(file)).then((o) => done(i, o))));
    } finally {
      await pool.close();
    }
  }
  progress.finish();
  return failed > 0 ? 1 : 0;
}

function detectorConfig(opts: AnalyzeOptions): Config['detector'] {
  const { config } = loadConfig(opts.config);
  const d = { ...config.detector };
  if (opts.model) {
    d.modelPath = opts.model;
    d.metadataPath = opts.model.replace(/\.onnx$/i, '') + '.json';
  } else {
    d.modelPath = locate(d.modelPath);
    d.metadataPath = locate(d.metadataPath);
  }
  return d;
}

/** A relative model path that is not under the working directory is taken from the package. */
function locate(p: string): string {
  if (isAbsolute(p) || existsSync(p)) return p;
  const bundled = resolve(PACKAGE_ROOT, p);
  return existsSync(bundled) ? bundled : p;
}

function num(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${flag} must be a number (got '${v}')`);
  return n;
}

function report(o: FileOutcome, json: boolean): void {
  if (!o.ok) {
    process.stderr.write(`voiceguard analyze: ${o.file}: ${o.error}\n`);
    return;
  }
  for (const w of o.warnings) process.stderr.write(`voiceguard analyze: ${o.file}: warning: ${w}\n`);
  for (const r of o.reports) process.stdout.write(json ? jsonLine(r) : tableRow(r));
}

/** The stable `--json` contract: exactly these keys, in this order. */
export function jsonLine(r: StreamReport): string {
  const line: Record<string, unknown> = { file: r.file };
  if (r.stream !== undefined) line.stream = r.stream;
  line.score = r.score;
  line.verdict = r.verdict;
  line.decisionMs = r.decisionMs;
  line.windows = r.windows;
  return JSON.stringify(line) + '\n';
}

const COLS = ['VERDICT', 'P(SYNTH)', 'DECIDED', 'WINDOWS', 'SPEECH', 'LENGTH'];

function tableHeader(): string {
  return `${COLS.map((c) => c.padEnd(10)).join('')}FILE\n`;
}

function tableRow(r: StreamReport): string {
  const cells = [
    r.verdict,
    r.score === null ? '-' : r.score.toFixed(3),
    r.decisionMs === null ? '-' : `${(r.decisionMs / 1000).toFixed(1)}s`,
    String(r.windows.length),
    `${(r.extra.speechMs / 1000).toFixed(1)}s`,
    `${(r.extra.durationMs / 1000).toFixed(1)}s`,
  ];
  const name = r.stream === undefined ? r.file : `${r.file} [${r.stream}]`;
  const plot = r.extra.plotFile ? `  → ${r.extra.plotFile}` : '';
  return `${cells.map((c) => c.padEnd(10)).join('')}${name}${plot}\n`;
}

/** Prints outcomes in the order the files were given, as soon as their turn comes. */
class OrderedPrinter {
  private readonly held = new Map<number, FileOutcome>();
  private next = 0;

  constructor(
    private readonly total: number,
    private readonly print: (o: FileOutcome) => void,
  ) {}

  put(i: number, o: FileOutcome): void {
    this.held.set(i, o);
    while (this.next < this.total && this.held.has(this.next)) {
      const item = this.held.get(this.next)!;
      this.held.delete(this.next++);
      this.print(item);
    }
  }
}

/** A one-line progress bar on stderr, only for people watching (a TTY) and more than one file. */
class Progress {
  private readonly enabled: boolean;
  private count = 0;

  constructor(private readonly total: number) {
    this.enabled = Boolean(process.stderr.isTTY) && total > 1;
  }

  tick(): void {
    if (!this.enabled) return;
    this.count++;
    const width = 30;
    const filled = Math.round((this.count / this.total) * width);
    process.stderr.write(
      `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${this.count}/${this.total} files`,
    );
  }

  finish(): void {
    if (this.enabled) process.stderr.write('\n');
  }
}
