// Shared helpers: session, API client, DOM builder, formatting.

const KEY = 'voiceguard.token';

export const session = {
  token: sessionStorage.getItem(KEY),
  name: sessionStorage.getItem(KEY + '.name') ?? '',
  role: sessionStorage.getItem(KEY + '.role') ?? 'viewer',
  get isAdmin() {
    return this.role === 'admin';
  },
  set(token, name, role) {
    Object.assign(this, { token, name, role });
    sessionStorage.setItem(KEY, token);
    sessionStorage.setItem(KEY + '.name', name);
    sessionStorage.setItem(KEY + '.role', role);
  },
  clear() {
    this.token = null;
    for (const k of [KEY, KEY + '.name', KEY + '.role']) sessionStorage.removeItem(k);
  },
};

/** An API error: status, message and, for bad input, the field(s) at fault. */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message ?? `HTTP ${status}`);
    this.status = status;
    this.field = body?.field ?? '';
    this.issues = body?.issues ?? (body?.field ? [{ field: body.field, message: body.message }] : []);
  }
}

export async function api(method, path, body, token = session.token) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    if (res.status === 401 && token === session.token && path !== '/api/auth/login') {
      session.clear();
      location.hash = '#/login';
    }
    throw new ApiError(res.status, data);
  }
  return data;
}

export const get = (path) => api('GET', path);

/**
 * Attributes of a control that changes something: disabled for viewer tokens (the API would
 * answer 403 anyway) and marked data-mutates so the read-only mode can be checked as a whole.
 */
export function adminOnly() {
  return {
    'data-mutates': true,
    disabled: !session.isAdmin,
    title: session.isAdmin ? undefined : 'Admins only',
  };
}

/** The note on a page a viewer token sees read-only, saying what would need an admin token. */
export function readOnlyNote(what) {
  return session.isAdmin
    ? null
    : h('p.readonly-note', `Read-only: viewer token. ${what} needs an admin token.`);
}

