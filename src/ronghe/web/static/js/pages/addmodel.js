// The Models page's "Add a model" panel (admins): pull a model from the catalogue, a Hub repo
// id or a URL into the server's models folder, with live progress and Cancel.  A pull is a
// server task (POST /admin/models/pull); the panel polls /admin/models/pulls while one runs
// and calls onInstalled when one ends done, so the model's card appears.
import { h, field, select, clearErrors, showError, progressBar, formatSeconds } from '../dom.js';
import { post } from '../api.js';
import { t } from '../i18n.js';

const ACTIVE = new Set(['pending', 'running']);
const POLL_MS = 1000;

function megabytes(n) {
  if (n == null) return '?';
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : `${(n / 1e6).toFixed(1)} MB`;
}

function stats(p) {
  const parts = [`${megabytes(p.bytes_done)} / ${megabytes(p.bytes_total)}`];
  if (p.speed) parts.push(`${megabytes(p.speed)}/s`);
  if (p.eta_seconds != null) parts.push(t('pull.eta', { eta: formatSeconds(p.eta_seconds) }));
  return parts.join(' · ');
}

function pullRow(p, onCancel) {
  const bar = progressBar(t('pull.progress'));
  bar.set(p.state === 'done' ? 1 : p.progress || 0);
  const title = p.name || p.ref;
  const phase = p.state === 'running' && p.phase ? t(`pull.phase.${p.phase}`) : t(`state.${p.state}`);
  let line = '';
  if (p.state === 'running' && p.phase === 'downloading') line = stats(p);
  else if (p.state === 'done' && p.result) {
    line = t('pull.installed', { kind: p.result.kind, family: p.result.family || '–',
      size: megabytes(p.result.bytes) });
  }
  const cancel = ACTIVE.has(p.state)
    ? h('button', { class: 'button small', type: 'button', text: t('gen.cancel'),
      onclick: () => onCancel(p) }) : null;
  return h('li', { class: 'pull', 'data-task': p.task_id, 'data-state': p.state },
    h('div', { class: 'pull-head' }, h('strong', { class: 'clip', text: title }),
      h('span', { class: `badge state-${p.state}`, text: phase }), cancel),
    ACTIVE.has(p.state) ? h('div', { class: 'task-progress' }, bar) : null,
    line ? h('p', { class: 'small muted pull-stats', text: line }) : null,
    p.error_msg && p.state !== 'cancelled'
      ? h('p', { class: 'error-text small', text: p.error_msg }) : null,
    p.result && p.result.problem ? h('p', { class: 'error-text small', text: p.result.problem }) : null);
}

