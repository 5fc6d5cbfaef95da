// Datasets: create one from many uploads, see them as thumbnails, add and delete images.
import { h, field, clearErrors, showError, openDialog } from '../dom.js';
import { post } from '../api.js';
import { t } from '../i18n.js';
import { uploader } from '../uploader.js';

async function allDatasets() {
  const out = [];
  for (let page = 1; page <= 50; page += 1) {
    const body = await post(`/api/v1b/dataset_all?page=${page}&per_page=100`, {});
    out.push(...body.items);
    if (!body.has_next) break;
  }
  return out;
}

export function render(view, ctx) {
  const list = h('div', { class: 'dataset-grid', id: 'datasets' });
  const status = h('p', { class: 'muted', role: 'status' });
  const newBtn = h('button', { class: 'primary', type: 'button', id: 'new-dataset', text: `+ ${t('ds.new')}` });
  view.append(h('div', { class: 'page-head row' }, h('div', {}, h('h1', { text: t('ds.title') }),
    h('p', { class: 'muted', text: t('ds.subtitle') })), newBtn), status, list);

  async function refresh() {
    status.textContent = t('loading');
    try {
      const items = await allDatasets();
      status.textContent = items.length ? '' : t('ds.empty');
      list.replaceChildren(...items.reverse().map((d) => card(d)));
    } catch (err) { status.textContent = err.message; }
  }
  function card(d) {
    const open = h('button', { class: 'dataset-card', type: 'button', 'data-dataset': d.id },
      d.demo_picture ? h('img', { src: d.demo_picture, alt: '' }) : h('div', { class: 'tile-empty', text: '∅' }),
      h('span', { class: 'dataset-name', text: d.name }),
      h('span', { class: 'muted small', text: t('ds.images', { n: d.images_num }) }));
    open.addEventListener('click', () => detail(d));
    return open;
  }
  newBtn.addEventListener('click', () => create());

  function create() {
    const name = h('input', { type: 'text', maxlength: 128, required: true });
    const description = h('textarea', { rows: 2, maxlength: 2000 });
    const submit = h('button', { class: 'primary', type: 'submit', id: 'create-dataset', text: t('ds.create') });
    const files = uploader('images', t('ds.drop'), () => { submit.disabled = files.busy(); });
    const form = h('form', { class: 'stack', novalidate: true },
      field('name', t('ds.name'), name), field('description', t('ds.description'), description),
      files.el, h('p', { class: 'form-error', role: 'alert' }), h('div', { class: 'actions' }, submit));
    const dialog = openDialog(t('ds.new'), form);
    name.focus();
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clearErrors(form);
      if (!files.urls().length) { showError(form, `images: ${t('ds.needImages')}`); return; }
      submit.disabled = true;
      try {
        await post('/api/v1b/dataset', { name: name.value, description: description.value, images: files.urls() });
        dialog.close();
        refresh();
      } catch (err) { showError(form, err.message); } finally { submit.disabled = false; }
    });
  }

  function detail(d) {
    const grid = h('div', { class: 'image-grid small' });
    const error = h('p', { class: 'form-error', role: 'alert' });
    const head = h('p', { class: 'muted', text: d.description || '' });
    const addBtn = h('button', { class: 'primary', type: 'button', id: 'add-images', text: t('ds.addImages'), disabled: true });
    const files = uploader('images', t('ds.drop'), () => {
      addBtn.disabled = files.busy() || !files.urls().length;
    });
    let images = [...d.images];
    function draw() {
      grid.replaceChildren(...images.map((url, i) => {
        const del = h('button', { class: 'icon-btn thumb-del', type: 'button',
          'aria-label': `${t('ds.deleteImage')} ${i + 1}`, text: '×' });
        del.addEventListener('click', async () => {
          error.textContent = '';
          try {
            await post('/api/v1b/dataset/delete_images', { dataset: d.id, images: [url] });
            images = images.filter((x) => x !== url);
            draw();
            refresh();
          } catch (err) { error.textContent = err.message; }
        });
        return h('div', { class: 'thumb static' }, h('img', { src: url, alt: `${d.name} ${i + 1}`, loading: 'lazy' }), del);
      }));
    }
    addBtn.addEventListener('click', async () => {
      error.textContent = '';
      addBtn.disabled = true;
      try {
        const urls = files.urls();
        await post('/api/v1b/dataset/add_images', { dataset: d.id, images: urls });
        images = [...images, ...urls];
        files.reset();
        draw();
        refresh();
      } catch (err) { error.textContent = err.message; addBtn.disabled = false; }
    });
    draw();
    const trainBtn = h('button', { class: 'button', type: 'button', text: t('ds.train') });
    const dialog = openDialog(d.name, h('div', { class: 'stack' }, head, grid, error,
      h('h3', { text: t('ds.addImages') }), files.el, h('div', { class: 'actions' }, addBtn, trainBtn)), { wide: true });
    trainBtn.addEventListener('click', () => { dialog.close(); ctx.navigate('training', `dataset=${d.id}`); });
  }
  refresh();
}
