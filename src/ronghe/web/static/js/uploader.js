// Many images by picker or drag-and-drop: each file uploads on its own (upload_img) so
// one bad file fails alone, with its own progress bar and error.
import { h, progressBar } from './dom.js';
import { upload } from './api.js';
import { t } from './i18n.js';
import { dropZone } from './imagepick.js';

const PARALLEL = 2;

export function uploader(name, label, onChange = () => {}) {
  const rows = h('ul', { class: 'upload-list', 'aria-label': t('upload.files') });
  const entries = [];
  const queue = [];
  let active = 0;

  function pump() {
    while (active < PARALLEL && queue.length) {
      const entry = queue.shift();
      active += 1;
      entry.state = 'uploading';
      upload('/api/v1b/upload_img', [entry.file], (f) => entry.bar.set(f)).then(([url]) => {
        entry.url = url;
        entry.state = 'done';
        entry.bar.set(1);
        entry.status.textContent = t('upload.done');
        entry.row.classList.add('ok');
      }).catch((err) => {
        entry.state = 'failed';
        entry.status.textContent = err.message;
        entry.row.classList.add('failed');
      }).finally(() => {
        active -= 1;
        pump();
        onChange();
      });
    }
  }

  function add(files) {
    for (const file of files) {
      const bar = progressBar(`${t('upload.progress')}: ${file.name}`);
      const status = h('span', { class: 'upload-status', role: 'status', text: t('upload.waiting') });
      const thumb = h('img', { src: URL.createObjectURL(file), alt: '', class: 'upload-thumb' });
      thumb.addEventListener('error', () => { thumb.hidden = true; });
      const row = h('li', { class: 'upload-row' }, thumb,
        h('div', { class: 'upload-main' }, h('span', { class: 'upload-name', text: file.name }), bar, status));
      const entry = { file, bar, status, row, url: '', state: 'queued' };
      entries.push(entry);
      queue.push(entry);
      rows.append(row);
    }
    pump();
    onChange();
  }

  const zone = dropZone(label, add, { multiple: true });
  zone.input.id = `${name}-files`;
  zone.input.setAttribute('aria-label', label);
  const el = h('div', { class: 'field', 'data-field': name }, zone, rows,
    h('p', { class: 'field-error', role: 'alert' }));
  return {
    el,
    busy: () => entries.some((e) => e.state === 'queued' || e.state === 'uploading'),
    urls: () => entries.filter((e) => e.state === 'done').map((e) => e.url),
    reset() { entries.length = 0; rows.replaceChildren(); onChange(); },
  };
}
