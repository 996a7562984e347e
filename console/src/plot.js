// The track's table and its SVG plot (geometry from track.js). Colours come from classes in
// console.css; the SVG has a text alternative, and the table beside it has every number.

import { h, s, table } from './dom.js';
import { instant, num, sinceStart } from './format.js';
import { plotModel, peak } from './track.js';

const fixed = (v, digits) => (v === null || v === undefined ? '' : v.toFixed(digits));

/** Every sample, with the time columns when the track has times. */
export function trackTable(track) {
  const { points, timed } = track;
  const hasSpeed = points.some((p) => p.speed !== null);
  const hasPos = points.some((p) => p.lat !== null);
  // one date for the whole track (the usual case): said once in the header, times alone below
  const iso = (p) => new Date(p.ms).toISOString();
  const days = timed ? new Set(points.map((p) => iso(p).slice(0, 10))) : new Set();
  const oneDay = days.size === 1 ? [...days][0] : null;
  const when = (p) => h('time', { datetime: iso(p) }, oneDay ? instant(iso(p)).slice(11, 19) : instant(iso(p)).replace(' UTC', ''));
  return table({
    caption: timed ? 'Track samples' : 'Track positions (no times given)',
    id: 'track-table',
    cls: 'numeric',
    head: [
      ...(timed ? ['Since first', oneDay ? `UTC, ${oneDay}` : 'UTC'] : ['#']),
      ...(hasPos ? ['Lat (°)', 'Lon (°)'] : []),
      timed ? 'Altitude (km)' : 'Height (km)',
      'Range (km)',
      ...(hasSpeed ? ['Speed (m/s)'] : []),
    ],
    rows: points.map((p, i) => [
      ...(timed ? [sinceStart(p.s), when(p)] : [String(i + 1)]),
      ...(hasPos ? [fixed(p.lat, 3), fixed(p.lon, 3)] : []),
      fixed(p.altKm, 1),
      fixed(p.rangeKm, 1),
      ...(hasSpeed ? [fixed(p.speed, 0)] : []),
    ]),
  });
}

/**
 * The plot, drawn at the width of its figure (so its text keeps its size on a phone) and
 * redrawn when that width changes.
 */
export function trackPlot(track) {
  const figure = h('figure', { class: 'plot', id: 'track-figure' });
  let drawn = 0;
  const draw = (width) => {
    const w = Math.max(280, Math.round(width));
    if (w === drawn) return;
    drawn = w;
    figure.replaceChildren(...plotNodes(track, w));
    figure.dataset.width = String(w);
  };
  new ResizeObserver((entries) => draw(entries[0].contentRect.width)).observe(figure);
  return figure;
}

function describe(track) {
  const { points, timed } = track;
  const top = peak(points, 'altKm');
  const last = points[points.length - 1];
  return timed
    ? `Altitude and ground range against time since the first sample: apogee ${num(top.altKm)} km at ${sinceStart(top.s)}; ground range ${num(last.rangeKm)} km at ${sinceStart(last.s)}, the last of ${points.length} samples.`
    : `Height against ground range for ${points.length} positions without times: highest ${num(top.altKm)} km at ${num(top.rangeKm)} km; the last position ${num(last.rangeKm)} km from the first.`;
}

function plotNodes(track, width) {
  const narrow = width < 520;
  const m = plotModel(track, { width, height: track.timed ? (narrow ? 380 : 420) : narrow ? 240 : 280, xCount: narrow ? 4 : 7 });
  const label = describe(track);
  const left = m.margin.left;
  const right = m.width - m.margin.right;
  const xText = (v) => (m.timed ? sinceStart(v) : num(v, 0));
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
      m.xTicks.map((t) => s('text', { x: t.x, y: m.height - m.margin.bottom + 18, class: 'tick tick-x' }, xText(t.v))),
      s('text', { x: (left + right) / 2, y: m.height - 6, class: 'axis-label' }, m.xLabel),
    ),
    h('figcaption', {}, label),
  ];
}
