// Policy editor: the defaults and the rules, with the API's validation messages next to fields.
import {
  adminOnly,
  api,
  badge,
  clearErrors,
  defaults,
  field,
  fmtLlr,
  fmtTime,
  forgetDefaults,
  get,
  h,
  readOnlyNote,
  select,
  session,
  setChildren,
  showErrors,
  toast,
} from './lib.js';

/** How the console names the codecs of the model's own bounds (effective.byCodec). */
const CODEC_NAMES = { g729: 'G.729' };
const ACTIONS = [
  ['', 'inherit'],
  ['drop', 'drop'],
  ['warn', 'warn'],
  ['log', 'log'],
];
const list = (v) => (v ?? []).join(', ');
const parseList = (s) =>
  s
    .split(/[,\n]/)
    .map((x) => x.trim())
    .filter(Boolean);
const num = (s) => (s.trim() === '' ? undefined : Number(s));

function defaultsForm(d, onSaved) {
  const e = d.effective;
  const o = d.override ?? {};
  const input = (k, v, ph) =>
    h('input', { type: 'number', step: 'any', value: v ?? '', placeholder: ph, ...adminOnly() });
  const box = h('div');
  const form = h(
    'form#defaults-form',
    { onsubmit: (ev) => save(ev) },
    h(
      'div.form-grid',
      field('Drop at LLR', 'dropLlr', input('dropLlr', o.dropLlr, String(e.thresholds.dropLlr))),
      field('Warn at LLR', 'warnLlr', input('warnLlr', o.warnLlr, String(e.thresholds.warnLlr))),
      field('Human at LLR', 'humanLlr', input('humanLlr', o.humanLlr, String(e.thresholds.humanLlr))),
      field(
        'Max listen (ms)',
        'maxListenMs',
        input('maxListenMs', o.maxListenMs, String(e.thresholds.maxListenMs)),
      ),
      field('On synthetic', 'onSynthetic', select(ACTIONS, o.onSynthetic, adminOnly())),
      field('On unsure', 'onUnsure', select(ACTIONS, o.onUnsure, adminOnly())),
      field('On detector error', 'onError', select(ACTIONS, o.onError, adminOnly())),
      field('On repeated audio', 'onRepeat', select(ACTIONS, o.onRepeat, adminOnly())),
      field(
        'Retain audio (s)',
        'retainAudioSeconds',
        input('retainAudioSeconds', o.retainAudioSeconds, String(e.retainAudioSeconds)),
      ),
    ),
    h(
      'div.row',
      { style: 'margin-top:12px' },
      h(
        'span.muted#defaults-effective',
        `Effective now: drop ${fmtLlr(e.thresholds.dropLlr)}, warn ${fmtLlr(e.thresholds.warnLlr)}, human ${fmtLlr(e.thresholds.humanLlr)}, on synthetic ${e.onSynthetic}, on repeated audio ${e.onRepeat}. Empty fields inherit config, then model.` +
          Object.entries(e.byCodec ?? {})
            .map(
              ([codec, t]) =>
                ` ${CODEC_NAMES[codec] ?? codec} calls: drop ${fmtLlr(t.dropLlr)}, warn ${fmtLlr(t.warnLlr)}, human ${fmtLlr(t.humanLlr)} (the model's bounds for that codec, under the fields above).`,
            )
            .join(''),
      ),
      h('div.spacer'),
      h('button.btn#save-defaults', { type: 'submit', ...adminOnly() }, 'Save defaults'),
    ),
    box,
  );
  async function save(ev) {
    ev.preventDefault();
    clearErrors(form);
    box.replaceChildren();
    const body = {};
    for (const k of ['dropLlr', 'warnLlr', 'humanLlr', 'maxListenMs', 'retainAudioSeconds']) {
      const v = num(form.elements[k].value);
      if (v !== undefined) body[k] = v;
    }
    for (const k of ['onSynthetic', 'onUnsure', 'onError', 'onRepeat'])
      if (form.elements[k].value) body[k] = form.elements[k].value;
    if (o.analyse !== undefined) body.analyse = o.analyse;
    try {
      await api('PUT', '/api/policy/defaults', body);
      forgetDefaults();
      toast('Defaults saved');
      onSaved();
    } catch (err) {
      showErrors(form, err, box);
    }
  }
  return form;
}

