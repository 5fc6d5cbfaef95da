// The hires fix of the generate form (A1111's names): render, upscale hr_scale times, then a
// second image-to-image pass.  The upscaler choices are the selected model's
// (get_generation_form: model_name.models[].hires_upscalers); a model without any has no
// hires fix, and the panel says so.
import { h, field, slider } from './dom.js';
import { t } from './i18n.js';

export function hiresControls(form) {
  const f = Object.fromEntries(form.map((x) => [x.name, x]));
  const enable = h('input', { type: 'checkbox', id: 'enable-hr' });
  const upscaler = h('select', { id: 'hr-upscaler' });
  const scale = slider('hr_scale', t('hr.scale'), { min: f.hr_scale.min, max: f.hr_scale.max,
    step: 0.25, value: f.hr_scale.default });
  const steps = slider('hr_second_pass_steps', t('hr.steps'), { min: f.hr_second_pass_steps.min,
    max: f.hr_second_pass_steps.max, value: f.hr_second_pass_steps.default });
  const denoise = slider('hr_denoising_strength', t('hr.denoise'), { min: 0, max: 1, step: 0.05,
    value: f.hr_denoising_strength.default });
  const none = h('p', { class: 'hint', text: t('hr.none'), hidden: true });
  const body = h('div', { class: 'stack', id: 'hr-options' },
    field('hr_upscaler', t('hr.upscaler'), upscaler, t('hr.upscalerHint')),
    h('div', { class: 'two' }, scale.el, denoise.el), steps.el);
  let choices = [];
  const sync = () => {
    body.hidden = !enable.checked;
    enable.disabled = !choices.length;
    none.hidden = choices.length > 0;
  };
  enable.addEventListener('change', sync);
  const el = h('details', { class: 'panel', id: 'panel-hires' }, h('summary', { text: t('hr.title') }),
    h('div', { class: 'field check', 'data-field': 'enable_hr' },
      h('label', { class: 'inline', for: 'enable-hr' }, enable, t('hr.enable')),
      h('p', { class: 'hint', text: t('hr.hint') }), none,
      h('p', { class: 'field-error', role: 'alert' })),
    body);
  sync();
  return {
    el,
    setChoices(list) {
      const keep = upscaler.value || f.hr_upscaler.default;
      choices = list || [];
      upscaler.replaceChildren(...choices.map((name) => h('option', { value: name, text: name })));
      upscaler.value = choices.includes(keep) ? keep : (choices[0] || '');
      if (!choices.length) enable.checked = false;
      sync();
    },
    // From a preset or "use these settings again".
    set(p) {
      enable.checked = Boolean(p.enable_hr) && choices.length > 0;
      if (p.hr_upscaler && choices.includes(p.hr_upscaler)) upscaler.value = p.hr_upscaler;
      if (p.hr_scale != null) scale.set(p.hr_scale);
      if (p.hr_second_pass_steps != null) steps.set(p.hr_second_pass_steps);
      if (p.hr_denoising_strength != null) denoise.set(p.hr_denoising_strength);
      if (enable.checked) el.open = true;
      sync();
    },
    get() {
      if (!enable.checked) return {};
      return { enable_hr: true, hr_upscaler: upscaler.value, hr_scale: scale.get(),
        hr_second_pass_steps: steps.get(), hr_denoising_strength: denoise.get() };
    },
  };
}
