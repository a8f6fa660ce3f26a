// Live view: calls in progress, their cumulative score moving, verdicts and actions.
import { badge, boundsFor, defaults, fmtDur, fmtLlr, get, h, session, sparkline, toast } from './lib.js';

const KEEP_ENDED_MS = 30_000;
const MAX_POINTS = 240;

export async function liveView() {
  const [{ items }, d] = await Promise.all([get('/api/calls/live'), defaults()]);
  const th = d.effective.thresholds;
  const calls = new Map();
  const fromSnapshot = (c) => ({
    ...c,
    points: (c.recentScores ?? []).slice(-MAX_POINTS),
    actions: c.actions ?? [],
    ended: null,
    seenAt: Date.now(),
  });
  for (const c of items) calls.set(c.id, fromSnapshot(c));

  const dot = h('span.live-dot');
  const status = h('span.muted#live-status', 'connecting…');
  // Trunk registrations with carriers (sip.trunks[].register), from /health; refreshed every 30 s.
  const trunks = h('div.row#trunk-registrations');
  const showTrunks = async () => {
    const health = await get('/health').catch(() => null);
    const regs = health?.registrations ?? [];
    trunks.hidden = regs.length === 0;
    trunks.replaceChildren(
      ...regs.map((r) =>
        h(
          'span.trunk-reg',
          { 'data-trunk': r.trunk },
          `Trunk ${r.trunk}: `,
          badge(
            r.state,
            r.state === 'registered' ? 'human' : r.state === 'registering' ? 'unsure' : 'synthetic',
          ),
          r.state === 'registered' && r.expiresAtMs
            ? h('span.muted', ` until ${new Date(r.expiresAtMs).toLocaleTimeString()}`)
            : null,
        ),
      ),
    );
  };
  await showTrunks();
  const trunkTimer = setInterval(() => {
    if (!trunks.isConnected) clearInterval(trunkTimer);
    else void showTrunks();
  }, 30_000);
  const tbody = h('tbody');
  const count = h('span.muted#live-count');
  const el = h(
    'div',
    h('div.row', h('h1', 'Live calls'), h('div.spacer'), dot, status),
    trunks,
    h(
      'div.panel',
      h(
        'table#live-table',
        h(
          'thead',
          h(
            'tr',
            h('th', 'Started'),
            h('th', 'From'),
            h('th', 'To'),
            h('th', 'Trunk'),
            h('th', 'Score (cumulative LLR)'),
            h('th.num', 'LLR'),
            h('th', 'Verdict'),
            h('th', 'Actions'),
            h('th', 'State'),
          ),
        ),
        tbody,
      ),
      h(
        'div.legend-note',
        count,
        ` · dashed lines: warn ${fmtLlr(th.warnLlr)} (amber), drop ${fmtLlr(th.dropLlr)} (red), human ${fmtLlr(th.humanLlr)} (green)` +
          (Object.keys(d.effective.byCodec ?? {}).length
            ? `; calls in ${Object.keys(d.effective.byCodec).join(', ')}: the model's bounds for that codec`
            : ''),
      ),
    ),
  );

  // A call heard in a codec the model has bounds for (G.729) is judged with those (where no rule sets any).
  const sparkCell = (c) => {
    const t = boundsFor(d.effective, c.codec);
    return h(
      'td.spark',
      { title: `drop ${fmtLlr(t.dropLlr)}, warn ${fmtLlr(t.warnLlr)}, human ${fmtLlr(t.humanLlr)}` },
      sparkline(c.points, {
        lines: [
          { y: t.dropLlr, color: '#d64545' },
          { y: t.warnLlr, color: '#d98b00' },
          { y: t.humanLlr, color: '#2f9e62' },
        ],
      }),
    );
  };

  let scheduled = false;
  const draw = () => {
    scheduled = false;
    const now = Date.now();
    for (const [id, c] of calls) if (c.ended && now - c.ended > KEEP_ENDED_MS) calls.delete(id);
    const rows = [...calls.values()].sort((a, b) => b.startedAtMs - a.startedAtMs);
    count.textContent = `${rows.filter((c) => !c.ended).length} in progress`;
    if (!rows.length) {
      tbody.replaceChildren(h('tr', h('td.empty', { colspan: 9 }, 'No calls in progress.')));
      return;
    }
    tbody.replaceChildren(
      ...rows.map((c) =>
        h(
          'tr',
          { 'data-call': c.id },
          h('td', new Date(c.startedAtMs).toLocaleTimeString()),
          h(
            'td',
            c.fromNumber ?? '',
            c.knownCaller
              ? h('span.badge.known-caller', { title: 'Known caller: warned about, never dropped' }, 'known')
              : null,
          ),
          h('td', c.toNumber ?? ''),
          h('td', c.trunk ?? '—'),
          sparkCell(c),
          h('td.num.llr', fmtLlr(c.cumulativeLlr)),
          h('td.verdict', badge(c.verdict)),
          h('td', c.actions.length ? c.actions.map((a) => badge(a)) : h('span.muted', '—')),
          h(
            'td',
            c.ended
              ? h('a', { href: `#/calls/${encodeURIComponent(c.id)}` }, badge('ended'))
              : h('span.muted', c.answeredAtMs ? fmtDur(Date.now() - c.answeredAtMs) : 'ringing'),
          ),
        ),
      ),
    );
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(draw);
    }
  };

  const es = new EventSource(`/api/events?token=${encodeURIComponent(session.token)}`);
  /**
   * Events sent while the stream was not open (before the first open, or while reconnecting
   * after a restart) are lost: on every open, take the server's list again. Calls it no longer
   * has, and that this page knew before asking, ended in the gap. (Client clock only: no skew.)
   */
  const resync = async () => {
    const askedAt = Date.now();
    try {
      const snapshot = await get('/api/calls/live');
      const ids = new Set(snapshot.items.map((c) => c.id));
      for (const c of snapshot.items) if (!calls.has(c.id)) calls.set(c.id, fromSnapshot(c));
      for (const c of calls.values())
        if (!c.ended && !ids.has(c.id) && c.seenAt < askedAt) c.ended = Date.now();
      schedule();
    } catch (err) {
      toast(`Could not refresh the live list: ${err.message}`, true);
    }
  };
  es.onopen = () => {
    dot.classList.add('on');
    status.textContent = 'live';
    resync();
  };
  es.onerror = () => {
    dot.classList.remove('on');
    status.textContent = 'reconnecting…';
  };
  const on = (name, fn) =>
    es.addEventListener(name, (e) => {
      const data = JSON.parse(e.data);
      fn(data, calls.get(data.callId));
      schedule();
    });
  on('call.started', (e) =>
    // Denied calls are rejected at INVITE: never in progress (as in the server's live list).
    e.treatment === 'deny'
      ? undefined
      : calls.set(e.callId, {
          id: e.callId,
          fromNumber: e.fromNumber,
          toNumber: e.toNumber,
          trunk: e.trunk,
          startedAtMs: e.atMs,
          answeredAtMs: null,
          cumulativeLlr: null,
          points: [],
          verdict: null,
          actions: [],
          knownCaller: !!e.knownCaller,
          ended: null,
          seenAt: Date.now(),
        }),
  );
  on('call.answered', (e, c) => c && Object.assign(c, { answeredAtMs: e.atMs, codec: e.codec }));
  on('call.score', (e, c) => {
    if (!c) return;
    c.points.push({ tMs: e.tMs, cumulativeLlr: e.cumulativeLlr });
    if (c.points.length > MAX_POINTS) c.points.shift();
    c.cumulativeLlr = e.cumulativeLlr;
  });
  on('call.verdict', (e, c) => c && (c.verdict = e.verdict));
  on('call.action', (e, c) => c && !c.actions.includes(e.action) && c.actions.push(e.action));
  on('call.ended', (e, c) => c && (c.ended = Date.now()));
  const timer = setInterval(schedule, 1000);
  draw();
  return {
    el,
    cleanup() {
      es.close();
      clearInterval(timer);
    },
  };
}
