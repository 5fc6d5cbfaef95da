// PNG info on the generate page: drop an image made by Ronghe, AUTOMATIC1111, Forge or
// Civitai anywhere on the page (or pick it here) and the form takes its settings.  The
// image is uploaded (upload_img keeps its parameters text) and read by png_info, which
// answers task_submit fields; apply(settings) fills the form.
import { h } from './dom.js';
import { post, upload } from './api.js';
import { t } from './i18n.js';
import { dropZone } from './imagepick.js';

function isImage(file) {
  return file.type.startsWith('image/') || /\.(png|jpe?g|webp)$/i.test(file.name);
}

export function pngInfoDrop(page, apply) {
  const status = h('p', { class: 'small muted', id: 'png-info-status', role: 'status' });
  async function read(file) {
    status.textContent = t('pnginfo.reading', { name: file.name });
    try {
      const [url] = await upload('/api/v1b/upload_img', [file]);
      const { info } = await post('/api/v1b/png_info', { init_img: url });
      if (!info.text) {
        status.textContent = t('pnginfo.none', { name: file.name });
        return;
      }
      const skipped = apply(info.settings) || [];
      status.textContent = t('pnginfo.done', { name: file.name })
        + (skipped.length ? ` ${t('pnginfo.skipped', { what: skipped.join(', ') })}` : '');
    } catch (err) {
      status.textContent = `${file.name}: ${err.message}`;
    }
  }
  const zone = dropZone(t('pnginfo.drop'), ([file]) => read(file));
  zone.classList.add('compact');
  zone.input.id = 'png-info-file';
  zone.input.setAttribute('aria-label', t('pnginfo.drop'));
  // Anywhere on the page: drops the image pickers did not take (they prevent the default).
  page.addEventListener('dragover', (ev) => {
    if (ev.dataTransfer && [...ev.dataTransfer.types].includes('Files')) ev.preventDefault();
  });
  page.addEventListener('drop', (ev) => {
    if (ev.defaultPrevented || !ev.dataTransfer) return;
    const file = [...ev.dataTransfer.files].find(isImage);
    if (!file) return;
    ev.preventDefault();
    read(file);
  });
  // The status stays outside the (folded) panel: a drop anywhere on the page reports there.
  return { el: h('div', { class: 'png-info' }, h('details', { class: 'panel', id: 'panel-pnginfo' },
    h('summary', { text: t('pnginfo.title') }), h('p', { class: 'hint', text: t('pnginfo.hint') }),
    zone), status) };
}
