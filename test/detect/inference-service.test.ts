import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../../src/log.js';
import {
  InferenceFailedError,
  InferenceService,
  InferenceTimeoutError,
  type InferenceServiceOptions,
  type WindowResult,
} from '../../src/detect/inference-service.js';
import { loadModelMetadata, type ModelMetadata } from '../../src/detect/model-metadata.js';
import { OnnxModelRunner, type ModelRunner } from '../../src/detect/onnx-model.js';
import { speechLikeSignal } from '../../bench/detect-signal.js';
import { METADATA_PATH, MODEL_PATH } from './helpers.js';

let metadata: ModelMetadata;
let windows: Float32Array[];

beforeAll(() => {
  metadata = loadModelMetadata(METADATA_PATH);
  const audio = speechLikeSignal(40_000, 21);
  const W = metadata.windowSamples;
  windows = Array.from({ length: 40 }, (_, i) =>
    audio.slice((i * W) % (audio.length - W), ((i * W) % (audio.length - W)) + W),
  );
  // A few that are not speech at all, to spread the scores.
  windows[3] = new Float32Array(W);
  windows[7] = windows[7].map((v) => v * 0.01);
});

function opts(over: Partial<InferenceServiceOptions> = {}): InferenceServiceOptions {
  return {
    batchMaxSize: 16,
    batchMaxDelayMs: 2,
    maxQueuedWindows: 4096,
    inferenceTimeoutMs: 5000,
    calibration: metadata.calibration,
    logger: silentLogger,
    ...over,
  };
}

async function scoreAll(service: InferenceService, ws: Float32Array[]): Promise<WindowResult[]> {
  const owner = {};
  return Promise.all(
    ws.map((w) => new Promise<WindowResult>((resolve) => service.submit(owner, w, resolve))),
  );
}

function llrs(results: WindowResult[]): number[] {
  return results.map((r) => {
    if (!r.ok) throw r.error;
    return r.llr;
  });
}

describe('InferenceService with the real model', () => {
  let runner: OnnxModelRunner;
  beforeAll(async () => {
    runner = await OnnxModelRunner.create({ modelPath: MODEL_PATH, metadata, intraOpThreads: 1 });
  });
  afterAll(async () => {
    await runner.release();
  });

  it('gives the same LLRs batched and one window per run (within 1e-5), and applies the calibration', async () => {
    const batched = new InferenceService(runner, opts({ batchMaxSize: 16 }));
    const single = new InferenceService(runner, opts({ batchMaxSize: 1, batchMaxDelayMs: 0 }));
    const a = await scoreAll(batched, windows);
    const b = await scoreAll(single, windows);
    expect(batched.stats().batches).toBeLessThan(windows.length);
    expect(single.stats().batches).toBe(windows.length);
    const la = llrs(a);
    const lb = llrs(b);
    for (let i = 0; i < la.length; i++) expect(Math.abs(la[i] - lb[i])).toBeLessThan(1e-5);
    for (const r of a)
      if (r.ok)
        expect(r.llr).toBeCloseTo(metadata.calibration.scale * r.logit + metadata.calibration.bias, 5);
    // The windows differ, so the model must not answer the same for all of them.
    expect(new Set(la.map((v) => v.toFixed(4))).size).toBeGreaterThan(1);
  });

  it('is deterministic: the same windows score the same in any order and batch composition', async () => {
    const s = new InferenceService(runner, opts({ batchMaxSize: 7 }));
    const first = llrs(await scoreAll(s, windows));
    const order = windows.map((_, i) => i).reverse();
    const again = llrs(
      await scoreAll(
        s,
        order.map((i) => windows[i]),
      ),
    );
    order.forEach((src, k) => expect(Math.abs(again[k] - first[src])).toBeLessThan(1e-5));
  });

  it('batches windows that arrive together, up to batchMaxSize', async () => {
    const s = new InferenceService(runner, opts({ batchMaxSize: 8, batchMaxDelayMs: 20 }));
    await scoreAll(s, windows.slice(0, 20));
    expect(s.stats()).toMatchObject({
      batches: 3,
      windowsScored: 20,
      windowsShed: 0,
      inferenceErrors: 0,
      queued: 0,
    });
  });

  it('sheds windows beyond maxQueuedWindows and counts them (overload fails open)', async () => {
    const s = new InferenceService(
      runner,
      opts({ batchMaxSize: 32, batchMaxDelayMs: 20, maxQueuedWindows: 5 }),
    );
    const owner = {};
    const results: WindowResult[] = [];
    const accepted = windows.slice(0, 20).map((w) => s.submit(owner, w, (r) => results.push(r)));
    expect(accepted.filter(Boolean).length).toBe(5);
    await s.idle();
    expect(results.length).toBe(5);
    expect(s.stats()).toMatchObject({ windowsShed: 15, windowsScored: 5 });
  });

  it('drops the queued windows of a cancelled owner without calling back', async () => {
    const s = new InferenceService(runner, opts({ batchMaxSize: 32, batchMaxDelayMs: 10 }));
    const a = {};
    const b = {};
    const got: string[] = [];
    for (const w of windows.slice(0, 6)) s.submit(a, w, () => got.push('a'));
    for (const w of windows.slice(0, 4)) s.submit(b, w, () => got.push('b'));
    s.cancel(a);
    await s.idle();
    expect(got).toEqual(['b', 'b', 'b', 'b']);
    expect(s.stats().windowsScored).toBe(4);
  });

  it('refuses a window of the wrong size without calling back', () => {
    const s = new InferenceService(runner, opts());
    let calls = 0;
    expect(s.submit({}, new Float32Array(10), () => calls++)).toBe(false);
    expect(calls).toBe(0);
  });
});

