// Allow list (never analysed) and deny list (rejected at INVITE).
import {
  adminOnly,
  api,
  field,
  fmtTime,
  get,
  h,
  readOnlyNote,
  setChildren,
  showErrors,
  clearErrors,
  toast,
} from './lib.js';

function listPanel(kind, items, redraw) {
  const box = h('div');
  const form = h(
    `form.row#${kind}-form`,
    { onsubmit: (e) => add(e) },
    field(
      'Number pattern',
      'pattern',
      h('input', { placeholder: kind === 'deny' ? '_0900X.' : '+4930123456', ...adminOnly() }),
    ),
    kind === 'deny'
      ? field(
          'SIP status',
          'sipStatus',
          h('input', { type: 'number', placeholder: 'default', style: 'width:110px', ...adminOnly() }),
        )
      : null,
    field('Note', 'note', h('input', { placeholder: 'why', ...adminOnly() })),
    h('button.btn', { type: 'submit', ...adminOnly(), style: 'align-self:center' }, 'Add'),
  );
  async function add(e) {
    e.preventDefault();
    clearErrors(form);
    box.replaceChildren();
    const body = { pattern: form.elements.pattern.value.trim() };
    if (form.elements.note.value.trim()) body.note = form.elements.note.value.trim();
    if (kind === 'deny' && form.elements.sipStatus.value.trim())
      body.sipStatus = Number(form.elements.sipStatus.value);
    try {
      await api('POST', `/api/lists/${kind}`, body);
      toast(`Added to the ${kind} list`);
      redraw();
    } catch (err) {
      showErrors(form, err, box);
    }
  }
  return h(
    'div.panel',
    h('h2', kind === 'allow' ? 'Allow list — never analysed' : 'Deny list — rejected at INVITE'),
    form,
    box,
    items.length
      ? h(
          `table#${kind}-table`,
          h(
            'thead',
            h(
              'tr',
              ...['Pattern', kind === 'deny' ? 'SIP status' : null, 'Note', 'Added', '']
                .filter(Boolean)
                .map((t) => h('th', t)),
            ),
          ),
          h(
            'tbody',
            items.map((e) =>
              h(
                'tr',
                h('td', h('code', e.pattern)),
                kind === 'deny' ? h('td', e.sipStatus ?? 'default') : null,
                h('td', e.note || h('span.muted', '—')),
                h('td.muted', `${fmtTime(e.createdAtMs)} by ${e.createdBy}`),
                h(
                  'td',
                  h(
                    'button.btn.danger.small',
                    {
                      type: 'button',
                      ...adminOnly(),
                      onclick: async () => {
                        try {
                          await api('DELETE', `/api/lists/${kind}/${encodeURIComponent(e.id)}`);
                          toast('Removed');
                          redraw();
                        } catch (err) {
                          toast(err.message, true);
                        }
                      },
                    },
                    'Remove',
                  ),
                ),
              ),
            ),
          ),
        )
      : h('p.empty', 'Empty.'),
  );
}

export async function listsView() {
  const el = h('div');
  const draw = async () => {
    const [allow, deny] = await Promise.all([get('/api/lists/allow'), get('/api/lists/deny')]);
    setChildren(
      el,
      h('h1', 'Allow and deny lists'),
      readOnlyNote('Editing the lists'),
      h(
        'p.muted',
        'Patterns: exact (+4930123456), prefix (+4989*), any (*), or Asterisk style (_0900X.). Deny beats allow.',
      ),
      h('div.grid2', listPanel('allow', allow.items, draw), listPanel('deny', deny.items, draw)),
    );
  };
  await draw();
  return { el };
}
