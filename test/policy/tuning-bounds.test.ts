import { describe, expect, it } from 'vitest';
import { binomialInterval, computeTuning, type TuningInput } from '../../src/policy/tuning.js';

// Reference values: scipy.stats.beta.ppf (Clopper-Pearson), printed by models/pipeline.py's
// binomial_interval on 2026-12-02.
const REFERENCE: [number, number, number, number][] = [
  [0, 300, 0, 0.012221],
  [1, 300, 0.000084, 0.018431],
  [20, 40, 0.338018, 0.661982],
  [3, 3, 0.292402, 1],
  [0, 1, 0, 0.975],
  [5, 1000, 0.001625, 0.011629],
  [0, 40, 0, 0.088097],
];

describe('exact binomial interval', () => {
  it.each(REFERENCE)('%i of %i matches scipy', (k, n, lo, hi) => {
    const [a, b] = binomialInterval(k, n);
    expect(a).toBeCloseTo(lo, 6);
    expect(b).toBeCloseTo(hi, 6);
  });

  it('368 humans with none dropped is the fewest that bound the rate under 1%', () => {
    expect(binomialInterval(0, 368)[1]).toBeLessThan(0.01);
    expect(binomialInterval(0, 367)[1]).toBeGreaterThan(0.01);
  });

  it('stays finite and ordered for large counts', () => {
    const [a, b] = binomialInterval(50_000, 100_000);
    expect(a).toBeCloseTo(0.4969, 3);
    expect(b).toBeCloseTo(0.5031, 3);
  });

  it('refuses counts that are not counts', () => {
    expect(() => binomialInterval(3, 2)).toThrow(RangeError);
    expect(() => binomialInterval(-1, 5)).toThrow(RangeError);
    expect(() => binomialInterval(1, 0)).toThrow(RangeError);
    expect(() => binomialInterval(0.5, 4)).toThrow(RangeError);
  });
});

describe('what-if bounds', () => {
  const row = (maxLlr: number, label: TuningInput['label']): TuningInput => ({
    maxLlr,
    finalLlr: maxLlr,
    maxWindowLlr: maxLlr,
    label,
  });

  it('bounds the share of humans and robots dropped from the labelled calls', () => {
    // 40 humans, one above the drop threshold; 10 robots, 8 above it; unlabelled calls do not count.
    const rows = [
      ...Array.from({ length: 39 }, () => row(-3, 'human')),
      row(9, 'human'),
      ...Array.from({ length: 8 }, () => row(12, 'robot')),
      row(1, 'robot'),
      row(-1, 'robot'),
      ...Array.from({ length: 5 }, () => row(20, null)),
    ];
    const w = computeTuning(rows, 8, 4).whatIf;
    expect(w.humansDropped).toBe(1);
    expect(w.humansDroppedUpper95).toBeCloseTo(binomialInterval(1, 40)[1], 12);
    expect(w.humansDroppedUpper95).toBeCloseTo(0.131586, 5);
    expect(w.robotsDropped).toBe(8);
    expect(w.robotsDroppedLower95).toBeCloseTo(0.443904, 5);
  });

  it('has no bound without labelled calls of a class', () => {
    const w = computeTuning([row(9, null), row(1, 'robot')], 8, 4).whatIf;
    expect(w.humansDroppedUpper95).toBeNull();
    expect(w.robotsDroppedLower95).toBe(0);
  });
});
