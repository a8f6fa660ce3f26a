// Admin page: API tokens (list, create with the value shown once, revoke) and the audit trail.
import {
  adminOnly,
  api,
  badge,
  clearErrors,
  field,
  fmtTime,
  get,
  h,
  select,
  session,
  setChildren,
  showErrors,
  toast,
} from './lib.js';

const AUDIT_PAGE_SIZE = 50;

/** The new token's value: the API returns it once and keeps only its hash. */
function revealedToken(t, onDismiss) {
  const value = h('input#new-token-value', {
    value: t.token,
    readonly: true,
    'aria-label': 'New API token',
    onfocus: (e) => e.target.select(),
  });
  const copy = async () => {
    value.select();
    try {
      await window.navigator.clipboard.writeText(t.token);
      toast('Token copied');
    } catch (err) {
      toast(`Could not copy (${err.message}): the value is selected, copy it by hand.`, true);
    }
  };
  return h(
    'div.token-reveal#token-reveal',
    { role: 'status' },
    h('b', `Token "${t.name}" (${t.role}) created.`),
    h(
      'p.token-warning',
      'Shown once: copy it now. Only its hash is stored, so it cannot be shown again after you leave this page.',
    ),
    h(
      'div.row',
      value,
      h('button.btn.secondary#copy-token', { type: 'button', onclick: copy }, 'Copy'),
      h('button.btn.ghost.small', { type: 'button', onclick: onDismiss }, 'Done'),
    ),
  );
}

function tokensPanel(onChange) {
  const revealSlot = h('div');
  const formBox = h('div');
  const listBox = h('div');
  const listSlot = h('div');
  const form = h(
    'form.row#token-form',
    { onsubmit: (e) => create(e) },
    field('Name', 'name', h('input', { placeholder: 'pbx-monitor', maxlength: 100, autocomplete: 'off' })),
    field(
      'Role',
      'role',
      select(
        [
          ['viewer', 'viewer (read only)'],
          ['admin', 'admin'],
        ],
        'viewer',
      ),
    ),
    h(
      'button.btn#create-token',
      { type: 'submit', ...adminOnly(), style: 'align-self:center' },
      'Create token',
    ),
  );

  async function create(e) {
    e.preventDefault();
    clearErrors(form);
    formBox.replaceChildren();
    let created;
    try {
      created = await api('POST', '/api/tokens', {
        name: form.elements.name.value.trim(),
        role: form.elements.role.value,
      });
    } catch (err) {
      // The form keeps what was typed; the message goes next to the field or in the box.
      return showErrors(form, err, formBox);
    }
    form.reset();
    setChildren(
      revealSlot,
      revealedToken(created, () => revealSlot.replaceChildren()),
    );
    await refresh();
  }

  async function revoke(t) {
    if (!confirm(`Revoke token "${t.name}" (${t.role})? Anything still using it gets 401 from now on.`))
      return;
    listBox.replaceChildren();
    try {
      await api('DELETE', `/api/tokens/${encodeURIComponent(t.id)}`);
    } catch (err) {
      return listBox.append(
        h(
          'div.error-box#revoke-error',
          { role: 'alert' },
          `Could not revoke "${t.name}": ${err.message}${err.status === 409 ? '.' : ` (HTTP ${err.status}).`}`,
        ),
      );
    }
    toast(`Token "${t.name}" revoked`);
    await refresh();
  }

  /** Redraws the list and tells the page (the audit trail has a new row); errors go in the box. */
  async function refresh() {
    try {
      await reload();
      await onChange();
    } catch (err) {
      if (err.status !== 401)
        listBox.append(h('div.error-box', { role: 'alert' }, `Could not reload: ${err.message}`));
    }
  }

  async function reload() {
    const { items } = await get('/api/tokens');
    setChildren(
      listSlot,
      h(
        'table#tokens-table',
        h(
          'thead',
          h(
            'tr',
            ['Name', 'Role', 'Created', 'Created by', 'Last used', 'State', ''].map((x) => h('th', x)),
          ),
        ),
        h(
          'tbody',
          items.map((t) =>
            h(
              'tr',
              { 'data-token': t.id, class: t.revokedAtMs === null ? null : 'revoked' },
              h('td', h('b', t.name), h('div.muted', t.id)),
              h('td', badge(t.role)),
              h('td.muted', fmtTime(t.createdAtMs)),
              h('td', t.createdBy),
              h('td.muted', fmtTime(t.lastUsedAtMs)),
              h(
                'td.state',
                t.revokedAtMs === null
                  ? badge('active', 'human')
                  : badge(`revoked ${fmtTime(t.revokedAtMs)}`, 'ended'),
              ),
              h(
                'td',
                t.revokedAtMs === null
                  ? h(
                      'button.btn.danger.small',
                      { type: 'button', ...adminOnly(), onclick: () => revoke(t) },
                      'Revoke',
                    )
                  : null,
              ),
            ),
          ),
        ),
      ),
    );
  }

  const el = h(
    'div.panel',
    h('h2', 'API tokens'),
    h('p.muted', 'Viewers can read everything; admins can also change the policy, lists, labels and tokens.'),
    form,
    formBox,
    revealSlot,
    listBox,
    listSlot,
  );
  return { el, reload };
}

