// Training: submit a LoRA training, follow it live (step/total, ETA, loss chart, previews).
import { h, field, select, clearErrors, showError, progressBar, sleep, formatSeconds } from '../dom.js';
import { get, post } from '../api.js';
import { t } from '../i18n.js';
import { lineChart } from '../chart.js';

const FINAL = new Set(['done', 'failed', 'cancelled']);

export function render(view, { navigate, query }) {
  const formCard = h('section', { class: 'card train-form' }, h('p', { class: 'loading', text: t('loading') }));
  const list = h('div', { class: 'train-list', id: 'trainings' });
  view.append(h('div', { class: 'page-head' }, h('h1', { text: t('train.title') }),
    h('p', { class: 'muted', text: t('train.subtitle') })),
  h('div', { class: 'train-layout' }, formCard, h('section', { 'aria-label': t('train.runs') },
    h('h2', { text: t('train.runs') }), list)));
  const monitors = [];
  let stopped = false;

  function follow(taskId, prepend = false) {
    const m = monitor(taskId, navigate);
    monitors.push(m);
    if (prepend) list.prepend(m.el); else list.append(m.el);
  }
  post('/api/v1b/task_list', { kind: 'train', page: 1, per_page: 10 }).then((body) => {
    if (stopped) return;
    if (!body.info.items.length) list.append(h('p', { class: 'muted', text: t('train.none') }));
    for (const item of body.info.items) follow(item.task_id);
  }).catch((err) => list.append(h('p', { class: 'error-text', text: err.message })));

  Promise.all([get('/api/v1b/get_train_form'), post('/api/v1b/dataset_all?per_page=100', {})])
    .then(([form, ds]) => buildForm(formCard, form.info, ds.items, query, (id) => {
      list.querySelector('p.muted')?.remove();
      follow(id, true);
    }))
    .catch((err) => formCard.replaceChildren(h('p', { class: 'error-text', text: err.message })));
  return () => { stopped = true; monitors.forEach((m) => m.stop()); };
}

function buildForm(card, info, datasets, query, submitted) {
  const name = h('input', { type: 'text', maxlength: 128, required: true, id: 'train-name' });
  const trigger = h('input', { type: 'text', maxlength: 100, id: 'train-trigger' });
  const body = select(info.main_body.map((b) => ({ value: b, label: t(`body.${b}`) })), 'Style');
  const base = select([{ value: '自动选择', label: t('train.auto') },
    ...info.base_model.map((b) => ({ value: b, label: b }))], '自动选择');
  const steps = h('input', { type: 'number', min: 1, max: 100000, id: 'train-steps' });
  const preset = () => (info.presets || {})[body.value] || {};
  const stepsHint = h('p', { class: 'hint' });
  const syncHint = () => {
    steps.placeholder = String(preset().steps || '');
    stepsHint.textContent = t('train.stepsHint', { n: preset().steps || '?' });
  };
  body.addEventListener('change', syncHint);
  const wanted = query.get('dataset');
  const boxes = datasets.map((d) => h('label', { class: 'check-card' },
    h('input', { type: 'checkbox', value: d.id, checked: String(d.id) === wanted || datasets.length === 1 }),
    d.demo_picture ? h('img', { src: d.demo_picture, alt: '' }) : null,
    h('span', { text: d.name }), h('span', { class: 'muted small', text: t('ds.images', { n: d.images_num }) })));
  const submit = h('button', { class: 'primary wide', type: 'submit', id: 'train-submit', text: t('train.submit') });
  const form = h('form', { class: 'stack', novalidate: true },
    h('h2', { text: t('train.new') }),
    field('name', t('train.name'), name, t('train.nameHint')),
    field('trigger_word', t('train.trigger'), trigger, t('train.triggerHint')),
    h('div', { class: 'two' }, field('main_body', t('train.mainBody'), body), field('base_model', t('train.base'), base)),
    h('fieldset', { class: 'field', 'data-field': 'dataset' }, h('legend', { text: t('train.datasets') }),
      boxes.length ? h('div', { class: 'check-grid' }, boxes) : h('p', { class: 'muted', text: t('train.noDatasets') }),
      h('p', { class: 'field-error', role: 'alert' })),
    field('steps', t('train.steps'), steps), stepsHint,
    h('p', { class: 'form-error', role: 'alert' }), submit);
  syncHint();
  card.replaceChildren(form);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const chosen = boxes.map((b) => b.querySelector('input')).filter((i) => i.checked).map((i) => Number(i.value));
    const payload = { name: name.value, trigger_word: trigger.value, main_body: body.value,
      base_model: base.value, dataset: chosen, nsfw: 0 };
    if (steps.value) payload.steps = Number(steps.value);
    submit.disabled = true;
    try {
      const res = await post('/api/v1b/train_submit', payload);
      submitted(res.info.task_id);
      name.value = '';
    } catch (err) { showError(form, err.message); } finally { submit.disabled = false; }
  });
}

