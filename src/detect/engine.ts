import type { Config } from '../config/schema.js';
import { silentLogger, type Logger } from '../log.js';
import { DetectorStream, type DetectorStreamOptions } from './detector-stream.js';
import { InferenceService } from './inference-service.js';
import { loadModelMetadata, ModelMetadataError, type ModelMetadata } from './model-metadata.js';
import { OnnxModelRunner, type ModelRunner } from './onnx-model.js';
import { validateSprtOptions } from './sprt-decider.js';
import { WorkerModelRunner } from './worker-model-runner.js';

export type DetectorEngineOptions = Config['detector'] & {
  logger?: Logger;
  /**
   * Stand-in model runner, for tests of faults a real model cannot be made to show (hangs,
   * failing runs). Production always loads `modelPath`.
   */
  runner?: ModelRunner;
  /**
   * Where the ONNX session runs: 'worker' (default) keeps the calling thread's event loop free
   * during inference; 'inline' runs it on the calling thread (already a worker, e.g. the
   * analysis pool, where a second hop only costs).
   */
  inferenceThread?: 'worker' | 'inline';
  /** Called with each scored window's queue + inference time (for metrics and the bench). */
  onWindowLatencyMs?: (ms: number) => void;
};

export interface DetectorEngineStats {
  activeStreams: number;
  windowsScored: number;
  windowsShed: number;
  inferenceErrors: number;
  batches: number;
}

/**
 * The detector: the model metadata, one shared inference service, and the open streams.
 * Everything a stream holds is released when it closes; close() closes them all and frees the
 * ONNX session.
 */
export class DetectorEngine {
  private readonly streams = new Set<DetectorStream>();
  private closed = false;

  private constructor(
    readonly metadata: ModelMetadata,
    private readonly service: InferenceService,
    private readonly opts: DetectorEngineOptions,
    private readonly logger: Logger,
  ) {}

  static async create(opts: DetectorEngineOptions): Promise<DetectorEngine> {
    const logger = opts.logger ?? silentLogger;
    const metadata = loadModelMetadata(opts.metadataPath);
    const declared = metadata.input.shape[1];
    if (typeof declared === 'number' && declared !== metadata.windowSamples) {
      throw new ModelMetadataError(
        opts.metadataPath,
        `input.shape[1] (${declared}) differs from windowSamples (${metadata.windowSamples})`,
      );
    }
    const runnerOpts = { modelPath: opts.modelPath, metadata, intraOpThreads: opts.intraOpThreads };
    const runner =
      opts.runner ??
      (opts.inferenceThread === 'inline'
        ? await OnnxModelRunner.create(runnerOpts)
        : await WorkerModelRunner.create(runnerOpts));
    const service = new InferenceService(runner, {
      batchMaxSize: opts.batchMaxSize,
      batchMaxDelayMs: opts.batchMaxDelayMs,
      maxQueuedWindows: opts.maxQueuedWindows,
      inferenceTimeoutMs: opts.inferenceTimeoutMs,
      calibration: metadata.calibration,
      logger,
      onWindowLatencyMs: opts.onWindowLatencyMs,
    });
    logger.info(
      {
        event: 'detect.model_loaded',
        model: metadata.name,
        version: metadata.version,
        windowSamples: metadata.windowSamples,
        hopSamples: metadata.hopSamples,
        batchMaxSize: opts.batchMaxSize,
      },
      'detector model loaded',
    );
    return new DetectorEngine(metadata, service, opts, logger);
  }

  /** Opens a stream. Throws (RangeError) on bounds that cannot form a test, or after close(). */
  openStream(opts: DetectorStreamOptions): DetectorStream {
    if (this.closed) throw new Error('detector engine is closed');
    validateSprtOptions({ ...opts, evidenceWeight: this.metadata.decision.evidenceWeight });
    const stream = new DetectorStream(opts, {
      service: this.service,
      windowSamples: this.metadata.windowSamples,
      hopSamples: this.metadata.hopSamples,
      evidenceWeight: this.metadata.decision.evidenceWeight,
      vad: this.opts.vad,
      logger: this.logger,
      onClosed: (s) => this.streams.delete(s),
    });
    this.streams.add(stream);
    return stream;
  }

  stats(): DetectorEngineStats {
    const s = this.service.stats();
    return {
      activeStreams: this.streams.size,
      windowsScored: s.windowsScored,
      windowsShed: s.windowsShed,
      inferenceErrors: s.inferenceErrors,
      batches: s.batches,
    };
  }

  /** Resolves when no window is waiting for or in inference. */
  idle(): Promise<void> {
    return this.service.idle();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.streams]) s.close();
    await this.service.close();
  }
}
