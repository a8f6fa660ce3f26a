/**
 * Threshold tuning from past calls. Pure. Robot labels are the positives: a threshold T
 * "flags" a call when the call's score reached T. The score is the maximum cumulative LLR the
 * call reached, because that is what the SPRT compares with dropLlr/warnLlr during the call.
 * Caveat for readers: calls whose analysis stopped early (human verdict, max listen) have
 * shorter timelines, so what-if counts for thresholds far above past ones are lower bounds.
 */
export interface TuningInput {
  maxLlr: number;
  finalLlr: number;
  maxWindowLlr: number;
  label: 'human' | 'robot' | null;
}

export interface HistogramBin {
  lo: number;
  hi: number;
  human: number;
  robot: number;
}

export interface RocPoint {
  thresholdLlr: number;
  tpr: number;
  fpr: number;
  fnr: number;
}

export interface ThresholdCount {
  thresholdLlr: number;
  /** All analysed calls whose score reached the threshold. */
  calls: number;
  humans: number;
  robots: number;
}

export interface WhatIf {
  dropLlr: number;
  warnLlr: number;
  analysedCalls: number;
  dropped: number;
  /** Reached warnLlr but not dropLlr. */
  warned: number;
  humansDropped: number;
  humansWarned: number;
  robotsDropped: number;
  robotsWarned: number;
  robotsMissed: number;
  /**
   * 95% exact (Clopper-Pearson) upper bound on the share of human callers these thresholds drop,
   * from humansDropped of the labelled humans; null without labelled humans. With none dropped of
   * n, it is about 3.7/n: it takes 368 labelled humans, none dropped, to show a rate under 1%.
   */
  humansDroppedUpper95: number | null;
  /** 95% exact lower bound on the share of robots dropped; null without labelled robots. */
  robotsDroppedLower95: number | null;
}

export interface TuningReport {
  labelled: { human: number; robot: number };
  analysedCalls: number;
  distributions: { finalLlr: HistogramBin[]; maxLlr: HistogramBin[]; maxWindowLlr: HistogramBin[] };
  roc: RocPoint[];
  auc: number | null;
  perThreshold: ThresholdCount[];
  whatIf: WhatIf;
}

export function computeTuning(
  rows: readonly TuningInput[],
  dropLlr: number,
  warnLlr: number,
  opts: { bins?: number; points?: number } = {},
): TuningReport {
  const bins = opts.bins ?? 30;
  const points = opts.points ?? 101;
  const labelled = rows.filter((r) => r.label !== null);
  const humans = labelled.filter((r) => r.label === 'human');
  const robots = labelled.filter((r) => r.label === 'robot');
  return {
    labelled: { human: humans.length, robot: robots.length },
    analysedCalls: rows.length,
    distributions: {
      finalLlr: histogram(labelled, (r) => r.finalLlr, bins),
      maxLlr: histogram(labelled, (r) => r.maxLlr, bins),
      maxWindowLlr: histogram(labelled, (r) => r.maxWindowLlr, bins),
    },
    ...roc(
      humans.map((r) => r.maxLlr),
      robots.map((r) => r.maxLlr),
      points,
    ),
    perThreshold: sweep(rows, points),
    whatIf: whatIf(rows, dropLlr, warnLlr),
  };
}

function histogram(
  rows: readonly TuningInput[],
  value: (r: TuningInput) => number,
  bins: number,
): HistogramBin[] {
  const values = rows.map(value).filter(Number.isFinite);
  if (values.length === 0) return [];
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = (hi - lo) / bins;
  const out: HistogramBin[] = Array.from({ length: bins }, (_, i) => ({
    lo: lo + i * width,
    hi: lo + (i + 1) * width,
    human: 0,
    robot: 0,
  }));
  for (const r of rows) {
    const v = value(r);
    if (!Number.isFinite(v)) continue;
    const bin = out[Math.min(bins - 1, Math.floor((v - lo) / width))]!;
    if (r.label === 'human') bin.human++;
    else if (r.label === 'robot') bin.robot++;
  }
  return out;
}

/** Exact ROC over every distinct score, then thinned to at most `points` for the chart. */
function roc(neg: number[], pos: number[], points: number): { roc: RocPoint[]; auc: number | null } {
  if (neg.length === 0 || pos.length === 0) return { roc: [], auc: null };
  const all = [...neg.map((s) => ({ s, p: false })), ...pos.map((s) => ({ s, p: true }))].sort(
    (a, b) => b.s - a.s,
  );
  const full: RocPoint[] = [{ thresholdLlr: Infinity, tpr: 0, fpr: 0, fnr: 1 }];
  let tp = 0;
  let fp = 0;
  for (let i = 0; i < all.length; i++) {
    if (all[i]!.p) tp++;
    else fp++;
    if (i + 1 < all.length && all[i + 1]!.s === all[i]!.s) continue;
    full.push({
      thresholdLlr: all[i]!.s,
      tpr: tp / pos.length,
      fpr: fp / neg.length,
      fnr: 1 - tp / pos.length,
    });
  }
  let auc = 0;
  for (let i = 1; i < full.length; i++)
    auc += ((full[i]!.fpr - full[i - 1]!.fpr) * (full[i]!.tpr + full[i - 1]!.tpr)) / 2;
  // Infinity is not JSON; the first point means "threshold above every score".
  full[0]!.thresholdLlr = full.length > 1 ? full[1]!.thresholdLlr + 1 : 0;
  if (full.length <= points) return { roc: full, auc };
  const step = (full.length - 1) / (points - 1);
  const thin = Array.from({ length: points }, (_, i) => full[Math.round(i * step)]!);
  return { roc: thin, auc };
}

