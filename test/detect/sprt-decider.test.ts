import { describe, expect, it } from 'vitest';
import {
  decideSequence,
  SprtDecider,
  SprtOptionsError,
  type SprtOptions,
} from '../../src/detect/sprt-decider.js';
import { rng } from './helpers.js';

type Win = { llr: number; tMs: number; speechMs: number };

function randomSequence(r: () => number, n: number, drift: number): Win[] {
  const out: Win[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      llr: drift + (r() - 0.5) * 6,
      tMs: 1000 + i * 500 + Math.floor(r() * 100),
      speechMs: 1000 + i * 500,
    });
  }
  return out;
}

function randomOptions(r: () => number): SprtOptions {
  return {
    upperLlr: 0.5 + r() * 8,
    lowerLlr: -(0.5 + r() * 8),
    maxListenMs: 1000 + Math.floor(r() * 12_000),
    evidenceWeight: 0.1 + r() * 0.9,
    minWindows: 1 + Math.floor(r() * 4),
  };
}

/** Reference: the first index where a bound (or the listening limit) is reached, by brute force. */
function reference(seq: Win[], o: SprtOptions): { index: number | null; verdict: string } {
  let sum = 0;
  let n = 0;
  for (let i = 0; i < seq.length; i++) {
    sum += o.evidenceWeight * seq[i].llr;
    n++;
    if (n >= (o.minWindows ?? 1)) {
      if (sum >= o.upperLlr) return { index: i, verdict: 'synthetic' };
      if (sum <= o.lowerLlr) return { index: i, verdict: 'human' };
    }
    if (seq[i].speechMs >= o.maxListenMs) return { index: i, verdict: 'unsure' };
  }
  return { index: null, verdict: 'unsure' };
}

describe('SprtDecider', () => {
  it('decides at the earliest crossing, over 5000 random sequences', () => {
    const r = rng(42);
    for (let k = 0; k < 5000; k++) {
      const opts = randomOptions(r);
      const seq = randomSequence(r, 1 + Math.floor(r() * 40), (r() - 0.5) * 3);
      const ref = reference(seq, opts);
      const d = decideSequence(seq, opts);
      expect(d.verdict).toBe(ref.verdict);
      expect(d.decisionMs).toBe(ref.index === null ? null : seq[ref.index].tMs);
      if (ref.index !== null) expect(d.windows).toBe(ref.index + 1);
    }
  });

  it('never decides synthetic/human before minWindows windows', () => {
    const r = rng(7);
    for (let k = 0; k < 2000; k++) {
      const opts = { ...randomOptions(r), maxListenMs: 1e9 };
      const seq = randomSequence(r, 30, (r() - 0.5) * 8);
      const d = decideSequence(seq, opts);
      if (d.verdict !== 'unsure') expect(d.windows).toBeGreaterThanOrEqual(opts.minWindows ?? 1);
    }
  });

  it('is monotonic in its bounds: wider bounds never decide earlier', () => {
    const r = rng(99);
    for (let k = 0; k < 3000; k++) {
      const opts = { ...randomOptions(r), maxListenMs: 1e9 };
      const wider = { ...opts, upperLlr: opts.upperLlr + r() * 3, lowerLlr: opts.lowerLlr - r() * 3 };
      const seq = randomSequence(r, 40, (r() - 0.5) * 2);
      const a = decideSequence(seq, opts);
      const b = decideSequence(seq, wider);
      const idx = (d: typeof a) => (d.decisionMs === null ? Infinity : d.windows);
      expect(idx(b)).toBeGreaterThanOrEqual(idx(a));
      // A narrower test that ends undecided cannot be decided by a wider one.
      if (a.verdict === 'unsure') expect(b.verdict).toBe('unsure');
    }
  });

  it('ends unsure at the listening limit, at the window that reached it', () => {
    const d = new SprtDecider({ upperLlr: 5, lowerLlr: -5, maxListenMs: 2000, evidenceWeight: 1 });
    expect(d.update(0.1, 1100, 1000).decided).toBeNull();
    expect(d.update(-0.1, 1600, 1500).decided).toBeNull();
    const step = d.update(0.2, 2150, 2000);
    expect(step.decided).toMatchObject({ verdict: 'unsure', decisionMs: 2150 });
  });

  it('a bound reached on the last listening window wins over the limit', () => {
    const d = new SprtDecider({ upperLlr: 1, lowerLlr: -1, maxListenMs: 1000, evidenceWeight: 1 });
    expect(d.update(3, 1000, 1000).decided?.verdict).toBe('synthetic');
  });

  it('is final after deciding: later windows move the sum but not the verdict', () => {
    const r = rng(5);
    for (let k = 0; k < 500; k++) {
      const opts = { ...randomOptions(r), maxListenMs: 1e9 };
      const d = new SprtDecider(opts);
      let decided = null as ReturnType<SprtDecider['update']>['decided'];
      let expectedSum = 0;
      for (const w of randomSequence(r, 40, (r() - 0.5) * 4)) {
        const step = d.update(w.llr, w.tMs, w.speechMs);
        expectedSum += opts.evidenceWeight * w.llr;
        expect(step.cumulativeLlr).toBeCloseTo(expectedSum, 9);
        if (decided) expect(step.decided).toBeNull();
        if (step.decided) decided = step.decided;
      }
      if (decided) {
        expect(d.result).toEqual(decided);
        expect(d.finish()).toEqual(decided);
      }
    }
  });

  it('finish() ends an undecided test unsure with no decision time, idempotently', () => {
    const d = new SprtDecider({ upperLlr: 5, lowerLlr: -5, maxListenMs: 9000, evidenceWeight: 0.5 });
    d.update(1, 1000, 1000);
    const a = d.finish();
    expect(a).toEqual({ verdict: 'unsure', decisionMs: null, cumulativeLlr: 0.5, windows: 1 });
    expect(d.finish()).toBe(a);
    expect(d.update(100, 2000, 2000).decided).toBeNull();
  });

  it('skips non-finite LLRs as no evidence', () => {
    const d = new SprtDecider({ upperLlr: 1, lowerLlr: -1, maxListenMs: 9000, evidenceWeight: 1 });
    for (const bad of [NaN, Infinity, -Infinity])
      expect(d.update(bad, 1000, 1000)).toEqual({ cumulativeLlr: 0, decided: null });
    expect(d.windows).toBe(0);
  });

  it('rejects options that cannot form a test', () => {
    const ok: SprtOptions = { upperLlr: 1, lowerLlr: -1, maxListenMs: 1000, evidenceWeight: 0.5 };
    for (const bad of [
      { upperLlr: 0 },
      { lowerLlr: 0.5 },
      { upperLlr: NaN },
      { maxListenMs: 0 },
      { evidenceWeight: 0 },
      { evidenceWeight: 1.5 },
      { minWindows: 0 },
    ]) {
      expect(() => new SprtDecider({ ...ok, ...bad })).toThrow(SprtOptionsError);
    }
  });
});
