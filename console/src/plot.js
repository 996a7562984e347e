// The track's table and its SVG plot (geometry from track.js). Colours come from classes in
// console.css; the SVG has a text alternative, and the table beside it has every number.

import { h, s, table } from './dom.js';
import { instant, num, sinceStart } from './format.js';
import { plotModel, peak } from './track.js';

export function trackTable(points) {
  const hasSpeed = points.some((p) => p.speed !== null);
  const hasPos = points.some((p) => p.lat !== null);
  // one date for the whole track (the usual case): said once in the header, times alone below
  const iso = (p) => new Date(p.ms).toISOString();
  const days = new Set(points.map((p) => iso(p).slice(0, 10)));
  const oneDay = days.size === 1 ? [...days][0] : null;
  const when = (p) => h('time', { datetime: iso(p) }, oneDay ? instant(iso(p)).slice(11, 19) : instant(iso(p)).replace(' UTC', ''));
  return table({
    caption: 'Track samples',
    id: 'track-table',
    cls: 'numeric',
    head: [
      'Since first',
      oneDay ? `UTC, ${oneDay}` : 'UTC',
      ...(hasPos ? ['Lat (°)', 'Lon (°)'] : []),
      'Altitude (km)',
      'Range (km)',
      ...(hasSpeed ? ['Speed (m/s)'] : []),
    ],
    rows: points.map((p) => [
      sinceStart(p.s),
      when(p),
      ...(hasPos ? [fixed(p.lat, 3), fixed(p.lon, 3)] : []),
      fixed(p.altKm, 1),
      fixed(p.rangeKm, 1),
      ...(hasSpeed ? [fixed(p.speed, 0)] : []),
    ]),
  });
}

const fixed = (v, digits) => (v === null || v === undefined ? '' : v.toFixed(digits));

/**
 * The plot, drawn at the width of its figure (so its text keeps its size on a phone) and
 * redrawn when that width changes.
 */
export function trackPlot(points) {
  const figure = h('figure', { class: 'plot', id: 'track-figure' });
  let drawn = 0;
  const draw = (width) => {
    const w = Math.max(280, Math.round(width));
    if (w === drawn) return;
    drawn = w;
    figure.replaceChildren(...plotNodes(points, w));
    figure.dataset.width = String(w);
  };
  new ResizeObserver((entries) => draw(entries[0].contentRect.width)).observe(figure);
  return figure;
}

function plotNodes(points, width) {
  const m = plotModel(points, { width, height: width < 520 ? 380 : 420, xCount: width < 520 ? 4 : 7 });
  const apogee = peak(points, 'altKm');
  const last = points[points.length - 1];
  const label = `Altitude and ground range against time since the first sample: apogee ${num(apogee.altKm)} km at ${sinceStart(apogee.s)}; ground range ${num(last.rangeKm)} km at ${sinceStart(last.s)}, the last of ${points.length} samples.`;
  const left = m.margin.left;
  const right = m.width - m.margin.right;
  return [
    s(
      'svg',
      { viewBox: `0 0 ${m.width} ${m.height}`, role: 'img', 'aria-labelledby': 'plot-title', id: 'track-plot', class: 'plot-svg' },
      s('title', { id: 'plot-title' }, label),
      m.panels.map((p) =>
        s(
          'g',
          { class: `panel panel-${p.key}` },
          s('text', { x: left, y: p.top - 10, class: 'panel-label' }, p.label),
          p.yTicks.map((t) =>
            s(
              'g',
              {},
              s('line', { x1: left, x2: right, y1: t.y, y2: t.y, class: 'grid' }),
              s('text', { x: left - 8, y: t.y + 4, class: 'tick tick-y' }, num(t.v, 0)),
            ),
          ),
          m.xTicks.map((t) => s('line', { x1: t.x, x2: t.x, y1: p.top, y2: p.top + p.height, class: 'grid grid-x' })),
          s('line', { x1: left, x2: right, y1: p.top + p.height, y2: p.top + p.height, class: 'axis' }),
          s('path', { d: p.path, class: `line line-${p.key}` }),
          p.dots.map((d) => s('circle', { cx: d.x, cy: d.y, r: 2.5, class: `dot dot-${p.key}` })),
        ),
      ),
      m.xTicks.map((t) => s('text', { x: t.x, y: m.height - m.margin.bottom + 18, class: 'tick tick-x' }, sinceStart(t.v))),
      s('text', { x: (left + right) / 2, y: m.height - 6, class: 'axis-label' }, 'Time since the first sample'),
    ),
    h('figcaption', {}, label),
  ];
}
