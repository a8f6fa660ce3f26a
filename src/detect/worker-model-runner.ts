import type { Worker } from 'node:worker_threads';
import type { InferenceWorkerReply } from './inference-worker.js';
import type { ModelMetadata } from './model-metadata.js';
import { ModelLoadError, type ModelRunner } from './onnx-model.js';
import { startWorker } from './worker-url.js';

/**
 * A ModelRunner whose ONNX session lives in a worker thread. onnxruntime-node's run() is
 * synchronous on the thread that calls it; with the session on the main thread every batch
 * would stall SIP handling, the API and timers for as long as the model takes. Here the main
 * thread only copies the batch over and gets the logits back.
 *
 * If the worker dies, the runs in flight fail and later runs fail at once (the engine reports
 * them as stream errors; the calls fail open).
 */
export class WorkerModelRunner implements ModelRunner {
  private nextId = 0;
  private readonly pending = new Map<
    number,
    { resolve: (l: Float32Array) => void; reject: (e: Error) => void }
  >();
  private dead: Error | null = null;
  private released = false;

  private constructor(
    private readonly worker: Worker,
    readonly windowSamples: number,
  ) {
    worker.on('message', (m: InferenceWorkerReply) => this.onMessage(m));
    worker.on('error', (err) => this.die(new Error(`inference worker failed: ${err.message}`)));
    worker.on('exit', (code) => this.die(new Error(`inference worker exited (code ${code})`)));
  }

  static async create(opts: {
    modelPath: string;
    metadata: ModelMetadata;
    intraOpThreads: number;
  }): Promise<WorkerModelRunner> {
    const worker = startWorker('./inference-worker.js', import.meta.url, {
      workerData: { modelPath: opts.modelPath, metadata: opts.metadata, intraOpThreads: opts.intraOpThreads },
    });
    await new Promise<void>((resolve, reject) => {
      const onMessage = (m: InferenceWorkerReply): void => {
        cleanup();
        if (m.type === 'ready') resolve();
        else if (m.type === 'fatal')
          reject(new ModelLoadError(opts.modelPath, m.message.replace(`${opts.modelPath}: `, '')));
        else reject(new Error(`unexpected message from inference worker: ${m.type}`));
      };
      const onError = (err: Error): void => {
        cleanup();
        reject(
          new ModelLoadError(opts.modelPath, `inference worker failed to start: ${err.message}`, {
            cause: err,
          }),
        );
      };
      const onExit = (code: number): void => {
        cleanup();
        reject(new ModelLoadError(opts.modelPath, `inference worker exited during start-up (code ${code})`));
      };
      const cleanup = (): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('exit', onExit);
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return new WorkerModelRunner(worker, opts.metadata.windowSamples);
  }

  run(batch: Float32Array, count: number): Promise<Float32Array> {
    if (this.dead) return Promise.reject(this.dead);
    if (this.released) return Promise.reject(new Error('model session released'));
    const id = this.nextId++;
    // A copy, transferred: the caller reuses its batch buffer as soon as this resolves.
    const copy = batch.slice(0, count * this.windowSamples);
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, batch: copy, count }, [copy.buffer]);
    });
  }

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    if (this.dead) return;
    const exited = new Promise((r) => this.worker.once('exit', r));
    this.worker.postMessage({ id: -1, close: true });
    const timer = setTimeout(() => void this.worker.terminate(), 2000);
    await exited;
    clearTimeout(timer);
  }

  private onMessage(m: InferenceWorkerReply): void {
    if (m.type !== 'result' && m.type !== 'error') return;
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.type === 'result') p.resolve(m.logits);
    else p.reject(new Error(m.message));
  }

  private die(err: Error): void {
    if (this.dead) return;
    this.dead = this.released ? new Error('model session released') : err;
    for (const p of this.pending.values()) p.reject(this.dead);
    this.pending.clear();
  }
}
