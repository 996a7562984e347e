// Timeline: each agreement's derived states as bands with its events as markers, the past
// reports, the exchanges (provisions) and the gap intervals of the focus pairs, on one time
// axis. Everything comes from the API (lifecycles, reports, provisions, what-if gaps); this
// module only lays it out. The table under the chart lists the same items in time order.

import { echarts, base, chart, css } from './charts.js';
import { h, fill, $, STATE_LABEL, KIND_LABEL, ms, table } from './dom.js';
import { provisionNote } from './stats.js';

const MAX_ROWS = 40;
const SYMBOL = {
  signature: 'emptyCircle',
  entry_into_force: 'triangle',
  notice: 'diamond',
  suspension: 'rect',
  revival: 'arrow',
  withdrawal: 'roundRect',
  termination: 'pin',
  amendment: 'emptyDiamond',
  derived_end: 'path://M2,0L5,3L8,0L10,2L7,5L10,8L8,10L5,7L2,10L0,8L3,5L0,2Z', // a filled ×
};

/** A custom-series item renderer drawing [row, start, end] as a bar across its row. */
function band(heightShare, offsetShare = 0, minWidth = 2) {
  return (params, api) => {
    const row = api.value(0);
    const [x0, y] = api.coord([api.value(1), row]);
    const [x1] = api.coord([api.value(2), row]);
    const rowHeight = api.size([0, 1])[1];
    const height = rowHeight * heightShare;
    const cs = params.coordSys;
    const shape = echarts.graphic.clipRectByRect(
      { x: x0, y: y - height / 2 + rowHeight * offsetShare, width: Math.max(x1 - x0, minWidth), height },
      { x: cs.x, y: cs.y, width: cs.width, height: cs.height },
    );
    return shape && { type: 'rect', shape, style: { fill: api.visual('color') } };
  };
}

// Text widths for laying out the counts on the canvas (an offscreen canvas measures them).
let measure = null;
function textWidth(text, font) {
  measure ??= document.createElement('canvas').getContext('2d');
  measure.font = font;
  return measure.measureText(text).width;
}

export class TimelineView {
  constructor(ctx) {
    this.ctx = ctx;
    this.el = $('#timeline-chart');
    this.chart = null;
  }

