import type { Logger } from '../log.js';
import type { ModelRunner } from './onnx-model.js';

/**
 * One model session shared by every stream. Windows that arrive within `batchMaxDelayMs` of
 * each other (up to `batchMaxSize`) are scored in one inference call, and the logits are fanned
 * back to their streams. One call is in flight at a time, so results come back in submission
 * order.
 *
 * Overload fails open: beyond `maxQueuedWindows` waiting windows, new ones are shed and counted
 * (the call goes on unanalysed for that stretch) rather than letting latency grow without end.
 * A window not scored within `inferenceTimeoutMs`, or whose batch fails, is reported to its
 * owner as an error; nothing is thrown at the submitter.
 */

export type WindowResult = { ok: true; logit: number; llr: number } | { ok: false; error: Error };

export interface InferenceServiceOptions {
  batchMaxSize: number;
  batchMaxDelayMs: number;
  maxQueuedWindows: number;
  inferenceTimeoutMs: number;
  calibration: { scale: number; bias: number };
  logger: Logger;
  /** Called with each scored window's time from submission to result. */
  onWindowLatencyMs?: (ms: number) => void;
  /** Monotonic clock in ms (injectable for tests). */
  now?: () => number;
}

export interface InferenceStats {
  queued: number;
  inFlight: number;
  windowsScored: number;
  windowsShed: number;
  /** Windows that failed: their batch threw, or they timed out. */
  inferenceErrors: number;
  batches: number;
}

export class InferenceTimeoutError extends Error {
  constructor(timeoutMs: number) {
    super(`window not scored within ${timeoutMs} ms`);
    this.name = 'InferenceTimeoutError';
  }
}

export class InferenceFailedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InferenceFailedError';
  }
}

interface Job {
  owner: object;
  samples: Float32Array;
  cb: (r: WindowResult) => void;
  enqueuedAt: number;
  settled: boolean;
}

export class InferenceService {
  private readonly queue: Job[] = [];
  /** Index of the first live job in `queue` (dequeue without shifting the array each time). */
  private head = 0;
  private readonly batchBuf: Float32Array;
  private running: Job[] | null = null;
  private timer: NodeJS.Timeout | null = null;
  private immediate: NodeJS.Immediate | null = null;
  private watchdog: NodeJS.Timeout | null = null;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  private readonly now: () => number;
  private readonly counters = { windowsScored: 0, windowsShed: 0, inferenceErrors: 0, batches: 0 };

  constructor(
    private readonly runner: ModelRunner,
    private readonly opts: InferenceServiceOptions,
  ) {
    this.batchBuf = new Float32Array(opts.batchMaxSize * runner.windowSamples);
    this.now = opts.now ?? (() => performance.now());
  }

  get windowSamples(): number {
    return this.runner.windowSamples;
  }

  /**
   * Queues one window for `owner`. Returns false when the window was shed (queue full, or the
   * service closed); `cb` is then never called. Otherwise `cb` is called exactly once, later.
   */
  submit(owner: object, samples: Float32Array, cb: (r: WindowResult) => void): boolean {
    if (this.closed || samples.length !== this.runner.windowSamples) {
      this.counters.windowsShed++;
      return false;
    }
    if (this.queue.length - this.head >= this.opts.maxQueuedWindows) {
      this.counters.windowsShed++;
      if (this.counters.windowsShed === 1 || this.counters.windowsShed % 1000 === 0) {
        this.opts.logger.warn(
          {
            event: 'detect.overload_shed',
            windowsShed: this.counters.windowsShed,
            maxQueuedWindows: this.opts.maxQueuedWindows,
          },
          'detector overloaded: windows shed (calls continue unanalysed for that stretch)',
        );
      }
      return false;
    }
    this.queue.push({ owner, samples, cb, enqueuedAt: this.now(), settled: false });
    this.schedule();
    return true;
  }

  /** Drops the queued windows of `owner` (its callbacks will not be called). */
  cancel(owner: object): void {
    let removed = 0;
    for (let i = this.head; i < this.queue.length; i++) {
      const job = this.queue[i];
      if (job.owner === owner && !job.settled) {
        job.settled = true;
        job.samples = EMPTY;
        removed++;
      }
    }
    if (this.running) for (const job of this.running) if (job.owner === owner) job.settled = true;
    if (removed > 0) this.compact();
  }

  stats(): InferenceStats {
    return { queued: this.queue.length - this.head, inFlight: this.running?.length ?? 0, ...this.counters };
  }

  /** Resolves once nothing is queued or running. */
  idle(): Promise<void> {
    if (this.queue.length === this.head && !this.running) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Fails nothing silently: queued windows get a "closed" error; the session is released. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.clearTimers();
    const pending = this.queue.splice(this.head);
    this.head = 0;
    this.queue.length = 0;
    const err = new InferenceFailedError('detector engine closed');
    for (const job of pending) if (!job.settled) this.settle(job, { ok: false, error: err });
    // Let an in-flight run finish (or time out) before the session goes.
    if (this.running) await this.idle();
    await this.runner.release();
  }

