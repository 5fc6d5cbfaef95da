// Generate: the form is built from get_generation_form; each submit adds a live task card.
import { h, field, select, slider, clearErrors, showError } from '../dom.js';
import { get, post } from '../api.js';
import { t } from '../i18n.js';
import { takePreset } from '../account.js';
import { taskCard } from '../tasks.js';
import { imagePicker } from '../imagepick.js';
import { controlNetUnits, loraUnits } from '../genunits.js';
import { samplerControls } from '../sampling.js';
import { hiresControls } from '../hires.js';
import { maskEditor } from '../maskpaint.js';
import { pngInfoDrop } from '../pnginfo.js';

const recent = []; // task ids submitted while the page is open (newest first)
let lastSeed = null;

function byName(form) {
  return Object.fromEntries(form.map((f) => [f.name, f]));
}

async function loadLoras() {
  const out = [];
  for (const path of ['/api/v1b/models/private', '/api/v1b/models/lora']) {
    try {
      const body = await post(path, { page: 1, per_page: 100 });
      for (const m of body.info.models) {
        if (!out.some((x) => x.versionid === m.versionid)) out.push(m);
      }
    } catch { /* a listing that fails just offers fewer LoRAs */ }
  }
  return out;
}

export function render(view, { navigate, query }) {
  const formCol = h('section', { class: 'card gen-form', 'aria-label': t('gen.title') },
    h('p', { class: 'loading', text: t('loading') }));
  const results = h('div', { class: 'results-list', id: 'results' });
  view.append(h('div', { class: 'gen-layout' }, formCol,
    h('section', { class: 'gen-results', 'aria-label': t('gen.results') },
      h('h2', { text: t('gen.results') }),
      h('p', { class: 'muted empty-hint', text: t('gen.empty') }), results)));
  const cards = [];
  const show = (items) => {
    for (const item of items) {
      const card = taskCard(item.task_id, item.params, navigate);
      cards.push(card);
      results.append(card);
    }
  };
  if (recent.length) show(recent);
  else {
    // After a reload: your latest tasks, so the page is never blank for a returning user.
    post('/api/v1b/task_list', { page: 1, per_page: 4 }).then((body) => {
      if (!results.childElementCount) show(body.info.items.map((x) => ({ task_id: x.task_id, params: x.params || {} })));
    }).catch(() => {});
  }
  Promise.all([get('/api/v1b/get_generation_form'), loadLoras()]).then(([form, loras]) => {
    build(formCol, byName(form.info), loras, { navigate, query, results, cards });
  }).catch((err) => {
    formCol.replaceChildren(h('p', { class: 'error-text', text: err.message }));
  });
  return () => cards.forEach((c) => c.stop());
}

