// One image chosen by picker or drag-and-drop, uploaded at once (upload_img) with progress.
import { h, progressBar } from './dom.js';
import { upload } from './api.js';
import { t } from './i18n.js';

export function dropZone(label, onFiles, { multiple = false } = {}) {
  const input = h('input', { type: 'file', accept: 'image/png,image/jpeg,image/webp',
    multiple, class: 'visually-hidden' });
  const zone = h('label', { class: 'drop-zone' }, input,
    h('span', { class: 'drop-icon', 'aria-hidden': 'true', text: '⇪' }),
    h('span', { text: label }), h('span', { class: 'muted small', text: t('upload.formats') }));
  input.addEventListener('change', () => {
    if (input.files.length) onFiles([...input.files]);
    input.value = '';
  });
  zone.addEventListener('dragover', (ev) => { ev.preventDefault(); zone.classList.add('over'); });
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('over');
    const files = [...ev.dataTransfer.files].filter((f) => f.type.startsWith('image/')
      || /\.(png|jpe?g|webp)$/i.test(f.name));
    if (files.length) onFiles(multiple ? files : files.slice(0, 1));
  });
  zone.input = input;
  return zone;
}

// A single-image picker: shows the picture, its upload progress, and keeps the URL.
// onChange(url, src) hears every change ('' when removed), e.g. the mask editor.
export function imagePicker(name, label, onChange = null) {
  let url = '';
  const preview = h('div', { class: 'pick-preview' });
  const error = h('p', { class: 'field-error', role: 'alert' });
  const bar = progressBar(t('upload.progress'));
  bar.hidden = true;
  const remove = h('button', { class: 'button small', type: 'button', text: t('upload.remove') });
  remove.hidden = true;
  const wrap = h('div', { class: 'field', 'data-field': name });
  function setUrl(value, src) {
    url = value;
    wrap.toggleAttribute('data-ready', Boolean(value)); // uploaded: the URL is usable
    preview.replaceChildren();
    remove.hidden = !value;
    zone.hidden = Boolean(value);
    if (value) preview.append(h('img', { src: src || value, alt: label }));
    if (onChange) onChange(value, value ? src || value : '');
  }
  const zone = dropZone(label, async ([file]) => {
    error.textContent = '';
    const local = URL.createObjectURL(file);
    setUrl('', '');
    preview.append(h('img', { src: local, alt: file.name }));
    zone.hidden = true;
    bar.hidden = false;
    bar.set(0);
    try {
      const [uploaded] = await upload('/api/v1b/upload_img', [file], (f) => bar.set(f));
      setUrl(uploaded, local);
    } catch (err) {
      setUrl('', '');
      error.textContent = `${file.name}: ${err.message}`;
    } finally {
      bar.hidden = true;
    }
  });
  zone.input.id = `${name}-file`;
  zone.input.setAttribute('aria-label', label);
  remove.addEventListener('click', () => setUrl('', ''));
  wrap.append(h('span', { class: 'label', text: label }), zone, preview, bar, remove, error);
  return { el: wrap, get: () => url, set: (value) => setUrl(value || '', value) };
}
