// Network at a date: parties as nodes, agreements as edges coloured by their derived state.
//
// The Cytoscape instance is built once (a what-if changes events, not agreements or parties);
// moving the instant or changing the what-if only swaps the `st-…` class of the edges whose
// state changed, in one batch, so the 200-party synthetic network follows the slider. The table below the graph is the text
// alternative: same states, one row per agreement (`data-state` on the row).

import cytoscape from 'cytoscape';
import { get, aborted } from './api.js';
import { whatifParams } from './state.js';
import { h, fill, $, STATES, STATE_LABEL, KIND_LABEL, stateBadge, duration, assumptionMark, table, eventOrder } from './dom.js';

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
const cssState = (state) => css(`--st-${state.replaceAll('_', '-')}`);

// Above this many agreements, drop edge labels and use cheaper edges and layout.
const LARGE = 150;

function kindText(a) {
  if (a.hub) return `arrangement through hub ${a.hub}`;
  if (a.parties.length > 2) return `multilateral (${a.parties.length} parties), direct`;
  return a.kind;
}

/** Cytoscape elements: a node per party; one edge per bilateral agreement, a dashed spoke from
 * each member to the hub of a hub arrangement, every pair for a multilateral one. */
function elements(scenario, labelled) {
  const hubs = new Set(scenario.agreements.filter((a) => a.hub).map((a) => a.hub));
  // most-connected parties first: the layout puts the first at the centre and the next ones
  // side by side on the ring, so the busiest triangle (JPN, KOR, USA) stays readable
  const degree = new Map();
  for (const a of scenario.agreements) for (const p of a.parties) degree.set(p, (degree.get(p) ?? 0) + 1);
  const parties = [...scenario.parties].sort((x, y) => (degree.get(y.id) ?? 0) - (degree.get(x.id) ?? 0) || x.id.localeCompare(y.id));
  const nodes = parties.map((p, rank) => ({
    group: 'nodes',
    data: { id: p.id, name: p.name, rank },
    classes: [p.kind === 'state' ? '' : 'org', hubs.has(p.id) ? 'hub' : ''].join(' ').trim(),
  }));
  const edges = [];
  const edge = (a, id, source, target, cls) =>
    edges.push({
      group: 'edges',
      data: { id, source, target, agreement: a.id, label: labelled ? a.id : '' },
      classes: `${cls} st-not_yet_in_force`,
    });
  for (const a of scenario.agreements) {
    if (a.hub) {
      // Members exchange only through the hub (TISA: via the USA), so each spoke points at it.
      for (const p of a.parties) if (p !== a.hub) edge(a, `${a.id}::${p}`, p, a.hub, 'spoke');
    } else if (a.parties.length === 2) {
      edge(a, a.id, a.parties[0], a.parties[1], 'bilateral');
    } else {
      for (let i = 0; i < a.parties.length; i++)
        for (let j = i + 1; j < a.parties.length; j++) edge(a, `${a.id}::${a.parties[i]}~${a.parties[j]}`, a.parties[i], a.parties[j], 'multi');
    }
  }
  return [...nodes, ...edges];
}

function stylesheet(large) {
  const text = css('--fg');
  const node = css('--node');
  const styles = [
    {
      selector: 'node',
      style: {
        label: 'data(id)',
        'background-color': node,
        'border-color': text,
        'border-width': 1,
        color: text,
        'font-size': large ? 8 : 12,
        'font-weight': 600,
        'text-valign': 'center',
        'text-halign': 'center',
        width: large ? 18 : 42,
        height: large ? 18 : 42,
      },
    },
    { selector: 'node.org', style: { shape: 'round-rectangle' } },
    { selector: 'node.hub', style: { shape: 'diamond', 'border-width': 3, width: large ? 24 : 54, height: large ? 24 : 54 } },
    {
      selector: 'edge',
      style: {
        width: large ? 1 : 3,
        // haystack edges draw about twice as fast as straight ones (no arrows, no labels): for
        // 2,000 agreements that is what keeps the slider fluid
        'curve-style': large ? 'haystack' : 'bezier',
        'control-point-step-size': 26,
        opacity: 0.95,
      },
    },
    { selector: 'edge.spoke', style: { 'line-style': 'dashed', 'line-dash-pattern': [7, 4] } },
    large ? null : { selector: 'edge.spoke', style: { 'target-arrow-shape': 'triangle', 'arrow-scale': 1.1 } },
    { selector: 'edge.multi', style: { 'line-style': 'dotted' } },
  ];
  for (const s of STATES) {
    const c = cssState(s);
    styles.push({ selector: `edge.st-${s}`, style: { 'line-color': c, ...(large ? {} : { 'target-arrow-color': c }) } });
  }
  styles.push(
    { selector: 'edge.st-not_yet_in_force', style: { opacity: large ? 0.12 : 0.45, width: 1.5 } },
    { selector: 'edge.st-terminated, edge.st-expired', style: { opacity: large ? 0.35 : 0.8 } },
    // not known is neither a gap nor a link: a thin line of its own colour, dashed
    { selector: 'edge.st-unknown', style: { opacity: 0.9, width: large ? 1 : 2, 'line-style': 'dashed', 'line-dash-pattern': [2, 3] } },
    {
      selector: 'edge[label != ""]',
      style: {
        label: 'data(label)',
        'font-size': 9,
        color: text,
        'text-rotation': 'autorotate',
        'text-background-color': css('--bg'),
        'text-background-opacity': 0.9,
        'text-background-padding': 1,
      },
    },
    {
      selector: 'edge:selected',
      style: { width: large ? 4 : 7, 'underlay-color': css('--focus'), 'underlay-opacity': 0.35, 'underlay-padding': 5, opacity: 1 },
    },
  );
  return styles.filter(Boolean);
}

