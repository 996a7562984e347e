// Exchange statistics: provisions by year (and by month where dated) per agreement, as known
// at a chosen instant, with the trend test exactly as the API states it (method, statistic,
// p-value, and its note on what the test can and cannot show with so few years); below them,
// the live exchange's own counts for an auditor or operator (live.js).

import { get, aborted } from './api.js';
import { base, chart, css } from './charts.js';
import { h, fill, $, table } from './dom.js';
import { LiveExchange } from './live.js';

/** What "provision" means where counts are shown (the stats view, the timeline). `ctx` links the tags. */
export function provisionNote(ctx) {
  return h(
    'p',
    { class: 'note provision-note' },
    h('dfn', {}, 'Provision'),
    ctx.tagged(
      ': one occasion on which classified information was provided under the agreement, as the sources count them — e.g. 29 exchanges from November 2016 to 22 August 2019 [R S32], and in 2017 the 19 went each way [R S32, S34]. ',
    ),
    'A count known only for a period is drawn over that period (“undated”); a dated exchange is one day. A year with no record is a hole, not a zero.',
  );
}

export class StatsView {
  constructor(ctx) {
    this.ctx = ctx;
    this.abort = null;
    this.years = null;
    this.months = null;
    this.live = new LiveExchange(ctx);
  }

  async render() {
    const ctx = this.ctx;
    this.live.start();
    $('#stats-at').value = ctx.state.stats_at ?? '';
    this.abort?.abort();
    this.abort = new AbortController();
    let rows;
    try {
      rows = await get('/api/v1/stats', ctx.state.stats_at ? { at: ctx.state.stats_at } : {}, { signal: this.abort.signal });
    } catch (err) {
      if (!aborted(err)) ctx.report(err);
      return;
    }
    fill($('#stats-note'), provisionNote(ctx));
    const out = $('#stats-out');
    if (!rows.length) {
      fill(out, h('p', { class: 'note' }, 'No exchanges are recorded in this scenario.'));
      $('#stats-charts').hidden = true;
      return;
    }
    $('#stats-charts').hidden = false;
    // years from the first to the last known, so a year with no record shows as a hole
    const known = rows.flatMap((s) => [...Object.keys(s.by_year), ...s.missing_years].map(Number));
    const years = [];
    for (let y = Math.min(...known); y <= Math.max(...known); y++) years.push(String(y));
    const months = [...new Set(rows.flatMap((s) => Object.keys(s.by_month)))].sort();
    const palette = [css('--series-1'), css('--series-2'), css('--series-3'), css('--series-4')];

    this.years ??= chart($('#stats-chart'));
    this.years.setOption(
      {
        ...base(),
        tooltip: { ...base().tooltip, trigger: 'item', formatter: (p) => `${p.seriesName}\n${p.name}: ${p.value ?? 'no record'}` },
        legend: { top: 0 },
        grid: { left: 48, right: 16, top: 40, bottom: 32 },
        xAxis: { type: 'category', data: years },
        yAxis: { type: 'value', name: 'provisions', minInterval: 1 },
        series: rows.map((s, i) => ({
          name: s.agreement,
          type: 'bar',
          itemStyle: { color: palette[i % palette.length] },
          label: { show: true, position: 'top' },
          data: years.map((y) => (y in s.by_year ? s.by_year[y] : null)),
        })),
      },
      { notMerge: true },
    );
    $('#stats-chart').setAttribute('aria-label', `Provisions by year; the table below gives the same numbers.`);

    const monthBox = $('#stats-month-chart');
    $('#stats-month-figure').hidden = months.length === 0;
    if (months.length) {
      this.months ??= chart(monthBox);
      this.months.setOption(
        {
          ...base(),
          tooltip: { ...base().tooltip, trigger: 'item', formatter: (p) => `${p.seriesName}\n${p.name}: ${p.value}` },
          legend: { show: false },
          grid: { left: 48, right: 16, top: 28, bottom: 32 },
          xAxis: { type: 'category', data: months },
          yAxis: { type: 'value', name: 'dated provisions', minInterval: 1 },
          series: rows.map((s, i) => ({
            name: s.agreement,
            type: 'bar',
            itemStyle: { color: palette[i % palette.length] },
            label: { show: true, position: 'top' },
            data: months.map((m) => s.by_month[m] ?? null),
          })),
        },
        { notMerge: true },
      );
      this.months.resize();
      monthBox.setAttribute('aria-label', `Dated provisions by month (${months.join(', ')}); the table below gives them.`);
    }
    this.years.resize();

    fill(
      out,
      rows.map((s) => {
        const t = s.trend;
        const p = t.p_value === null || t.p_value === undefined ? 'not computed' : t.p_value.toPrecision(3).replace(/\.?0+$/, '');
        return h(
          'section',
          { class: 'stats-agreement', dataset: { agreement: s.agreement } },
          h('h3', {}, `${s.agreement}, as known at ${s.at}`),
          table({
            cls: 'data compact stats-years',
            caption: `Provisions by year: ${s.agreement}`,
            hideCaption: true,
            head: ['Year', 'Provisions', 'Note'],
            rows: [
              ...[...Object.keys(s.by_year), ...s.missing_years]
                .sort()
                .map((y) =>
                  h(
                    'tr',
                    { dataset: { year: y, count: y in s.by_year ? String(s.by_year[y]) : '' } },
                    h('th', { scope: 'row' }, y),
                    h('td', { class: 'num' }, y in s.by_year ? String(s.by_year[y]) : '—'),
                    h(
                      'td',
                      {},
                      s.missing_years.includes(y) ? 'no record for this year (not zero)' : s.partial_years.includes(y) ? 'part of the year' : '',
                    ),
                  ),
                ),
              h(
                'tr',
                { class: 'total', dataset: { total: String(s.total) } },
                h('th', { scope: 'row' }, 'Total'),
                h('td', { class: 'num' }, String(s.total)),
                h('td', {}, ''),
              ),
            ],
          }),
          Object.keys(s.by_month).length
            ? table({
                cls: 'data compact stats-months',
                caption: `Dated provisions by month: ${s.agreement}`,
                hideCaption: true,
                head: ['Month (dated provisions)', 'Provisions'],
                rows: Object.entries(s.by_month).map(([m, n]) => [m, h('td', { class: 'num' }, String(n))]),
              })
            : null,
          h(
            'p',
            { class: 'trend', dataset: { pValue: String(t.p_value) } },
            h('strong', {}, 'Trend test: '),
            `${t.method}; S = ${t.statistic}, n = ${t.n} years, two-sided p = ${p}`,
            t.min_p_value !== null && t.min_p_value !== undefined ? ` (smallest p possible with n = ${t.n}: ${t.min_p_value.toPrecision(2)})` : '',
            `; direction ${t.direction}. `,
            h('span', { class: 'trend-note' }, t.note ? t.note[0].toUpperCase() + t.note.slice(1) + '.' : ''),
          ),
        );
      }),
    );
  }

  resize() {
    this.years?.resize();
    this.months?.resize();
    this.live.resize();
  }
}
