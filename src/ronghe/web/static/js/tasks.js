// Image task cards (live state, progress, cancel, images) and the large-image viewer,
// shared by the generate and gallery pages.
import { h, progressBar, openDialog, sleep } from './dom.js';
import { post } from './api.js';
import { t } from './i18n.js';
import { setPreset } from './account.js';
import { upscaleButton } from './upscaling.js';

const FINAL = new Set(['done', 'failed', 'cancelled', 'not_found']);

export function stateBadge(state) {
  return h('span', { class: `badge state-${state}`, text: t(`state.${state}`) });
}

function paramRows(item) {
  const p = item.params || {};
  const rows = [
    [t('gen.prompt'), item.prompt ?? p.prompt],
    [t('gen.negPrompt'), p.neg_prompt],
    [t('gen.seed'), item.image ? item.image.seed : item.seed],
    [t('gen.size'), item.image ? `${item.image.width}×${item.image.height}` : p.output_size],
    [t('gen.model'), item.model || p.model_name],
    [t('gen.steps'), p.ddim_steps],
    [t('gen.guidance'), p.scale],
    [t('gen.type'), item.task_type],
  ];
  if (p.init_img) rows.push([t('gen.strength'), p.strength]);
  if (p.enable_hr) rows.push([t('hr.title'), `${p.hr_upscaler} × ${p.hr_scale}`]);
  if (item.upscaler) {
    rows.push([t('up.upscaler'), `${item.upscaler} × ${item.scale}`],
      [t('up.source'), item.source_size]);
  }
  for (const lora of p.lora_configs || []) {
    rows.push(['LoRA', `${lora.name || lora.versionid} × ${lora.merge_weight ?? 1}`]);
  }
  for (const cn of p.cn_configs || []) {
    rows.push(['ControlNet', `${cn.cn} × ${cn.weight ?? 1}`]);
  }
  return rows.filter(([, v]) => v !== undefined && v !== null && v !== '');
}

// Opens one image large, with the task's parameters, download and "use again".
export function openViewer(item, index, navigate) {
  const image = item.images[index];
  const info = { ...item, image };
  const list = h('dl', { class: 'params' });
  for (const [k, v] of paramRows(info)) list.append(h('dt', { text: k }), h('dd', { text: String(v) }));
  const actions = h('div', { class: 'actions' },
    h('a', { class: 'button primary', href: image.large, download: `ronghe-${item.task_id}-${index}.jpg`,
      text: t('gallery.download') }));
  if (item.params && navigate) {
    const again = h('button', { class: 'button', type: 'button', id: 'use-again',
      text: t('gallery.useAgain') });
    again.addEventListener('click', () => {
      setPreset({ ...item.params, select_seed: image.seed ?? item.params.select_seed });
      dialog.close();
      navigate('generate');
    });
    actions.append(again);
  }
  const side = h('div', { class: 'viewer-side' }, list, actions);
  actions.append(upscaleButton(image.large, side));
  const body = h('div', { class: 'viewer' },
    h('div', { class: 'viewer-img' }, h('img', { src: image.large, alt: item.prompt || '' })),
    side);
  const dialog = openDialog(t('gallery.image'), body, { wide: true });
  return dialog;
}

export function imageGrid(item, navigate, size = 'middle') {
  const grid = h('div', { class: 'image-grid' });
  item.images.forEach((image, i) => {
    const button = h('button', { class: 'thumb', type: 'button',
      'aria-label': `${t('gallery.open')} ${i + 1}` },
    h('img', { src: image[size] || image.middle, alt: item.prompt || '', loading: 'lazy',
      width: image.width, height: image.height }));
    button.addEventListener('click', () => openViewer(item, i, navigate));
    grid.append(button);
  });
  return grid;
}

// The live step preview of a running task.  Each new URL is loaded off-screen (`new Image()`)
// and put on the card only once it has loaded and decoded, so the card never shows a
// broken or half-drawn frame; one load at a time (the newest URL wins after it); nothing new
// once the task has ended.  The server keeps a preview file until every URL to it has
// expired, so a load that started just before the end still succeeds (jobs/previews.py).
function livePreview(alt, onFrame) {
  const box = h('figure', { class: 'task-preview', hidden: true },
    h('figcaption', { class: 'small muted', text: t('gen.preview') }));
  let shown = '';
  let wanted = '';
  let loading = false;
  let ended = false;
  let frames = 0;
  function load(url) {
    loading = true;
    const img = new Image();
    img.alt = alt;
    img.src = url;
    img.decode().then(() => {
      if (ended) return;
      shown = url;
      frames += 1;
      onFrame(frames);
      box.querySelector('img')?.remove();
      box.prepend(img);
      box.hidden = false;
    }, () => {}).finally(() => {
      loading = false;
      if (!ended && wanted && wanted !== shown && wanted !== url) load(wanted);
    });
  }
  return {
    el: box,
    show(url) {
      wanted = url || '';
      if (!ended && wanted && wanted !== shown && !loading) load(wanted);
    },
    end() { ended = true; box.remove(); },
  };
}

// A live card for one task: polls task_result until it ends.  `params` is what was sent.
export function taskCard(taskId, params, navigate) {
  const badge = h('span');
  const pct = h('span', { class: 'muted small' });
  const bar = progressBar(t('gen.progress'));
  const cancel = h('button', { class: 'button small danger-ghost', type: 'button',
    text: t('gen.cancel') });
  const error = h('p', { class: 'error-text' });
  const images = h('div');
  // data-previews: how many preview frames this card showed (the tests read it).
  const preview = livePreview(params.prompt || '', (n) => { card.dataset.previews = String(n); });
  const card = h('article', { class: 'card task-card', 'data-task': taskId },
    h('div', { class: 'task-head' }, badge, h('p', { class: 'task-prompt', text: params.prompt || '—' }),
      cancel),
    h('div', { class: 'task-progress' }, bar, pct), preview.el, error, images);
  let stopped = false;
  cancel.addEventListener('click', async () => {
    cancel.disabled = true;
    try { await post('/api/v1b/task_cancel', { task_id: taskId }); } catch (err) {
      error.textContent = err.message;
      cancel.disabled = false;
    }
  });
  function show(result) {
    badge.replaceChildren(stateBadge(result.state));
    bar.set(result.state === 'done' ? 1 : result.progress || 0);
    pct.textContent = `${Math.round((result.state === 'done' ? 1 : result.progress || 0) * 100)} %`;
    card.dataset.state = result.state;
    if (FINAL.has(result.state)) {
      preview.end();
      cancel.remove();
      card.querySelector('.task-progress').classList.add('finished');
    } else if (result.state === 'running') preview.show(result.preview);
    if (result.error_msg && result.state !== 'done') error.textContent = result.error_msg;
    if (result.state === 'done') {
      images.replaceChildren(imageGrid({ ...result, params: { ...params, select_seed: result.seed } },
        navigate));
    }
  }
  async function poll() {
    let delay = 400;
    while (!stopped) {
      try {
        const result = await post('/api/v1b/task_result', { task_id: taskId });
        show(result);
        if (FINAL.has(result.state)) return;
      } catch (err) {
        error.textContent = err.message;
        if (err.status === 404 || err.status === 401) return;
      }
      await sleep(delay);
      delay = Math.min(delay * 1.2, 1500);
    }
  }
  show({ state: 'pending', progress: 0 });
  poll();
  card.stop = () => { stopped = true; preview.end(); };
  return card;
}
