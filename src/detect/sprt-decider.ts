/**
 * Wald's sequential probability ratio test on calibrated per-window LLRs (natural log,
 * synthetic over human). Evidence from overlapping windows is correlated, so each window
 * counts `evidenceWeight` times its LLR. The first window that takes the running sum to
 * `upperLlr` or above decides "synthetic", to `lowerLlr` or below "human"; if `maxListenMs` of
 * speech pass first, "unsure". The decision is final: later windows still move the sum (the
 * gateway watches it for its warn bound) but never change the verdict.
 *
 * Pure: no clock, no I/O; time comes with each window.
 */

export type Verdict = 'synthetic' | 'human' | 'unsure';

export interface SprtOptions {
  upperLlr: number;
  lowerLlr: number;
  /** Speech time after which an undecided test ends "unsure". */
  maxListenMs: number;
  /** Weight of each window's LLR in the sum (0 < w ≤ 1). */
  evidenceWeight: number;
  /** Windows needed before any bound may decide (one window is one model opinion). */
  minWindows?: number;
}

export interface SprtDecision {
  verdict: Verdict;
  /** Stream time of the deciding window (ms of audio), or null when the stream ended undecided. */
  decisionMs: number | null;
  cumulativeLlr: number;
  windows: number;
}

export interface SprtStep {
  cumulativeLlr: number;
  /** Set on the one step that decided; null before and after. */
  decided: SprtDecision | null;
}

export class SprtOptionsError extends RangeError {}

export function validateSprtOptions(o: SprtOptions): void {
  if (!Number.isFinite(o.upperLlr) || !Number.isFinite(o.lowerLlr))
    throw new SprtOptionsError('bounds must be finite numbers');
  if (!(o.upperLlr > 0)) throw new SprtOptionsError(`upperLlr must be > 0 (got ${o.upperLlr})`);
  if (!(o.lowerLlr < 0)) throw new SprtOptionsError(`lowerLlr must be < 0 (got ${o.lowerLlr})`);
  if (!(o.maxListenMs > 0)) throw new SprtOptionsError(`maxListenMs must be > 0 (got ${o.maxListenMs})`);
  if (!(o.evidenceWeight > 0 && o.evidenceWeight <= 1)) {
    throw new SprtOptionsError(`evidenceWeight must be in (0, 1] (got ${o.evidenceWeight})`);
  }
  if (o.minWindows !== undefined && !(Number.isInteger(o.minWindows) && o.minWindows >= 1)) {
    throw new SprtOptionsError(`minWindows must be an integer >= 1 (got ${o.minWindows})`);
  }
}

export class SprtDecider {
  private sum = 0;
  private count = 0;
  private decision: SprtDecision | null = null;
  private readonly minWindows: number;

  constructor(private readonly opts: SprtOptions) {
    validateSprtOptions(opts);
    this.minWindows = opts.minWindows ?? 1;
  }

  get cumulativeLlr(): number {
    return this.sum;
  }

  get windows(): number {
    return this.count;
  }

  get result(): SprtDecision | null {
    return this.decision;
  }

  /**
   * One window's calibrated LLR, with the stream time at its end and the speech time so far.
   * A non-finite LLR (a broken model output) carries no evidence and is skipped.
   */
  update(llr: number, tMs: number, speechMs: number): SprtStep {
    if (!Number.isFinite(llr)) return { cumulativeLlr: this.sum, decided: null };
    this.sum += this.opts.evidenceWeight * llr;
    this.count++;
    if (this.decision) return { cumulativeLlr: this.sum, decided: null };
    let verdict: Verdict | null = null;
    if (this.count >= this.minWindows) {
      if (this.sum >= this.opts.upperLlr) verdict = 'synthetic';
      else if (this.sum <= this.opts.lowerLlr) verdict = 'human';
    }
    if (!verdict && speechMs >= this.opts.maxListenMs) verdict = 'unsure';
    if (!verdict) return { cumulativeLlr: this.sum, decided: null };
    this.decision = { verdict, decisionMs: tMs, cumulativeLlr: this.sum, windows: this.count };
    return { cumulativeLlr: this.sum, decided: this.decision };
  }

  /** End of stream: an undecided test ends "unsure" with no decision time. Idempotent. */
  finish(): SprtDecision {
    if (!this.decision)
      this.decision = { verdict: 'unsure', decisionMs: null, cumulativeLlr: this.sum, windows: this.count };
    return this.decision;
  }
}

/** Runs the test over a whole sequence (offline analysis and tests). */
export function decideSequence(
  windows: ReadonlyArray<{ llr: number; tMs: number; speechMs: number }>,
  opts: SprtOptions,
): SprtDecision {
  const d = new SprtDecider(opts);
  for (const w of windows) {
    const step = d.update(w.llr, w.tMs, w.speechMs);
    if (step.decided) return step.decided;
  }
  return d.finish();
}
