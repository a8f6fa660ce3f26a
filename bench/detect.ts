import { existsSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigSchema, type Config } from '../src/config/schema.js';
import { DetectorEngine } from '../src/detect/engine.js';
import { loadModelMetadata, type ModelMetadata } from '../src/detect/model-metadata.js';
import { OnnxModelRunner } from '../src/detect/onnx-model.js';
import { speechLikeSignal } from './detect-signal.js';

/**
 * Detector throughput and latency, all measured in one run on one ONNX intra-op thread:
 *
 *  - baseline: the plain onnxruntime session, one window per run (what a naive per-call
 *    detector would do), and the same session fed 32 windows per run;
 *  - engine, batching on (the configured batchMaxSize/batchMaxDelayMs) and off (batch of 1):
 *    the whole path (VAD, windows, model, SPRT) for many concurrent streams, fed as fast as
 *    it will go (throughput) and then paced in real time (latency per window);
 *
 * "Per core" figures divide by the process CPU time (all threads, user + system), so the ORT
 * thread and the JavaScript thread are both paid for. Concurrent streams per core = audio
 * seconds analysed per CPU second, with every stream talking all the time (the worst case; real
 * callers pause, which the VAD does not send to the model).
 */

export interface DetectBenchOptions {
  modelPath: string;
  metadataPath: string;
  /** Rough total run time budget in seconds (default 45). */
  budgetS?: number;
  log?: (line: string) => void;
}