  async render() {
    const ctx = this.ctx;
    const [reports, provisions, gaps, unknowns] = await Promise.all([ctx.reports(), ctx.provisions(), ctx.gaps(), ctx.unknowns()]);
    const tagged = ctx.tagged;
    if (!this.chart) {
      this.chart = chart(this.el);
      this.chart.on('click', (p) => {
        // clicking a dated item moves the instant there (the network and matrix follow)
        if (p.data?.at) ctx.setAt(p.data.at);
      });
    }
    const focus = new Set(ctx.focus());
    let agreements = ctx.scenario.agreements.filter((a) => a.parties.some((p) => focus.has(p)));
    const total = agreements.length;
    const entry = (a) => ms(ctx.lifecycles.get(a.id)?.entry) || Infinity;
    agreements = agreements.sort((a, b) => entry(a) - entry(b) || a.id.localeCompare(b.id)).slice(0, MAX_ROWS);

    const rows = agreements.map((a) => a.id);
    const reportRow = rows.push('Reports') - 1;
    const provisionRows = new Map();
    for (const p of provisions) {
      if (!provisionRows.has(p.agreement)) provisionRows.set(p.agreement, rows.push(`Exchanges ${p.agreement}`) - 1);
    }
    const whatif = ctx.whatifActive();
    const pairs = [...new Set([...gaps.gaps_before, ...gaps.gaps_after].map((g) => `${g.from}→${g.to}`))].sort();
    const gapRow = new Map(pairs.map((p) => [p, rows.push(`Gaps ${p}`) - 1]));
    const unknownPairs = [...new Set(unknowns.map((u) => `${u.from}→${u.to}`))].sort();
    const unknownRow = new Map(unknownPairs.map((p) => [p, rows.push(`Not known ${p}`) - 1]));

    const win = ctx.window;
    const far = win.toMs + 5 * 365 * 86400000;
    const states = [];
    const events = {};
    // [when, row, what, rank]: rank orders what happens at one instant (entry into force first)
    const table_ = [];
    agreements.forEach((a, row) => {
      const life = ctx.lifecycles.get(a.id);
      if (!life) return;
      if (life.unknown) {
        // signed, no entry into force recorded: not known from then on (not "not in force")
        const from = life.unknown.from ?? win.from;
        states.push({
          value: [row, Math.max(ms(from), win.fromMs - 86400000), far, 'unknown'],
          itemStyle: { color: css('--st-unknown') },
          tip: `${a.id}: ${STATE_LABEL.unknown}
from ${from}`,
          at: from,
        });
        table_.push([from, a.id, `${STATE_LABEL.unknown} from here: the record gives no entry into force`, 3]);
      }
      life.segments.forEach((s, i) => {
        if (s.start === null) return;
        const end = life.segments[i + 1]?.start ?? null;
        if (s.state !== 'not_yet_in_force') {
          states.push({
            value: [row, ms(s.start), end ? ms(end) : far, s.state],
            itemStyle: { color: css(`--st-${s.state.replaceAll('_', '-')}`) },
            tip: `${a.id}: ${STATE_LABEL[s.state]}\nfrom ${s.start}${end ? `\nto ${end}` : ''}`,
            at: s.start,
          });
        }
        if (!s.cause) {
          (events.derived_end ??= []).push({ value: [ms(s.start), row], tip: `${a.id}: ${STATE_LABEL[s.state]} (derived)\n${s.start}`, at: s.start });
          table_.push([s.start, a.id, `${STATE_LABEL[s.state]} (derived end)`, 2]);
        }
      });
      for (const e of life.events) {
        const kind = KIND_LABEL[e.kind] ?? e.kind;
        (events[e.kind] ??= []).push({
          value: [ms(e.at), row],
          tip: `${a.id}: ${kind}${e.by ? ` by ${e.by}` : ''}${e.hypothetical ? ' (what-if)' : ''}\n${e.at}${e.note ? `\n${e.note}` : ''}`,
          at: e.at,
          itemStyle: e.hypothetical ? { color: css('--whatif') } : undefined,
        });
        table_.push([
          e.at,
          a.id,
          [
            h('span', { class: 'what' }, `${kind}${e.by ? ` by ${e.by}` : ''}${e.hypothetical ? ' (what-if)' : ''}`),
            e.kind === 'entry_into_force' ? ' — in force from here' : '',
            e.note ? [': ', tagged(e.note)] : '',
            e.source ? h('span', { class: 'source' }, ' ', tagged(e.source)) : null,
          ],
          e.kind === 'entry_into_force' ? 0 : e.kind === 'signature' ? 1 : 2,
        ]);
      }
    });
    const reportItems = reports.map((r) => {
      table_.push([
        r.created,
        'Reports',
        [`${r.title} (${r.originator}, ${r.topic})`, r.source ? h('span', { class: 'source' }, ' ', tagged(r.source)) : null],
        2,
      ]);
      return { value: [ms(r.created), reportRow], tip: `${r.title}\n${r.originator} · ${r.topic}\n${r.created}`, at: r.created };
    });
    const provisionItems = provisions.map((p) => {
      table_.push([
        p.start,
        `Exchanges ${p.agreement}`,
        [
          `${p.count} ${p.count === 1 ? 'provision' : 'provisions'}${p.dated ? '' : `, undated, until ${p.end}`}`,
          p.note ? [' (', tagged(p.note), ')'] : '',
          p.source ? h('span', { class: 'source' }, ' ', tagged(p.source)) : null,
        ],
        2,
      ]);
      return {
        value: [provisionRows.get(p.agreement), ms(p.start), ms(p.end), p.count],
        tip: `${p.agreement}: ${p.count} provided\n${p.start} – ${p.end}${p.dated ? '' : ' (undated within)'}${p.note ? `\n${p.note}` : ''}`,
        at: p.start,
      };
    });
    const gapItems = (list, which) =>
      list.map((g) => {
        const label = `${g.from}→${g.to}`;
        if (which === 'after' || !whatif)
          table_.push([g.start, `Gaps ${label}`, `no route for ${g.topic} until ${g.end}${whatif ? ' (with the what-if)' : ''}`, 2]);
        return {
          value: [gapRow.get(label), ms(g.start), ms(g.end)],
          tip: `Gap ${label} ${g.topic}${which === 'after' && whatif ? ' (with the what-if)' : ''}\n${g.start} – ${g.end}`,
          at: g.start,
        };
      });

    const unknownItems = unknowns.map((u) => {
      const label = `${u.from}→${u.to}`;
      table_.push([
        u.start,
        `Not known ${label}`,
        `coverage of ${u.topic} not known until ${u.end}: ${u.agreement} has no recorded entry into force (not a gap)`,
        2,
      ]);
      return {
        value: [unknownRow.get(label), ms(u.start), ms(u.end)],
        tip: `Not known ${label} ${u.topic} (not a gap)\n${u.agreement}: no entry into force recorded\n${u.start} – ${u.end}`,
        at: u.start,
      };
    });

    // Narrow screens: a slimmer label column and fewer time labels, so nothing collides.
    const narrow = this.el.clientWidth < 640;
    const option = {
      ...base(),
      tooltip: { ...base().tooltip, trigger: 'item', formatter: (p) => p.data?.tip ?? p.seriesName },
      legend: { top: 0, type: 'scroll', textStyle: { color: css('--fg') } },
      grid: { left: narrow ? 112 : 190, right: narrow ? 16 : 40, top: 44, bottom: 64 },
      xAxis: {
        type: 'time',
        min: win.fromMs,
        max: win.toMs,
        splitNumber: narrow ? 3 : 8,
        axisLabel: { hideOverlap: true, fontSize: narrow ? 10 : 12 },
      },
      yAxis: {
        type: 'category',
        data: rows,
        inverse: true,
        axisTick: { show: false },
        axisLabel: { fontSize: narrow ? 10 : 11, width: narrow ? 104 : 180, overflow: 'truncate' },
      },
      dataZoom: [
        // weakFilter keeps a band that starts before the visible range and ends inside or after it
        { type: 'slider', xAxisIndex: 0, bottom: 12, height: 22, labelFormatter: '', filterMode: 'weakFilter' },
        { type: 'inside', xAxisIndex: 0, filterMode: 'weakFilter' },
      ],
      series: [
        {
          name: 'state (colours as in the network legend)',
          id: 'states',
          type: 'custom',
          renderItem: band(0.5),
          encode: { x: [1, 2], y: 0 },
          data: states,
          itemStyle: { color: css('--st-in-force') },
          markLine: {
            silent: true,
            symbol: 'none',
            lineStyle: { color: css('--focus'), type: 'solid', width: 2 },
            // at the top of the line, inside the plot: clear of the time axis's labels
            label: {
              formatter: 'shown',
              color: css('--focus'),
              fontWeight: 600,
              position: 'insideStartTop',
              backgroundColor: css('--bg'),
              padding: [1, 3],
            },
            data: Number.isFinite(ctx.instantMs()) ? [{ xAxis: ctx.instantMs() }] : [],
          },
        },
        ...Object.entries(events).map(([kind, data]) => ({
          name: kind === 'derived_end' ? 'derived end' : (KIND_LABEL[kind] ?? kind),
          type: 'scatter',
          symbol: SYMBOL[kind] ?? 'circle',
          symbolSize: 11,
          itemStyle: { color: css('--fg') },
          data,
        })),
        { name: 'report', type: 'scatter', symbol: 'circle', symbolSize: 7, itemStyle: { color: css('--report') }, data: reportItems },
        {
          name: 'exchanges',
          type: 'custom',
          renderItem: (params, api) => {
            const el = band(0.6, 0, 4)(params, api);
            if (!el) return el;
            // the count inside a wide bar, above a narrow one (a dated exchange is one day
            // wide); a count that would overlap one already drawn in this pass is left out
            // (dated exchanges weeks apart touch on a narrow screen): the table has them all
            const { x, y, width, height } = el.shape;
            const text = String(api.value(3));
            const font = `600 11px ${css('--font')}`;
            const wide = width > textWidth(text, font) + 6;
            const w = textWidth(text, font);
            const box = wide ? { x: x + width / 2 - w / 2, y, w, h: height } : { x: x + width / 2 - w / 2, y: y - 15, w, h: 13 };
            const placed = (params.context.placed ??= []);
            if (placed.some((o) => box.x < o.x + o.w + 2 && o.x < box.x + box.w + 2 && box.y < o.y + o.h && o.y < box.y + box.h)) return el;
            placed.push(box);
            return {
              ...el,
              textContent: { type: 'text', style: { text, fill: wide ? '#fff' : css('--fg'), font } },
              textConfig: { position: wide ? 'inside' : 'top', distance: 2 },
            };
          },
          encode: { x: [1, 2], y: 0 },
          itemStyle: { color: css('--exchange') },
          data: provisionItems,
        },
        {
          name: whatif ? 'gap (recorded)' : 'gap',
          type: 'custom',
          renderItem: band(whatif ? 0.3 : 0.5, whatif ? -0.18 : 0),
          encode: { x: [1, 2], y: 0 },
          itemStyle: { color: css('--gap') },
          data: gapItems(gaps.gaps_before, 'before'),
        },
        whatif
          ? {
              name: 'gap (with the what-if)',
              type: 'custom',
              renderItem: band(0.3, 0.18),
              encode: { x: [1, 2], y: 0 },
              itemStyle: { color: css('--gap-whatif') },
              data: gapItems(gaps.gaps_after, 'after'),
            }
          : null,
        unknownItems.length
          ? {
              name: 'coverage not known (not a gap)',
              type: 'custom',
              renderItem: band(0.5),
              encode: { x: [1, 2], y: 0 },
              itemStyle: { color: css('--st-unknown') },
              data: unknownItems,
            }
          : null,
      ].filter(Boolean),
    };
    this.el.style.height = `${Math.max(320, rows.length * 28 + 110)}px`; // CSSOM, allowed by the CSP
    this.chart.resize();
    this.chart.setOption(option, { notMerge: true });
    this.el.setAttribute(
      'aria-label',
      `Timeline of ${agreements.length} agreements, ${reports.length} reports, ${provisions.length} exchange records and ${gaps.gaps_after.length} gap intervals; the table below lists them.`,
    );

    fill(
      $('#timeline-notes'),
      total > agreements.length ? h('p', { class: 'note' }, `Showing ${agreements.length} of the ${total} agreements of the focus parties.`) : null,
      h(
        'p',
        { class: 'note' },
        `Agreements of the focus parties (${ctx.focus().join(', ')}); gaps are those of topic ${ctx.state.topic} between them over the scenario's window`,
        whatif ? ', recorded (upper) and with the what-if (lower)' : '',
        '. Click a marker to move the instant there; drag the bar below the chart or use the mouse wheel to zoom.',
      ),
      provisions.length ? provisionNote(ctx) : null,
    );
    table_.sort((x, y) => ms(x[0]) - ms(y[0]) || x[3] - y[3]);
    fill(
      $('#timeline-table-wrap'),
      table({
        caption: 'The timeline: every event and change of state',
        hideCaption: true,
        id: 'timeline-table',
        cls: 'data compact',
        head: ['When', 'Row', 'What'],
        rows: table_.map(([when, row, what]) => [when, row, what]),
      }),
    );
  }

  /** Move the "instant shown" line without redrawing the rest. */
  moveInstant() {
    if (!this.chart) return;
    const x = this.ctx.instantMs();
    if (Number.isFinite(x)) this.chart.setOption({ series: [{ id: 'states', markLine: { data: [{ xAxis: x }] } }] });
  }

  resize() {
    this.chart?.resize();
  }
}
