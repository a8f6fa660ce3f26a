import { EventEmitter } from 'node:events';
import type { Logger } from '../log.js';
import type { InferenceService, WindowResult } from './inference-service.js';
import { SprtDecider, type SprtDecision, type Verdict } from './sprt-decider.js';
import { VoiceActivityGate, VAD_SAMPLE_RATE_HZ, type VadOptions } from './vad.js';
import { Windower, type AudioWindow } from './windower.js';

export interface ScoreEvent {
  /** Stream time (ms of audio) at the end of the scored window. */
  tMs: number;
  /** Calibrated LLR of this window (natural log, synthetic over human). */
  llr: number;
  /** Σ evidenceWeight·llr over the stream's windows so far. */
  cumulativeLlr: number;
  /** Speech heard so far (ms). */
  speechMs: number;
}

export interface VerdictEvent {
  verdict: Verdict;
  /** Stream time of the deciding window, or null when the stream ended undecided. */
  decisionMs: number | null;
  cumulativeLlr: number;
}

export interface StreamErrorEvent {
  message: string;
  cause?: unknown;
}

export interface DetectorStreamEvents {
  score: [ScoreEvent];
  verdict: [VerdictEvent];
  error: [StreamErrorEvent];
  closed: [];
}

export interface DetectorStreamOptions {
  streamId: string;
  upperLlr: number;
  lowerLlr: number;
  maxListenMs: number;
}

export interface DetectorStreamDeps {
  service: InferenceService;
  windowSamples: number;
  hopSamples: number;
  evidenceWeight: number;
  vad: Partial<VadOptions>;
  logger: Logger;
  onClosed: (s: DetectorStream) => void;
}

/**
 * The detector's view of one caller: push 8 kHz PCM in any chunk size; speech is gated,
 * windowed, scored by the shared inference service and fed to the SPRT. Emits `score` per
 * window, `verdict` once, `error` on model faults (the caller decides what a fault means; the
 * stream keeps going), and `closed`.
 *
 * push() never throws, and errors are only emitted to an 'error' listener that exists (an
 * EventEmitter 'error' with no listener would throw into the media path).
 */
export class DetectorStream extends EventEmitter<DetectorStreamEvents> {
  readonly streamId: string;
  private _closed = false;
  private ended = false;
  private vad: VoiceActivityGate;
  private windower: Windower;
  private decider: SprtDecider;
  private verdictSent = false;
  /** Windows submitted and not yet answered. */
  private pending = 0;
  private streamSamples = 0;
  private drainWaiters: Array<() => void> = [];
  /** Windows shed by the overloaded service (not analysed: fail open). */
  windowsShed = 0;
  windowsScored = 0;
  errors = 0;

  constructor(
    opts: DetectorStreamOptions,
    private readonly deps: DetectorStreamDeps,
  ) {
    super();
    this.streamId = opts.streamId;
    this.decider = new SprtDecider({
      upperLlr: opts.upperLlr,
      lowerLlr: opts.lowerLlr,
      maxListenMs: opts.maxListenMs,
      evidenceWeight: deps.evidenceWeight,
    });
    this.vad = new VoiceActivityGate(deps.vad);
    this.windower = new Windower({
      windowSamples: deps.windowSamples,
      hopSamples: deps.hopSamples,
      sampleRateHz: VAD_SAMPLE_RATE_HZ,
    });
  }

  get closed(): boolean {
    return this._closed;
  }

  get cumulativeLlr(): number {
    return this.decider.cumulativeLlr;
  }

  /** The decision, once reached (or after end()). */
  get decision(): SprtDecision | null {
    return this.decider.result;
  }

  /** Audio pushed so far, in ms. */
  get durationMs(): number {
    return (this.streamSamples * 1000) / VAD_SAMPLE_RATE_HZ;
  }

  push(samples8k: Float32Array): void {
    if (this._closed || this.ended) return;
    try {
      if (!(samples8k instanceof Float32Array))
        throw new TypeError('push() takes a Float32Array of 8 kHz PCM');
      this.streamSamples += samples8k.length;
      for (const seg of this.vad.process(samples8k)) {
        for (const w of this.windower.push(seg.samples, seg.startSample)) this.submit(w);
      }
    } catch (err) {
      this.reportError(`cannot process audio: ${(err as Error).message}`, err);
    }
  }

  /**
   * End of audio (file analysis): scores a last short utterance if no window was complete,
   * waits for outstanding windows, and ends an undecided test as "unsure" with decisionMs null.
   * Resolves with the decision; resolves at once (null) if the stream is closed meanwhile.
   */
  async end(): Promise<SprtDecision | null> {
    if (this._closed) return this.decider.result;
    if (!this.ended) {
      this.ended = true;
      try {
        const last = this.windower.finish(this.streamSamples);
        if (last) this.submit(last);
      } catch (err) {
        this.reportError(`cannot process audio: ${(err as Error).message}`, err);
      }
    }
    if (this.pending > 0) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    if (this._closed) return this.decider.result;
    if (!this.verdictSent) {
      const d = this.decider.finish();
      this.verdictSent = true;
      this.emit('verdict', { verdict: d.verdict, decisionMs: d.decisionMs, cumulativeLlr: d.cumulativeLlr });
    }
    return this.decider.result;
  }

  close(): void {
    if (this._closed) return;
    this._closed = true;
    this.deps.service.cancel(this);
    this.vad.reset();
    this.windower.reset();
    this.pending = 0;
    this.resolveDrain();
    this.deps.onClosed(this);
    try {
      this.emit('closed');
    } finally {
      this.removeAllListeners();
    }
  }

  private submit(w: AudioWindow): void {
    this.pending++;
    const accepted = this.deps.service.submit(this, w.samples, (r) => this.onResult(w, r));
    if (!accepted) {
      this.pending--;
      this.windowsShed++;
    }
  }

  private onResult(w: AudioWindow, r: WindowResult): void {
    if (this._closed) return;
    this.pending--;
    try {
      if (!r.ok) {
        this.errors++;
        this.reportError(r.error.message, r.error);
        return;
      }
      this.windowsScored++;
      const step = this.decider.update(r.llr, w.tMs, w.speechMs);
      this.emit('score', { tMs: w.tMs, llr: r.llr, cumulativeLlr: step.cumulativeLlr, speechMs: w.speechMs });
      if (step.decided && !this.verdictSent && !this._closed) {
        this.verdictSent = true;
        const d = step.decided;
        this.emit('verdict', {
          verdict: d.verdict,
          decisionMs: d.decisionMs,
          cumulativeLlr: d.cumulativeLlr,
        });
      }
    } finally {
      if (this.pending === 0) this.resolveDrain();
    }
  }

  private reportError(message: string, cause: unknown): void {
    if (this._closed) return;
    if (this.listenerCount('error') > 0) {
      this.emit('error', { message, cause });
    } else {
      this.deps.logger.warn({ event: 'detect.stream_error', streamId: this.streamId, err: cause }, message);
    }
  }

  private resolveDrain(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of waiters) w();
  }
}