function ruleForm(rule, onDone) {
  const r = rule ?? { name: '', priority: 100, enabled: true, match: {}, thresholds: {} };
  const m = r.match ?? {};
  const t = r.thresholds ?? {};
  const box = h('div');
  const text = (v, ph) => h('input', { value: v ?? '', placeholder: ph ?? '', ...adminOnly() });
  const number = (v, ph) =>
    h('input', { type: 'number', step: 'any', value: v ?? '', placeholder: ph ?? 'inherit', ...adminOnly() });
  const form = h(
    'form.panel#rule-form',
    { onsubmit: (ev) => save(ev) },
    h('h2', rule ? `${session.isAdmin ? 'Edit rule' : 'Rule'} ${rule.id}` : 'New rule'),
    h(
      'div.form-grid',
      field(
        'Id',
        'id',
        h('input', {
          value: r.id ?? '',
          placeholder: 'generated',
          ...adminOnly(),
          // The id of a stored rule is its key: it cannot change.
          disabled: Boolean(rule) || !session.isAdmin,
        }),
      ),
      field('Name', 'name', text(r.name, 'Night shift')),
      field('Priority', 'priority', number(r.priority, '100')),
      field(
        'Enabled',
        'enabled',
        select(
          [
            ['true', 'yes'],
            ['false', 'no'],
          ],
          String(r.enabled),
          adminOnly(),
        ),
      ),
      field(
        'Analyse',
        'analyse',
        select(
          [
            ['', 'inherit'],
            ['true', 'yes'],
            ['false', 'no (let through)'],
          ],
          r.analyse === undefined ? '' : String(r.analyse),
          adminOnly(),
        ),
      ),
    ),
    h('h2', { style: 'margin-top:16px' }, 'Match (all given criteria; any entry within one)'),
    h(
      'div.form-grid',
      field('From numbers', 'match.fromNumbers', text(list(m.fromNumbers), '+4930*, _0900X.')),
      field('To numbers', 'match.toNumbers', text(list(m.toNumbers), '+4989123*')),
      field('Trunks', 'match.trunks', text(list(m.trunks), 'default')),
      field('Source addresses', 'match.sourceAddresses', text(list(m.sourceAddresses), '192.0.2.0/24')),
      field('Codecs (pcmu, pcma, g729)', 'match.codecs', text(list(m.codecs), 'g729')),
    ),
    field(
      'Schedule (JSON: [{"days":["mon"],"start":"22:00","end":"06:00"}])',
      'match.schedule',
      h('textarea', adminOnly(), m.schedule ? JSON.stringify(m.schedule) : ''),
    ),
    h('h2', { style: 'margin-top:16px' }, 'Thresholds and actions (empty = inherit the defaults)'),
    h(
      'div.form-grid',
      field('Drop at LLR', 'thresholds.dropLlr', number(t.dropLlr)),
      field('Warn at LLR', 'thresholds.warnLlr', number(t.warnLlr)),
      field('Human at LLR', 'thresholds.humanLlr', number(t.humanLlr)),
      field('Max listen (ms)', 'thresholds.maxListenMs', number(t.maxListenMs)),
      field('On synthetic', 'onSynthetic', select(ACTIONS, r.onSynthetic, adminOnly())),
      field('On unsure', 'onUnsure', select(ACTIONS, r.onUnsure, adminOnly())),
      field('On detector error', 'onError', select(ACTIONS, r.onError, adminOnly())),
      field('On repeated audio', 'onRepeat', select(ACTIONS, r.onRepeat, adminOnly())),
      field('Retain audio (s)', 'retainAudioSeconds', number(r.retainAudioSeconds)),
    ),
    box,
    h(
      'div.row',
      { style: 'margin-top:12px' },
      h('div.spacer'),
      h('button.btn.secondary', { type: 'button', onclick: () => onDone(false) }, 'Cancel'),
      h('button.btn#save-rule', { type: 'submit', ...adminOnly() }, rule ? 'Save rule' : 'Create rule'),
    ),
  );
  async function save(ev) {
    ev.preventDefault();
    clearErrors(form);
    box.replaceChildren();
    const f = form.elements;
    const body = { name: f.name.value, enabled: f.enabled.value === 'true', match: {}, thresholds: {} };
    if (!rule && f.id.value.trim()) body.id = f.id.value.trim();
    const p = num(f.priority.value);
    if (p !== undefined) body.priority = p;
    if (f.analyse.value) body.analyse = f.analyse.value === 'true';
    for (const k of ['fromNumbers', 'toNumbers', 'trunks', 'sourceAddresses', 'codecs']) {
      const v = parseList(f[`match.${k}`].value);
      if (v.length) body.match[k] = v;
    }
    const sched = f['match.schedule'].value.trim();
    if (sched) {
      try {
        body.match.schedule = JSON.parse(sched);
      } catch {
        return showErrors(form, { issues: [{ field: 'match.schedule', message: 'not valid JSON' }] }, box);
      }
    }
    for (const k of ['dropLlr', 'warnLlr', 'humanLlr', 'maxListenMs']) {
      const v = num(f[`thresholds.${k}`].value);
      if (v !== undefined) body.thresholds[k] = v;
    }
    for (const k of ['onSynthetic', 'onUnsure', 'onError', 'onRepeat']) if (f[k].value) body[k] = f[k].value;
    const ra = num(f.retainAudioSeconds.value);
    if (ra !== undefined) body.retainAudioSeconds = ra;
    try {
      if (rule) await api('PUT', `/api/policy/rules/${encodeURIComponent(rule.id)}`, body);
      else await api('POST', '/api/policy/rules', body);
      toast(rule ? 'Rule saved' : 'Rule created');
      onDone(true);
    } catch (err) {
      showErrors(form, err, box);
    }
  }
  return form;
}