interface ModeFigures {
  windowsPerSecPerCore: number;
  realTimeFactor: number;
  streamsPerCore: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

export interface DetectBenchResult {
  model: { name: string; version: string; windowSamples: number; hopSamples: number };
  machine: { cpus: number; cpuModel: string; node: string };
  baseline: {
    single: ModeFigures;
    batch32: Omit<ModeFigures, 'latencyP50Ms' | 'latencyP99Ms'> & { batchLatencyMs: number };
  };
  engine: {
    batchingOn: ModeFigures & {
      batchMaxSize: number;
      batchMaxDelayMs: number;
      streams: number;
      realtimeStreams: number;
      realtimeShed: number;
      realtimeLagMs: number;
    };
    batchingOff: ModeFigures & {
      streams: number;
      realtimeStreams: number;
      realtimeShed: number;
      realtimeLagMs: number;
    };
  };
  faster: 'batching' | 'no-batching';
  targetStreamsPerCore: number;
  meetsTarget: boolean;
  durationS: number;
}

const TARGET = 500;

export async function runDetectBench(opts: DetectBenchOptions): Promise<DetectBenchResult> {
  const log = opts.log ?? (() => {});
  const started = performance.now();
  const budget = opts.budgetS ?? 45;
  const metadata = loadModelMetadata(opts.metadataPath);
  const defaults = ConfigSchema.parse({}).detector;
  const detector: Config['detector'] = {
    ...defaults,
    modelPath: opts.modelPath,
    metadataPath: opts.metadataPath,
    intraOpThreads: 1,
  };
  const windowsPerAudioS = 8000 / metadata.hopSamples;

  log('baseline: plain ONNX session, 1 window per run');
  const single = await plainSession(opts.modelPath, metadata, 1, budget * 0.1);
  log('baseline: plain ONNX session, 32 windows per run');
  const batch32 = await plainSession(opts.modelPath, metadata, 32, budget * 0.1);

  log('engine: throughput, batching on');
  const on = await engineThroughput(detector, 200, budget * 0.2);
  log('engine: throughput, batching off');
  const off = await engineThroughput({ ...detector, batchMaxSize: 1, batchMaxDelayMs: 0 }, 200, budget * 0.2);
  // Latency in real time, both modes at the same load: half the smaller measured capacity
  // (capped so the run stays short), so the queueing is comparable and not at the knee.
  const rtStreams = Math.max(
    1,
    Math.min(1000, Math.floor(0.5 * Math.min(on.streamsPerCore, off.streamsPerCore))),
  );
  log(`engine: real-time latency with ${rtStreams} streams, batching on`);
  const onRt = await engineRealtime(detector, metadata, rtStreams, Math.max(3, budget * 0.1));
  log(`engine: real-time latency with ${rtStreams} streams, batching off`);
  const offRt = await engineRealtime(
    { ...detector, batchMaxSize: 1, batchMaxDelayMs: 0 },
    metadata,
    rtStreams,
    Math.max(3, budget * 0.1),
  );
  const onRtStreams = rtStreams;
  const offRtStreams = rtStreams;

  const figures = (windowsPerS: number, p50: number, p99: number): ModeFigures => ({
    windowsPerSecPerCore: round(windowsPerS),
    realTimeFactor: round(windowsPerAudioS / windowsPerS, 6),
    streamsPerCore: Math.floor(windowsPerS / windowsPerAudioS),
    latencyP50Ms: round(p50, 3),
    latencyP99Ms: round(p99, 3),
  });
  const result: DetectBenchResult = {
    model: {
      name: metadata.name,
      version: metadata.version,
      windowSamples: metadata.windowSamples,
      hopSamples: metadata.hopSamples,
    },
    machine: { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? 'unknown', node: process.version },
    baseline: {
      single: figures(single.windowsPerCpuS, single.p50, single.p99),
      batch32: {
        windowsPerSecPerCore: round(batch32.windowsPerCpuS),
        realTimeFactor: round(windowsPerAudioS / batch32.windowsPerCpuS, 6),
        streamsPerCore: Math.floor(batch32.windowsPerCpuS / windowsPerAudioS),
        batchLatencyMs: round(batch32.p50, 3),
      },
    },
    engine: {
      batchingOn: {
        ...figures(on.windowsPerCpuS, onRt.p50, onRt.p99),
        realTimeFactor: round(on.cpuS / on.audioS, 6),
        streamsPerCore: Math.floor(on.streamsPerCore),
        batchMaxSize: detector.batchMaxSize,
        batchMaxDelayMs: detector.batchMaxDelayMs,
        streams: on.streams,
        realtimeStreams: onRtStreams,
        realtimeShed: onRt.shed,
        realtimeLagMs: round(onRt.lagMs),
      },
      batchingOff: {
        ...figures(off.windowsPerCpuS, offRt.p50, offRt.p99),
        realTimeFactor: round(off.cpuS / off.audioS, 6),
        streamsPerCore: Math.floor(off.streamsPerCore),
        streams: off.streams,
        realtimeStreams: offRtStreams,
        realtimeShed: offRt.shed,
        realtimeLagMs: round(offRt.lagMs),
      },
    },
    faster: on.streamsPerCore >= off.streamsPerCore ? 'batching' : 'no-batching',
    targetStreamsPerCore: TARGET,
    meetsTarget: Math.max(on.streamsPerCore, off.streamsPerCore) >= TARGET,
    durationS: 0,
  };
  result.durationS = round((performance.now() - started) / 1000, 1);
  return result;
}

/** The plain session: `batch` random windows per run, back to back, for about `seconds`. */
async function plainSession(modelPath: string, metadata: ModelMetadata, batch: number, seconds: number) {
  const runner = await OnnxModelRunner.create({ modelPath, metadata, intraOpThreads: 1 });
  try {
    const input = speechLikeSignal((batch * metadata.windowSamples) / 8, 7).subarray(
      0,
      batch * metadata.windowSamples,
    );
    for (let i = 0; i < 5; i++) await runner.run(input, batch); // warm-up
    const lat: number[] = [];
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    while (performance.now() - t0 < seconds * 1000 || lat.length < 20) {
      const s = performance.now();
      await runner.run(input, batch);
      lat.push(performance.now() - s);
    }
    const cpuS = cpuSeconds(process.cpuUsage(cpu0));
    lat.sort((a, b) => a - b);
    return { windowsPerCpuS: (lat.length * batch) / cpuS, p50: pct(lat, 0.5), p99: pct(lat, 0.99) };
  } finally {
    await runner.release();
  }
}

/** Many streams fed speech as fast as the engine takes it; CPU time per audio second. */
async function engineThroughput(detector: Config['detector'], streams: number, seconds: number) {
  const engine = await DetectorEngine.create(detector);
  try {
    const audio = speechLikeSignal(20_000, 3);
    const chunk = 160;
    const opened = Array.from({ length: streams }, (_, i) =>
      engine.openStream({ streamId: `s${i}`, upperLlr: 1e9, lowerLlr: -1e9, maxListenMs: 1e9 }),
    );
    // Warm-up pass of 2 s of audio, not measured.
    let pos = 0;
    const feed = async (ms: number): Promise<number> => {
      const end = pos + (ms / 1000) * 8000;
      let fed = 0;
      for (; pos < end; pos += chunk, fed += chunk) {
        const at = pos % (audio.length - chunk);
        const slice = audio.subarray(at, at + chunk);
        for (const s of opened) s.push(slice);
        // Yield each 20 ms tick so the batcher runs between ticks, as with live RTP.
        await new Promise((r) => setImmediate(r));
      }
      await engine.idle();
      return fed;
    };
    await feed(2000);
    const scored0 = engine.stats().windowsScored;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    let fedSamples = 0;
    while (performance.now() - t0 < seconds * 1000) fedSamples += await feed(1000);
    const cpuS = cpuSeconds(process.cpuUsage(cpu0));
    const windows = engine.stats().windowsScored - scored0;
    const audioS = (fedSamples / 8000) * streams;
    for (const s of opened) s.close();
    return { windowsPerCpuS: windows / cpuS, cpuS, audioS, streamsPerCore: audioS / cpuS, streams };
  } finally {
    await engine.close();
  }
}

/**
 * `streams` streams paced in real time (one 20 ms chunk each per tick), started staggered over
 * one hop as calls are; latency per window is from its submission to its score (queueing,
 * batching delay and inference).
 */
async function engineRealtime(
  detector: Config['detector'],
  metadata: ModelMetadata,
  streams: number,
  seconds: number,
) {
  const lat: number[] = [];
  const engine = await DetectorEngine.create({ ...detector, onWindowLatencyMs: (ms) => lat.push(ms) });
  try {
    const audio = speechLikeSignal(20_000, 5);
    const chunk = 160;
    const opened = Array.from({ length: streams }, (_, i) =>
      engine.openStream({ streamId: `r${i}`, upperLlr: 1e9, lowerLlr: -1e9, maxListenMs: 1e9 }),
    );
    const hopTicks = Math.max(1, Math.round(metadata.hopSamples / chunk));
    const startTick = opened.map((_, i) => Math.floor((i / streams) * hopTicks));
    const t0 = performance.now();
    let tick = 0;
    let lagMs = 0;
    while (performance.now() - t0 < seconds * 1000) {
      const wait = t0 + tick * 20 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else lagMs = Math.max(lagMs, -wait);
      for (let i = 0; i < streams; i++) {
        const k = tick - startTick[i];
        if (k < 0) continue;
        const at = (k * chunk) % (audio.length - chunk);
        opened[i].push(audio.subarray(at, at + chunk));
      }
      tick++;
    }
    await engine.idle();
    const shed = engine.stats().windowsShed;
    for (const s of opened) s.close();
    lat.sort((a, b) => a - b);
    return { p50: pct(lat, 0.5), p99: pct(lat, 0.99), shed, lagMs };
  } finally {
    await engine.close();
  }
}

function cpuSeconds(u: NodeJS.CpuUsage): number {
  return (u.user + u.system) / 1e6;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * (sorted.length - 1)))];
}

