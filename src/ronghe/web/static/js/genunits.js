// ControlNet and LoRA unit editors of the generate form: add/remove rows, read/write values.
import { h, field, select, slider } from './dom.js';
import { t } from './i18n.js';
import { imagePicker } from './imagepick.js';

function unitList(title, max, makeUnit) {
  const rows = h('div', { class: 'units' });
  const add = h('button', { class: 'button small', type: 'button', text: `+ ${title}` });
  const units = [];
  function refresh() {
    units.forEach((u, i) => u.renumber(i));
    add.disabled = units.length >= max;
  }
  function addUnit(value) {
    const unit = makeUnit(units.length, value);
    const remove = h('button', { class: 'icon-btn', type: 'button', text: '×',
      'aria-label': t('gen.removeUnit') });
    remove.addEventListener('click', () => {
      units.splice(units.indexOf(unit), 1);
      unit.el.remove();
      refresh();
    });
    unit.el.querySelector('.unit-head').append(remove);
    units.push(unit);
    rows.append(unit.el);
    refresh();
    return unit;
  }
  add.addEventListener('click', () => {
    const unit = addUnit();
    const first = unit.el.querySelector('select, input');
    if (first) first.focus();
  });
  return {
    el: h('div', {}, rows, add),
    get: () => units.map((u) => u.get()),
    set(values) {
      while (units.length) units.pop().el.remove();
      for (const v of values || []) addUnit(v);
      refresh();
    },
    setChoices(choices) { for (const u of units) u.setChoices?.(choices); },
  };
}

// Renames the unit's fields to cn_configs[i].x so API errors land on the right one.
function renumber(el, prefix, i) {
  for (const box of el.querySelectorAll('[data-field]')) {
    const key = box.dataset.key || box.dataset.field;
    box.dataset.key = key;
    box.dataset.field = `${prefix}[${i}]${key ? `.${key}` : ''}`;
  }
  el.dataset.field = `${prefix}[${i}]`;
  el.querySelector('.unit-title').textContent = `${el.dataset.title} ${i + 1}`;
}

export function controlNetUnits(getChoices) {
  return unitList('ControlNet', 3, (i, value = {}) => {
    const config = value.config || {};
    const cn = select(getChoices().map((c) => ({ value: c, label: c })), value.cn);
    const weight = slider('weight', t('gen.cnWeight'), { min: 0, max: 2, step: 0.05, value: value.weight ?? 1 });
    const start = slider('guidance_start', t('gen.cnStart'), { min: 0, max: 1, step: 0.05, value: value.guidance_start ?? 0 });
    const end = slider('guidance_end', t('gen.cnEnd'), { min: 0, max: 1, step: 0.05, value: value.guidance_end ?? 1 });
    const processor = select([{ value: 'canny', label: t('gen.cnCanny') },
      { value: 'none', label: t('gen.cnNone') }], config.control_processor || 'canny');
    const low = slider('low_threshold', t('gen.cnLow'), { min: 1, max: 255, value: config.low_threshold ?? 100 });
    const high = slider('high_threshold', t('gen.cnHigh'), { min: 1, max: 255, value: config.high_threshold ?? 200 });
    const img = imagePicker('img', t('gen.cnImage'));
    if (value.img) img.set(value.img);
    const el = h('fieldset', { class: 'unit', 'data-title': 'ControlNet' },
      h('div', { class: 'unit-head' }, h('legend', { class: 'unit-title' })),
      field('cn', t('gen.cnModel'), cn), weight.el, h('div', { class: 'two' }, start.el, end.el),
      field('control_processor', t('gen.cnProcessor'), processor),
      h('div', { class: 'two' }, low.el, high.el), img.el,
      h('p', { class: 'hint', text: t('gen.cnImageHint') }));
    for (const [box, key] of [[low.el, 'config.low_threshold'], [high.el, 'config.high_threshold']]) {
      box.dataset.key = key;
    }
    return {
      el,
      renumber: (n) => renumber(el, 'cn_configs', n),
      get: () => ({ cn: cn.value, weight: weight.get(), guidance_start: start.get(),
        guidance_end: end.get(), img: img.get(), config: { control_processor: processor.value,
          low_threshold: low.get(), high_threshold: high.get() } }),
      setChoices(choices) {
        const keep = cn.value;
        cn.replaceChildren(...choices.map((c) => h('option', { value: c, text: c })));
        if (choices.includes(keep)) cn.value = keep;
      },
    };
  });
}

export function loraUnits(getLoras) {
  return unitList('LoRA', 5, (i, value = {}) => {
    const options = getLoras().map((x) => ({ value: String(x.versionid),
      label: `${x.model_name}${x.trigger_word ? ` · ${x.trigger_word}` : ''}` }));
    const pick = select(options.length ? options : [{ value: '', label: t('gen.noLoras') }],
      value.versionid != null ? String(value.versionid) : undefined);
    const weight = slider('merge_weight', t('gen.loraWeight'), { min: 0, max: 2, step: 0.05,
      value: value.merge_weight ?? 1 });
    const el = h('fieldset', { class: 'unit', 'data-title': 'LoRA' },
      h('div', { class: 'unit-head' }, h('legend', { class: 'unit-title' })),
      field('versionid', t('gen.loraModel'), pick), weight.el);
    return {
      el,
      renumber: (n) => renumber(el, 'lora_configs', n),
      get: () => ({ versionid: /^\d+$/.test(pick.value) ? Number(pick.value) : pick.value,
        merge_weight: weight.get() }),
    };
  });
}
