import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { speechLikeSignal } from '../../bench/detect-signal.js';
import { loadModelMetadata, type ModelMetadata } from '../../src/detect/model-metadata.js';
import { ModelLoadError, OnnxModelRunner } from '../../src/detect/onnx-model.js';
import { WorkerModelRunner } from '../../src/detect/worker-model-runner.js';
import { METADATA_PATH, MODEL_PATH } from './helpers.js';

describe('WorkerModelRunner (ONNX session in a worker thread)', () => {
  let metadata: ModelMetadata;
  let inline: OnnxModelRunner;
  let worker: WorkerModelRunner;
  let batch: Float32Array;
  const COUNT = 64;

  beforeAll(async () => {
    metadata = loadModelMetadata(METADATA_PATH);
    inline = await OnnxModelRunner.create({ modelPath: MODEL_PATH, metadata, intraOpThreads: 1 });
    worker = await WorkerModelRunner.create({ modelPath: MODEL_PATH, metadata, intraOpThreads: 1 });
    batch = speechLikeSignal((COUNT * metadata.windowSamples) / 8 + 10, 13).subarray(
      0,
      COUNT * metadata.windowSamples,
    );
  });
  afterAll(async () => {
    await inline.release();
    await worker.release();
  });

  it('scores exactly like the session on the calling thread', async () => {
    const a = await inline.run(batch, COUNT);
    const b = await worker.run(batch, COUNT);
    expect(b.length).toBe(COUNT);
    for (let i = 0; i < COUNT; i++) expect(Math.abs(a[i] - b[i])).toBeLessThan(1e-5);
  });

  it('leaves the caller free to use the batch buffer and the event loop during a run', async () => {
    const copy = batch.slice();
    let ticks = 0;
    let running = true;
    const spin = (): void => {
      ticks++;
      if (running) setImmediate(spin);
    };
    const started = performance.now();
    setImmediate(spin);
    const p = worker.run(copy, COUNT);
    copy.fill(0); // the runner sent its own copy
    const logits = await p;
    const elapsed = performance.now() - started;
    running = false;
    const ref = await inline.run(batch, COUNT);
    for (let i = 0; i < COUNT; i++) expect(Math.abs(logits[i] - ref[i])).toBeLessThan(1e-5);
    // The loop kept turning while the model ran (an inline session blocks it for the whole run).
    expect(ticks).toBeGreaterThan(Math.min(20, elapsed / 2));
  });

  it('fails start-up with a ModelLoadError for a missing model', async () => {
    await expect(
      WorkerModelRunner.create({ modelPath: '/nonexistent.onnx', metadata, intraOpThreads: 1 }),
    ).rejects.toThrow(ModelLoadError);
  });

  it('rejects runs after release', async () => {
    const r = await WorkerModelRunner.create({ modelPath: MODEL_PATH, metadata, intraOpThreads: 1 });
    await r.release();
    await expect(r.run(batch, 1)).rejects.toThrow(/released/);
  });
});
