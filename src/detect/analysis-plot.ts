import type { AnalysisThresholds, PlotSeries, StreamAnalysis } from './file-analysis.js';

/**
 * One self-contained SVG per analysed stream, for a PBX admin: the waveform with the speech
 * the detector listened to shaded, and below it the evidence over time (each window's LLR and
 * their running sum) against the drop and human bounds, with the moment of decision marked.
 * Hand-written SVG: no plotting dependency, opens in any browser.
 */

export interface PlotInput {
  title: string;
  analysis: StreamAnalysis;
  series: PlotSeries;
  thresholds: AnalysisThresholds;
}

const W = 1000;
const LEFT = 70;
const RIGHT = 130;
const PLOT_W = W - LEFT - RIGHT;
const WAVE_TOP = 70;
const WAVE_H = 140;
const LLR_TOP = WAVE_TOP + WAVE_H + 40;
const LLR_H = 260;
const H = LLR_TOP + LLR_H + 60;

const VERDICT_COLOR: Record<string, string> = { synthetic: '#c62828', human: '#2e7d32', unsure: '#8d6e00' };

export function renderAnalysisSvg(p: PlotInput): string {
  const { analysis: a, series, thresholds: th } = p;
  const durMs = Math.max(a.durationMs, 1);
  const x = (ms: number): number => LEFT + (Math.min(Math.max(ms, 0), durMs) / durMs) * PLOT_W;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#ffffff"/>`,
  );

  // Title: what the file is and what was decided.
  const color = VERDICT_COLOR[a.verdict] ?? '#333';
  const when =
    a.decisionMs === null ? 'no decision before the end of the audio' : `decided at ${fmtS(a.decisionMs)}`;
  const score = a.score === null ? 'no speech scored' : `P(synthetic) ${(a.score * 100).toFixed(1)} %`;
  out.push(
    `<text x="${LEFT}" y="26" font-size="16" font-weight="bold">${esc(p.title)}</text>`,
    `<text x="${LEFT}" y="50" font-size="15"><tspan fill="${color}" font-weight="bold">${a.verdict.toUpperCase()}</tspan>` +
      `<tspan fill="#444"> — ${esc(when)} · ${esc(score)} · ${a.windows.length} windows · ${fmtS(a.speechMs)} speech of ${fmtS(a.durationMs)}</tspan></text>`,
  );

  // Waveform panel with speech regions.
  out.push(
    `<rect x="${LEFT}" y="${WAVE_TOP}" width="${PLOT_W}" height="${WAVE_H}" fill="#fafafa" stroke="#ccc"/>`,
  );
  for (const r of series.speech) {
    out.push(
      `<rect x="${f(x(r.startMs))}" y="${WAVE_TOP}" width="${f(Math.max(1, x(r.endMs) - x(r.startMs)))}" height="${WAVE_H}" fill="#c8e6c9" opacity="0.7"/>`,
    );
  }
  if (series.envelope.length > 0) {
    const mid = WAVE_TOP + WAVE_H / 2;
    const colW = PLOT_W / series.envelope.length;
    const top: string[] = [];
    const bottom: string[] = [];
    series.envelope.forEach(([lo, hi], i) => {
      const cx = LEFT + (i + 0.5) * colW;
      top.push(`${f(cx)},${f(mid - hi * (WAVE_H / 2))}`);
      bottom.push(`${f(cx)},${f(mid - lo * (WAVE_H / 2))}`);
    });
    out.push(
      `<polygon points="${top.join(' ')} ${bottom.reverse().join(' ')}" fill="#546e7a" stroke="#546e7a" stroke-width="0.5"/>`,
    );
  }
  out.push(
    `<text x="${LEFT - 8}" y="${WAVE_TOP + 14}" text-anchor="end" fill="#555">audio</text>`,
    `<rect x="${W - RIGHT + 12}" y="${WAVE_TOP + 8}" width="12" height="12" fill="#c8e6c9"/>`,
    `<text x="${W - RIGHT + 30}" y="${WAVE_TOP + 18}">speech</text>`,
  );

  // Evidence panel.
  const values = [th.upperLlr, th.lowerLlr, 0, ...a.cumulativeLlr, ...a.windows.map((w) => w.llr)].filter(
    Number.isFinite,
  );
  let yMax = Math.max(...values);
  let yMin = Math.min(...values);
  const pad = (yMax - yMin) * 0.08 || 1;
  yMax += pad;
  yMin -= pad;
  const y = (v: number): number => LLR_TOP + ((yMax - v) / (yMax - yMin)) * LLR_H;
  out.push(
    `<rect x="${LEFT}" y="${LLR_TOP}" width="${PLOT_W}" height="${LLR_H}" fill="#fafafa" stroke="#ccc"/>`,
  );
  // The decision zones: beyond each bound, tinted in its verdict's colour.
  const yUp = Math.max(LLR_TOP, y(th.upperLlr));
  const yLo = Math.min(LLR_TOP + LLR_H, y(th.lowerLlr));
  out.push(
    `<rect x="${LEFT}" y="${LLR_TOP}" width="${PLOT_W}" height="${f(yUp - LLR_TOP)}" fill="#ffebee"/>`,
    `<rect x="${LEFT}" y="${f(yLo)}" width="${PLOT_W}" height="${f(LLR_TOP + LLR_H - yLo)}" fill="#e8f5e9"/>`,
  );
  for (const t of niceTicks(yMin, yMax, 6)) {
    out.push(
      `<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${f(y(t))}" y2="${f(y(t))}" stroke="#eee"/>`,
      `<text x="${LEFT - 6}" y="${f(y(t) + 4)}" text-anchor="end" fill="#555">${fmtNum(t)}</text>`,
    );
  }
  out.push(
    `<text x="16" y="${LLR_TOP + LLR_H / 2}" transform="rotate(-90 16 ${LLR_TOP + LLR_H / 2})" text-anchor="middle" fill="#555">evidence (log-likelihood ratio)</text>`,
    `<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${f(y(0))}" y2="${f(y(0))}" stroke="#999"/>`,
  );
  const bound = (v: number, c: string, label: string): void => {
    out.push(
      `<line x1="${LEFT}" x2="${LEFT + PLOT_W}" y1="${f(y(v))}" y2="${f(y(v))}" stroke="${c}" stroke-width="1.5" stroke-dasharray="6 4"/>`,
      `<text x="${LEFT + PLOT_W + 6}" y="${f(y(v) + 4)}" fill="${c}">${esc(label)} ${fmtNum(v)}</text>`,
    );
  };
  bound(th.upperLlr, VERDICT_COLOR.synthetic, 'synthetic ≥');
  bound(th.lowerLlr, VERDICT_COLOR.human, 'human ≤');

  // Per-window LLR as dots, the running sum as a line.
  for (const w of a.windows) {
    if (!Number.isFinite(w.llr)) continue;
    out.push(`<circle cx="${f(x(w.tMs))}" cy="${f(y(w.llr))}" r="2.5" fill="#90a4ae"/>`);
  }
  if (a.windows.length > 0) {
    const pts = a.windows.map((w, i) => `${f(x(w.tMs))},${f(y(a.cumulativeLlr[i]))}`);
    out.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="#1565c0" stroke-width="2.2"/>`);
  }
  out.push(
    `<circle cx="${W - RIGHT + 18}" cy="${LLR_TOP + 50}" r="3" fill="#90a4ae"/>`,
    `<text x="${W - RIGHT + 30}" y="${LLR_TOP + 54}">window LLR</text>`,
    `<line x1="${W - RIGHT + 10}" x2="${W - RIGHT + 26}" y1="${LLR_TOP + 72}" y2="${LLR_TOP + 72}" stroke="#1565c0" stroke-width="2.2"/>`,
    `<text x="${W - RIGHT + 30}" y="${LLR_TOP + 76}">cumulative</text>`,
  );

  // Decision marker across both panels.
  if (a.decisionMs !== null) {
    const dx = f(x(a.decisionMs));
    out.push(
      `<line x1="${dx}" x2="${dx}" y1="${WAVE_TOP}" y2="${LLR_TOP + LLR_H}" stroke="${color}" stroke-width="2"/>`,
      `<text x="${dx}" y="${WAVE_TOP - 6}" text-anchor="middle" fill="${color}" font-weight="bold">${a.verdict} @ ${fmtS(a.decisionMs)}</text>`,
    );
  }

  // Time axis.
  const axisY = LLR_TOP + LLR_H;
  for (const t of niceTicks(0, durMs / 1000, 10)) {
    const tx = f(x(t * 1000));
    out.push(
      `<line x1="${tx}" x2="${tx}" y1="${axisY}" y2="${axisY + 5}" stroke="#555"/>`,
      `<text x="${tx}" y="${axisY + 18}" text-anchor="middle" fill="#555">${fmtNum(t)}</text>`,
    );
  }
  out.push(
    `<text x="${LEFT + PLOT_W / 2}" y="${axisY + 40}" text-anchor="middle" fill="#555">time (s)</text>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}

function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + 1e-9; t += step)
    ticks.push(Math.round(t / step) * step);
  return ticks;
}

function f(v: number): string {
  return v.toFixed(1);
}

function fmtNum(v: number): string {
  return Math.abs(v) >= 10 || Number.isInteger(v) ? String(Math.round(v * 10) / 10) : v.toFixed(1);
}

function fmtS(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );
}