function round(v: number, digits = 1): number {
  const m = 10 ** digits;
  return Math.round(v * m) / m;
}

export function formatDetectBenchTable(r: DetectBenchResult): string {
  const rows: Array<[string, string, string, string, string, string]> = [
    ['mode', 'windows/s/core', 'RTF', 'streams/core', 'p50 ms', 'p99 ms'],
    row('plain ORT, 1 window/run', r.baseline.single),
    [
      'plain ORT, 32 windows/run',
      String(r.baseline.batch32.windowsPerSecPerCore),
      String(r.baseline.batch32.realTimeFactor),
      String(r.baseline.batch32.streamsPerCore),
      `${r.baseline.batch32.batchLatencyMs} (batch)`,
      '-',
    ],
    row(
      `engine, batching on (≤${r.engine.batchingOn.batchMaxSize}, ${r.engine.batchingOn.batchMaxDelayMs} ms)`,
      r.engine.batchingOn,
    ),
    row('engine, batching off', r.engine.batchingOff),
  ];
  const widths = rows[0].map((_, c) => Math.max(...rows.map((x) => x[c].length)));
  const lines = rows.map((x) => x.map((cell, c) => cell.padEnd(widths[c])).join('  '));
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  lines.push(
    '',
    `model ${r.model.name} ${r.model.version} (window ${r.model.windowSamples}, hop ${r.model.hopSamples}); ${r.machine.cpus} CPUs, ${r.machine.cpuModel}`,
    `engine latency measured in real time with ${r.engine.batchingOn.realtimeStreams} (on) / ${r.engine.batchingOff.realtimeStreams} (off) streams; shed: ${r.engine.batchingOn.realtimeShed} / ${r.engine.batchingOff.realtimeShed}; worst tick lag ${r.engine.batchingOn.realtimeLagMs} / ${r.engine.batchingOff.realtimeLagMs} ms`,
    `faster: ${r.faster}; target ${r.targetStreamsPerCore} streams/core: ${r.meetsTarget ? 'met' : 'NOT met'}; run took ${r.durationS} s`,
  );
  return lines.join('\n') + '\n';
}

function row(name: string, f: ModeFigures): [string, string, string, string, string, string] {
  return [
    name,
    String(f.windowsPerSecPerCore),
    String(f.realTimeFactor),
    String(f.streamsPerCore),
    String(f.latencyP50Ms),
    String(f.latencyP99Ms),
  ];
}

/** Model paths: explicit flags, else the configured defaults, else the copy inside the package. */
export function defaultModelPaths(modelFlag?: string): { modelPath: string; metadataPath: string } {
  if (modelFlag) return { modelPath: modelFlag, metadataPath: modelFlag.replace(/\.onnx$/i, '') + '.json' };
  const d = ConfigSchema.parse({}).detector;
  const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const pick = (p: string): string => (existsSync(p) ? p : resolve(root, p));
  return { modelPath: pick(d.modelPath), metadataPath: pick(d.metadataPath) };
}

export async function mainDetectBench(argv: string[]): Promise<void> {
  const modelIdx = argv.indexOf('--model');
  const paths = defaultModelPaths(modelIdx >= 0 ? argv[modelIdx + 1] : undefined);
  const budgetIdx = argv.indexOf('--budget-s');
  const budgetS = budgetIdx >= 0 ? Number(argv[budgetIdx + 1]) : undefined;
  const result = await runDetectBench({
    ...paths,
    budgetS,
    log: (l) => process.stderr.write(`bench: ${l}\n`),
  });
  process.stdout.write(JSON.stringify(result, null, 2) + '\n\n');
  process.stdout.write(formatDetectBenchTable(result));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  mainDetectBench(process.argv.slice(2)).catch((err: unknown) => {
    process.stderr.write(`bench:detect failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