export class NetworkView {
  constructor(ctx) {
    this.ctx = ctx;
    this.panel = $('#panel-network');
    this.container = $('#cy');
    this.cy = null;
    this.shown = new Map(); // agreement → state currently drawn
    this.rows = new Map(); // agreement → table row
    this.edgesOf = new Map(); // agreement → Cytoscape collection
    this.redraws = 0;
    this.detailsAbort = null;
    this.legend();
  }

  legend() {
    const item = (cls, label) => h('li', {}, h('span', { class: `swatch ${cls}`, 'aria-hidden': 'true' }), label);
    fill(
      $('#legend'),
      h('h3', {}, 'Legend'),
      h('p', { class: 'legend-title' }, 'Agreement state (edge colour)'),
      h(
        'ul',
        {},
        STATES.map((s) => item(`line st-${s}`, STATE_LABEL[s])),
      ),
      h('p', { class: 'legend-title' }, 'Edge line'),
      h(
        'ul',
        {},
        item('line solid', 'bilateral agreement'),
        item('line dashed', 'hub arrangement: member → hub (relay only)'),
        item('line dotted', 'multilateral, members exchange directly'),
      ),
      h('p', { class: 'legend-title' }, 'Nodes'),
      h('ul', {}, item('node diamond', 'hub of an arrangement'), item('node rounded', 'organisation'), item('node circle', 'state')),
    );
  }

  /** Build the graph and the table (once). */
  build() {
    const { scenario } = this.ctx;
    const large = scenario.agreements.length > LARGE;
    this.cy = cytoscape({
      container: this.container,
      elements: elements(scenario, !large),
      style: stylesheet(large),
      layout: large
        ? // a ring tight enough to fit the view (by default it avoids label overlap: too wide to read)
          { name: 'circle', animate: false, padding: 24, avoidOverlap: false, radius: Math.max(300, scenario.parties.length * 3.2) }
        : {
            name: 'concentric',
            animate: false,
            concentric: (n) => (n.data('rank') === 0 ? 2 : 1),
            levelWidth: () => 1,
            minNodeSpacing: 60,
            startAngle: (4 / 3) * Math.PI,
            padding: 24,
          },
      minZoom: 0.1,
      maxZoom: 4,
      // Performance for large graphs: draw a texture while panning, skip hidden edges.
      textureOnViewport: large,
      hideEdgesOnViewport: large,
      boxSelectionEnabled: false,
      autoungrabify: large,
    });
    this.edgesOf = new Map();
    this.cy.edges().forEach((e) => {
      const aid = e.data('agreement');
      this.edgesOf.set(aid, (this.edgesOf.get(aid) ?? this.cy.collection()).union(e));
    });
    this.cy.on('tap', 'edge', (evt) => this.select(evt.target.data('agreement')));
    this.cy.on('tap', (evt) => {
      if (evt.target === this.cy) this.ctx.set({ agreement: null });
    });
    this.shown = new Map();
    this.buildTable(large);
  }

  buildTable(large) {
    const { scenario } = this.ctx;
    this.rows = new Map();
    const rows = scenario.agreements.map((a) => {
      const tr = h(
        'tr',
        { dataset: { agreement: a.id, state: '' } },
        h('th', { scope: 'row' }, h('button', { type: 'button', class: 'link', onclick: () => this.select(a.id) }, a.id)),
        h('td', {}, a.parties.join(', ')),
        h('td', {}, kindText(a)),
        h('td', { class: 'state' }, '…'),
      );
      this.rows.set(a.id, tr);
      return tr;
    });
    const details = $('#network-table-details');
    details.open = !large;
    fill(
      $('#network-table-wrap'),
      table({
        caption: 'Agreements at the instant shown',
        hideCaption: true,
        head: ['Agreement', 'Parties', 'Kind', 'State at the instant shown'],
        rows,
        id: 'network-table',
        cls: 'data',
      }),
    );
  }

