// What-if: drop recorded agreement events or add hypothetical ones, then compare the record
// with and without them (GET /api/v1/whatif): flows that stop or reroute, gaps before and
// after, past reports whose route would have changed. The what-if lives in the URL
// (`drop`, `add`), so the comparison is shareable and every other view applies it too.

import { get, aborted } from './api.js';
import { whatifParams } from './state.js';
import { h, fill, $, KIND_LABEL, routeCell, table, assumptionMark } from './dom.js';

const ADD_KINDS = ['notice', 'suspension', 'revival', 'withdrawal', 'termination', 'entry_into_force', 'signature', 'amendment'];

const routeOf = (r) => routeCell(r.decision === 'deny' ? 'none' : r.decision, r.via, r.delay, r.arrangement ?? r.agreements?.[0]);
const gapKey = (g) => `${g.from}>${g.to}|${g.topic}|${g.start}|${g.end}`;

export class WhatIfView {
  constructor(ctx) {
    this.ctx = ctx;
    this.abort = null;
    this.formReady = false;
  }

  /** The forms: a select of recorded events to drop, a form for a hypothetical event. */
  async buildForms() {
    const ctx = this.ctx;
    const events = await ctx.events();
    const byAgreement = new Map();
    for (const e of events) {
      if (!byAgreement.has(e.agreement)) byAgreement.set(e.agreement, []);
      byAgreement.get(e.agreement).push(e);
    }
    const question = ctx.scenario.question;
    fill(
      $('#drop-event'),
      [...byAgreement.entries()].map(([aid, list]) =>
        h(
          'optgroup',
          { label: aid },
          list.map((e) =>
            h(
              'option',
              { value: e.id, selected: question?.drop.includes(e.id), title: e.note || null },
              `${e.at.slice(0, 16)} ${KIND_LABEL[e.kind] ?? e.kind}${e.by ? ` by ${e.by}` : ''} (${e.id})`,
            ),
          ),
        ),
      ),
    );
    const agreementSelect = $('#add-agreement');
    fill(
      agreementSelect,
      ctx.scenario.agreements.map((a) => h('option', { value: a.id }, a.id)),
    );
    fill(
      $('#add-kind'),
      ADD_KINDS.map((k) => h('option', { value: k }, KIND_LABEL[k] ?? k)),
    );
    const byOptions = () => {
      const a = ctx.agreement(agreementSelect.value);
      fill(
        $('#add-by'),
        h('option', { value: '' }, '—'),
        (a?.parties ?? []).map((p) => h('option', { value: p }, p)),
      );
    };
    agreementSelect.addEventListener('change', byOptions);
    byOptions();
    const qb = $('#question-button');
    if (question) {
      qb.hidden = false;
      qb.textContent = `The scenario’s question: ${question.title} (drop ${question.drop.join(', ')})`;
      qb.addEventListener('click', () => ctx.set({ drop: [...question.drop], add: [], parties: question.parties.join(',') }, { push: true }));
    }
    $('#drop-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const id = $('#drop-event').value;
      if (id && !ctx.state.drop.includes(id)) ctx.set({ drop: [...ctx.state.drop, id] }, { push: true });
    });
    $('#add-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const at = $('#add-at').value.trim();
      const effective = $('#add-effective').value.trim();
      if (!at || /\s/.test(at) || /\s/.test(effective)) {
        ctx.report(new Error('Give the instant (and the effective instant, if any) without spaces, e.g. 2019-11-23 or 2019-11-22T18:00+09:00.'));
        return;
      }
      const by = $('#add-by').value;
      const spec = [agreementSelect.value, $('#add-kind').value, at, by ? `by ${by}` : '', effective ? `effective ${effective}` : '']
        .filter(Boolean)
        .join(' ');
      ctx.set({ add: [...ctx.state.add, spec] }, { push: true });
    });
    this.formReady = true;
  }

  async render() {
    const ctx = this.ctx;
    if (!this.formReady) await this.buildForms();
    // what the current what-if consists of, each item removable
    const items = [
      ...ctx.state.drop.map((id) => ({ text: `drop ${id}`, remove: { drop: ctx.state.drop.filter((x) => x !== id) } })),
      ...ctx.state.add.map((spec) => ({ text: `add ${spec}`, remove: { add: ctx.state.add.filter((x) => x !== spec) } })),
    ];
    fill(
      $('#whatif-items'),
      items.length
        ? items.map((it) =>
            h(
              'li',
              {},
              h('code', {}, it.text),
              ' ',
              h('button', { type: 'button', class: 'small', onclick: () => ctx.set(it.remove, { push: true }) }, 'remove'),
            ),
          )
        : h('li', { class: 'hint' }, 'Nothing yet: drop a recorded event or add a hypothetical one.'),
    );
    const out = $('#whatif-out');
    if (!items.length) {
      fill(out);
      return;
    }
    this.abort?.abort();
    this.abort = new AbortController();
    let c;
    try {
      c = await get('/api/v1/whatif', whatifParams(ctx.state, { parties: ctx.focus().join(',') }), { signal: this.abort.signal });
    } catch (err) {
      if (!aborted(err)) {
        ctx.report(err);
        fill(out, h('p', { class: 'warning' }, `This what-if cannot be compared: ${err.message}`));
      }
      return;
    }
    const rerouted = c.changes.filter((x) => x.kind === 'rerouted');
    const stopped = c.changes.filter((x) => x.kind === 'stopped');
    const restored = c.changes.filter((x) => x.kind === 'restored');
    const before = new Set(c.gaps_before.map(gapKey));
    const after = new Set(c.gaps_after.map(gapKey));
    const opened = c.gaps_after.filter((g) => !before.has(gapKey(g)));
    const closed = c.gaps_before.filter((g) => !after.has(gapKey(g)));
    const changedReports = c.reports_changed;

    const flowRow = (x) =>
      h(
        'tr',
        { dataset: { from: x.from, to: x.to, topic: x.topic, kind: x.kind, start: x.start, route: x.after.route, via: x.after.via ?? '' } },
        h('td', {}, `${x.from} → ${x.to}`),
        h('td', {}, x.topic),
        h('td', {}, `${x.start} – ${x.end}`),
        h('td', { class: 'before' }, routeCell(x.before.route, x.before.via)),
        h('td', { class: 'after' }, routeCell(x.after.route, x.after.via, x.after.delay), ' ', h('span', { class: `tag kind-${x.kind}` }, x.kind)),
      );
    const gapRows = (list, other, tag) =>
      list.map((g) =>
        h(
          'tr',
          { dataset: { from: g.from, to: g.to, topic: g.topic, start: g.start, end: g.end, changed: other.has(gapKey(g)) ? '' : tag } },
          h('td', { class: 'nowrap' }, `${g.from} → ${g.to}`),
          h('td', {}, g.topic),
          // the interval may break after the dash, so both tables fit side by side
          h('td', {}, h('span', { class: 'nowrap' }, g.start), ' – ', h('span', { class: 'nowrap' }, g.end)),
          h('td', {}, other.has(gapKey(g)) ? '' : h('span', { class: `tag ${tag}` }, tag)),
        ),
      );
    fill(
      out,
      h('h3', { id: 'whatif-title' }, `What if: ${c.whatif.description}`),
      h(
        'p',
        { class: 'summary', id: 'whatif-summary' },
        `From ${c.start} to ${c.end}, among ${ctx.focus().join(', ')}: `,
        h('strong', {}, `${rerouted.length} flows rerouted`),
        ', ',
        h('strong', {}, `${stopped.length} stopped`),
        restored.length ? [', ', h('strong', {}, `${restored.length} restored`)] : null,
        '; ',
        h('strong', {}, `${opened.length} gaps opened`),
        closed.length ? [', ', h('strong', {}, `${closed.length} closed`)] : null,
        '; ',
        h('strong', {}, `${changedReports.length} of ${c.reports_replayed} past reports`),
        ' would have taken another route.',
      ),
      h('h4', {}, 'Flows that change'),
      table({
        id: 'whatif-changes',
        cls: 'data compact side-by-side nowrap',
        head: ['Flow', 'Topic', 'Period', 'Recorded', 'With the what-if'],
        rows: c.changes.map(flowRow),
        empty: 'No flow changes.',
      }),
      c.changes.some((x) => x.after.route === 'relay') || changedReports.some((r) => r.after.decision === 'relay')
        ? h(
            'p',
            { class: 'note' },
            'Relay delays ',
            assumptionMark(),
            ' are modelling assumptions: the arrangement’s modelled relay delay, which no source quantifies.',
          )
        : null,
      h(
        'div',
        { class: 'two-columns' },
        h(
          'div',
          {},
          h('h4', {}, 'Gaps as recorded'),
          table({
            id: 'gaps-before',
            cls: 'data compact',
            head: ['Flow', 'Topic', 'Interval', ''],
            rows: gapRows(c.gaps_before, after, 'closed'),
            empty: 'No gap.',
          }),
        ),
        h(
          'div',
          {},
          h('h4', {}, 'Gaps with the what-if'),
          table({
            id: 'gaps-after',
            cls: 'data compact',
            head: ['Flow', 'Topic', 'Interval', ''],
            rows: gapRows(c.gaps_after, before, 'new'),
            empty: 'No gap.',
          }),
        ),
      ),
      h('h4', {}, 'Past reports whose route would have changed'),
      table({
        id: 'whatif-reports',
        cls: 'data compact side-by-side',
        head: ['Report', 'Created', 'Flow', 'Topic', 'Recorded route', 'Route with the what-if'],
        rows: changedReports.map((r) =>
          h(
            'tr',
            { dataset: { report: r.report } },
            h('td', {}, r.title, h('span', { class: 'source' }, ` ${r.report}`)),
            h('td', {}, r.created),
            h('td', {}, `${r.originator} → ${r.recipient}`),
            h('td', {}, r.topic),
            h('td', { class: 'before' }, routeOf(r.before)),
            h('td', { class: 'after' }, routeOf(r.after)),
          ),
        ),
        empty: 'None of the past reports would have been routed differently.',
      }),
      c.no_longer_apply.length
        ? [
            h('h4', {}, 'Recorded events that would no longer apply'),
            h(
              'ul',
              {},
              c.no_longer_apply.map((x) => h('li', {}, h('code', {}, x.event), `: ${x.why}`)),
            ),
          ]
        : null,
    );
  }
}