/** h('div.cls#id', {attrs}, ...children) */
export function h(sel, attrs, ...children) {
  const [, tag, rest] = /^([a-z0-9]+)?(.*)$/i.exec(sel);
  const el = document.createElement(tag || 'div');
  for (const m of rest.matchAll(/([.#])([\w-]+)/g)) {
    if (m[1] === '.') el.classList.add(m[2]);
    else el.id = m[2];
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    children.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

/** replaceChildren that, like h(), skips null/false children (replaceChildren prints "null"). */
export function setChildren(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function badge(text, cls = text) {
  return text ? h('span.badge', { class: `badge ${cls}` }, text) : h('span.muted', '—');
}

export const pad2 = (n) => String(n).padStart(2, '0');
export function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
}
export function fmtDur(ms) {
  if (ms === null || ms === undefined) return '—';
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m ${pad2(s % 60)}s`;
}
export const fmtLlr = (v) => (v === null || v === undefined ? '—' : v.toFixed(1));

export function toast(msg, isError = false) {
  const t = document.getElementById('toast');
  t.textContent = msg;
  t.className = isError ? 'toast error' : 'toast';
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.hidden = true), 3500);
}

/**
 * A button that puts a caller (clear number or `p:` pseudonym, as stored) on the allow list, so its calls
 * are no longer analysed; it shows "On the allow list" once there. `note()` gives the entry's note at
 * click time. False drops cluster on voices, so a caller wrongly dropped once tends to come back.
 */
export function allowCallerButton(sel, number, { listed, label, note }) {
  const btn = h(
    sel,
    {
      type: 'button',
      ...adminOnly(),
      disabled: !session.isAdmin || listed,
      title: !session.isAdmin
        ? 'Admins only'
        : listed
          ? 'Already on the allow list'
          : `Never analyse calls from this ${/^p:[0-9a-f]{16}$/.test(number) ? 'caller (listed by pseudonym)' : 'number'} again`,
      onclick: async () => {
        try {
          await api('POST', '/api/lists/allow', { pattern: number, note: note() });
          btn.disabled = true;
          btn.textContent = 'On the allow list';
          toast(`${number} is on the allow list: its calls are no longer analysed`);
        } catch (err) {
          toast(err.message, true);
        }
      },
    },
    listed ? 'On the allow list' : label,
  );
  return btn;
}

/** Puts an API validation error next to the matching inputs (data-field), else in the box. */
export function showErrors(form, err, box) {
  clearErrors(form);
  if (box) box.replaceChildren();
  let unplaced = [];
  const issues = err.issues?.length ? err.issues : [{ field: err.field, message: err.message }];
  for (const issue of issues) {
    const name = String(issue.field ?? '').replace(/^(body|querystring|params)[./]?/, '');
    const target = name && findField(form, name);
    if (target) {
      target.classList.add('invalid');
      const slot = target.querySelector('.field-error');
      const message = issue.message.replace(/^[\w.]+: /, '');
      slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
    } else unplaced.push(issue.message);
  }
  if (unplaced.length && box) box.append(h('div.error-box', { role: 'alert' }, unplaced.join('; ')));
}

function findField(form, name) {
  // Most specific first: "thresholds.dropLlr", then "dropLlr", then "match.schedule" for "match.schedule.0.start".
  const parts = name.split('.');
  for (let i = parts.length; i > 0; i--) {
    const el = form.querySelector(`[data-field="${CSS.escape(parts.slice(0, i).join('.'))}"]`);
    if (el) return el;
  }
  const last = parts[parts.length - 1];
  return form.querySelector(`[data-field="${CSS.escape(last)}"]`);
}

export function clearErrors(form) {
  for (const el of form.querySelectorAll('.field.invalid')) el.classList.remove('invalid');
  for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
}

/** A labelled input with a slot for its validation message. */
export function field(label, name, input) {
  input.name = name;
  return h('label.field', { 'data-field': name }, label, input, h('span.field-error'));
}

export function select(options, value, attrs = {}) {
  return h(
    'select',
    attrs,
    options.map(([v, t]) => h('option', { value: v, selected: v === (value ?? '') }, t)),
  );
}

/** Small SVG sparkline of cumulative LLR with optional threshold lines. */
export function sparkline(points, { width = 160, height = 32, lines = [] } = {}) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('class', 'spark');
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  if (!points.length) return svg;
  const ys = points
    .map((p) => p.cumulativeLlr)
    .concat(
      lines.map((l) => l.y),
      [0],
    );
  const lo = Math.min(...ys),
    hi = Math.max(...ys);
  const t0 = points[0].tMs,
    t1 = Math.max(points[points.length - 1].tMs, t0 + 1);
  const X = (t) => ((t - t0) / (t1 - t0)) * (width - 4) + 2;
  const Y = (v) => height - 2 - ((v - lo) / (hi - lo || 1)) * (height - 4);
  for (const l of lines) {
    const ln = document.createElementNS(ns, 'line');
    Object.entries({
      x1: 0,
      x2: width,
      y1: Y(l.y),
      y2: Y(l.y),
      stroke: l.color,
      'stroke-dasharray': '3 3',
      'stroke-width': 1,
    }).forEach(([k, v]) => ln.setAttribute(k, v));
    svg.append(ln);
  }
  const pl = document.createElementNS(ns, 'polyline');
  pl.setAttribute(
    'points',
    points.map((p) => `${X(p.tMs).toFixed(1)},${Y(p.cumulativeLlr).toFixed(1)}`).join(' '),
  );
  pl.setAttribute('fill', 'none');
  pl.setAttribute('stroke', '#2f6fed');
  pl.setAttribute('stroke-width', 1.6);
  svg.append(pl);
  return svg;
}

/** Current default thresholds (cached briefly; views ask for them often). */
let defaultsCache = null;
export async function defaults(fresh = false) {
  if (fresh || !defaultsCache || Date.now() - defaultsCache.at > 10_000)
    defaultsCache = { at: Date.now(), data: await get('/api/policy/defaults') };
  return defaultsCache.data;
}
/**
 * The default bounds of a call heard in `codec`: the model's own for that codec where it has them
 * (effective.byCodec, e.g. G.729), else the generic ones.
 */
export function boundsFor(effective, codec) {
  return effective.byCodec?.[String(codec ?? '').toLowerCase()] ?? effective.thresholds;
}
export function forgetDefaults() {
  defaultsCache = null;
}
