// DOM helpers.  Every piece of text goes in as a text node (never parsed as HTML), so what a
// user typed or uploaded is shown literally.

export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'value' || key === 'checked' || key === 'disabled' || key === 'selected') {
      el[key] = value;
    } else el.setAttribute(key, value === true ? '' : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

let uid = 0;
export function nextId(prefix = 'f') {
  uid += 1;
  return `${prefix}-${uid}`;
}

// A labelled field: <div class="field" data-field=name><label/>control<hint/><error/></div>.
// `name` is the API's field name, so an error message naming it lands here.
export function field(name, label, control, hint) {
  if (!control.id) control.id = nextId(name);
  const error = h('p', { class: 'field-error', id: `${control.id}-err`, role: 'alert' });
  control.setAttribute('aria-describedby', error.id);
  control.dataset.name = name;
  return h('div', { class: 'field', 'data-field': name },
    h('label', { for: control.id, text: label }), control,
    hint ? h('p', { class: 'hint', text: hint }) : null, error);
}

export function select(options, value) {
  const el = h('select');
  for (const opt of options) {
    if (opt.group) {
      const group = h('optgroup', { label: opt.group });
      for (const o of opt.options) group.append(h('option', { value: o.value, text: o.label }));
      el.append(group);
    } else el.append(h('option', { value: opt.value, text: opt.label }));
  }
  if (value != null) el.value = value;
  return el;
}

// A labelled slider with its number shown next to it.
export function slider(name, label, { min, max, step = 1, value }) {
  const input = h('input', { type: 'range', min, max, step, value });
  const out = h('input', { type: 'number', min, max, step, value, class: 'slider-num',
    'aria-label': label });
  input.addEventListener('input', () => { out.value = input.value; });
  out.addEventListener('input', () => { input.value = out.value; });
  const row = h('div', { class: 'slider' }, input, out);
  const wrap = field(name, label, input);
  wrap.querySelector('label').after(row);
  row.prepend(input);
  const get = () => Number(out.value);
  const set = (v) => { input.value = v; out.value = v; };
  return { el: wrap, get, set, input: out };
}

// Parses the API's message to the field it names: "n_images: must be…",
// "cn_configs[0].weight: …", "init_img[1] ('a.gif'): …", "output_size must be …".
export function fieldOf(msg) {
  const m = /^([A-Za-z_]+(?:\[\d+\])?(?:\.[A-Za-z_]+)*)(?=[:\s])/.exec(msg || '');
  return m ? m[1] : null;
}

export function clearErrors(root) {
  for (const el of root.querySelectorAll('.field-error')) el.textContent = '';
  for (const el of root.querySelectorAll('.has-error')) el.classList.remove('has-error');
  const banner = root.querySelector('.form-error');
  if (banner) banner.textContent = '';
}

// Shows an API error next to the field it names (most specific first), else in the
// form's banner.  Returns the element that got it.
export function showError(root, message) {
  const name = fieldOf(message);
  const candidates = [];
  if (name) {
    let part = name;
    candidates.push(part);
    while (part.includes('.')) {
      part = part.slice(0, part.lastIndexOf('.'));
      candidates.push(part);
    }
    candidates.push(name.replace(/\[\d+\].*$/, ''));
  }
  for (const c of candidates) {
    const box = root.querySelector(`[data-field="${CSS.escape(c)}"]`);
    if (box) {
      box.classList.add('has-error');
      const err = box.querySelector('.field-error');
      err.textContent = message;
      const control = box.querySelector('input, select, textarea, button');
      if (control) control.focus();
      return err;
    }
  }
  const banner = root.querySelector('.form-error');
  if (banner) banner.textContent = message;
  return banner;
}

export function progressBar(label) {
  const fill = h('div', { class: 'bar-fill' });
  const bar = h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0,
    'aria-valuemax': 100, 'aria-valuenow': 0, 'aria-label': label }, fill);
  bar.set = (fraction) => {
    const pct = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    fill.style.width = `${pct}%`;
    bar.setAttribute('aria-valuenow', pct);
  };
  return bar;
}

// A modal dialog (native <dialog>: focus trap and Escape for free).
export function openDialog(title, body, { wide = false } = {}) {
  const close = h('button', { class: 'icon-btn dialog-close', type: 'button',
    'aria-label': '×', text: '×' });
  const dialog = h('dialog', { class: wide ? 'dialog wide' : 'dialog', 'aria-label': title },
    h('div', { class: 'dialog-head' }, h('h2', { text: title }), close), body);
  close.addEventListener('click', () => dialog.close());
  dialog.addEventListener('close', () => dialog.remove());
  dialog.addEventListener('click', (ev) => { if (ev.target === dialog) dialog.close(); });
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

export function sleep(ms) {
  return new Promise((resolve) => { setTimeout(resolve, ms); });
}

export function formatSeconds(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '–';
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m ? `${m}:${String(s % 60).padStart(2, '0')}` : `${s}s`;
}
