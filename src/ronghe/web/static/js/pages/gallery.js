// Gallery: your image tasks newest first (task_list), a page at a time.
import { h, sleep } from '../dom.js';
import { post } from '../api.js';
import { t } from '../i18n.js';
import { stateBadge, openViewer } from '../tasks.js';

const PER_PAGE = 24;

export function render(view, { navigate, query }) {
  let page = Math.max(1, Number(query.get('page')) || 1);
  let stopped = false;
  const grid = h('div', { class: 'gallery-grid', id: 'gallery' });
  const pager = h('nav', { class: 'pager', 'aria-label': t('gallery.pages') });
  const status = h('p', { class: 'muted', role: 'status' });
  view.append(h('div', { class: 'page-head' }, h('h1', { text: t('gallery.title') }),
    h('p', { class: 'muted', text: t('gallery.subtitle') })), status, grid, pager);

  function tile(item) {
    const first = item.images[0];
    // An upscale task (kind "upscale") has no prompt: it says what it did instead.
    if (item.kind === 'upscale') item.prompt = t('up.label', { scale: item.scale, upscaler: item.upscaler });
    const inner = first
      ? h('img', { src: first.middle || first.small, alt: item.prompt || '', loading: 'lazy' })
      : h('div', { class: 'tile-empty' }, stateBadge(item.state));
    const button = h('button', { class: 'tile', type: 'button', disabled: !first,
      'aria-label': `${t('gallery.open')}: ${item.prompt || item.task_id}` }, inner,
    item.images.length > 1 ? h('span', { class: 'tile-count', text: `×${item.images.length}` }) : null);
    button.addEventListener('click', () => openViewer(item, 0, navigate));
    return h('figure', { class: 'gallery-item', 'data-task': item.task_id }, button,
      h('figcaption', {}, h('span', { class: 'tile-prompt', text: item.prompt || '—' }),
        h('span', { class: 'muted small', text: `${item.create_time} UTC` })));
  }

  async function load() {
    status.textContent = t('loading');
    let info;
    try {
      info = (await post('/api/v1b/task_list', { page, per_page: PER_PAGE })).info;
    } catch (err) {
      status.textContent = err.message;
      return;
    }
    status.textContent = info.total ? t('gallery.count', { n: info.total }) : t('gallery.empty');
    grid.replaceChildren(...info.items.map(tile));
    pager.replaceChildren();
    const pages = Math.max(1, Math.ceil(info.total / PER_PAGE));
    if (pages > 1) {
      const prev = h('button', { class: 'button', type: 'button', text: `‹ ${t('gallery.prev')}`, disabled: page <= 1 });
      const next = h('button', { class: 'button', type: 'button', text: `${t('gallery.next')} ›`, disabled: !info.has_next });
      prev.addEventListener('click', () => navigate('gallery', `page=${page - 1}`));
      next.addEventListener('click', () => navigate('gallery', `page=${page + 1}`));
      pager.append(prev, h('span', { class: 'muted', text: t('gallery.pageOf', { page, pages }) }), next);
    }
    // Unfinished tasks on the page: refresh until they end.
    if (info.items.some((x) => ['pending', 'running'].includes(x.state)) && !stopped) {
      await sleep(2000);
      if (!stopped) load();
    }
  }
  load();
  return () => { stopped = true; };
}
