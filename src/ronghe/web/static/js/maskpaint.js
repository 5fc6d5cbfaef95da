// Inpainting mask: a brush and an eraser over the image-to-image source, by mouse, touch or
// pen (pointer events; the canvas takes touch-action: none so a finger paints instead of
// scrolling), with brush size, undo and clear.  On submit the painted area is uploaded as
// a black-and-white PNG at the source's size (white repaints) and sent as mask_img with
// the mask options (A1111's names: mask_blur, inpaint_full_res …).
import { h, field, slider, select } from './dom.js';
import { upload } from './api.js';
import { t } from './i18n.js';

const UNDO_LIMIT = 30;
// The mask canvas never holds more than this on its longer side (memory on phones); the
// server scales the mask to the source's size.
const MAX_SIDE = 2048;
const INK = 'rgb(255, 59, 107)';

export function maskEditor() {
  const image = h('img', { class: 'mask-image', alt: '' });
  const canvas = h('canvas', { class: 'mask-canvas', id: 'mask-canvas', 'aria-label': t('mask.canvas') });
  const stage = h('div', { class: 'mask-stage' }, image, canvas);
  const brush = h('button', { type: 'button', class: 'button small', id: 'mask-brush', 'aria-pressed': 'true', text: t('mask.brush') });
  const eraser = h('button', { type: 'button', class: 'button small', id: 'mask-eraser', 'aria-pressed': 'false', text: t('mask.eraser') });
  const undoBtn = h('button', { type: 'button', class: 'button small', id: 'mask-undo', text: t('mask.undo'), disabled: true });
  const clearBtn = h('button', { type: 'button', class: 'button small', id: 'mask-clear', text: t('mask.clear'), disabled: true });
  const size = slider('brush_size', t('mask.size'), { min: 1, max: 256, value: 32 });
  size.input.id = 'mask-size';
  const blur = slider('mask_blur', t('mask.blur'), { min: 0, max: 64, value: 4 });
  const onlyMasked = h('input', { type: 'checkbox', id: 'inpaint-full-res' });
  const padding = slider('inpaint_full_res_padding', t('mask.padding'), { min: 0, max: 256, value: 32 });
  const invert = h('input', { type: 'checkbox', id: 'mask-invert' });
  const fillLabels = { 1: 'mask.fillOriginal', 0: 'mask.fillFill', 2: 'mask.fillNoise', 3: 'mask.fillNothing' };
  const fill = select([1, 0, 2, 3].map((v) => ({ value: String(v), label: t(fillLabels[v]) })), '1');
  const options = h('div', { class: 'mask-options', hidden: true },
    h('div', { class: 'two' }, blur.el, field('inpainting_fill', t('mask.fill'), fill)),
    h('div', { class: 'field check', 'data-field': 'inpainting_mask_invert' },
      h('label', { class: 'inline', for: 'mask-invert' }, invert, t('mask.invert')),
      h('p', { class: 'field-error', role: 'alert' })),
    h('div', { class: 'field check', 'data-field': 'inpaint_full_res' },
      h('label', { class: 'inline', for: 'inpaint-full-res' }, onlyMasked, t('mask.onlyMasked')),
      h('p', { class: 'hint', text: t('mask.onlyMaskedHint') }), h('p', { class: 'field-error', role: 'alert' })),
    padding.el);
  const el = h('div', { class: 'field mask-editor', 'data-field': 'mask_img', hidden: true },
    h('span', { class: 'label', text: t('mask.title') }),
    h('p', { class: 'hint', text: t('mask.hint') }),
    h('div', { class: 'mask-tools', role: 'toolbar', 'aria-label': t('mask.title') },
      brush, eraser, undoBtn, clearBtn),
    size.el, stage, h('p', { class: 'field-error', role: 'alert' }), options);

  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const undo = [];
  let erasing = false;
  let stroke = null; // the pointer drawing now: {id, x, y}
  let version = 0; // bumped on every change, so an unchanged mask is uploaded once
  let uploaded = { version: -1, url: '' };

  function painted() {
    if (!canvas.width) return false;
    const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 127) return true;
    return false;
  }
  function changed() {
    version += 1;
    undoBtn.disabled = !undo.length;
    const any = painted();
    clearBtn.disabled = !any;
    options.hidden = !any;
    el.toggleAttribute('data-painted', any);
  }
  function snapshot() {
    undo.push(ctx.getImageData(0, 0, canvas.width, canvas.height));
    if (undo.length > UNDO_LIMIT) undo.shift();
  }
  function setTool(erase) {
    erasing = erase;
    brush.setAttribute('aria-pressed', String(!erase));
    eraser.setAttribute('aria-pressed', String(erase));
  }
  function point(ev) {
    const rect = canvas.getBoundingClientRect();
    return { x: (ev.clientX - rect.left) * (canvas.width / rect.width),
      y: (ev.clientY - rect.top) * (canvas.height / rect.height) };
  }
  function lineTo(p) {
    ctx.globalCompositeOperation = erasing ? 'destination-out' : 'source-over';
    ctx.strokeStyle = INK;
    ctx.fillStyle = INK;
    // The size is in the source's pixels, whatever the picture's size on screen.
    ctx.lineWidth = size.get() * (canvas.width / (image.naturalWidth || canvas.width));
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    ctx.beginPath();
    ctx.moveTo(stroke.x, stroke.y);
    ctx.lineTo(p.x + 0.01, p.y); // a dot for a tap
    ctx.stroke();
    stroke.x = p.x;
    stroke.y = p.y;
  }

  canvas.addEventListener('pointerdown', (ev) => {
    if (!canvas.width || stroke || (ev.pointerType === 'mouse' && ev.button !== 0)) return;
    ev.preventDefault();
    canvas.setPointerCapture(ev.pointerId);
    snapshot();
    const p = point(ev);
    stroke = { id: ev.pointerId, ...p };
    lineTo(p);
  });
  canvas.addEventListener('pointermove', (ev) => {
    if (!stroke || ev.pointerId !== stroke.id) return;
    ev.preventDefault();
    // Coalesced events: every sample of a fast stroke, not only one per frame.
    const events = ev.getCoalescedEvents ? ev.getCoalescedEvents() : [];
    for (const e of events.length ? events : [ev]) lineTo(point(e));
  });
  const end = (ev) => {
    if (!stroke || ev.pointerId !== stroke.id) return;
    stroke = null;
    changed();
  };
  canvas.addEventListener('pointerup', end);
  canvas.addEventListener('pointercancel', end);

  brush.addEventListener('click', () => setTool(false));
  eraser.addEventListener('click', () => setTool(true));
  undoBtn.addEventListener('click', () => {
    const last = undo.pop();
    if (last) ctx.putImageData(last, 0, 0);
    changed();
  });
  clearBtn.addEventListener('click', () => {
    snapshot();
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    changed();
  });
  el.addEventListener('keydown', (ev) => {
    if ((ev.ctrlKey || ev.metaKey) && ev.key === 'z') { ev.preventDefault(); undoBtn.click(); }
  });

  image.addEventListener('load', () => {
    // A new source: a fresh, empty mask at (at most MAX_SIDE of) its size.
    const scale = Math.min(1, MAX_SIDE / Math.max(image.naturalWidth, image.naturalHeight));
    canvas.width = Math.max(1, Math.round(image.naturalWidth * scale));
    canvas.height = Math.max(1, Math.round(image.naturalHeight * scale));
    undo.length = 0;
    el.hidden = false;
    changed();
  });

  // The black-and-white mask as a PNG file: white where painted.
  async function maskFile() {
    const out = document.createElement('canvas');
    out.width = canvas.width;
    out.height = canvas.height;
    const octx = out.getContext('2d');
    const src = ctx.getImageData(0, 0, canvas.width, canvas.height);
    const dst = octx.createImageData(canvas.width, canvas.height);
    for (let i = 0; i < src.data.length; i += 4) {
      const v = src.data[i + 3] > 127 ? 255 : 0;
      dst.data[i] = v; dst.data[i + 1] = v; dst.data[i + 2] = v; dst.data[i + 3] = 255;
    }
    octx.putImageData(dst, 0, 0);
    const blob = await new Promise((resolve) => { out.toBlob(resolve, 'image/png'); });
    return new File([blob], 'mask.png', { type: 'image/png' });
  }

  return {
    el,
    // The source changed (imagePicker's onChange): '' hides the editor.
    setSource(src) {
      undo.length = 0;
      if (!src) {
        el.hidden = true;
        canvas.width = 0;
        canvas.height = 0;
        image.removeAttribute('src');
        changed();
        return;
      }
      image.src = src;
    },
    // The model's inpainting_fill values (the latent ones on Stable Diffusion UNets only).
    setFills(values) {
      const allowed = (values && values.length ? values : [1, 0]).map(String);
      for (const o of fill.options) o.hidden = !allowed.includes(o.value);
      if (!allowed.includes(fill.value)) fill.value = '1';
    },
    // From a preset or PNG info: the options (the mask itself stays as painted).
    set(p) {
      if (p.mask_blur != null) blur.set(p.mask_blur);
      if (p.inpaint_full_res != null) onlyMasked.checked = Boolean(p.inpaint_full_res);
      if (p.inpaint_full_res_padding != null) padding.set(p.inpaint_full_res_padding);
      const wanted = [...fill.options].find((o) => !o.hidden && o.value === String(p.inpainting_fill));
      if (p.inpainting_fill != null && wanted) fill.value = wanted.value;
      if (p.inpainting_mask_invert != null) invert.checked = Boolean(p.inpainting_mask_invert);
    },
    // task_submit's mask fields: {} when nothing is painted.
    async get() {
      if (el.hidden || !painted()) return {};
      if (uploaded.version !== version) {
        const [url] = await upload('/api/v1b/upload_img', [await maskFile()]);
        uploaded = { version, url };
      }
      return { mask_img: uploaded.url, mask_blur: blur.get(), inpainting_fill: Number(fill.value),
        inpainting_mask_invert: invert.checked, inpaint_full_res: onlyMasked.checked,
        inpaint_full_res_padding: padding.get() };
    },
  };
}