export async function policyView() {
  const el = h('div');
  const draw = async () => {
    const [d, rules] = await Promise.all([defaults(true), get('/api/policy/rules')]);
    const editorSlot = h('div');
    const openEditor = (rule) => {
      editorSlot.replaceChildren(
        ruleForm(rule, (changed) => {
          editorSlot.replaceChildren();
          if (changed) draw();
        }),
      );
      editorSlot.scrollIntoView({ behavior: 'smooth', block: 'start' });
    };
    const rows = rules.items.map((r) =>
      h(
        'tr',
        { 'data-rule': r.id },
        h('td.num', r.priority),
        h('td', h('b', r.name), h('div.muted', r.id)),
        h('td', r.enabled ? badge('on', 'human') : badge('off', 'ended')),
        h('td', summariseMatch(r.match)),
        h(
          'td',
          ['dropLlr', 'warnLlr', 'humanLlr']
            .filter((k) => r.thresholds[k] !== undefined)
            .map((k) => `${k.replace('Llr', '')} ${r.thresholds[k]}`)
            .join(', ') || h('span.muted', 'defaults'),
        ),
        h(
          'td',
          r.analyse === false
            ? badge('not analysed', 'ended')
            : r.onSynthetic
              ? badge(r.onSynthetic)
              : h('span.muted', 'default'),
        ),
        h('td.muted', fmtTime(r.updatedAtMs)),
        h(
          'td',
          h(
            'button.btn.secondary.small',
            { type: 'button', onclick: () => openEditor(r) },
            session.isAdmin ? 'Edit' : 'View',
          ),
          ' ',
          h(
            'button.btn.danger.small',
            {
              type: 'button',
              ...adminOnly(),
              onclick: async () => {
                if (!confirm(`Delete rule "${r.name}"?`)) return;
                try {
                  await api('DELETE', `/api/policy/rules/${encodeURIComponent(r.id)}`);
                  toast('Rule deleted');
                  draw();
                } catch (err) {
                  toast(err.message, true);
                }
              },
            },
            'Delete',
          ),
        ),
      ),
    );
    setChildren(
      el,
      h('h1', 'Policy'),
      readOnlyNote('Changing the policy'),
      h(
        'div.panel',
        h('h2', `Defaults (policy version ${d.version}, time zone ${d.timeZone})`),
        defaultsForm(d, draw),
        h('p.muted#known-callers', knownCallersLine(d.knownCallers)),
        h('p.muted#repeat-settings', repeatLine(d.repeat)),
      ),
      h(
        'div.panel',
        h(
          'div.row',
          h('h2', 'Rules (first match wins, lower priority first)'),
          h('div.spacer'),
          h(
            'button.btn#new-rule',
            { type: 'button', ...adminOnly(), onclick: () => openEditor(null) },
            'New rule',
          ),
        ),
        rows.length
          ? h(
              'table#rules-table',
              h(
                'thead',
                h(
                  'tr',
                  h('th.num', 'Prio'),
                  ...['Rule', 'Enabled', 'Match', 'Thresholds', 'On synthetic', 'Updated', ''].map((x) =>
                    h('th', x),
                  ),
                ),
              ),
              h('tbody', rows),
            )
          : h('p.empty', 'No rules: every call gets the defaults.'),
      ),
      editorSlot,
    );
  };
  await draw();
  return { el };
}

