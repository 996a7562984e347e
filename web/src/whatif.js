// What-if: drop recorded agreement events or add hypothetical ones, then compare the record
// with and without them (GET /api/v1/whatif): flows that stop or reroute, gaps before and
// after, past reports whose route would have changed. The what-if lives in the URL
// (`drop`, `add`), so the comparison is shareable and every other view applies it too.
//
// Below it, the same what-if over the exchange's own traffic (GET /api/v1/whatif/traffic):
// every decision the exchange recorded, decided again at its instant. That reads who sent what
// to whom, so it runs only when asked, with the auditor's or operator's token the Live
// exchange section keeps for this tab, sent only in the Authorization header.

import { get, aborted } from './api.js';
import { whatifParams, hasWhatif } from './state.js';
import { h, fill, $, KIND_LABEL, routeCell, table, assumptionMark } from './dom.js';
import { storedToken } from './live.js';

const ADD_KINDS = ['notice', 'suspension', 'revival', 'withdrawal', 'termination', 'entry_into_force', 'signature', 'amendment'];

const routeOf = (r) => routeCell(r.decision === 'deny' ? 'none' : r.decision, r.via, r.delay, r.arrangement ?? r.agreements?.[0]);
const gapKey = (g) => `${g.from}>${g.to}|${g.topic}|${g.start}|${g.end}`;
const decisionRoute = (d) => (d === 'deny' ? 'none' : d);
// what each change of a recorded decision means, in the order they are listed
const TRAFFIC_KINDS = {
  stopped: 'stopped',
  rerouted: 'rerouted',
  changed: 'released differently',
  released: 'released though refused as recorded',
};
const REPORTS_PER_GROUP = 20;

export class WhatIfView {
  constructor(ctx) {
    this.ctx = ctx;
    this.abort = null;
    this.formReady = false;
    this.traffic = null; // the what-if (as its query) the traffic replay shown belongs to
    this.trafficAbort = null;
  }

  /** The token the Live exchange section keeps for this tab, if any. */
  token() {
    return storedToken() ?? this.ctx.views.stats?.live?.token ?? null;
  }

  /** The traffic section: shown with a what-if; its result dropped when the what-if changes. */
  showTraffic(hasItems) {
    const section = $('#whatif-traffic');
    section.hidden = !hasItems;
    const key = whatifParams(this.ctx.state, {}).toString();
    if (this.traffic !== key) {
      this.trafficAbort?.abort();
      this.traffic = null;
      fill($('#traffic-out'));
      section.dataset.state = 'idle';
    }
    const token = this.token();
    $('#traffic-run').disabled = !token;
    section.dataset.token = token ? 'set' : 'none';
  }

  /** The view is shown again without being redrawn: the token may have been set or dropped. */
  redisplayed() {
    if (this.formReady) this.showTraffic(hasWhatif(this.ctx.state));
  }

  /** Replay the exchange's recorded decisions under the current what-if. */
  async replayTraffic() {
    const ctx = this.ctx;
    const token = this.token();
    const section = $('#whatif-traffic');
    const out = $('#traffic-out');
    if (!token) return;
    const params = whatifParams(ctx.state, { reports: String(REPORTS_PER_GROUP) });
    this.trafficAbort?.abort();
    this.trafficAbort = new AbortController();
    section.dataset.state = 'loading';
    fill(out, h('p', { class: 'note' }, 'Replaying every recorded decision…'));
    let t;
    try {
      t = await get('/api/v1/whatif/traffic', params, { signal: this.trafficAbort.signal, headers: { Authorization: `Bearer ${token}` } });
    } catch (err) {
      if (aborted(err)) return;
      section.dataset.state = 'refused';
      fill(
        out,
        h(
          'p',
          { class: 'warning', id: 'traffic-problem' },
          h('strong', {}, `The exchange refused the replay${err.status ? ` (HTTP ${err.status})` : ''}: `),
          h('span', { id: 'traffic-problem-detail' }, err.message),
        ),
      );
      return;
    }
    this.traffic = whatifParams(ctx.state, {}).toString();
    section.dataset.state = 'ok';
    fill(out, this.trafficResult(t));
  }

