/**
 * Cuts the gated speech of one stream into model windows of `windowSamples`, one every
 * `hopSamples` of speech. Only speech reaches it, so a window may span a pause; each window
 * carries the stream time of its last sample (what a listener had heard when it was complete)
 * and the speech time accumulated by then (what the listening-time limit counts).
 */

export interface AudioWindow {
  /** Model input, `windowSamples` long; owned by the receiver. */
  samples: Float32Array;
  /** Stream time (ms since the stream's first sample) of the window's last sample. */
  tMs: number;
  /** Speech time (ms) gathered up to and including this window. */
  speechMs: number;
  /** 0, 1, 2, … per stream. */
  index: number;
}

export interface WindowerOptions {
  windowSamples: number;
  hopSamples: number;
  sampleRateHz: number;
}

export class Windower {
  private readonly buf: Float32Array;
  private fill = 0;
  /** Speech samples still to skip before filling again (when hop > window). */
  private skip = 0;
  private speechSamples = 0;
  private nextIndex = 0;

  constructor(private readonly opts: WindowerOptions) {
    if (!(opts.windowSamples > 0 && opts.hopSamples > 0)) {
      throw new RangeError(
        `windowSamples and hopSamples must be positive (got ${opts.windowSamples}, ${opts.hopSamples})`,
      );
    }
    this.buf = new Float32Array(opts.windowSamples);
  }

  /** Speech samples seen so far, in ms. */
  get speechMs(): number {
    return (this.speechSamples * 1000) / this.opts.sampleRateHz;
  }

  /** Samples held toward the next window. */
  get buffered(): number {
    return this.fill;
  }

  /**
   * Adds a run of speech that starts at stream sample `startSample`; returns the windows it
   * completed, oldest first.
   */
  push(samples: Float32Array, startSample: number): AudioWindow[] {
    const out: AudioWindow[] = [];
    const { windowSamples, hopSamples, sampleRateHz } = this.opts;
    let i = 0;
    while (i < samples.length) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, samples.length - i);
        this.skip -= n;
        i += n;
        this.speechSamples += n;
        continue;
      }
      const n = Math.min(windowSamples - this.fill, samples.length - i);
      this.buf.set(samples.subarray(i, i + n), this.fill);
      this.fill += n;
      i += n;
      this.speechSamples += n;
      if (this.fill === windowSamples) {
        out.push({
          samples: this.buf.slice(),
          tMs: ((startSample + i) * 1000) / sampleRateHz,
          speechMs: (this.speechSamples * 1000) / sampleRateHz,
          index: this.nextIndex++,
        });
        if (hopSamples >= windowSamples) {
          this.fill = 0;
          this.skip = hopSamples - windowSamples;
        } else {
          this.buf.copyWithin(0, hopSamples);
          this.fill = windowSamples - hopSamples;
        }
      }
    }
    return out;
  }

  /**
   * End of stream. If not a single window was completed but at least `minFraction` of one
   * is buffered, the speech is repeated to fill one window, so a short utterance still gets
   * a score; otherwise nothing.
   */
  finish(endSample: number, minFraction = 0.5): AudioWindow | null {
    const { windowSamples, sampleRateHz } = this.opts;
    if (this.nextIndex > 0 || this.fill < windowSamples * minFraction || this.fill === 0) return null;
    const samples = new Float32Array(windowSamples);
    for (let o = 0; o < windowSamples; o += this.fill)
      samples.set(this.buf.subarray(0, Math.min(this.fill, windowSamples - o)), o);
    const w: AudioWindow = {
      samples,
      tMs: (endSample * 1000) / sampleRateHz,
      speechMs: (this.speechSamples * 1000) / sampleRateHz,
      index: this.nextIndex++,
    };
    this.fill = 0;
    return w;
  }

  reset(): void {
    this.fill = 0;
    this.skip = 0;
  }
}