function summariseMatch(m) {
  const parts = [];
  if (m.fromNumbers?.length) parts.push(`from ${m.fromNumbers.join(' ')}`);
  if (m.toNumbers?.length) parts.push(`to ${m.toNumbers.join(' ')}`);
  if (m.trunks?.length) parts.push(`trunk ${m.trunks.join(' ')}`);
  if (m.sourceAddresses?.length) parts.push(`src ${m.sourceAddresses.join(' ')}`);
  if (m.codecs?.length) parts.push(`codec ${m.codecs.join(' ')}`);
  if (m.schedule?.length)
    parts.push(m.schedule.map((s) => `${s.days.join(',')} ${s.start}–${s.end}`).join('; '));
  return parts.length ? parts.join(' · ') : h('span.muted', 'every call');
}

/** The repeated-audio setting (config detector.repeat), in words. */
function repeatLine(r) {
  if (!r?.enabled) return 'Repeated audio: off (detector.repeat in the configuration).';
  const hours = r.windowMinutes % 60 === 0 ? `${r.windowMinutes / 60} h` : `${r.windowMinutes} min`;
  return (
    `Repeated audio: the first ${r.listenMs / 1000} s of each analysed call are compared with the calls of the last ` +
    `${hours} (at most ${r.maxCalls}); "On repeated audio" runs when they repeat calls of ${r.minOtherCallers} other ` +
    `caller(s). Fingerprints are kept ${r.persist ? 'in the store across restarts' : 'in memory only'} ` +
    '(detector.repeat in the configuration).'
  );
}

/** The known-caller setting (config policy.knownCallers), in words. */
function knownCallersLine(k) {
  if (!k?.enabled) return 'Known callers: off (policy.knownCallers in the configuration).';
  return (
    `Known callers: a caller with ${k.minCalls} earlier conversation(s) of ${k.minTalkSeconds} s or more ` +
    `in ${k.windowDays} days, or one call labelled human, gets at most "${k.capAction}", never a drop; ` +
    'a robot label ends it (policy.knownCallers in the configuration).'
  );
}