function auditPanel() {
  const tbody = h('tbody');
  const shown = h('span.muted#audit-count');
  const box = h('div');
  const more = h('button.btn.secondary#audit-more', { type: 'button', hidden: true }, 'Load more');
  let cursor = null;
  let rows = 0;
  // A reload (after a token change) while "Load more" is in flight must not mix the two pages.
  let generation = 0;

  const add = (items) => {
    tbody.append(
      ...items.map((a) =>
        h(
          'tr',
          { 'data-audit': a.id },
          h('td.muted', fmtTime(a.atMs)),
          h('td', a.actor),
          h('td', h('code', a.action)),
          h('td', a.target || h('span.muted', '—')),
          h(
            'td.audit-detail',
            Object.keys(a.detail).length ? h('code', JSON.stringify(a.detail)) : h('span.muted', '—'),
          ),
        ),
      ),
    );
    rows += items.length;
    shown.textContent = `${rows.toLocaleString()} entries shown, newest first`;
  };

  async function reload() {
    const gen = ++generation;
    const page = await get(`/api/audit?limit=${AUDIT_PAGE_SIZE}`);
    if (gen !== generation) return;
    box.replaceChildren();
    tbody.replaceChildren();
    rows = 0;
    add(page.items);
    if (!page.items.length) tbody.append(h('tr', h('td.empty', { colspan: 5 }, 'No audit entries.')));
    cursor = page.nextCursor;
    more.hidden = !cursor;
  }

  more.addEventListener('click', async () => {
    const gen = generation;
    more.disabled = true;
    box.replaceChildren();
    try {
      const page = await get(`/api/audit?limit=${AUDIT_PAGE_SIZE}&cursor=${encodeURIComponent(cursor)}`);
      if (gen !== generation) return;
      add(page.items);
      cursor = page.nextCursor;
      more.hidden = !cursor;
    } catch (err) {
      box.append(h('div.error-box', { role: 'alert' }, `Could not load more: ${err.message}`));
    } finally {
      more.disabled = false;
    }
  });

  const el = h(
    'div.panel',
    h('div.row', h('h2', 'Audit log'), h('div.spacer'), shown),
    h(
      'table#audit-table',
      h(
        'thead',
        h(
          'tr',
          ['Time', 'Who', 'Action', 'Target', 'Details'].map((x) => h('th', x)),
        ),
      ),
      tbody,
    ),
    box,
    h('div.row', { style: 'margin-top:10px' }, more),
  );
  return { el, reload };
}

export async function adminView() {
  // The API answers 403 to a viewer anyway; say so plainly instead of failing requests.
  if (!session.isAdmin)
    return {
      el: h(
        'div.panel',
        h('h1', 'Admin'),
        h(
          'div.error-box#admins-only',
          { role: 'alert' },
          'Admins only: tokens and the audit log need an admin token. You are signed in with a viewer token.',
        ),
      ),
    };
  const audit = auditPanel();
  const tokens = tokensPanel(() => audit.reload());
  await Promise.all([tokens.reload(), audit.reload()]);
  return { el: h('div#admin-page', h('h1', 'Admin'), tokens.el, audit.el) };
}
