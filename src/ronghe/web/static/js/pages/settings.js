// Settings: change your password; create and revoke chat API keys (a key is shown once).
import { h, field, clearErrors, showError } from '../dom.js';
import { post, session } from '../api.js';
import { t } from '../i18n.js';

export function render(view) {
  const oldPw = h('input', { type: 'password', autocomplete: 'current-password', id: 'old-password' });
  const newPw = h('input', { type: 'password', autocomplete: 'new-password', id: 'new-password' });
  const pwDone = h('p', { class: 'ok-text', role: 'status' });
  const pwForm = h('form', { class: 'stack', novalidate: true },
    h('h2', { text: t('settings.password') }),
    field('old_password', t('settings.oldPassword'), oldPw),
    field('new_password', t('settings.newPassword'), newPw, t('login.passwordHint')),
    h('p', { class: 'form-error', role: 'alert' }), pwDone,
    h('button', { class: 'primary', type: 'submit', id: 'change-password', text: t('settings.change') }));
  pwForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(pwForm);
    pwDone.textContent = '';
    try {
      await post('/api/v1b/change_password', { old_password: oldPw.value, new_password: newPw.value });
      oldPw.value = '';
      newPw.value = '';
      pwDone.textContent = t('settings.changed');
    } catch (err) { showError(pwForm, err.message); }
  });

  const keyName = h('input', { type: 'text', maxlength: 128, id: 'key-name' });
  const shown = h('div', { class: 'key-shown', role: 'status' });
  const keys = h('ul', { class: 'key-list', id: 'key-list' });
  const keyForm = h('form', { class: 'stack', novalidate: true },
    h('h2', { text: t('settings.keys') }), h('p', { class: 'muted', text: t('settings.keysText') }),
    h('div', { class: 'row-end' }, field('name', t('settings.keyName'), keyName),
      h('button', { class: 'primary', type: 'submit', id: 'create-key', text: t('settings.createKey') })),
    h('p', { class: 'form-error', role: 'alert' }), shown, keys);

  async function list() {
    try {
      const body = await post('/api/v1b/api_keys/list', {});
      keys.replaceChildren(...body.info.items.map((k) => {
        const revoke = h('button', { class: 'button small danger-ghost', type: 'button', text: t('settings.revoke') });
        revoke.addEventListener('click', async () => {
          try { await post('/api/v1b/api_keys/revoke', { id: k.id }); list(); } catch (err) { showError(keyForm, err.message); }
        });
        return h('li', { class: 'key-row' }, h('div', {}, h('strong', { text: k.name || '—' }), ' ',
          h('code', { text: `${k.prefix}…` }), h('p', { class: 'muted small',
            text: `${t('settings.created')} ${k.create_time} · ${t('settings.lastUsed')} ${k.last_used_time || t('settings.never')}` })), revoke);
      }));
      if (!body.info.items.length) keys.append(h('li', { class: 'muted', text: t('settings.noKeys') }));
    } catch (err) { showError(keyForm, err.message); }
  }
  keyForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(keyForm);
    try {
      const body = await post('/api/v1b/api_keys/create', { name: keyName.value });
      keyName.value = '';
      const code = h('code', { class: 'secret', id: 'new-key', text: body.info.key });
      const copy = h('button', { class: 'button small', type: 'button', text: t('settings.copy') });
      copy.addEventListener('click', () => navigator.clipboard?.writeText(body.info.key).then(
        () => { copy.textContent = t('settings.copied'); }, () => {}));
      shown.replaceChildren(h('p', { text: t('settings.keyOnce') }), h('div', { class: 'secret-row' }, code, copy));
      list();
    } catch (err) { showError(keyForm, err.message); }
  });
  view.append(h('div', { class: 'page-head' }, h('h1', { text: t('nav.settings') }),
    h('p', { class: 'muted', text: session.user.email })),
  h('div', { class: 'settings-grid' }, h('section', { class: 'card' }, pwForm), h('section', { class: 'card' }, keyForm)));
  list();
}