/**
 * Faults a healthy model cannot be made to show on demand: a run that never returns and a
 * run that throws. These stand-ins wrap the real runner's shape.
 */
class FaultyRunner implements ModelRunner {
  calls = 0;
  released = false;
  constructor(
    readonly windowSamples: number,
    private readonly mode: 'hang' | 'throw' | 'throw-once',
  ) {}
  run(_batch: Float32Array, count: number): Promise<Float32Array> {
    this.calls++;
    if (this.mode === 'hang') return new Promise(() => {});
    if (this.mode === 'throw' || this.calls === 1)
      return Promise.reject(new Error('onnxruntime: simulated kernel failure'));
    return Promise.resolve(new Float32Array(count).fill(0.5));
  }
  async release(): Promise<void> {
    this.released = true;
  }
}

describe('InferenceService faults', () => {
  it('reports a failed run to every window of the batch, then keeps serving', async () => {
    const runner = new FaultyRunner(100, 'throw-once');
    const s = new InferenceService(runner, opts({ batchMaxSize: 4, batchMaxDelayMs: 1 }));
    const w = new Float32Array(100);
    const first = await scoreAll(s, [w, w, w]);
    expect(first.every((r) => !r.ok && r.error instanceof InferenceFailedError)).toBe(true);
    const second = await scoreAll(s, [w, w]);
    expect(second.every((r) => r.ok)).toBe(true);
    expect(s.stats()).toMatchObject({ inferenceErrors: 3, windowsScored: 2, batches: 2 });
  });

  it('times out a hung run and the windows queued behind it; nothing throws', async () => {
    const runner = new FaultyRunner(100, 'hang');
    const s = new InferenceService(
      runner,
      opts({ batchMaxSize: 2, batchMaxDelayMs: 0, inferenceTimeoutMs: 50 }),
    );
    const w = new Float32Array(100);
    const started = performance.now();
    const results = await scoreAll(s, [w, w, w, w, w]);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(results.every((r) => !r.ok && r.error instanceof InferenceTimeoutError)).toBe(true);
    expect(s.stats().inferenceErrors).toBe(5);
    expect(runner.calls).toBe(1);
  });

  it('close() fails queued windows and releases the session', async () => {
    const runner = new FaultyRunner(100, 'throw');
    const s = new InferenceService(runner, opts({ batchMaxSize: 64, batchMaxDelayMs: 100 }));
    const pending = scoreAll(s, [new Float32Array(100), new Float32Array(100)]);
    const cancelled = {};
    let cancelledCalls = 0;
    s.submit(cancelled, new Float32Array(100), () => cancelledCalls++);
    s.cancel(cancelled);
    await s.close();
    expect(cancelledCalls).toBe(0);
    const results = await pending;
    expect(results.every((r) => !r.ok && /closed/.test(r.error.message))).toBe(true);
    expect(runner.released).toBe(true);
    expect(s.submit({}, new Float32Array(100), () => {})).toBe(false);
  });

  it('a throwing listener does not break the other windows of its batch', async () => {
    const runner = new FaultyRunner(100, 'throw-once');
    runner.calls = 1; // healthy from the start
    const s = new InferenceService(runner, opts({ batchMaxSize: 4, batchMaxDelayMs: 1 }));
    const got: number[] = [];
    s.submit({}, new Float32Array(100), () => {
      throw new Error('listener bug');
    });
    s.submit({}, new Float32Array(100), () => got.push(1));
    await s.idle();
    expect(got).toEqual([1]);
  });
});
