// Models: base models, public LoRAs and your own, with their demo pictures; for admins, the
// "Add a model" panel (addmodel.js) that pulls one into the server's models folder.
import { h } from '../dom.js';
import { post, session } from '../api.js';
import { t } from '../i18n.js';
import { setPreset } from '../account.js';
import { addModelPanel } from './addmodel.js';

// The bundled demo model (family "demo") says what it can draw, and where real models come from.
function demoNote(addModel) {
  const note = h('div', { class: 'demo-note' }, h('p', { class: 'small', text: t('models.demoNote') }));
  if (addModel) {
    note.append(h('button', { class: 'link small', type: 'button', id: 'demo-add-model',
      text: t('models.demoAdd'), onclick: addModel }));
  } else note.append(h('p', { class: 'small muted', text: t('models.demoAsk') }));
  return note;
}

function modelCard(m, kind, navigate, addModel) {
  const use = h('button', { class: 'button small', type: 'button', text: t('models.use') });
  use.addEventListener('click', () => {
    if (kind === 'lora') {
      setPreset({ model_name: m.base_model, lora_configs: [{ versionid: m.versionid, merge_weight: 1 }],
        prompt: m.trigger_word || '' });
    } else setPreset({ model_name: m.model_name, prompt: m.trigger_word || '' });
    navigate('generate');
  });
  // A base model shows its family as people name it and the sizes it draws.
  const family = m.family_label && m.tag !== 'demo' ? `${m.family_label} · ${m.min_size}–${m.max_size} px` : m.tag;
  const tags = [family, m.base_model && `${t('models.baseOf')}: ${m.base_model}`].filter(Boolean);
  return h('article', { class: 'card model-card', 'data-model': m.model_name },
    m.demo_picture ? h('img', { src: m.demo_picture, alt: m.model_name, class: 'model-pic' })
      : h('div', { class: 'model-pic placeholder', 'aria-hidden': 'true', text: (m.model_name || '?').slice(0, 1).toUpperCase() }),
    h('div', { class: 'model-body' },
      h('h3', { text: m.model_name }),
      h('div', { class: 'chips' }, tags.map((x) => h('span', { class: 'chip', text: x }))),
      m.description ? h('p', { class: 'muted small', text: m.description }) : null,
      kind === 'base' && m.tag === 'demo' ? demoNote(addModel) : null,
      m.trigger_word ? h('p', { class: 'small' }, `${t('train.trigger')}: `, h('code', { text: m.trigger_word })) : null,
      (m.aliases || []).length ? h('p', { class: 'small muted', text: `${t('models.aliases')}: ${m.aliases.join(', ')}` }) : null,
      use));
}

export function render(view, { navigate }) {
  view.append(h('div', { class: 'page-head' }, h('h1', { text: t('models.title') }),
    h('p', { class: 'muted', text: t('models.subtitle') })));
  const loaders = [];
  const panel = session.user.is_admin
    ? addModelPanel({ onInstalled: () => loaders.forEach((load) => load()) }) : null;
  if (panel) view.append(panel.el);
  for (const [path, key, kind] of [['/api/v1b/models/private', 'mine', 'own'],
    ['/api/v1b/models/base', 'base', 'base'], ['/api/v1b/models/lora', 'public', 'lora']]) {
    const grid = h('div', { class: 'model-grid', id: `models-${key}` }, h('p', { class: 'muted', text: t('loading') }));
    view.append(h('section', { class: 'model-section' }, h('h2', { text: t(`models.${key}`) }), grid));
    const load = () => post(path, { page: 1, per_page: 100 }).then((body) => {
      const items = body.info.models;
      grid.replaceChildren(...(items.length
        ? items.map((m) => modelCard(m, kind, navigate, panel && panel.focus))
        : [h('p', { class: 'muted', text: t(`models.${key}Empty`) })]));
    }).catch((err) => grid.replaceChildren(h('p', { class: 'error-text', text: err.message })));
    loaders.push(load);
    load();
  }
  return panel ? panel.stop : undefined;
}
