// Sign in; on a fresh install, create the first (admin) account; sign up when allowed.
import { h, field, clearErrors, showError } from '../dom.js';
import { get, post, session } from '../api.js';
import { t } from '../i18n.js';
import { loadMe } from '../account.js';

function credentialsForm(kind, onSubmit) {
  const email = h('input', { type: 'email', autocomplete: 'username', required: true,
    maxlength: 254 });
  const password = h('input', { type: 'password', required: true, maxlength: 1024,
    autocomplete: kind === 'signin' ? 'current-password' : 'new-password' });
  const submit = h('button', { class: 'primary wide', type: 'submit',
    text: t(`login.${kind}.submit`) });
  const form = h('form', { class: 'stack', novalidate: true },
    field('email', t('login.email'), email),
    field('password', t('login.password'), password,
      kind === 'signin' ? null : t('login.passwordHint')),
    h('p', { class: 'form-error', role: 'alert' }), submit);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    submit.disabled = true;
    try {
      await onSubmit(email.value.trim(), password.value);
    } catch (err) {
      showError(form, err.message);
    } finally {
      submit.disabled = false;
    }
  });
  return { form, email };
}

async function signIn(email, password) {
  const body = await post('/api/v1b/get_token', { email, password });
  session.token = body.token;
  await loadMe();
}

export function render(view, { done }) {
  const card = h('section', { class: 'card auth-card' });
  view.append(h('div', { class: 'auth-wrap' },
    h('div', { class: 'auth-hero' },
      h('h1', { text: t('login.heroTitle') }), h('p', { text: t('login.heroText') })),
    card));
  let status = { needs_setup: false, allow_signup: false };

  function show(kind) {
    card.replaceChildren();
    const { form, email } = credentialsForm(kind, async (mail, password) => {
      if (kind === 'setup') await post('/api/v1b/setup', { email: mail, password });
      if (kind === 'signup') await post('/api/v1b/signup', { email: mail, password });
      await signIn(mail, password);
      done();
    });
    card.append(h('h2', { text: t(`login.${kind}.title`) }),
      h('p', { class: 'muted', text: t(`login.${kind}.text`) }),
      // The first run: say what the bundled demo model can draw, and where real models come from.
      kind === 'setup' ? h('p', { class: 'small demo-note', id: 'setup-demo', text: t('login.setup.demo') }) : null,
      form);
    if (kind === 'signin' && status.allow_signup) {
      const link = h('button', { class: 'link', type: 'button', text: t('login.toSignup') });
      link.addEventListener('click', () => show('signup'));
      card.append(h('p', { class: 'muted center' }, link));
    } else if (kind === 'signup') {
      const link = h('button', { class: 'link', type: 'button', text: t('login.toSignin') });
      link.addEventListener('click', () => show('signin'));
      card.append(h('p', { class: 'muted center' }, link));
    }
    email.focus();
  }

  get('/api/v1b/setup').then((body) => {
    status = body.info || status;
    show(status.needs_setup ? 'setup' : 'signin');
  }).catch(() => show('signin'));
}