  /** The user picked agreement `aid` (an edge or a table row): show its details and, on a
   * narrow screen, bring them into view. */
  async select(aid) {
    this.ctx.set({ agreement: aid });
    this.pendingScroll = true;
  }

  /** Show the states of `result` (a /network answer); `t0` is when the user asked for it.
   * An agreement the answer lists as `unknown` is drawn as not known, not as not in force. */
  apply(result, t0) {
    if (!this.cy) this.build();
    const changed = [];
    const unknown = new Set(result.unknown ?? []);
    for (const { agreement, state: derived } of result.states) {
      const state = unknown.has(agreement) ? 'unknown' : derived;
      if (this.shown.get(agreement) !== state) changed.push([agreement, state]);
    }
    this.cy.batch(() => {
      for (const [aid, state] of changed) {
        const edges = this.edgesOf.get(aid);
        if (edges) edges.removeClass(STATES.map((s) => `st-${s}`).join(' ')).addClass(`st-${state}`);
        this.shown.set(aid, state);
        const tr = this.rows.get(aid);
        if (tr) {
          tr.dataset.state = state;
          fill(tr.querySelector('.state'), stateBadge(state));
        }
      }
    });
    const done = () => {
      // Exposed for tests and for the curious: when the graph was last redrawn, and how long
      // it took from the user's change (slider, field, buttons) to the redrawn canvas.
      this.redraws += 1;
      this.container.dataset.at = result.at;
      this.container.dataset.redraws = String(this.redraws);
      if (t0 !== undefined) {
        const took = performance.now() - t0;
        this.container.dataset.redrawMs = took.toFixed(1);
        performance.measure('gsomia:slider-to-redraw', { start: t0, end: t0 + took });
      }
    };
    // Cytoscape redraws on its own animation frame and says so ('render'); with nothing to
    // redraw, the next frame is the end.
    if (changed.some(([aid]) => this.edgesOf.has(aid))) this.cy.one('render', done);
    else requestAnimationFrame(done);
    this.details(this.ctx.state.agreement);
  }

