// Route check: "may X release level L on topic T to Y at instant t?", answered by
// GET /api/v1/route with the decision (direct, relay or deny), the path, the marking the
// recipient stamps (Art. 4.2: its own level and the originator's), and every reason with its
// rule and the article it rests on. The question lives in the URL (route_*), what-if included.

import { get, aborted } from './api.js';
import { whatifParams, isInstant } from './state.js';
import { h, fill, $, RULES, duration, assumptionMark, table } from './dom.js';
import { tagged } from './sources.js';
import { ms } from './instants.js';

const DECISION = {
  direct: 'Released directly',
  relay: 'Relayed through a hub',
  deny: 'Denied',
};

// "Art. 21.3", "para. 4", "Art. 5–6": the articles a reason's message cites.
const ARTICLE = /\b(?:Art\.|para\.)\s?[0-9][0-9.]*(?:[–-][0-9][0-9.]*)?/g;

export class RouteView {
  constructor(ctx) {
    this.ctx = ctx;
    this.abort = null;
    this.formReady = false;
  }

  /** The form: parties with a ladder, the originator's ladder, the topics. */
  buildForm() {
    const ctx = this.ctx;
    const parties = ctx.scenario.parties.filter((p) => p.ladder.length);
    const partyOptions = () => parties.map((p) => h('option', { value: p.id }, `${p.id} — ${p.name}`));
    fill($('#route-from'), partyOptions());
    fill($('#route-to'), partyOptions());
    fill(
      $('#route-topic'),
      ctx.scenario.topics.map((t) => h('option', { value: t.id, title: t.description }, t.id)),
    );
    $('#route-from').addEventListener('change', () => this.fillLevels());
    $('#route-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const at = $('#route-at').value.trim() || ctx.instant?.at || ctx.state.at;
      if (!isInstant(at)) {
        ctx.report(new Error(`“${at}” is not an instant: give a date (2019-12-01) or an ISO 8601 instant with offset (2019-11-22T19:00+09:00).`));
        return;
      }
      ctx.set(
        {
          route_from: $('#route-from').value,
          route_to: $('#route-to').value,
          route_level: $('#route-level').value,
          route_topic: $('#route-topic').value,
          route_at: at,
        },
        { push: true },
      );
    });
    this.formReady = true;
  }

  /** The originator's ladder, highest first (the level select offers only these). */
  fillLevels(selected) {
    const party = this.ctx.parties.get($('#route-from').value);
    const levels = [...(party?.ladder ?? [])].sort((a, b) => a.rank - b.rank);
    fill(
      $('#route-level'),
      levels.map((lv) => h('option', { value: lv.name, selected: lv.name === selected }, lv.english ? `${lv.name} (${lv.english})` : lv.name)),
    );
  }

  /** Defaults for an unasked question: the focus parties, the topic and instant shown, and
   * the level the originator's past reports most often carry (else its highest). */
  defaults() {
    const ctx = this.ctx;
    const s = ctx.state;
    const focus = ctx.focus();
    const from = s.route_from ?? focus[0] ?? ctx.scenario.parties[0]?.id;
    const to = s.route_to ?? focus.find((p) => p !== from) ?? ctx.scenario.parties.find((p) => p.id !== from)?.id;
    const counts = new Map();
    for (const r of ctx.reportList) if (r.originator === from) counts.set(r.level, (counts.get(r.level) ?? 0) + 1);
    const usual = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
    const ladder = [...(ctx.parties.get(from)?.ladder ?? [])].sort((a, b) => a.rank - b.rank);
    return {
      from,
      to,
      level: s.route_level ?? usual ?? ladder[0]?.name,
      topic: s.route_topic ?? s.topic,
      at: s.route_at ?? ctx.instant?.at ?? s.at,
    };
  }

  syncForm() {
    const d = this.defaults();
    $('#route-from').value = d.from ?? '';
    this.fillLevels(d.level);
    $('#route-to').value = d.to ?? '';
    $('#route-topic').value = d.topic ?? '';
    if (document.activeElement !== $('#route-at')) $('#route-at').value = d.at ?? '';
  }

  async render() {
    const ctx = this.ctx;
    if (!this.formReady) this.buildForm();
    this.syncForm();
    const s = ctx.state;
    const out = $('#route-out');
    if (!(s.route_from && s.route_to && s.route_level && s.route_topic)) {
      fill(
        out,
        h('p', { class: 'hint' }, 'Choose the parties, the level, the topic and the instant, then “Check”: the answer comes with every reason.'),
      );
      return;
    }
    this.abort?.abort();
    this.abort = new AbortController();
    let r;
    try {
      r = await get(
        '/api/v1/route',
        whatifParams(s, {
          originator: s.route_from,
          recipient: s.route_to,
          level: s.route_level,
          topic: s.route_topic,
          at: s.route_at ?? ctx.instant?.at ?? s.at,
        }),
        { signal: this.abort.signal },
      );
    } catch (err) {
      if (!aborted(err)) {
        ctx.report(err);
        fill(out, h('p', { class: 'warning' }, `This question cannot be answered: ${err.problem?.detail ?? err.message}`));
      }
      return;
    }
    fill(out, this.answer(r));
  }

  answer(r) {
    const ctx = this.ctx;
    const unknownAt = (aid) => {
      const u = ctx.lifecycles.get(aid)?.unknown;
      return u && (u.from === null || ms(u.from) <= ms(r.at));
    };
    const m = r.marking;
    const reasonRows = r.reasons.map((x) => {
      const [n, label] = RULES[x.rule] ?? ['', x.rule];
      const articles = [...new Set(x.message.match(ARTICLE) ?? [])];
      return h(
        'tr',
        { dataset: { rule: x.rule, agreement: x.agreement ?? '' } },
        h('td', { class: 'rule' }, n ? `Rule ${n}` : '', h('br'), h('span', { class: 'note' }, label)),
        h('td', {}, x.agreement ?? '—'),
        h('td', { class: 'article' }, articles.length ? articles.join(', ') : '—'),
        h(
          'td',
          {},
          tagged(ctx, x.message),
          x.agreement && unknownAt(x.agreement)
            ? h(
                'span',
                { class: 'note' },
                ' — its entry into force is not recorded, so its state is not known; nothing is released on a guess (rule 7).',
              )
            : null,
        ),
      );
    });
    const whatif = ctx.whatifActive();
    return h(
      'section',
      { id: 'route-answer', class: `route-answer decision-${r.decision}`, dataset: { decision: r.decision } },
      h(
        'h3',
        { id: 'route-decision' },
        h('span', { class: `decision decision-${r.decision}` }, r.decision),
        ' ',
        `${DECISION[r.decision] ?? r.decision}: ${r.originator} ${m.originator_level} on ${r.topic} to ${r.recipient} at ${r.at}`,
        whatif ? h('span', { class: 'tag whatif' }, 'with the what-if') : null,
      ),
      h(
        'dl',
        { class: 'facts' },
        h('dt', {}, 'Path'),
        h('dd', { id: 'route-path' }, r.path.length ? r.path.join(' → ') : 'none'),
        r.agreements.length ? [h('dt', {}, 'Under'), h('dd', { id: 'route-agreements' }, r.agreements.join(', '))] : null,
        h('dt', {}, 'Marking the recipient stamps'),
        h(
          'dd',
          { id: 'route-marking' },
          m.banner
            ? [
                h('strong', { class: 'marking' }, m.banner),
                m.common_level
                  ? ` — common level ${m.common_level} (Art. 4.2: the recipient’s equivalent level and the originator’s own marking)`
                  : '',
              ]
            : 'none: nothing is released',
        ),
        r.decision === 'relay'
          ? [
              h('dt', {}, 'Consent'),
              h(
                'dd',
                {},
                r.per_report_consent
                  ? 'the originator’s prior written consent for this very report'
                  : 'the originator’s prior written consent (standing or for this report)',
              ),
              h('dt', {}, 'Relay delay'),
              h('dd', {}, duration(r.delay), ' ', assumptionMark(), ' modelling assumption'),
            ]
          : null,
      ),
      r.legs.length > 1
        ? table({
            cls: 'data compact',
            id: 'route-legs',
            caption: 'Legs of the route',
            hideCaption: true,
            head: ['Leg', 'Under', 'At', 'Marked'],
            rows: r.legs.map((leg) => [`${leg.from} → ${leg.to}`, leg.agreement, leg.at, leg.marking.banner]),
          })
        : null,
      h(
        'h4',
        {},
        r.decision === 'deny' ? 'Why not: every rule that failed' : r.reasons.length ? 'Reasons: why not directly, and the conditions' : 'Reasons',
      ),
      table({
        cls: 'data compact reasons',
        id: 'route-reasons',
        caption: 'Reasons',
        hideCaption: true,
        head: ['Rule', 'Agreement', 'Article', 'Reason'],
        rows: reasonRows,
        empty: 'Every rule holds: nothing stands in the way.',
      }),
      r.assumptions.length
        ? h(
            'ul',
            { class: 'note' },
            r.assumptions.map((a) => h('li', {}, a)),
          )
        : null,
    );
  }
}
