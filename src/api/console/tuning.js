// Threshold tuning: labelled score distributions, ROC, and a what-if for drop/warn thresholds.
import uPlot from '/vendor/uplot/uPlot.esm.js';
import {
  adminOnly,
  api,
  defaults,
  fmtLlr,
  forgetDefaults,
  get,
  h,
  session,
  showErrors,
  toast,
} from './lib.js';

const stat = (k, id, cls = '') =>
  h(`div.stat${cls ? `.${cls}` : ''}`, h(`span.v#${id}`, '—'), h('span.k', k));

export async function tuningView() {
  const d = await defaults(true);
  const th = d.effective.thresholds;
  const data = await get(`/api/tuning`);
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

  const el = h(
    'div',
    h('h1', 'Threshold tuning'),
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
        h('h2', 'ROC curve (robots are positives)'),
        rocBox,
        h('div.legend-note', 'Dots: the drop (red) and warn (amber) thresholds on the sliders.'),
      ),
    ),
    h(
      'div.panel',
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
      session.isAdmin ? null : h('p.readonly-note', 'Read-only: applying thresholds needs an admin token.'),
    ),
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
          },
          {
            label: 'robot',
            stroke: '#d64545',
            fill: 'rgba(214,69,69,.35)',
            paths: uPlot.paths.bars({ size: [0.9, 40] }),
          },
        ],
        hooks: { draw: [(u) => markers(u, true)] },
      },
      [xs, bins.map((b) => b.human), bins.map((b) => b.robot)],
      histBox,
    );
    const sorted = [...rocPoints].sort((a, b) => a.fpr - b.fpr || a.tpr - b.tpr);
    roc = new uPlot(
      {
        width: Math.max(300, rocBox.clientWidth || 560),
        height: 260,
        scales: { x: { time: false, range: [0, 1] }, y: { range: [0, 1] } },
        axes: [
          { label: 'false positive rate (humans flagged)' },
          { label: 'true positive rate (robots caught)' },
        ],
        series: [
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
                  u.valToPos(p.fpr, 'x', true),
                  u.valToPos(p.tpr, 'y', true),
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
      [sorted.map((p) => p.fpr), sorted.map((p) => p.tpr), sorted.map((p) => p.fpr)],
      rocBox,
    );
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
        const t = await get(`/api/tuning?dropLlr=${drop}&warnLlr=${warn}`);
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