function build(col, f, loras, { navigate, query, results, cards }) {
  const models = f.model_name.models;
  const trained = f.model_name.trained || [];
  const info = (name) => {
    const own = trained.find((x) => x.name === name);
    const base = own ? own.base_model : name;
    return models.find((m) => m.name === base || m.aliases.includes(base)) || models[0];
  };
  const defaultModel = (models.find((m) => m.default) || models[0] || {}).name;
  const modelSel = select([
    { group: t('gen.baseModels'), options: models.map((m) => ({ value: m.name,
      label: m.aliases.length ? `${m.name} (${m.aliases.join(', ')})` : m.name })) },
    ...(trained.length ? [{ group: t('gen.yourModels'),
      options: trained.map((x) => ({ value: x.name, label: x.name })) }] : []),
  ], defaultModel);
  const prompt = h('textarea', { rows: 4, maxlength: 2000, placeholder: t('gen.promptPlaceholder') });
  const neg = h('textarea', { rows: 2, maxlength: 2000, placeholder: t('gen.negPlaceholder') });
  const modelHint = h('p', { class: 'small muted', id: 'model-family' });
  const count = slider('n_images', t('gen.count'), { min: f.n_images.min, max: f.n_images.max, value: f.n_images.default });
  const size = h('select');
  const width = h('input', { type: 'number', min: 8, step: 8, value: 512 });
  const height = h('input', { type: 'number', min: 8, step: 8, value: 512 });
  const custom = h('div', { class: 'two', hidden: true },
    field('width', t('gen.width'), width), field('height', t('gen.height'), height));
  const seedRandom = h('input', { type: 'radio', name: 'seed-mode', value: 'random', checked: true, id: 'seed-random' });
  const seedFixed = h('input', { type: 'radio', name: 'seed-mode', value: 'fixed', id: 'seed-fixed' });
  const seed = h('input', { type: 'number', min: 0, max: f.select_seed.accepted_max, value: 0,
    disabled: true, 'aria-label': t('gen.seedValue') });
  const reuse = h('button', { class: 'button small', type: 'button', text: t('gen.reuseSeed'), disabled: true });
  const guidance = slider('scale', t('gen.guidance'), { min: f.scale.min, max: f.scale.max, step: 0.5, value: 7 });
  const steps = slider('ddim_steps', t('gen.steps'), { min: f.ddim_steps.min, max: f.ddim_steps.max, value: f.ddim_steps.default });
  const sampling = samplerControls();
  const hires = hiresControls(Object.values(f));
  const addPrompt = h('input', { type: 'checkbox', id: 'add-prompt' });
  const mask = maskEditor();
  const initImg = imagePicker('init_img', t('gen.initImage'), (url, src) => mask.setSource(src));
  const strength = slider('strength', t('gen.strength'), { min: 0, max: 1, step: 0.05, value: f.strength.default });
  const cnUnits = controlNetUnits(() => info(modelSel.value).controlnets);
  const loraRows = loraUnits(() => loras.filter((x) => !x.base_model || x.base_model === info(modelSel.value).name));
  const submit = h('button', { class: 'primary wide', type: 'submit', id: 'generate-btn', text: t('gen.submit') });

  function fillSizes(keep) {
    const m = info(modelSel.value);
    const groups = Object.entries(m.resolution).filter(([, s]) => s.length)
      .map(([ratio, sizes]) => ({ group: ratio, options: sizes.map((s) => ({ value: s, label: s.replace('x', ' × ') })) }));
    size.replaceChildren();
    for (const g of [...groups, { options: [{ value: 'custom', label: t('gen.customSize') }] }]) {
      const parent = g.group ? h('optgroup', { label: g.group }) : size;
      for (const o of g.options) parent.append(h('option', { value: o.value, text: o.label }));
      if (g.group) size.append(parent);
    }
    const all = groups.flatMap((g) => g.options.map((o) => o.value));
    const want = keep || f.resolution.default;
    if (all.includes(want)) size.value = want;
    else if (/^\d+x\d+$/.test(want || '')) {
      size.value = 'custom';
      [width.value, height.value] = want.split('x');
    } else size.value = all[0] || 'custom';
    for (const el of [width, height]) { el.min = m.min_size; el.max = m.max_size; el.step = m.size_step || 8; }
    custom.hidden = size.value !== 'custom';
  }
  function modelChanged() {
    const m = info(modelSel.value);
    // The family and what it takes: sizes, and whether a negative prompt reaches it.
    modelHint.textContent = m.family_label ? t('gen.familyHint', { family: m.family_label,
      min: m.min_size, max: m.max_size, step: m.size_step || 8 }) : '';
    neg.disabled = m.negative_prompt === false;
    neg.placeholder = m.negative_prompt === false ? t('gen.negIgnored') : t('gen.negPlaceholder');
    fillSizes(size.value && size.value !== 'custom' ? size.value : null);
    guidance.set(m.default_scale);
    steps.set(m.default_steps);
    sampling.setChoices(m.samplers);
    hires.setChoices(m.hires_upscalers);
    mask.setFills(m.inpainting_fills);
    cnUnits.setChoices(m.controlnets);
  }
  size.addEventListener('change', () => { custom.hidden = size.value !== 'custom'; });
  modelSel.addEventListener('change', modelChanged);
  const seedMode = () => { seed.disabled = !seedFixed.checked; };
  seedRandom.addEventListener('change', seedMode);
  seedFixed.addEventListener('change', seedMode);
  reuse.addEventListener('click', () => {
    seedFixed.checked = true;
    seedMode();
    seed.value = lastSeed;
  });

  const form = h('form', { class: 'stack', novalidate: true, id: 'generate-form' },
    h('h1', { class: 'form-title', text: t('gen.title') }),
    field('model_name', t('gen.model'), modelSel),
    modelHint,
    field('prompt', t('gen.prompt'), prompt),
    field('neg_prompt', t('gen.negPrompt'), neg),
    h('div', { class: 'two' }, count.el, h('div', { class: 'field', 'data-field': 'output_size' },
      h('label', { for: 'size-select', text: t('gen.size') }), size,
      h('p', { class: 'field-error', role: 'alert' }))),
    custom,
    h('fieldset', { class: 'field seed', 'data-field': 'select_seed' },
      h('legend', { text: t('gen.seed') }),
      h('div', { class: 'seed-row' },
        h('label', { class: 'inline' }, seedRandom, t('gen.seedRandom')),
        h('label', { class: 'inline' }, seedFixed, t('gen.seedFixed')), seed, reuse),
      h('p', { class: 'field-error', role: 'alert' })),
    h('div', { class: 'two' }, guidance.el, steps.el),
    sampling.el,
    hires.el,
    h('div', { class: 'field check', 'data-field': 'add_prompt' },
      h('label', { class: 'inline', for: 'add-prompt' }, addPrompt, t('gen.addPrompt')),
      h('p', { class: 'hint', text: t('gen.addPromptHint') }), h('p', { class: 'field-error', role: 'alert' })),
    h('details', { class: 'panel', id: 'panel-img2img' }, h('summary', { text: t('gen.img2img') }),
      h('p', { class: 'hint', text: t('gen.img2imgHint') }), initImg.el, strength.el, mask.el),
    h('details', { class: 'panel', id: 'panel-cn' }, h('summary', { text: 'ControlNet' }),
      h('div', { 'data-field': 'cn_configs' }, cnUnits.el, h('p', { class: 'field-error', role: 'alert' }))),
    h('details', { class: 'panel', id: 'panel-lora' }, h('summary', { text: 'LoRA' }),
      h('div', { 'data-field': 'lora_configs' }, loraRows.el, h('p', { class: 'field-error', role: 'alert' }))),
    h('p', { class: 'form-error', role: 'alert' }),
    h('div', { class: 'sticky-submit' }, submit));
  size.id = 'size-select';
  col.replaceChildren(form);
  fillSizes();
  modelChanged();

  function apply(p) {
    if (p.model_name) {
      const known = [...modelSel.options].map((o) => o.value);
      const m = known.includes(p.model_name) ? p.model_name
        : (models.find((x) => x.aliases.includes(p.model_name)) || {}).name;
      if (m) { modelSel.value = m; modelChanged(); }
    }
    if (p.prompt != null) prompt.value = p.prompt;
    if (p.neg_prompt != null) neg.value = p.neg_prompt;
    if (p.n_images) count.set(p.n_images);
    if (p.output_size) fillSizes(p.output_size);
    if (p.scale) guidance.set(p.scale);
    if (p.ddim_steps) steps.set(p.ddim_steps);
    if (p.sampler_name != null) sampling.set(p.sampler_name, p.scheduler);
    hires.set(p);
    if (p.select_seed != null && p.select_seed >= 0) {
      seedFixed.checked = true;
      seed.value = p.select_seed;
      seedMode();
    }
    addPrompt.checked = Boolean(p.add_prompt);
    if (p.init_img) { initImg.set(p.init_img); form.querySelector('#panel-img2img').open = true; }
    if (p.strength != null) strength.set(p.strength);
    mask.set(p);
    if (p.cn_configs && p.cn_configs.length) { cnUnits.set(p.cn_configs); form.querySelector('#panel-cn').open = true; }
    if (p.lora_configs && p.lora_configs.length) { loraRows.set(p.lora_configs); form.querySelector('#panel-lora').open = true; }
  }
  // PNG info (pnginfo.js): the settings an image carries, as task_submit fields.  LoRAs are
  // matched to yours by name or id; what this server lacks is named, not guessed.
  function fromImage(settings) {
    const p = { ...settings };
    const skipped = [];
    const knownModel = [...modelSel.options].some((o) => o.value === p.model_name)
      || models.some((m) => m.aliases.includes(p.model_name));
    if (p.model_name && !knownModel) skipped.push(p.model_name);
    if (p.lora_configs) {
      p.lora_configs = p.lora_configs.map((x) => {
        const found = loras.find((l) => String(l.versionid) === String(x.versionid)
          || l.model_name === x.versionid);
        if (!found) skipped.push(`LoRA ${x.versionid}`);
        return found ? { versionid: found.versionid, merge_weight: x.merge_weight } : null;
      }).filter(Boolean);
    }
    // The image's own seed: it draws the same picture again.
    apply({ ...p, add_prompt: false });
    return skipped;
  }
  const pngInfo = pngInfoDrop(col.parentElement || col, fromImage);
  form.querySelector('.form-title').after(pngInfo.el);

  const preset = takePreset();
  if (preset) apply(preset);
  else if (query.get('model')) apply({ model_name: query.get('model') });

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clearErrors(form);
    const outputSize = size.value === 'custom' ? `${width.value}x${height.value}` : size.value;
    const body = {
      model_name: modelSel.value, prompt: prompt.value, neg_prompt: neg.value,
      n_images: count.get(), output_size: outputSize, scale: guidance.get(),
      ddim_steps: steps.get(), add_prompt: addPrompt.checked,
      select_seed: seedFixed.checked ? Number(seed.value) : -1,
      init_img: initImg.get(), strength: strength.get(),
      cn_configs: cnUnits.get(), lora_configs: loraRows.get(), ...sampling.get(),
      ...hires.get(),
    };
    submit.disabled = true;
    try {
      Object.assign(body, await mask.get()); // uploads the painted mask, if any
      const { task_id: taskId } = await post('/api/v1b/task_submit', body);
      recent.unshift({ task_id: taskId, params: body });
      if (recent.length > 12) recent.pop();
      const card = taskCard(taskId, body, navigate);
      cards.push(card);
      results.prepend(card);
      // On a phone the results are below the form: bring the new card into view.
      if (matchMedia('(max-width: 1000px)').matches) card.scrollIntoView({ block: 'start' });
      watchSeed(taskId);
    } catch (err) {
      showError(form, err.message);
    } finally {
      submit.disabled = false;
    }
  });
  async function watchSeed(taskId) {
    // The seed a random task used, for "reuse seed".
    for (let i = 0; i < 3; i += 1) {
      try {
        const r = await post('/api/v1b/task_result', { task_id: taskId });
        if (r.seed != null && r.seed >= 0) {
          lastSeed = r.seed;
          reuse.disabled = false;
          return;
        }
      } catch { return; }
    }
  }
  if (lastSeed != null) reuse.disabled = false;
}
