// The image viewer's Upscale action: one of your images made larger as a task
// (POST /api/v1b/upscale), with Lanczos, Nearest or an upscaler model of the server's
// upscalers folder (GET /api/v1b/upscalers); its card follows the task like any other.
import { h, field, slider, clearErrors, showError } from './dom.js';
import { get, post } from './api.js';
import { t } from './i18n.js';
import { taskCard } from './tasks.js';

let listed = null; // the upscalers, fetched once per page load

async function upscalers() {
  if (!listed) {
    listed = get('/api/v1b/upscalers').then((body) => body.info
      .filter((u) => u.kind !== 'latent' && !u.problem))
      .catch((err) => { listed = null; throw err; });
  }
  return listed;
}

// A button that opens the upscale form below it, in `container`.
export function upscaleButton(imageUrl, container) {
  const button = h('button', { class: 'button', type: 'button', id: 'upscale-btn', text: t('up.button') });
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      container.append(await upscaleForm(imageUrl));
    } catch (err) {
      container.append(h('p', { class: 'error-text', text: err.message }));
      button.disabled = false;
    }
  });
  return button;
}

async function upscaleForm(imageUrl) {
  const choices = await upscalers();
  const upscaler = h('select', { id: 'upscaler-select' }, ...choices.map((u) => h('option', {
    value: u.name,
    text: u.kind === 'model' ? `${u.name} (${u.architecture} ${u.scale}×)` : u.name,
  })));
  // An upscaler model is what people come for: the first one, when the server has any.
  const model = choices.find((u) => u.kind === 'model');
  upscaler.value = model ? model.name : 'Lanczos';
  const scale = slider('scale', t('up.scale'), { min: 1, max: 4, step: 0.5, value: 2 });
  const start = h('button', { class: 'button primary', type: 'submit', id: 'upscale-start', text: t('up.start') });
  const cards = h('div', { class: 'upscale-cards' });
  const form = h('form', { class: 'stack upscale-form', id: 'upscale-form', novalidate: true },
    h('h3', { text: t('up.title') }),
    field('upscaler', t('up.upscaler'), upscaler),
    scale.el,
    h('p', { class: 'form-error', role: 'alert' }), start, cards);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    start.disabled = true;
    const body = { init_img: imageUrl, upscaler: upscaler.value, scale: scale.get() };
    try {
      const { task_id: taskId } = await post('/api/v1b/upscale', body);
      const label = t('up.label', { scale: body.scale, upscaler: body.upscaler });
      // No "use these settings again" on its image: these are not generation settings.
      cards.prepend(taskCard(taskId, { prompt: label }, null));
    } catch (err) {
      showError(form, err.message);
    } finally {
      start.disabled = false;
    }
  });
  return form;
}
