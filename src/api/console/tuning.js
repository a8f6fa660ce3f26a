// Threshold tuning: labelled score distributions, ROC, and a what-if for drop/warn thresholds.
import uPlot from '/vendor/uplot/uPlot.esm.js';
import {
  boundsFor,
  adminOnly,
  allowCallerButton,
  readOnlyNote,
  api,
  defaults,
  fmtLlr,
  fmtTime,
  forgetDefaults,
  get,
  h,
  showErrors,
  toast,
} from './lib.js';

const boundPct = (v) => `${(100 * v).toFixed(v < 0.1 ? 1 : 0)}%`;

/**
 * What the labelled counts can show at these thresholds: the exact 95% bounds the API computes.
 * With none of n humans dropped the true rate can still be about 3.7/n (the two-sided 95% bound),
 * so a few labelled calls never prove a drop threshold safe.
 */
function boundsNote(t) {
  const w = t.whatIf;
  const parts = [];
  if (w.humansDroppedUpper95 === null)
    parts.push('Label human calls to bound the share of people these thresholds would drop.');
  else {
    parts.push(
      `Humans dropped: ${w.humansDropped} of ${t.labelled.human} labelled, so at most ${boundPct(w.humansDroppedUpper95)} of human callers (95% confidence).`,
    );
    if (w.humansDroppedUpper95 > 0.01)
      // 1 - 0.025^(1/n) <= 1% needs n >= ln(0.025) / ln(0.99) = 367.03.
      parts.push('Showing a rate under 1% takes at least 368 labelled humans, none of them dropped.');
  }
  if (w.robotsDroppedLower95 !== null)
    parts.push(
      `Robots dropped: ${w.robotsDropped} of ${t.labelled.robot}, so at least ${boundPct(w.robotsDroppedLower95)}.`,
    );
  return parts.join(' ');
}

/**
 * Inverse of the standard normal CDF (Acklam's rational approximation, |error| < 1.2e-9).
 * DET curves use it as their axis scale: two Gaussian score distributions then plot as a line.
 */
function probit(p) {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    );
  }
  if (p > 1 - lo) return -probit(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
  );
}
// Rates of 0 and 1 are infinitely far out on a probit axis: clamp them to the plot's edge.
const DET_MIN = 0.001;
const detPos = (rate) => probit(Math.min(1 - DET_MIN, Math.max(DET_MIN, rate)));
const DET_TICKS = [0.001, 0.01, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 0.95, 0.99, 0.999];
const pct = (r) => `${+(r * 100).toFixed(r < 0.01 || r > 0.99 ? 1 : 0)}%`;

const stat = (k, id, cls = '') =>
  h(`div.stat${cls ? `.${cls}` : ''}`, h(`span.v#${id}`, '—'), h('span.k', k));

const PERIODS = [
  ['', 'all calls'],
  ['7', 'last 7 days'],
  ['30', 'last 30 days'],
  ['90', 'last 90 days'],
];
const DAY_MS = 86_400_000;
// G.729 calls score higher than G.711 ones: a G.729 rule's bounds are set from G.729 calls alone.
const CODECS = [
  ['', 'every codec'],
  ['g711', 'G.711'],
  ['g729', 'G.729'],
];

