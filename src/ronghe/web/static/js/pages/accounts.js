// Accounts (admins): add, disable/enable, reset users; every user's queue.
import { h, field, clearErrors, showError, openDialog } from '../dom.js';
import { post, session } from '../api.js';
import { t } from '../i18n.js';

export function render(view) {
  if (!session.user.is_admin) {
    view.append(h('p', { class: 'error-text', text: t('accounts.adminOnly') }));
    return undefined;
  }
  const email = h('input', { type: 'email', id: 'new-user-email', maxlength: 254 });
  const password = h('input', { type: 'password', id: 'new-user-password', autocomplete: 'new-password' });
  const admin = h('input', { type: 'checkbox', id: 'new-user-admin' });
  const addForm = h('form', { class: 'stack', novalidate: true },
    h('h2', { text: t('accounts.add') }), field('email', t('login.email'), email),
    field('password', t('login.password'), password, t('login.passwordHint')),
    h('label', { class: 'inline', for: 'new-user-admin' }, admin, t('accounts.isAdmin')),
    h('p', { class: 'form-error', role: 'alert' }),
    h('button', { class: 'primary', type: 'submit', id: 'add-user', text: t('accounts.addSubmit') }));
  const table = h('tbody');
  const listError = h('p', { class: 'form-error', role: 'alert' });
  const queue = h('tbody');
  view.append(h('div', { class: 'page-head' }, h('h1', { text: t('nav.accounts') })),
    h('div', { class: 'settings-grid' }, h('section', { class: 'card' }, addForm),
      h('section', { class: 'card wide-card' }, h('h2', { text: t('accounts.users') }), listError,
        h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'users' },
          h('thead', {}, h('tr', {}, ['Email', t('accounts.role'), t('accounts.status'), t('accounts.created'), ''].map((x) => h('th', { text: x })))),
          table)))),
    h('section', { class: 'card' }, h('h2', { text: t('accounts.queue') }),
      h('div', { class: 'table-wrap' }, h('table', { class: 'table', id: 'queue' },
        h('thead', {}, h('tr', {}, [t('accounts.kind'), 'Email', t('accounts.status'), t('gen.progress'), t('accounts.what'), t('accounts.created')].map((x) => h('th', { text: x })))),
        queue))));

  async function act(path, body) {
    listError.textContent = '';
    try { await post(path, body); users(); } catch (err) { listError.textContent = err.message; }
  }
  function reset(u) {
    const pw = h('input', { type: 'password', autocomplete: 'new-password' });
    const form = h('form', { class: 'stack', novalidate: true }, field('password', t('accounts.newPassword'), pw),
      h('p', { class: 'form-error', role: 'alert' }), h('button', { class: 'primary', type: 'submit', text: t('accounts.reset') }));
    const dialog = openDialog(`${t('accounts.reset')}: ${u.email}`, form);
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      try { await post('/api/v1b/admin/user_reset_password', { user_id: u.id, password: pw.value }); dialog.close(); } catch (err) { showError(form, err.message); }
    });
  }
  async function users() {
    try {
      const body = await post('/api/v1b/admin/users', { page: 1, per_page: 100 });
      table.replaceChildren(...body.info.items.map((u) => {
        const toggle = h('button', { class: 'button small', type: 'button',
          text: u.is_active ? t('accounts.disable') : t('accounts.enable') });
        toggle.addEventListener('click', () => act(u.is_active ? '/api/v1b/admin/user_disable' : '/api/v1b/admin/user_enable', { user_id: u.id }));
        const resetBtn = h('button', { class: 'button small', type: 'button', text: t('accounts.reset') });
        resetBtn.addEventListener('click', () => reset(u));
        return h('tr', { 'data-user': u.email }, h('td', { text: u.email }),
          h('td', { text: u.is_admin ? t('accounts.admin') : t('accounts.user') }),
          h('td', {}, h('span', { class: `badge ${u.is_active ? 'state-done' : 'state-cancelled'}`, text: u.is_active ? t('accounts.active') : t('accounts.disabled') })),
          h('td', { class: 'muted small', text: u.create_time }), h('td', { class: 'row-actions' }, toggle, resetBtn));
      }));
    } catch (err) { listError.textContent = err.message; }
  }
  async function loadQueue() {
    try {
      const body = await post('/api/v1b/admin/queue', { page: 1, per_page: 100 });
      queue.replaceChildren(...body.info.items.map((q) => h('tr', {}, h('td', { text: q.kind }), h('td', { text: q.email }),
        h('td', {}, h('span', { class: `badge state-${q.state}`, text: t(`state.${q.state}`) })),
        h('td', { text: `${Math.round((q.progress || 0) * 100)} %` }), h('td', { class: 'clip', text: q.prompt || q.model_name || '' }),
        h('td', { class: 'muted small', text: q.create_time }))));
      if (!body.info.items.length) queue.append(h('tr', {}, h('td', { colspan: 6, class: 'muted', text: t('accounts.queueEmpty') })));
    } catch (err) { queue.replaceChildren(h('tr', {}, h('td', { colspan: 6, class: 'error-text', text: err.message }))); }
  }
  addForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(addForm);
    try {
      await post('/api/v1b/admin/user_add', { email: email.value.trim(), password: password.value, is_admin: admin.checked });
      email.value = '';
      password.value = '';
      admin.checked = false;
      users();
    } catch (err) { showError(addForm, err.message); }
  });
  users();
  loadQueue();
  const timer = setInterval(loadQueue, 3000);
  return () => clearInterval(timer);
}