  /** The side panel of one agreement: definition, status at the instant, derived timeline. */
  async details(aid) {
    const box = $('#agreement-details');
    if (!aid) {
      fill(box, h('p', { class: 'hint' }, 'Click an edge (or an agreement in the table) to see its derived timeline, term end and notice deadline.'));
      this.cy?.edges(':selected').unselect();
      return;
    }
    const a = this.ctx.agreement(aid);
    if (!a) return;
    if (this.cy) {
      this.cy.edges(':selected').unselect();
      this.edgesOf.get(aid)?.select();
    }
    this.detailsAbort?.abort();
    this.detailsAbort = new AbortController();
    let status;
    try {
      [status] = await get('/api/v1/status', whatifParams(this.ctx.state, { agreement: aid, at: this.ctx.state.at }), {
        signal: this.detailsAbort.signal,
      });
    } catch (err) {
      if (!aborted(err)) this.ctx.report(err);
      return;
    }
    const life = this.ctx.lifecycles.get(aid);
    const tagged = this.ctx.tagged;
    const dl = (pairs) =>
      h(
        'dl',
        { class: 'facts' },
        pairs.filter(([, v]) => v !== null && v !== undefined && v !== '').map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]),
      );
    const kindOf = (id) => life?.events.find((e) => e.id === id)?.kind;
    const shownState = status.unknown ? 'unknown' : status.state;
    fill(
      box,
      h('h3', { id: 'details-title', tabindex: '-1' }, a.id),
      h('p', { class: 'agreement-name' }, a.name),
      dl([
        ['Parties', a.parties.join(', ')],
        ['Kind', kindText(a) + (a.legally_binding ? '' : ' (not legally binding)')],
        ['Scope', a.scope],
        ['Maximum level', a.max_level ?? 'none read (nothing releasable under it)'],
        a.relay_delay ? ['Relay delay', [duration(a.relay_delay), ' ', assumptionMark(), ' modelling assumption']] : [null, null],
        ['Term', a.term_years ? `${a.term_years} year(s), renewed automatically` : 'none'],
        ['Notice period', a.notice_days !== null ? `${a.notice_days} days` : null],
        ['Source', tagged(a.source)],
      ]),
      this.equivalence(a),
      h('h4', {}, `At ${status.at}`),
      dl([
        [
          'State',
          [
            stateBadge(shownState),
            status.unknown
              ? h(
                  'span',
                  { class: 'note' },
                  ' signed, but no entry into force is recorded: the record cannot tell whether it is in force, so this is not a gap',
                )
              : null,
          ],
        ],
        ['Since', status.since ?? (life?.entry ? 'until its entry into force' : 'no entry into force recorded')],
        ['Current term ends', status.term_end ?? '—'],
        ['Notice deadline for that term', status.notice_deadline ?? '—'],
        ['Ends at', status.ends_at ?? 'no end scheduled'],
        ['Pending notice', status.notice],
      ]),
      h('h4', {}, 'Derived timeline'),
      life
        ? table({
            caption: 'Derived timeline',
            hideCaption: true,
            cls: 'data compact',
            id: 'details-segments',
            head: ['From', 'State', 'Because of', 'Scheduled end'],
            rows: life.segments.map((s) =>
              h(
                'tr',
                { dataset: { state: s.state, start: s.start ?? '' } },
                h('td', {}, s.start ?? (life.entry ? 'until the entry into force' : 'from the start')),
                h('td', {}, stateBadge(s.state)),
                h(
                  'td',
                  {},
                  s.cause ? `${KIND_LABEL[kindOf(s.cause)] ?? 'event'} (${s.cause})` : s.start ? 'derived: the notice ran out / term ended' : '',
                ),
                h('td', {}, s.ends_at ?? ''),
              ),
            ),
          })
        : null,
      h('h4', {}, 'Events up to this instant'),
      table({
        caption: 'Events up to this instant',
        hideCaption: true,
        cls: 'data compact events',
        id: 'details-events',
        head: ['At', 'Event', 'By', 'Effective', 'Note'],
        rows: [...status.events]
          .sort(eventOrder)
          .map((e) =>
            h(
              'tr',
              { dataset: { event: e.id, kind: e.kind } },
              h('td', {}, e.at),
              h('td', {}, KIND_LABEL[e.kind] ?? e.kind, e.hypothetical ? h('span', { class: 'tag hypothetical' }, 'what-if') : null),
              h('td', {}, e.by ?? ''),
              h('td', {}, e.effective ?? ''),
              h('td', { class: 'event-note' }, tagged(e.note), e.source ? h('span', { class: 'source' }, ' ', tagged(e.source)) : null),
            ),
          ),
        empty: 'No event up to this instant.',
      }),
      life?.anomalies.length
        ? h('p', { class: 'warning' }, 'Events that cannot apply: ', life.anomalies.map((x) => `${x.event} (${x.message})`).join('; '))
        : null,
    );
    if (this.pendingScroll) {
      this.pendingScroll = false;
      this.ctx.bringIntoView(box);
    }
  }

  /** The agreement's equivalence table (Art. 4.2 for the GSOMIA): for each common level, each
   * party's national levels, the first being the one its recipients stamp. */
  equivalence(a) {
    const where = a.articles?.equivalence ? ` (${a.articles.equivalence})` : '';
    if (!a.common_levels?.length)
      return [
        h('h4', {}, 'Equivalence'),
        h('p', { class: 'note', id: 'details-equivalence' }, 'No equivalence table is recorded: no level is releasable under it.'),
      ];
    const maxRank = a.common_levels.indexOf(a.max_level);
    const rows = a.common_levels.map((c, i) => {
      const above = maxRank < 0 || i < maxRank;
      return h(
        'tr',
        { dataset: { common: c }, class: above ? 'above-max' : null },
        a.parties.map((p) => h('td', {}, (a.equivalence[c]?.[p] ?? []).join(' / ') || '—')),
        h('th', { scope: 'row' }, c, above ? h('span', { class: 'note' }, ' above the maximum: not releasable') : null),
      );
    });
    return [
      h('h4', {}, `Equivalence${where}`),
      table({
        caption: `Equivalence${where}`,
        hideCaption: true,
        cls: 'data compact equivalence',
        id: 'details-equivalence',
        head: [...a.parties, 'Common level'],
        rows,
      }),
      h(
        'p',
        { class: 'note' },
        `Each row is one equivalence, e.g. ${this.example(a)}; a recipient marks what it receives with its own level and the originator’s (${a.articles?.equivalence ?? 'Art. 4.2'}).`,
      ),
    ];
  }

  example(a) {
    const c = a.max_level ?? a.common_levels[0];
    return [...a.parties.map((p) => a.equivalence[c]?.[p]?.[0]).filter(Boolean), c].join(' ↔ ');
  }

  resize() {
    if (this.cy) {
      this.cy.resize();
      this.cy.fit(undefined, 24);
    }
  }
}