function monitor(taskId, navigate) {
  const title = h('h3', { class: 'train-name' });
  const badge = h('span');
  const bar = progressBar(t('train.progress'));
  const stats = h('p', { class: 'train-stats', role: 'status' });
  const chart = lineChart(t('train.loss'), { xLabel: t('train.step'), yLabel: 'loss' });
  const previews = h('div', { class: 'image-grid small previews' });
  const error = h('p', { class: 'error-text' });
  const actions = h('div', { class: 'actions' });
  const cancel = h('button', { class: 'button danger-ghost', type: 'button', text: t('gen.cancel') });
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try { await post('/api/v1b/train_cancel', { task_id: taskId }); } catch (err) { error.textContent = err.message; }
  });
  const el = h('article', { class: 'card train-card', 'data-task': taskId },
    h('div', { class: 'task-head' }, badge, title), bar, stats,
    h('div', { class: 'chart-wrap' }, chart), previews, error, actions);
  let stopped = false;
  let shownSamples = 0;

  function show(p) {
    title.textContent = p.model_name;
    badge.replaceChildren(h('span', { class: `badge state-${p.state}`,
      text: p.state === 'running' ? t(`phase.${p.phase}`) : t(`state.${p.state}`) }));
    el.dataset.state = p.state;
    bar.set(p.training_progress || 0);
    const pct = Math.round((p.training_progress || 0) * 100);
    stats.textContent = t('train.stats', { pct, step: p.step ?? 0, total: p.total_steps ?? '?',
      eta: formatSeconds(p.eta_seconds), loss: p.loss != null ? p.loss.toFixed(4) : '–' });
    // The server keeps the whole (bounded) curve, so a reload draws it again.
    chart.update((p.loss_history || []).map(([x, y]) => ({ x, y })), p.total_steps);
    if ((p.samples || []).length !== shownSamples) {
      shownSamples = p.samples.length;
      previews.replaceChildren(...p.samples.map((s) => h('figure', { class: 'thumb static' },
        h('img', { src: s.url, alt: `${p.model_name} @ ${s.step}` }), h('figcaption', { class: 'small muted', text: `${t('train.step')} ${s.step}` }))));
    }
    error.textContent = p.state !== 'done' ? p.error_msg || '' : '';
    actions.replaceChildren();
    if (!FINAL.has(p.state)) actions.append(cancel);
    if (p.state === 'done') {
      const go = h('button', { class: 'primary', type: 'button', text: t('train.generate') });
      go.addEventListener('click', () => navigate('generate', `model=${encodeURIComponent(p.model_name)}`));
      actions.append(go);
    }
  }
  (async () => {
    while (!stopped) {
      try {
        const p = await post('/api/v1b/train_progress', { task_id: taskId });
        show(p);
        if (FINAL.has(p.state)) return;
      } catch (err) {
        error.textContent = err.message;
        if (err.status === 404 || err.status === 401) return;
      }
      await sleep(1000);
    }
  })();
  return { el, stop: () => { stopped = true; } };
}
