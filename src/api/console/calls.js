// Call history (filters, keyset pagination) and the call detail page.
import uPlot from '/vendor/uplot/uPlot.esm.js';
import {
  boundsFor,
  allowCallerButton,
  adminOnly,
  readOnlyNote,
  api,
  badge,
  defaults,
  field,
  fmtDur,
  fmtLlr,
  fmtTime,
  get,
  h,
  select,
  session,
  toast,
} from './lib.js';

const PAGE = 100;
const FILTERS = ['verdict', 'action', 'label', 'repeat', 'known', 'codec', 'from', 'to', 'q'];

function dateToMs(v, endOfDay) {
  if (!v) return null;
  const d = new Date(`${v}T${endOfDay ? '23:59:59.999' : '00:00:00'}`);
  return Number.isNaN(d.getTime()) ? null : d.getTime();
}

export async function callsView(params) {
  const query = new URLSearchParams({ limit: String(PAGE) });
  for (const k of ['verdict', 'action', 'label', 'repeat', 'known', 'codec', 'repeatOf', 'q'])
    if (params.get(k)) query.set(k, params.get(k));
  const fromMs = dateToMs(params.get('from'), false);
  const toMs = dateToMs(params.get('to'), true);
  if (fromMs !== null) query.set('from', String(fromMs));
  if (toMs !== null) query.set('to', String(toMs));
  const first = await get(`/api/calls?${query}`);

  const form = h(
    'form.row#call-filters',
    {
      onsubmit: (e) => {
        e.preventDefault();
        const q = new URLSearchParams();
        // A campaign opened from a call page stays the scope of further filtering.
        if (params.get('repeatOf')) q.set('repeatOf', params.get('repeatOf'));
        for (const k of FILTERS) {
          const v = form.elements[k].value.trim();
          if (v) q.set(k, v);
        }
        location.hash = `#/calls${q.size ? `?${q}` : ''}`;
      },
    },
    field(
      'Verdict',
      'verdict',
      select(
        [
          ['', 'any'],
          ['synthetic', 'synthetic'],
          ['human', 'human'],
          ['unsure', 'unsure'],
          ['none', 'none'],
        ],
        params.get('verdict'),
      ),
    ),
    field(
      'Action',
      'action',
      select(
        [
          ['', 'any'],
          ['drop', 'drop'],
          ['warn', 'warn'],
          ['log', 'log'],
        ],
        params.get('action'),
      ),
    ),
    field(
      'Label',
      'label',
      select(
        [
          ['', 'any'],
          ['robot', 'robot'],
          ['human', 'human'],
          ['none', 'unlabelled'],
        ],
        params.get('label'),
      ),
    ),
    field(
      'Repeated audio',
      'repeat',
      select(
        [
          ['', 'any'],
          ['yes', 'yes'],
          ['no', 'no'],
        ],
        params.get('repeat'),
      ),
    ),
    field(
      'Known caller',
      'known',
      select(
        [
          ['', 'any'],
          ['yes', 'yes'],
          ['no', 'no'],
        ],
        params.get('known'),
      ),
    ),
    field(
      'Codec',
      'codec',
      select(
        [
          ['', 'any'],
          ['g711', 'G.711'],
          ['g729', 'G.729'],
          ['other', 'other (not analysed)'],
        ],
        params.get('codec'),
      ),
    ),
    field('From date', 'from', h('input', { type: 'date', value: params.get('from') ?? '' })),
    field('To date', 'to', h('input', { type: 'date', value: params.get('to') ?? '' })),
    field(
      'Number or call id',
      'q',
      h('input', { type: 'search', placeholder: '+4930…', value: params.get('q') ?? '' }),
    ),
    h('button.btn', { type: 'submit', style: 'align-self:center' }, 'Search'),
    h('a.btn.secondary', { href: '#/calls', style: 'align-self:center' }, 'Reset'),
  );

  const tbody = h('tbody');
  const more = h('button.btn.secondary#more', { type: 'button' }, 'Load more');
  const shown = h('span.muted#calls-count');
  let cursor = first.nextCursor;
  let n = 0;
  const add = (items) => {
    const frag = document.createDocumentFragment();
    for (const c of items)
      frag.append(
        h(
          'tr',
          { 'data-call': c.id },
          h('td', h('a', { href: `#/calls/${encodeURIComponent(c.id)}` }, fmtTime(c.startedAtMs))),
          h('td', c.fromNumber ?? ''),
          h('td', c.toNumber ?? ''),
          h('td', c.treatment ?? ''),
          h('td.verdict', badge(c.verdict)),
          h('td', c.actions.length ? c.actions.map((a) => badge(a)) : h('span.muted', '—')),
          h('td.num', fmtLlr(c.maxLlr)),
          h(
            'td.num',
            c.decisionMs === null || c.decisionMs === undefined
              ? '—'
              : `${(c.decisionMs / 1000).toFixed(1)}s`,
          ),
          h('td.num', fmtDur(c.durationMs)),
          h('td', badge(c.label)),
        ),
      );
    tbody.append(frag);
    n += items.length;
    shown.textContent = `${n.toLocaleString()} of ${first.total.toLocaleString()} calls`;
    more.hidden = !cursor;
  };
  more.addEventListener('click', async () => {
    more.disabled = true;
    try {
      query.set('cursor', cursor);
      const page = await get(`/api/calls?${query}`);
      cursor = page.nextCursor;
      add(page.items);
    } catch (err) {
      toast(err.message, true);
    } finally {
      more.disabled = false;
    }
  });
  add(first.items);
  if (!first.items.length)
    tbody.append(h('tr', h('td.empty', { colspan: 10 }, 'No calls match these filters.')));

  const scope = params.get('repeatOf');
  const el = h(
    'div',
    h('h1', 'Call history'),
    scope
      ? h(
          'p.muted#repeat-scope',
          'Calls with the audio of call ',
          h('a', { href: `#/calls/${encodeURIComponent(scope)}` }, scope),
          ' (that call and the calls that repeated it). ',
          h('a', { href: '#/calls' }, 'All calls'),
        )
      : null,
    h('div.panel', form),
    h(
      'div.panel',
      h(
        'table#calls-table',
        h(
          'thead',
          h(
            'tr',
            ...['Started', 'From', 'To', 'Treatment', 'Verdict', 'Actions'].map((t) => h('th', t)),
            h('th.num', 'Max LLR'),
            h('th.num', 'Decided after'),
            h('th.num', 'Duration'),
            h('th', 'Label'),
          ),
        ),
        tbody,
      ),
      h('div.row', { style: 'margin-top:12px' }, shown, h('div.spacer'), more),
    ),
  );
  return { el };
}

