// Sampler and schedule type of the generate form, by A1111's names.  The choices are the
// selected model's (get_generation_form: model_name.models[].samplers, each with the
// schedule types it takes); "model's own" sends neither field.
import { h, field } from './dom.js';
import { t } from './i18n.js';

const AUTOMATIC = 'Automatic';

export function samplerControls() {
  const sampler = h('select', { id: 'sampler-select' });
  const schedule = h('select', { id: 'scheduler-select' });
  let choices = [];
  const current = () => choices.find((c) => c.name === sampler.value);

  function fillSchedules(keep) {
    const s = current();
    const names = s ? s.schedules : [AUTOMATIC];
    schedule.replaceChildren(...names.map((name) => h('option', {
      value: name,
      // "Automatic (Karras)": what Automatic stands for with this sampler, as A1111 1.9+.
      text: name === AUTOMATIC
        ? (s && s.automatic !== AUTOMATIC ? `${t('gen.automatic')} (${s.automatic})` : t('gen.automatic'))
        : name,
    })));
    schedule.value = names.includes(keep) ? keep : AUTOMATIC;
    schedule.disabled = !s; // the model's own sampler takes its own schedule
  }
  sampler.addEventListener('change', () => fillSchedules(schedule.value));

  return {
    el: h('div', { class: 'two' },
      field('sampler_name', t('gen.sampler'), sampler, t('gen.samplerHint')),
      field('scheduler', t('gen.scheduler'), schedule)),
    setChoices(list) {
      const keep = sampler.value;
      choices = list || [];
      sampler.replaceChildren(h('option', { value: '', text: t('gen.modelSampler') }),
        ...choices.map((c) => h('option', { value: c.name, text: c.name })));
      sampler.value = choices.some((c) => c.name === keep) ? keep : '';
      fillSchedules(schedule.value);
    },
    // From a preset or "use these settings": names in any case; unknown ones fall back to
    // the model's own.
    set(name, scheduleName) {
      const want = (name || '').trim().toLowerCase();
      const found = choices.find((c) => c.name.toLowerCase() === want);
      sampler.value = found ? found.name : '';
      const sched = (scheduleName || '').trim().toLowerCase();
      fillSchedules(current() ? (current().schedules.find((s) => s.toLowerCase() === sched) || AUTOMATIC) : AUTOMATIC);
    },
    get() {
      return sampler.value ? { sampler_name: sampler.value, scheduler: schedule.value } : {};
    },
  };
}