  private schedule(): void {
    if (this.running || this.closed) return;
    const queued = this.queue.length - this.head;
    if (queued >= this.opts.batchMaxSize) {
      this.clearTimers();
      void this.runNext();
      return;
    }
    if (this.timer || this.immediate) return;
    // A zero delay still gathers everything submitted in the same turn of the event loop.
    if (this.opts.batchMaxDelayMs > 0)
      this.timer = setTimeout(() => void this.runNext(), this.opts.batchMaxDelayMs);
    else this.immediate = setImmediate(() => void this.runNext());
  }

  private clearTimers(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = null;
    this.immediate = null;
  }

  private takeBatch(): Job[] {
    const batch: Job[] = [];
    const tooOld = this.now() - this.opts.inferenceTimeoutMs;
    while (this.head < this.queue.length && batch.length < this.opts.batchMaxSize) {
      const job = this.queue[this.head++];
      if (job.settled) continue;
      if (job.enqueuedAt < tooOld) {
        this.fail(job, new InferenceTimeoutError(this.opts.inferenceTimeoutMs));
        continue;
      }
      batch.push(job);
    }
    this.compact();
    return batch;
  }

  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  private async runNext(): Promise<void> {
    this.clearTimers();
    if (this.running || this.closed) return;
    const batch = this.takeBatch();
    if (batch.length === 0) {
      this.notifyIdle();
      return;
    }
    const w = this.runner.windowSamples;
    for (let i = 0; i < batch.length; i++) this.batchBuf.set(batch[i].samples, i * w);
    this.running = batch;
    this.armWatchdog(batch);
    this.counters.batches++;
    try {
      const logits = await this.runner.run(this.batchBuf, batch.length);
      const { scale, bias } = this.opts.calibration;
      const done = this.now();
      for (let i = 0; i < batch.length; i++) {
        const logit = logits[i];
        if (batch[i].settled) continue;
        this.counters.windowsScored++;
        this.opts.onWindowLatencyMs?.(done - batch[i].enqueuedAt);
        this.settle(batch[i], { ok: true, logit, llr: scale * logit + bias });
      }
    } catch (err) {
      const error = new InferenceFailedError(`inference failed: ${(err as Error)?.message ?? String(err)}`, {
        cause: err,
      });
      this.opts.logger.error(
        { event: 'detect.inference_failed', err, windows: batch.length },
        'model inference failed',
      );
      for (const job of batch) this.fail(job, error);
    } finally {
      if (this.watchdog) clearTimeout(this.watchdog);
      this.watchdog = null;
      this.running = null;
    }
    if (this.closed) {
      this.notifyIdle();
      return;
    }
    if (this.queue.length > this.head) {
      // Windows that queued during the run have waited long enough: run them straight away
      // (after letting pending I/O in, so the relay is not starved).
      this.immediate = setImmediate(() => void this.runNext());
    } else {
      this.notifyIdle();
    }
  }

  /**
   * If a run overruns the timeout, its windows are failed now; the run itself cannot be
   * cancelled, so the service stays busy, and queued windows that age past the timeout are
   * failed too, every `inferenceTimeoutMs`, until the run returns.
   */
  private armWatchdog(batch: Job[]): void {
    const timeoutMs = this.opts.inferenceTimeoutMs;
    const fire = (): void => {
      const err = new InferenceTimeoutError(timeoutMs);
      let failed = 0;
      for (const job of batch) {
        if (job.settled) continue;
        this.fail(job, err);
        failed++;
      }
      const tooOld = this.now() - timeoutMs;
      for (let i = this.head; i < this.queue.length; i++) {
        const job = this.queue[i];
        if (job.settled || job.enqueuedAt > tooOld) continue;
        this.fail(job, err);
        failed++;
      }
      if (failed > 0) {
        this.opts.logger.error(
          { event: 'detect.inference_timeout', timeoutMs, windows: failed },
          'model inference timed out',
        );
      }
      this.watchdog = setTimeout(fire, timeoutMs);
      this.watchdog.unref();
    };
    this.watchdog = setTimeout(fire, timeoutMs);
    this.watchdog.unref();
  }

  private fail(job: Job, error: Error): void {
    if (job.settled) return;
    this.counters.inferenceErrors++;
    this.settle(job, { ok: false, error });
  }

  private settle(job: Job, r: WindowResult): void {
    job.settled = true;
    job.samples = EMPTY;
    try {
      job.cb(r);
    } catch (err) {
      // A listener's bug must not take the batch (and the other calls in it) down.
      this.opts.logger.error({ event: 'detect.listener_error', err }, 'detector result listener threw');
    }
  }

  private notifyIdle(): void {
    if (this.queue.length > this.head || this.running) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }
}

const EMPTY = new Float32Array(0);