export async function callDetailView(id) {
  const [detail, d, rules, allowList] = await Promise.all([
    get(`/api/calls/${encodeURIComponent(id)}`),
    defaults(),
    get('/api/policy/rules'),
    get('/api/lists/allow'),
  ]);
  const { call, scores, verdict, actions, labels } = detail;
  const rule = rules.items.find((r) => r.id === call.ruleId);
  // A call heard in a codec the model has bounds for (G.729) was judged with those where the rule set none.
  const th = { ...boundsFor(d.effective, call.codec), ...(rule?.thresholds ?? {}) };

  const chartBox = h('div.chart#score-chart', { 'data-call': call.id });
  const facts = h(
    'dl.kv',
    ...[
      ['Call id', call.id],
      ['SIP Call-ID', call.sipCallId],
      ['From', call.fromNumber],
      ['To', call.toNumber],
      ['Trunk', call.trunk ?? '—'],
      ['Source', call.sourceAddress],
      ['Rule', rule ? `${rule.name} (${rule.id})` : (call.ruleId ?? 'defaults')],
      ['Treatment', call.treatment],
      ['Started', fmtTime(call.startedAtMs)],
      ['Duration', fmtDur(call.durationMs)],
      ['Codec', call.codec ?? '—'],
      ['End', `${call.endReason ?? '—'}${call.sipStatus ? ` (${call.sipStatus})` : ''}`],
      ['Detector error', call.detectorError ?? '—'],
      [
        'Repeated audio',
        call.repeatCalls
          ? h(
              'span#repeat-info',
              `repeats ${call.repeatCalls} earlier call(s) from ${call.repeatCallers} other caller(s); first `,
              h(
                'a',
                { href: `#/calls/${encodeURIComponent(call.repeatFirstCallId)}` },
                call.repeatFirstCallId,
              ),
              ' · ',
              h(
                'a#repeat-all',
                { href: `#/calls?repeatOf=${encodeURIComponent(call.repeatFirstCallId)}` },
                'all calls with this audio',
              ),
            )
          : '—',
      ],
      [
        'Known caller',
        call.knownCallerCalls
          ? h(
              'span#known-info',
              `${call.knownCallerCalls} earlier human call(s); actions capped, never dropped; latest `,
              h(
                'a',
                { href: `#/calls/${encodeURIComponent(call.knownCallerLastCallId)}` },
                call.knownCallerLastCallId,
              ),
            )
          : '—',
      ],
    ].flatMap(([k, v]) => [h('dt', k), h('dd', v ?? '—')]),
  );

  const labelBox = h('div#labels');
  const renderLabels = (list) => {
    const current = list.length ? list[list.length - 1] : null;
    labelBox.replaceChildren(
      h('div.row', h('span', 'Current label:'), h('span#current-label', badge(current?.label ?? null))),
      list.length
        ? h(
            'ul.muted',
            ...list.map((l) =>
              h('li', `${fmtTime(l.atMs)} — ${l.label} by ${l.by}${l.note ? `: ${l.note}` : ''}`),
            ),
          )
        : h('p.muted', 'Not labelled yet.'),
    );
  };
  renderLabels(labels);
  const note = h('input#label-note', { placeholder: 'note (optional)', maxlength: 500, ...adminOnly() });
  const labelBtn = (label) =>
    h(
      `button.btn${label === 'robot' ? '.danger' : ''}`,
      {
        type: 'button',
        id: `label-${label}`,
        ...adminOnly(),
        title: session.isAdmin ? `Label this call ${label}` : 'Admins only',
        onclick: async () => {
          try {
            await api('POST', `/api/calls/${encodeURIComponent(call.id)}/labels`, {
              label,
              note: note.value || undefined,
            });
            const fresh = await get(`/api/calls/${encodeURIComponent(call.id)}`);
            renderLabels(fresh.labels);
            toast(`Labelled ${label}`);
          } catch (err) {
            toast(err.message, true);
          }
        },
      },
      label === 'robot' ? 'Label robot' : 'Label human',
    );

  // Where the store keeps pseudonyms only (privacy.storeClearNumbers: false) the entry is the
  // pseudonym, which the list matches too.
  const allowBtn = allowCallerButton('button.btn.secondary#allow-caller', call.fromNumber, {
    listed: allowList.items.some((e) => e.pattern === call.fromNumber),
    label: 'Allow this caller',
    note: () => `after call ${call.id}${note.value ? `: ${note.value}` : ''}`,
  });

  // <audio src> cannot send the token header (and an empty src errors before "play" ever
  // fires): fetch the WAV with the token on request, then play it from a blob URL.
  let audioUrl = null;
  const audioBox = h(
    'div#review-audio',
    h(
      'button.btn.secondary#load-audio',
      {
        type: 'button',
        onclick: async () => {
          try {
            const res = await fetch(`/api/calls/${encodeURIComponent(call.id)}/audio`, {
              headers: { authorization: `Bearer ${session.token}` },
            });
            if (!res.ok)
              throw new Error((await res.json().catch(() => null))?.message ?? `HTTP ${res.status}`);
            audioUrl = URL.createObjectURL(await res.blob());
            audioBox.replaceChildren(h('audio#audio', { controls: true, src: audioUrl }));
          } catch (err) {
            toast(`Could not load the audio: ${err.message}`, true);
          }
        },
      },
      'Load review audio',
    ),
  );

  // Erasure (a data subject's request): this call, or every call from or to its caller's number.
  const erase = async (what, path, body) => {
    if (
      !confirm(
        `${what}? This deletes the call records with their scores, labels, audio and fingerprints; it cannot be undone.`,
      )
    )
      return;
    try {
      const r = await api(body ? 'POST' : 'DELETE', path, body);
      const parts = [`Erased ${r.calls} call(s)`];
      if (r.skippedLive.length)
        parts.push(`${r.skippedLive.length} in progress skipped: erase again after they end`);
      if (r.listEntries.length)
        parts.push(
          `still on the ${r.listEntries.map((e) => e.kind).join(' and ')} list: remove it there if asked`,
        );
      // The ledger re-applies the erasure after a backup is restored; without it a restore undoes it.
      if (r.ledgerWritten === false)
        parts.push(
          'not recorded in the erasure ledger: restoring a backup would bring it back (see the log)',
        );
      toast(parts.join('; '), r.ledgerWritten === false);
      location.hash = '#/calls';
    } catch (err) {
      toast(err.message, true);
    }
  };
  const privacyBox = h(
    'div.panel#privacy',
    h('h2', 'Privacy'),
    h(
      'div.row',
      h(
        'button.btn.danger#erase-call',
        {
          type: 'button',
          ...adminOnly(),
          onclick: () => erase('Erase this call', `/api/calls/${encodeURIComponent(call.id)}`),
        },
        'Erase this call',
      ),
      h(
        'button.btn.danger#erase-number',
        {
          type: 'button',
          ...adminOnly(),
          onclick: () =>
            erase(`Erase every call from or to ${call.fromNumber}`, '/api/erasure', {
              number: call.fromNumber,
            }),
        },
        'Erase all calls of this caller',
      ),
    ),
    readOnlyNote('Erasure'),
  );

  const el = h(
    'div',
    h('div.row', h('a', { href: '#/calls' }, '← Call history')),
    h(
      'div.row',
      h('h1', `Call ${call.fromNumber} → ${call.toNumber}`),
      badge(call.verdict),
      ...call.actions.map((a) => badge(a)),
    ),
    h(
      'div.panel',
      h('h2', 'Score timeline'),
      scores.length
        ? chartBox
        : h('p.empty', 'No scores recorded (not analysed, or audio ended before the first window).'),
      h(
        'div.legend-note',
        `Thresholds: drop ${fmtLlr(th.dropLlr)}, warn ${fmtLlr(th.warnLlr)}, human ${fmtLlr(th.humanLlr)}. The vertical line marks the decision.`,
      ),
    ),
    h(
      'div.grid2',
      h('div.panel', h('h2', 'Facts'), facts),
      h(
        'div',
        h(
          'div.panel',
          h('h2', 'Decision and actions'),
          verdict
            ? h(
                'p#decision',
                badge(verdict.verdict),
                ` at cumulative LLR ${fmtLlr(verdict.cumulativeLlr)}`,
                verdict.decisionMs !== null
                  ? ` after ${(verdict.decisionMs / 1000).toFixed(1)} s of caller speech`
                  : '',
              )
            : h('p.muted#decision', 'No verdict.'),
          actions.length
            ? h('ul', ...actions.map((a) => h('li', badge(a.action), ` ${fmtTime(a.atMs)} — ${a.reason}`)))
            : h('p.muted', 'No actions taken.'),
          call.hasAudio ? audioBox : null,
        ),
        h(
          'div.panel',
          h('h2', 'Ground truth'),
          labelBox,
          h('div.row', { style: 'margin-top:8px' }, note, labelBtn('human'), labelBtn('robot')),
          h('div.row', { style: 'margin-top:8px' }, allowBtn),
          readOnlyNote('Labelling'),
        ),
        privacyBox,
      ),
    ),
  );

  let plot = null;
  return {
    el,
    mounted() {
      if (!scores.length) return;
      const xs = scores.map((s) => s.tMs / 1000);
      const win = scores.map((s) => s.llr ?? null);
      const cum = scores.map((s) => s.cumulativeLlr);
      const decisionX =
        verdict?.decisionMs !== null && verdict?.decisionMs !== undefined ? verdict.decisionMs / 1000 : null;
      const hline = (y, color, label) => ({ y, color, label });
      const lines = [
        hline(th.dropLlr, '#d64545', 'drop'),
        hline(th.warnLlr, '#d98b00', 'warn'),
        hline(th.humanLlr, '#2f9e62', 'human'),
      ];
      const allY = cum.concat(
        win.filter((v) => v !== null),
        lines.map((l) => l.y),
      );
      plot = new uPlot(
        {
          width: chartBox.clientWidth || 900,
          height: 320,
          scales: { x: { time: false }, y: { range: [Math.min(...allY) - 1, Math.max(...allY) + 1] } },
          axes: [{ label: 'seconds into the call' }, { label: 'LLR (log-likelihood ratio)' }],
          series: [
            { label: 't (s)' },
            {
              label: 'window LLR',
              stroke: '#9aa7bd',
              width: 1,
              points: { show: true, size: 4 },
              paths: () => null,
            },
            { label: 'cumulative LLR', stroke: '#2f6fed', width: 2 },
          ],
          hooks: {
            draw: [
              (u) => {
                const ctx = u.ctx;
                ctx.save();
                ctx.lineWidth = 1.5 * devicePixelRatio;
                ctx.font = `${11 * devicePixelRatio}px system-ui`;
                // uPlot leaves the y axis' right alignment on the context.
                ctx.textAlign = 'left';
                for (const l of lines) {
                  const y = u.valToPos(l.y, 'y', true);
                  ctx.strokeStyle = ctx.fillStyle = l.color;
                  ctx.setLineDash([6, 4]);
                  ctx.beginPath();
                  ctx.moveTo(u.bbox.left, y);
                  ctx.lineTo(u.bbox.left + u.bbox.width, y);
                  ctx.stroke();
                  ctx.fillText(`${l.label} ${l.y}`, u.bbox.left + 4, y - 4);
                }
                if (decisionX !== null) {
                  const x = u.valToPos(decisionX, 'x', true);
                  ctx.strokeStyle = ctx.fillStyle = '#16202f';
                  ctx.setLineDash([]);
                  ctx.beginPath();
                  ctx.moveTo(x, u.bbox.top);
                  ctx.lineTo(x, u.bbox.top + u.bbox.height);
                  ctx.stroke();
                  // Label on the side of the line that has room (decisions often come late).
                  const rightHalf = x > u.bbox.left + u.bbox.width / 2;
                  ctx.textAlign = rightHalf ? 'right' : 'left';
                  ctx.fillText(
                    `decision: ${verdict.verdict}`,
                    x + (rightHalf ? -6 : 6),
                    u.bbox.top + 12 * devicePixelRatio,
                  );
                }
                ctx.restore();
              },
            ],
          },
        },
        [xs, win, cum],
        chartBox,
      );
    },
    cleanup() {
      plot?.destroy();
      if (audioUrl) URL.revokeObjectURL(audioUrl);
    },
  };
}
