// voiceguard console: login, hash router, top bar.
import { api, h, session } from './lib.js';
import { liveView } from './live.js';
import { callsView, callDetailView } from './calls.js';
import { tuningView } from './tuning.js';
import { policyView } from './policy.js';
import { listsView } from './lists.js';
import { adminView } from './admin.js';

const main = document.getElementById('main');
let cleanup = null;

function loginView() {
  const input = h('input#token', {
    type: 'password',
    placeholder: 'vg_…',
    autocomplete: 'off',
    'aria-label': 'API token',
  });
  const err = h('div');
  const submit = async (e) => {
    e.preventDefault();
    err.replaceChildren();
    const token = input.value.trim();
    if (!token) return err.append(h('div.error-box', { role: 'alert' }, 'Paste an API token.'));
    try {
      const me = await api('POST', '/api/auth/login', { token }, null);
      session.set(token, me.name, me.role);
      // Setting the hash it already has fires no hashchange (e.g. a reload at #/live).
      if (location.hash === '#/live') render();
      else location.hash = '#/live';
    } catch (ex) {
      err.append(
        h(
          'div.error-box#login-error',
          { role: 'alert' },
          ex.status === 401 ? 'Invalid or revoked API token.' : ex.message,
        ),
      );
    }
  };
  return h(
    'div.login',
    h(
      'form.panel',
      { onsubmit: submit },
      h('h1', h('span.logo', '◉'), 'voiceguard console'),
      h(
        'p.muted',
        'Sign in with an API token (admin or viewer). Admins create tokens on the Admin page or with POST /api/tokens.',
      ),
      input,
      err,
      h('button.btn#login-btn', { type: 'submit', style: 'width:100%' }, 'Sign in'),
    ),
  );
}

const routes = [
  [/^#\/live$/, () => liveView()],
  [/^#\/calls\/([^/?]+)$/, (m) => callDetailView(decodeURIComponent(m[1]))],
  [/^#\/calls(?:\?(.*))?$/, (m) => callsView(new URLSearchParams(m[1] ?? ''))],
  [/^#\/tuning(?:\?(.*))?$/, (m) => tuningView(new URLSearchParams(m[1] ?? ''))],
  [/^#\/policy$/, () => policyView()],
  [/^#\/lists$/, () => listsView()],
  [/^#\/admin$/, () => adminView()],
];

async function render() {
  if (cleanup) {
    cleanup();
    cleanup = null;
  }
  const hash = location.hash || '#/live';
  const bar = document.getElementById('topbar');
  if (!session.token || hash === '#/login') {
    bar.hidden = true;
    main.replaceChildren(loginView());
    document.getElementById('token').focus();
    return;
  }
  bar.hidden = false;
  document.getElementById('who-name').textContent = session.name;
  const role = document.getElementById('who-role');
  role.textContent = session.role;
  role.className = `badge ${session.role}`;
  // Only a link for those who can use it; a viewer who types #/admin gets the "admins only" page.
  document.getElementById('nav-admin').hidden = !session.isAdmin;
  const route = routes.find(([re]) => re.test(hash));
  for (const a of document.querySelectorAll('#nav a'))
    a.classList.toggle('active', hash.startsWith(`#/${a.dataset.route}`));
  if (!route) {
    location.hash = '#/live';
    return;
  }
  const [re, view] = route;
  main.replaceChildren(h('div.empty', 'Loading…'));
  try {
    const out = await view(re.exec(hash));
    if (location.hash !== hash && !(hash === '#/live' && !location.hash)) return out?.cleanup?.();
    main.replaceChildren(out.el);
    cleanup = out.cleanup ?? null;
    out.mounted?.();
  } catch (err) {
    if (err.status === 401) return;
    main.replaceChildren(
      h('div.panel', h('div.error-box', { role: 'alert' }, `Could not load: ${err.message}`)),
    );
  }
}

document.getElementById('logout').addEventListener('click', () => {
  session.clear();
  location.hash = '#/login';
});
window.addEventListener('hashchange', render);
render();
