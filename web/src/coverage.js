// Coverage matrix at the instant shown, for one topic: rows are originators, columns
// recipients, each cell the route a report would take (direct, relay via a hub with the
// modelled delay, none, or unknown), from /api/v1/matrix. Below it, the gap intervals of the
// focus pairs over the scenario's window (also drawn on the timeline), and apart from them the
// intervals whose coverage is unknown: an agreement's entry into force is not recorded, so the
// record cannot say there is no route, and they are not gaps.

import { get, aborted } from './api.js';
import { whatifParams } from './state.js';
import { h, fill, $, routeCell, table, assumptionMark } from './dom.js';

// Scenarios with more parties show the focus parties only (a 200 × 200 table helps nobody).
const MAX_ALL = 30;

export class CoverageView {
  constructor(ctx) {
    this.ctx = ctx;
    this.abort = null;
  }

  async render() {
    const ctx = this.ctx;
    const all = ctx.scenario.parties.length <= MAX_ALL;
    const params = whatifParams(ctx.state, {
      at: ctx.state.at,
      topic: ctx.state.topic,
      parties: all ? '' : ctx.focus().join(','),
    });
    this.abort?.abort();
    this.abort = new AbortController();
    let m;
    let gaps;
    let unknowns;
    try {
      [m, gaps, unknowns] = await Promise.all([get('/api/v1/matrix', params, { signal: this.abort.signal }), ctx.gaps(), ctx.unknowns()]);
    } catch (err) {
      if (!aborted(err)) {
        ctx.report(err);
        // what was shown is of another focus, instant or topic: it must not stay as if it answered this one
        fill($('#matrix-wrap'), h('p', { class: 'warning', id: 'matrix-problem' }, `This coverage cannot be shown: ${err.message}`));
        fill($('#matrix-notes'), null);
        fill($('#gaps-wrap'), null);
      }
      return;
    }
    const cell = new Map(m.flows.map((f) => [`${f.from}>${f.to}`, f]));
    const head = h(
      'tr',
      {},
      h('td', { class: 'corner' }, h('span', {}, 'from ↓ / to →')),
      m.parties.map((p) => h('th', { scope: 'col', title: ctx.partyName(p) }, p)),
    );
    const body = m.parties.map((o) =>
      h(
        'tr',
        {},
        h('th', { scope: 'row', title: ctx.partyName(o) }, o),
        m.parties.map((r) => {
          if (o === r) return h('td', { class: 'self', 'aria-label': 'same party' }, '·');
          const f = cell.get(`${o}>${r}`);
          if (!f) return h('td', {}, '');
          return h(
            'td',
            { class: `cell-${f.route}`, dataset: { from: o, to: r, route: f.route, via: f.via ?? '' } },
            routeCell(f.route, f.via, f.delay, f.agreement),
          );
        }),
      ),
    );
    const relays = m.flows.filter((f) => f.route === 'relay').length;
    const unknownFlows = m.flows.filter((f) => f.route === 'unknown');
    fill(
      $('#matrix-wrap'),
      h(
        'table',
        { id: 'matrix', class: 'matrix', dataset: { at: m.at, topic: m.topic } },
        h('caption', {}, `Coverage of ${m.topic} at ${m.at}: rows are originators, columns recipients.`),
        h('thead', {}, head),
        h('tbody', {}, body),
      ),
    );
    fill(
      $('#matrix-notes'),
      all
        ? null
        : h(
            'p',
            { class: 'note' },
            `This scenario has ${ctx.scenario.parties.length} parties: the matrix shows the focus parties (change them above).`,
          ),
      h(
        'p',
        { class: 'note' },
        h('span', { class: 'route route-direct' }, 'direct'),
        ' under an agreement in force between the two; ',
        h('span', { class: 'route route-relay' }, 'relay'),
        ' through a hub arrangement (needs the originator’s consent); ',
        h('span', { class: 'route route-none' }, 'none'),
        ': a gap. ',
        h('span', { class: 'route route-unknown' }, 'unknown'),
        ': not a gap — the only agreement that would carry it has no recorded entry into force, so the record cannot tell',
        unknownFlows.length ? ` (${[...new Set(unknownFlows.map((f) => f.agreement))].join(', ')})` : '',
        '; nothing is released under it until one is recorded. ',
        relays
          ? ['Relay delays ', assumptionMark(), ' are modelling assumptions (a scenario parameter of the arrangement), not sourced figures.']
          : null,
      ),
    );

    const whatif = ctx.whatifActive();
    const shown = gaps.gaps_after;
    const recorded = new Set(gaps.gaps_before.map((g) => JSON.stringify(g)));
    fill(
      $('#gaps-wrap'),
      h('h3', {}, `Gap intervals among ${ctx.focus().join(', ')}: ${ctx.state.topic}`),
      h(
        'p',
        { class: 'note' },
        `Over the scenario's window ${gaps.start} – ${gaps.end}${whatif ? ', with the what-if applied (new gaps marked)' : ''}. Also drawn on the timeline.`,
      ),
      table({
        caption: `Gap intervals among ${ctx.focus().join(', ')}`,
        hideCaption: true,
        id: 'gaps-table',
        cls: 'data compact',
        head: ['From', 'To', 'Topic', 'Start', 'End', ...(whatif ? [''] : [])],
        rows: shown.map((g) =>
          h(
            'tr',
            { dataset: { from: g.from, to: g.to, topic: g.topic, start: g.start } },
            [g.from, g.to, g.topic, g.start, g.end].map((c) => h('td', {}, c)),
            whatif ? h('td', {}, recorded.has(JSON.stringify(g)) ? '' : h('span', { class: 'tag whatif' }, 'new')) : null,
          ),
        ),
        empty: 'No gap: every focus pair has a route for this topic throughout.',
      }),
      unknowns.length
        ? [
            h('h3', {}, `Coverage not known among ${ctx.focus().join(', ')}: ${ctx.state.topic}`),
            h('p', { class: 'note' }, 'Not gaps: each pair’s only agreement for this topic has no recorded entry into force.'),
            table({
              caption: `Coverage not known among ${ctx.focus().join(', ')}`,
              hideCaption: true,
              id: 'unknowns-table',
              cls: 'data compact',
              head: ['From', 'To', 'Topic', 'Start', 'End', 'Agreement'],
              rows: unknowns.map((u) =>
                h(
                  'tr',
                  { dataset: { from: u.from, to: u.to, topic: u.topic, start: u.start } },
                  [u.from, u.to, u.topic, u.start, u.end, u.agreement].map((c) => h('td', {}, c)),
                ),
              ),
            }),
          ]
        : null,
    );
  }
}