export function addModelPanel({ onInstalled }) {
  const pick = select([{ value: '', label: t('pull.pickNone') }]);
  pick.id = 'pull-catalogue';
  const about = h('p', { class: 'small muted', id: 'pull-about' });
  const ref = h('input', { type: 'text', id: 'pull-ref', maxlength: 2048,
    placeholder: t('pull.refPlaceholder'), autocomplete: 'off', spellcheck: 'false' });
  const name = h('input', { type: 'text', id: 'pull-name', maxlength: 128 });
  const file = h('input', { type: 'text', id: 'pull-file', maxlength: 1024 });
  const sha = h('input', { type: 'text', id: 'pull-sha256', maxlength: 64 });
  const pickle = h('input', { type: 'checkbox', id: 'pull-pickle' });
  const start = h('button', { class: 'primary', type: 'submit', id: 'pull-start', text: t('pull.start') });
  const form = h('form', { class: 'stack', novalidate: true, id: 'pull-form' },
    field('catalogue', t('pull.catalogue'), pick), about,
    field('ref', t('pull.ref'), ref, t('pull.refHint')),
    h('details', { class: 'panel' }, h('summary', { text: t('pull.more') }),
      field('name', t('pull.name'), name, t('pull.nameHint')),
      field('file', t('pull.file'), file, t('pull.fileHint')),
      field('sha256', 'SHA-256', sha),
      h('label', { class: 'inline', for: 'pull-pickle' }, pickle, t('pull.allowPickle'))),
    h('p', { class: 'form-error', role: 'alert' }), start);
  const list = h('ul', { class: 'pulls', id: 'pulls' });
  const panel = h('section', { class: 'card add-model', id: 'add-model' },
    h('h2', { text: t('pull.title') }), h('p', { class: 'muted', text: t('pull.text') }),
    form, list);

  let entries = [];
  let known = new Map();
  let timer = null;
  let stopped = false;

  function describe(entry) {
    if (!entry) { about.replaceChildren(); return; }
    const facts = [entry.title, entry.family, `${entry.size_gb} GB`,
      entry.vram_gb ? t('pull.vram', { gb: entry.vram_gb }) : null].filter(Boolean).join(' · ');
    about.replaceChildren(facts, ' · ', t('pull.licence'), ' ',
      h('a', { href: entry.licence_url, target: '_blank', rel: 'noopener noreferrer', text: entry.licence }),
      entry.gated ? h('span', { class: 'error-text', text: ` · ${t('pull.gated')}` }) : null,
      entry.installed ? h('span', { class: 'chip', text: t('pull.isInstalled') }) : null);
  }

  async function loadCatalogue() {
    try {
      const body = await post('/api/v1b/admin/models/catalogue', {});
      entries = body.info.items;
      const current = pick.value;
      pick.replaceChildren(h('option', { value: '', text: t('pull.pickNone') }),
        ...['image', 'chat'].map((kind) => h('optgroup', { label: t(`pull.kind.${kind}`) },
          entries.filter((e) => e.kind === kind).map((e) => h('option', { value: e.name,
            text: `${e.name} — ${e.title} (${e.size_gb} GB)${e.installed ? ' ✓' : ''}` })))));
      pick.value = current;
      describe(entries.find((e) => e.name === pick.value));
    } catch (err) { about.textContent = err.message; }
  }

  async function cancel(p) {
    try { await post('/api/v1b/admin/models/pull_cancel', { task_id: p.task_id }); } catch (err) {
      showError(form, err.message);
    }
    refresh();
  }

  async function refresh() {
    if (timer) { clearTimeout(timer); timer = null; }
    let items = [];
    try {
      items = (await post('/api/v1b/admin/models/pulls', { limit: 10 })).info.items;
    } catch (err) {
      list.replaceChildren(h('li', { class: 'error-text', text: err.message }));
    }
    if (stopped) return;
    let installed = false;
    for (const p of items) {
      const before = known.get(p.task_id);
      if (before && ACTIVE.has(before) && p.state === 'done') installed = true;
    }
    known = new Map(items.map((p) => [p.task_id, p.state]));
    list.replaceChildren(...items.map((p) => pullRow(p, cancel)));
    if (installed) { onInstalled(); loadCatalogue(); }
    if (items.some((p) => ACTIVE.has(p.state))) timer = setTimeout(refresh, POLL_MS);
  }

  pick.addEventListener('change', () => {
    if (pick.value) ref.value = pick.value;
    describe(entries.find((e) => e.name === pick.value));
  });
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    start.disabled = true;
    try {
      await post('/api/v1b/admin/models/pull', { ref: ref.value.trim(), name: name.value.trim(),
        file: file.value.trim(), sha256: sha.value.trim(), allow_pickle: pickle.checked });
      ref.value = '';
      pick.value = '';
      describe(null);
      await refresh();
    } catch (err) {
      const shown = showError(form, err.message);
      const more = shown && shown.closest('details');
      if (more) more.open = true;
    } finally {
      start.disabled = false;
    }
  });

  loadCatalogue();
  refresh();
  return { el: panel, stop: () => { stopped = true; if (timer) clearTimeout(timer); },
    focus: () => { panel.scrollIntoView({ behavior: 'smooth' }); ref.focus(); } };
}
