import * as ort from 'onnxruntime-node';
import type { ModelMetadata } from './model-metadata.js';

/**
 * What the inference service needs from a model: score `count` windows laid out back to back
 * in `batch`, and return one raw logit per window. The ONNX implementation is the only one in
 * production; the interface exists so a test can stand in a runner that hangs or fails, which a
 * healthy model file cannot be made to do on demand.
 */
export interface ModelRunner {
  readonly windowSamples: number;
  run(batch: Float32Array, count: number): Promise<Float32Array>;
  release(): Promise<void>;
}

export class ModelLoadError extends Error {
  constructor(
    readonly file: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${message}`, options);
    this.name = 'ModelLoadError';
  }
}

export interface OnnxRunnerOptions {
  modelPath: string;
  metadata: ModelMetadata;
  /** onnxruntime intra-op threads for this session. */
  intraOpThreads: number;
}

/** One onnxruntime-node InferenceSession, run sequentially on `intraOpThreads` threads. */
export class OnnxModelRunner implements ModelRunner {
  private released = false;

  private constructor(
    private readonly session: ort.InferenceSession,
    private readonly inputName: string,
    private readonly outputName: string,
    readonly windowSamples: number,
  ) {}

  static async create(opts: OnnxRunnerOptions): Promise<OnnxModelRunner> {
    const { modelPath, metadata } = opts;
    let session: ort.InferenceSession;
    try {
      session = await ort.InferenceSession.create(modelPath, {
        intraOpNumThreads: opts.intraOpThreads,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        graphOptimizationLevel: 'all',
      });
    } catch (err) {
      throw new ModelLoadError(modelPath, `cannot load ONNX model: ${(err as Error).message}`, {
        cause: err,
      });
    }
    if (!session.inputNames.includes(metadata.input.name)) {
      await session.release();
      throw new ModelLoadError(
        modelPath,
        `model has no input '${metadata.input.name}' named in its metadata (inputs: ${session.inputNames.join(', ')})`,
      );
    }
    if (!session.outputNames.includes(metadata.output.name)) {
      await session.release();
      throw new ModelLoadError(
        modelPath,
        `model has no output '${metadata.output.name}' named in its metadata (outputs: ${session.outputNames.join(', ')})`,
      );
    }
    const runner = new OnnxModelRunner(
      session,
      metadata.input.name,
      metadata.output.name,
      metadata.windowSamples,
    );
    // One silent window at load time: proves the window size matches the graph (a mismatch fails
    // here, at start-up, not on the first call) and warms the session's allocations.
    try {
      await runner.run(new Float32Array(metadata.windowSamples), 1);
    } catch (err) {
      await runner.release();
      throw new ModelLoadError(
        modelPath,
        `model does not accept windows of ${metadata.windowSamples} samples: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return runner;
  }

  async run(batch: Float32Array, count: number): Promise<Float32Array> {
    if (this.released) throw new Error('model session released');
    const data =
      batch.length === count * this.windowSamples ? batch : batch.subarray(0, count * this.windowSamples);
    const input = new ort.Tensor('float32', data, [count, this.windowSamples]);
    const out = await this.session.run({ [this.inputName]: input }, [this.outputName]);
    const t = out[this.outputName];
    if (!t || t.type !== 'float32' || t.data.length !== count) {
      throw new Error(
        `model output '${this.outputName}' has ${t?.data.length ?? 0} ${t?.type ?? ''} values for ${count} windows`,
      );
    }
    return Float32Array.from(t.data as Float32Array);
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    await this.session.release();
  }
}