  trafficResult(t) {
    // stopped and rerouted always (the question asked); the rarer changes when they occur
    const counts = Object.entries(TRAFFIC_KINDS)
      .filter(([k]) => k === 'stopped' || k === 'rerouted' || t.changed[k])
      .map(([k, label]) => [
        h('strong', { dataset: { kind: k, count: t.changed[k] ?? 0 } }, `${(t.changed[k] ?? 0).toLocaleString('en')} ${label}`),
        ', ',
      ]);
    const ids = (g) =>
      h(
        'td',
        { class: 'ids' },
        g.reports.map((r) => h('code', { title: `decided at ${r.decided_at}` }, r.report)),
        g.decisions > g.reports.length ? h('span', { class: 'note' }, `and ${g.decisions - g.reports.length} more`) : null,
      );
    const row = (g) =>
      h(
        'tr',
        { dataset: { from: g.from, to: g.to, topic: g.topic, change: g.change, count: g.decisions } },
        h('td', { class: 'nowrap' }, `${g.from} → ${g.to}`),
        h('td', {}, g.topic),
        h('td', {}, h('span', { class: `tag kind-${g.change}` }, TRAFFIC_KINDS[g.change] ?? g.change)),
        h('td', { class: 'before' }, routeCell(decisionRoute(g.recorded.decision), g.recorded.via)),
        h(
          'td',
          { class: 'after' },
          routeCell(decisionRoute(g.whatif.decision), g.whatif.via, g.whatif.delay),
          g.whatif.recipient_level ? h('span', { class: 'note' }, ` marked ${g.whatif.recipient_level}`) : null,
        ),
        h('td', { class: 'num' }, g.decisions.toLocaleString('en')),
        h('td', {}, h('span', { class: 'nowrap' }, g.first), g.last !== g.first ? [' – ', h('span', { class: 'nowrap' }, g.last)] : null),
        ids(g),
      );
    return [
      h(
        'p',
        { class: 'summary', id: 'traffic-summary', dataset: { decisions: t.decisions } },
        t.decisions
          ? [
              `${t.decisions.toLocaleString('en')} recorded decisions, from `,
              h('span', { class: 'nowrap' }, t.first),
              ' to ',
              h('span', { class: 'nowrap' }, t.last),
              ': ',
              counts,
              `${t.unchanged.toLocaleString('en')} unchanged.`,
            ]
          : 'The exchange has recorded no decision yet.',
      ),
      t.drift
        ? h(
            'p',
            { class: 'warning', id: 'traffic-drift' },
            `${t.drift.toLocaleString('en')} recorded decisions differ from what today’s record decides at their instant, without the what-if: the record has changed since they were made; they are counted under the change the what-if makes.`,
          )
        : null,
      table({
        id: 'traffic-groups',
        caption: 'Decisions that change under the what-if',
        hideCaption: true,
        cls: 'data compact side-by-side',
        head: ['Flow', 'Topic', 'Change', 'Recorded', 'With the what-if', 'Decisions', 'Decided', `Reports (the first ${t.reports_per_group})`],
        rows: t.groups.map(row),
        empty: 'No recorded decision would have gone otherwise.',
      }),
      t.groups.some((g) => g.whatif.decision === 'relay')
        ? h(
            'p',
            { class: 'note' },
            'Relay delays ',
            assumptionMark(),
            ' are modelling assumptions: the arrangement’s modelled relay delay, which no source quantifies.',
          )
        : null,
    ];
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
    $('#traffic-run').addEventListener('click', () => this.replayTraffic());
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
    this.showTraffic(items.length > 0);
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
        h('td', { class: 'before' }, routeCell(x.before.route, x.before.via, x.before.delay)),
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
        caption: 'Flows that change',
        hideCaption: true,
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
            caption: 'Gaps as recorded',
            hideCaption: true,
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
            caption: 'Gaps with the what-if',
            hideCaption: true,
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
        caption: 'Past reports whose route would have changed',
        hideCaption: true,
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
