// The app shell: top bar, hash routes (#/generate, …), sign-in gate, language switch.
import { h, clear } from './dom.js';
import { session, onSignedOut, post } from './api.js';
import { t, lang, setLang, onLangChange } from './i18n.js';
import { loadMe } from './account.js';
import * as login from './pages/login.js';
import * as generate from './pages/generate.js';
import * as gallery from './pages/gallery.js';
import * as datasets from './pages/datasets.js';
import * as training from './pages/training.js';
import * as models from './pages/models.js';
import * as chat from './pages/chat.js';
import * as accounts from './pages/accounts.js';
import * as settings from './pages/settings.js';

const PAGES = { generate, gallery, datasets, training, models, chat, accounts, settings };
const NAV = ['generate', 'gallery', 'datasets', 'training', 'models', 'chat'];
const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
let cleanup = null;

export function navigate(page, query = '') {
  const target = `#/${page}${query ? `?${query}` : ''}`;
  if (location.hash === target) route();
  else location.hash = target;
}

function current() {
  const m = /^#\/([a-z]+)/.exec(location.hash);
  return m && PAGES[m[1]] ? m[1] : 'generate';
}

function renderTopbar(page) {
  clear(topbar);
  const brand = h('a', { class: 'brand', href: '#/generate' },
    h('span', { class: 'logo', 'aria-hidden': 'true' }), h('span', { text: t('brand') }));
  const langBtn = h('button', { class: 'ghost lang', type: 'button', id: 'lang-switch',
    'aria-label': t('switchLanguage'), text: lang() === 'zh' ? 'EN' : '中文' });
  langBtn.addEventListener('click', () => setLang(lang() === 'zh' ? 'en' : 'zh'));
  if (!session.token || !session.user) {
    topbar.append(h('div', { class: 'topbar-inner' }, brand, h('div', { class: 'spacer' }),
      langBtn));
    return;
  }
  const links = NAV.map((name) => h('a', { href: `#/${name}`, class: 'nav-link',
    'aria-current': name === page ? 'page' : null, text: t(`nav.${name}`) }));
  if (session.user.is_admin) {
    links.push(h('a', { href: '#/accounts', class: 'nav-link',
      'aria-current': page === 'accounts' ? 'page' : null, text: t('nav.accounts') }));
  }
  const nav = h('nav', { class: 'nav', id: 'nav', 'aria-label': t('mainNav') }, links);
  const menu = h('button', { class: 'ghost menu-btn', type: 'button', 'aria-expanded': 'false',
    'aria-controls': 'nav', 'aria-label': t('menu'), text: '☰' });
  menu.addEventListener('click', () => {
    const open = nav.classList.toggle('open');
    menu.setAttribute('aria-expanded', String(open));
  });
  nav.addEventListener('click', (ev) => {
    if (ev.target.closest('a')) nav.classList.remove('open');
  });
  const user = h('a', { href: '#/settings', class: 'user-chip', title: t('nav.settings'),
    'aria-current': page === 'settings' ? 'page' : null, text: session.user.email });
  const out = h('button', { class: 'ghost', type: 'button', id: 'sign-out',
    text: t('signOut') });
  out.addEventListener('click', signOut);
  topbar.append(h('div', { class: 'topbar-inner' }, brand, menu, nav,
    h('div', { class: 'spacer' }), langBtn, user, out));
}

async function signOut() {
  try { await post('/api/v1b/revoke_token', {}); } catch { /* already invalid: fine */ }
  session.token = '';
  session.user = null;
  location.hash = '#/generate';
  route();
}

async function route() {
  if (cleanup) { cleanup(); cleanup = null; }
  document.documentElement.lang = lang() === 'zh' ? 'zh-CN' : 'en';
  document.title = t('title');
  if (session.token && !session.user) {
    try { await loadMe(); } catch { session.token = ''; }
  }
  const page = current();
  renderTopbar(page);
  clear(main);
  const view = h('div', { class: `page page-${page}` });
  main.append(view);
  if (!session.token || !session.user) {
    cleanup = login.render(view, { done: () => route() }) || null;
    return;
  }
  const query = new URLSearchParams(location.hash.split('?')[1] || '');
  cleanup = PAGES[page].render(view, { navigate, query }) || null;
}

onSignedOut(() => { session.user = null; route(); });
onLangChange(() => route());
window.addEventListener('hashchange', () => {
  if (location.hash.startsWith('#/') || !location.hash) route();
});
route();