export async function tuningView(params = new URLSearchParams()) {
  // Traffic and robocall campaigns change: tune on a recent period when there is enough of it.
  const days = PERIODS.some(([v]) => v && v === params.get('days')) ? Number(params.get('days')) : 0;
  const codec = CODECS.some(([v]) => v && v === params.get('codec')) ? params.get('codec') : '';
  const range = (days ? `&from=${Date.now() - days * DAY_MS}` : '') + (codec ? `&codec=${codec}` : '');
  const go = (d, c) => {
    const q = new URLSearchParams();
    if (d) q.set('days', d);
    if (c) q.set('codec', c);
    location.hash = `#/tuning${q.size ? `?${q}` : ''}`;
  };
  const d = await defaults(true);
  // G.729 calls are judged with the model's G.729 bounds where it has them (effective.byCodec).
  const th = boundsFor(d.effective, codec);
  const [data, allowList] = await Promise.all([
    get(`/api/tuning?${range.slice(1)}`),
    get('/api/lists/allow'),
  ]);
  const bins = data.distributions.maxLlr;
  const lo = Math.floor(Math.min(bins[0]?.lo ?? -10, th.humanLlr, th.warnLlr) - 2);
  const hi = Math.ceil(Math.max(bins[bins.length - 1]?.hi ?? 20, th.dropLlr) + 2);
  let drop = th.dropLlr;
  let warn = th.warnLlr;

  const mkSlider = (id, value) => h(`input#${id}`, { type: 'range', min: lo, max: hi, step: 0.5, value });
  const dropIn = mkSlider('drop-slider', drop);
  const warnIn = mkSlider('warn-slider', warn);
  const dropVal = h('span.val#drop-val');
  const warnVal = h('span.val#warn-val');
  const histBox = h('div.chart#hist-chart');
  const rocBox = h('div.chart#roc-chart');
  let curve = 'roc';
  const curveTitle = h('span#curve-title', 'ROC curve (robots are positives)');
  const curveBtn = (kind, text) =>
    h(`button.btn.small.secondary#curve-${kind}`, { type: 'button', onclick: () => showCurve(kind) }, text);
  const curveToggle = h('div.row', curveBtn('roc', 'ROC'), curveBtn('det', 'DET'));
  const applyBtn = h(
    'button.btn#apply-thresholds',
    { type: 'button', ...adminOnly() },
    'Apply as policy defaults',
  );
  const applyForm = h(
    'form',
    h('label.field', { 'data-field': 'dropLlr' }, h('span.field-error')),
    h('label.field', { 'data-field': 'warnLlr' }, h('span.field-error')),
  );
  const applyErr = h('div');

  // False drops cluster on voices: the callers wrongly dropped before are the likeliest to be again.
  const allowed = new Set(allowList.items.map((e) => e.pattern));
  const allowCallerBtn = (number) =>
    allowCallerButton('button.btn.small.secondary', number, {
      listed: allowed.has(number),
      label: 'Allow',
      note: () => 'wrongly dropped (tuning page)',
    });
  const falseDropsPanel = h(
    'div.panel#false-drops',
    h('h2', 'Callers dropped but labelled human'),
    data.falseDropCallers.length
      ? h(
          'table',
          h('thead', h('tr', h('th', 'Caller'), h('th', 'Such calls'), h('th', 'Last'), h('th', ''))),
          h(
            'tbody',
            ...data.falseDropCallers.map((f) =>
              h(
                'tr',
                h('td', f.fromNumber),
                h('td', String(f.calls)),
                h('td', h('a', { href: `#/calls/${encodeURIComponent(f.lastCallId)}` }, fmtTime(f.lastAtMs))),
                h('td', allowCallerBtn(f.fromNumber)),
              ),
            ),
          ),
        )
      : h('p.muted', 'None in this period.'),
    h(
      'div.legend-note',
      'A false drop tends to repeat for the same voice: a caller here is likely to be dropped again. ' +
        'Allow puts the number (or its pseudonym) on the allow list, so its calls are no longer analysed.',
    ),
  );

  const el = h(
    'div',
    h(
      'div.row',
      h('h1', 'Threshold tuning'),
      h('div.spacer'),
      h(
        'label',
        'Calls from ',
        h(
          'select#tuning-period',
          { onchange: (e) => go(e.target.value, codec) },
          PERIODS.map(([v, t]) => h('option', { value: v, selected: v === (days ? String(days) : '') }, t)),
        ),
      ),
      h(
        'label',
        ' in ',
        h(
          'select#tuning-codec',
          { onchange: (e) => go(days ? String(days) : '', e.target.value) },
          CODECS.map(([v, t]) => h('option', { value: v, selected: v === codec }, t)),
        ),
      ),
    ),
    h(
      'div.panel',
      h(
        'div.grid3',
        stat('Labelled humans', 'n-humans', 'good'),
        stat('Labelled robots', 'n-robots', 'bad'),
        stat('Analysed calls', 'n-analysed'),
      ),
      h('div.legend-note', 'Score = the highest cumulative LLR a call reached. AUC ', h('b#auc', '—'), '.'),
    ),
    h(
      'div.grid2',
      h(
        'div.panel',
        h('h2', 'Score distributions of labelled calls'),
        histBox,
        h(
          'div.legend-note',
          'Green: labelled human; red: labelled robot. Dashed: the thresholds on the sliders.',
        ),
      ),
      h(
        'div.panel',
        h('div.row', h('h2', curveTitle), h('div.spacer'), curveToggle),
        rocBox,
        h('div.legend-note', 'Dots: the drop (red) and warn (amber) thresholds on the sliders.'),
      ),
    ),
    h(
      'div.panel#whatif-panel',
      h('h2', 'What if'),
      h('div.slider-row', h('label', { for: 'warn-slider' }, 'Warn at LLR'), warnIn, warnVal),
      h('div.slider-row', h('label', { for: 'drop-slider' }, 'Drop at LLR'), dropIn, dropVal),
      h(
        'div.grid3',
        { style: 'margin-top:12px' },
        stat('Calls dropped', 'wi-dropped', 'bad'),
        stat('Calls warned (not dropped)', 'wi-warned', 'warn'),
        stat('Labelled humans dropped', 'wi-humans-dropped', 'bad'),
        stat('Labelled humans warned', 'wi-humans-warned', 'warn'),
        stat('Labelled robots dropped', 'wi-robots-dropped', 'good'),
        stat('Labelled robots missed', 'wi-robots-missed'),
      ),
      h('div.legend-note#wi-bounds', { style: 'margin-top:10px' }),
      h(
        'div.row',
        { style: 'margin-top:16px' },
        h(
          'span.muted',
          `Current defaults: warn ${fmtLlr(th.warnLlr)}, drop ${fmtLlr(th.dropLlr)}, human ${fmtLlr(th.humanLlr)}.`,
        ),
        h('div.spacer'),
        applyBtn,
      ),
      applyForm,
      applyErr,
      readOnlyNote('Applying thresholds'),
    ),
    falseDropsPanel,
  );

  const set = (id, v) => {
    const n = el.querySelector(`#${id}`);
    if (n) n.textContent = typeof v === 'number' ? v.toLocaleString() : v;
  };
  const showStats = (t) => {
    set('n-humans', t.labelled.human);
    set('n-robots', t.labelled.robot);
    set('n-analysed', t.analysedCalls);
    set('auc', t.auc === null ? 'n/a (needs both labels)' : t.auc.toFixed(3));
    const w = t.whatIf;
    set('wi-dropped', w.dropped);
    set('wi-warned', w.warned);
    set('wi-humans-dropped', w.humansDropped);
    set('wi-humans-warned', w.humansWarned);
    set('wi-robots-dropped', w.robotsDropped);
    set('wi-robots-missed', w.robotsMissed);
    set('wi-bounds', boundsNote(t));
  };

  let hist = null;
  let roc = null;
  let rocPoints = data.roc;
  const markers = (u, vertical) => {
    const ctx = u.ctx;
    ctx.save();
    ctx.setLineDash([6, 4]);
    ctx.lineWidth = 1.5 * devicePixelRatio;
    for (const [v, c] of [
      [warn, '#d98b00'],
      [drop, '#d64545'],
    ]) {
      if (!vertical) continue;
      const x = u.valToPos(v, 'x', true);
      ctx.strokeStyle = c;
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
    }
    ctx.restore();
  };
  const rocAt = (thr) => {
    // The ROC point of the first sweep threshold at or above thr.
    const pts = [...rocPoints].sort((a, b) => a.thresholdLlr - b.thresholdLlr);
    return pts.find((p) => p.thresholdLlr >= thr) ?? pts[pts.length - 1];
  };

  // What the histogram shows, as numbers: the end-to-end test and screen readers read these.
  histBox.dataset.humans = String(bins.reduce((n, b) => n + b.human, 0));
  histBox.dataset.robots = String(bins.reduce((n, b) => n + b.robot, 0));

  const drawCharts = () => {
    const width = Math.max(300, histBox.clientWidth || 560);
    const xs = bins.map((b) => (b.lo + b.hi) / 2);
    hist = new uPlot(
      {
        width,
        height: 260,
        scales: { x: { time: false, range: [lo, hi] } },
        axes: [{ label: 'max cumulative LLR' }, { label: 'calls' }],
        series: [
          { label: 'LLR' },
          {
            label: 'human',
            stroke: '#2f9e62',
            fill: 'rgba(47,158,98,.35)',
            paths: uPlot.paths.bars({ size: [0.9, 40] }),
            points: { show: false },
          },
          {
            label: 'robot',
            stroke: '#d64545',
            fill: 'rgba(214,69,69,.35)',
            paths: uPlot.paths.bars({ size: [0.9, 40] }),
            points: { show: false },
          },
        ],
        hooks: { draw: [(u) => markers(u, true)] },
      },
      [xs, bins.map((b) => b.human), bins.map((b) => b.robot)],
      histBox,
    );
    drawCurve();
  };

  /**
   * ROC: robots caught (TPR) against humans flagged (FPR), linear axes. DET: the same trade-off
   * as the two error rates, humans flagged against robots missed, on probit axes, where the
   * low-error corner a deployment cares about is spread out instead of squeezed into a corner.
   */
  const drawCurve = () => {
    roc?.destroy();
    rocBox.replaceChildren();
    rocBox.dataset.curve = curve;
    const det = curve === 'det';
    curveTitle.textContent = det
      ? 'DET curve (humans flagged vs robots missed)'
      : 'ROC curve (robots are positives)';
    for (const k of ['roc', 'det'])
      el.querySelector(`#curve-${k}`)?.classList.toggle('secondary', k !== curve);
    const sorted = [...rocPoints].sort((a, b) => a.fpr - b.fpr || a.tpr - b.tpr);
    const X = (p) => (det ? detPos(p.fpr) : p.fpr);
    const Y = (p) => (det ? detPos(p.fnr) : p.tpr);
    const edge = detPos(DET_MIN);
    const detAxis = (label) => ({
      label,
      splits: () => DET_TICKS.map(probit),
      values: (_u, splits) => splits.map((s) => pct(DET_TICKS[DET_TICKS.map(probit).indexOf(s)] ?? 0)),
    });
    roc = new uPlot(
      {
        width: Math.max(300, rocBox.clientWidth || 560),
        height: 260,
        scales: det
          ? { x: { time: false, range: [edge, -edge] }, y: { range: [edge, -edge] } }
          : { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
        axes: det
          ? [detAxis('humans flagged (false alarm rate)'), detAxis('robots missed (miss rate)')]
          : [{ label: 'humans flagged (false positive rate)' }, { label: 'robots caught (TPR)' }],
        series: det
          ? [{ label: 'FPR' }, { label: 'miss rate', stroke: '#2f6fed', width: 2 }]
          : [
              { label: 'FPR' },
              { label: 'TPR', stroke: '#2f6fed', width: 2 },
              { label: 'chance', stroke: '#c3cad6', dash: [4, 4], width: 1 },
            ],
        hooks: {
          draw: [
            (u) => {
              const ctx = u.ctx;
              for (const [v, c] of [
                [warn, '#d98b00'],
                [drop, '#d64545'],
              ]) {
                const p = rocAt(v);
                if (!p) continue;
                ctx.fillStyle = c;
                ctx.beginPath();
                ctx.arc(
                  u.valToPos(X(p), 'x', true),
                  u.valToPos(Y(p), 'y', true),
                  5 * devicePixelRatio,
                  0,
                  2 * Math.PI,
                );
                ctx.fill();
              }
            },
          ],
        },
      },
      det ? [sorted.map(X), sorted.map(Y)] : [sorted.map(X), sorted.map(Y), sorted.map((p) => p.fpr)],
      rocBox,
    );
  };
  const showCurve = (kind) => {
    curve = kind;
    drawCurve();
  };

  let seq = 0;
  let timer = null;
  const refresh = () => {
    dropVal.textContent = fmtLlr(drop);
    warnVal.textContent = fmtLlr(warn);
    hist?.redraw(false);
    roc?.redraw(false);
    clearTimeout(timer);
    timer = setTimeout(async () => {
      const mine = ++seq;
      try {
        const t = await get(`/api/tuning?dropLlr=${drop}&warnLlr=${warn}${range}`);
        if (mine === seq) showStats(t);
      } catch (err) {
        toast(err.message, true);
      }
    }, 120);
  };
  dropIn.addEventListener('input', () => {
    drop = Number(dropIn.value);
    refresh();
  });
  warnIn.addEventListener('input', () => {
    warn = Number(warnIn.value);
    refresh();
  });
  applyBtn.addEventListener('click', async () => {
    applyErr.replaceChildren();
    try {
      await api('PUT', '/api/policy/defaults', { ...d.override, dropLlr: drop, warnLlr: warn });
      forgetDefaults();
      toast(`Defaults saved: warn ${fmtLlr(warn)}, drop ${fmtLlr(drop)}`);
      applyErr.append(
        h('p#apply-ok.muted', `Saved. New calls now warn at ${fmtLlr(warn)} and drop at ${fmtLlr(drop)}.`),
      );
    } catch (err) {
      showErrors(applyForm, err, applyErr);
      if (!applyErr.childElementCount) applyErr.append(h('div.error-box', { role: 'alert' }, err.message));
    }
  });
  showStats(data);
  dropVal.textContent = fmtLlr(drop);
  warnVal.textContent = fmtLlr(warn);
  return {
    el,
    mounted: drawCharts,
    cleanup() {
      clearTimeout(timer);
      hist?.destroy();
      roc?.destroy();
    },
  };
}
