// Chat: a streaming conversation with a model from /v1/models, kept while the page is open.
import { h, select } from '../dom.js';
import { get, stream } from '../api.js';
import { t } from '../i18n.js';

const conversation = []; // {role, content}; lives as long as the tab
let chosenModel = '';

export function render(view) {
  const log = h('div', { class: 'chat-log', id: 'chat-log', 'aria-live': 'polite' });
  const modelSel = h('select', { id: 'chat-model' });
  const input = h('textarea', { id: 'chat-input', rows: 2, maxlength: 200000, placeholder: t('chat.placeholder') });
  const send = h('button', { class: 'primary', type: 'submit', id: 'chat-send', text: t('chat.send') });
  const stop = h('button', { class: 'button', type: 'button', id: 'chat-stop', text: t('chat.stop'), hidden: true });
  const clearBtn = h('button', { class: 'ghost small', type: 'button', text: t('chat.clear') });
  const error = h('p', { class: 'form-error', role: 'alert' });
  const form = h('form', { class: 'chat-input' },
    h('label', { for: 'chat-input', class: 'visually-hidden', text: t('chat.message') }), input,
    h('div', { class: 'chat-buttons' }, stop, send));
  view.append(h('div', { class: 'chat-wrap card' },
    h('div', { class: 'chat-head' }, h('h1', { text: t('chat.title') }),
      h('div', { class: 'chat-model' }, h('label', { for: 'chat-model', text: t('chat.model') }), modelSel), clearBtn),
    log, error, form));
  let controller = null;

  function bubble(msg) {
    const text = h('div', { class: 'bubble-text', text: msg.content });
    const el = h('div', { class: `bubble ${msg.role}` },
      h('span', { class: 'bubble-role', text: t(`chat.${msg.role}`) }), text);
    log.append(el);
    log.scrollTop = log.scrollHeight;
    return text;
  }
  function draw() {
    log.replaceChildren();
    if (!conversation.length) log.append(h('p', { class: 'muted center chat-empty', text: t('chat.empty') }));
    for (const msg of conversation) bubble(msg);
  }
  draw();
  get('/v1/models').then((body) => {
    const ids = body.data.map((m) => m.id);
    modelSel.replaceChildren(...select(ids.map((id) => ({ value: id, label: id }))).children);
    if (ids.includes(chosenModel)) modelSel.value = chosenModel;
  }).catch((err) => { error.textContent = err.message; });
  modelSel.addEventListener('change', () => { chosenModel = modelSel.value; });
  clearBtn.addEventListener('click', () => { if (!controller) { conversation.length = 0; draw(); } });
  input.addEventListener('keydown', (ev) => {
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) { ev.preventDefault(); form.requestSubmit(); }
  });
  stop.addEventListener('click', () => controller?.abort());
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const content = input.value.trim();
    if (!content || controller) return;
    error.textContent = '';
    if (!conversation.length) log.replaceChildren();
    const user = { role: 'user', content };
    conversation.push(user);
    bubble(user);
    input.value = '';
    const reply = { role: 'assistant', content: '' };
    const target = bubble(reply);
    target.parentElement.classList.add('streaming');
    controller = new AbortController();
    send.disabled = true;
    stop.hidden = false;
    try {
      await stream('/v1/chat/completions', { model: modelSel.value || undefined, stream: true,
        messages: conversation.map(({ role, content: c }) => ({ role, content: c })) }, (chunk) => {
        if (chunk.error) throw new Error(chunk.error.message);
        const delta = chunk.choices?.[0]?.delta?.content;
        if (delta) {
          reply.content += delta;
          target.textContent = reply.content;
          log.scrollTop = log.scrollHeight;
        }
      }, controller.signal);
    } catch (err) {
      if (err.name !== 'AbortError') error.textContent = err.message;
    } finally {
      target.parentElement.classList.remove('streaming');
      if (reply.content) conversation.push(reply);
      else { target.parentElement.remove(); conversation.pop(); input.value = content; }
      controller = null;
      send.disabled = false;
      stop.hidden = true;
      input.focus();
    }
  });
  return () => controller?.abort();
}