function sweep(rows: readonly TuningInput[], points: number): ThresholdCount[] {
  const scores = rows.map((r) => r.maxLlr).filter(Number.isFinite);
  if (scores.length === 0) return [];
  const lo = Math.floor(Math.min(...scores));
  const hi = Math.ceil(Math.max(...scores));
  const sorted = (label: TuningInput['label'] | 'all') =>
    rows
      .filter((r) => label === 'all' || r.label === label)
      .map((r) => r.maxLlr)
      .filter(Number.isFinite)
      .sort((a, b) => a - b);
  const all = sorted('all');
  const h = sorted('human');
  const rb = sorted('robot');
  const atOrAbove = (arr: number[], t: number) => arr.length - lowerBound(arr, t);
  const n = Math.max(2, points);
  return Array.from({ length: n }, (_, i) => {
    const t = lo + ((hi - lo) * i) / (n - 1);
    return { thresholdLlr: t, calls: atOrAbove(all, t), humans: atOrAbove(h, t), robots: atOrAbove(rb, t) };
  });
}

function lowerBound(arr: number[], t: number): number {
  let a = 0;
  let b = arr.length;
  while (a < b) {
    const m = (a + b) >> 1;
    if (arr[m]! < t) a = m + 1;
    else b = m;
  }
  return a;
}

/** P(X <= k) for X ~ Binomial(n, p), the terms summed from their logarithms (no overflow for large n). */
function binomialCdf(k: number, n: number, p: number): number {
  if (k < 0) return 0;
  if (k >= n || p <= 0) return 1;
  if (p >= 1) return 0;
  const odds = Math.log(p) - Math.log1p(-p);
  let logTerm = n * Math.log1p(-p);
  let sum = Math.exp(logTerm);
  for (let i = 1; i <= k; i++) {
    logTerm += Math.log((n - i + 1) / i) + odds;
    sum += Math.exp(logTerm);
  }
  return Math.min(1, sum);
}

/**
 * Upper end of the exact (Clopper-Pearson) interval for k events in n trials: the p at which seeing
 * k or fewer has probability `tail`. The CDF falls as p rises, so bisection finds the crossing.
 */
function upperBound(k: number, n: number, tail: number): number {
  if (k === n) return 1;
  let lo = 0;
  let hi = 1;
  for (let i = 0; i < 60; i++) {
    const mid = (lo + hi) / 2;
    if (binomialCdf(k, n, mid) > tail) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/**
 * Exact (Clopper-Pearson) two-sided interval for k events in n trials. The lower end is the upper
 * end for the n - k non-events, mirrored. Written here because the maintained implementation
 * (stdlib's beta quantile) brings 234 packages, and jstat declares a proprietary licence on npm.
 */
export function binomialInterval(k: number, n: number, level = 0.95): [number, number] {
  if (!Number.isInteger(k) || !Number.isInteger(n) || n <= 0 || k < 0 || k > n)
    throw new RangeError(`binomialInterval: need integers 0 <= k <= n, n > 0 (got k=${k}, n=${n})`);
  const tail = (1 - level) / 2;
  return [1 - upperBound(n - k, n, tail), upperBound(k, n, tail)];
}

function whatIf(rows: readonly TuningInput[], dropLlr: number, warnLlr: number): WhatIf {
  const w: WhatIf = {
    dropLlr,
    warnLlr,
    analysedCalls: rows.length,
    dropped: 0,
    warned: 0,
    humansDropped: 0,
    humansWarned: 0,
    robotsDropped: 0,
    robotsWarned: 0,
    robotsMissed: 0,
    humansDroppedUpper95: null,
    robotsDroppedLower95: null,
  };
  let humans = 0;
  let robots = 0;
  for (const r of rows) {
    const drop = r.maxLlr >= dropLlr;
    const warn = !drop && r.maxLlr >= warnLlr;
    if (drop) w.dropped++;
    if (warn) w.warned++;
    if (r.label === 'human') {
      humans++;
      if (drop) w.humansDropped++;
      if (warn) w.humansWarned++;
    } else if (r.label === 'robot') {
      robots++;
      if (drop) w.robotsDropped++;
      else if (warn) w.robotsWarned++;
      else w.robotsMissed++;
    }
  }
  // Only the end each one needs (95% two-sided: 2.5% in each tail).
  if (humans > 0) w.humansDroppedUpper95 = upperBound(w.humansDropped, humans, 0.025);
  if (robots > 0) w.robotsDroppedLower95 = 1 - upperBound(robots - w.robotsDropped, robots, 0.025);
  return w;
}
