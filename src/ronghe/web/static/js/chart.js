// A small line chart in SVG (loss against step): axes, grid lines, ticks, the curve.
const NS = 'http://www.w3.org/2000/svg';

function el(tag, attrs, text) {
  const node = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text != null) node.textContent = text;
  return node;
}

function niceTicks(lo, hi, count) {
  const span = hi - lo || Math.abs(hi) || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const ticks = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(+v.toPrecision(6));
  return ticks;
}

export function lineChart(label, { xLabel, yLabel }) {
  const W = 560;
  const H = 220;
  const pad = { l: 52, r: 14, t: 14, b: 36 };
  const svg = el('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': label });
  const title = el('title', {}, label);
  svg.append(title);
  svg.update = (points, totalX) => {
    while (svg.lastChild !== title) svg.lastChild.remove();
    const xs = points.map((p) => p.x);
    const ys = points.map((p) => p.y);
    const x1 = Math.max(totalX || 0, ...xs, 1);
    let y0 = Math.min(...ys);
    let y1 = Math.max(...ys);
    if (!points.length) { y0 = 0; y1 = 1; }
    // Some air above and below the curve; a flat curve still gets a visible range.
    const margin = (y1 - y0) * 0.1 || (Math.abs(y1) || 1) * 0.05;
    y0 = Math.max(0, y0 - margin);
    y1 += margin;
    const px = (x) => pad.l + (x / x1) * (W - pad.l - pad.r);
    const py = (y) => H - pad.b - ((y - y0) / (y1 - y0)) * (H - pad.t - pad.b);
    for (const v of niceTicks(y0, y1, 4)) {
      if (v < y0 || v > y1) continue;
      svg.append(el('line', { x1: pad.l, x2: W - pad.r, y1: py(v), y2: py(v), class: 'grid' }),
        el('text', { x: pad.l - 6, y: py(v) + 4, class: 'tick', 'text-anchor': 'end' }, String(v)));
    }
    for (const v of niceTicks(0, x1, 5)) {
      svg.append(el('text', { x: px(v), y: H - pad.b + 16, class: 'tick', 'text-anchor': 'middle' }, String(v)));
    }
    svg.append(el('line', { x1: pad.l, x2: pad.l, y1: pad.t, y2: H - pad.b, class: 'axis' }),
      el('line', { x1: pad.l, x2: W - pad.r, y1: H - pad.b, y2: H - pad.b, class: 'axis' }),
      el('text', { x: (W + pad.l) / 2, y: H - 4, class: 'axis-label', 'text-anchor': 'middle' }, xLabel),
      el('text', { x: 12, y: (H - pad.b) / 2, class: 'axis-label', 'text-anchor': 'middle',
        transform: `rotate(-90 12 ${(H - pad.b) / 2})` }, yLabel));
    if (points.length) {
      const d = points.map((p, i) => `${i ? 'L' : 'M'}${px(p.x).toFixed(1)},${py(p.y).toFixed(1)}`).join('');
      const area = `${d}L${px(points.at(-1).x).toFixed(1)},${H - pad.b}L${px(points[0].x).toFixed(1)},${H - pad.b}Z`;
      svg.append(el('path', { d: area, class: 'area' }), el('path', { d, class: 'line' }));
      const last = points.at(-1);
      svg.append(el('circle', { cx: px(last.x), cy: py(last.y), r: 3.5, class: 'dot' }));
    }
    svg.dataset.points = String(points.length);
  };
  svg.update([], 1);
  return svg;
}
