// The dashboard's controller: the state in the URL, the shared instant/topic/focus
// controls, the tabs, and the caches of what several views read. Each view module draws
// one tab from the JSON API; none of them computes what the API already answers.

import './app.css';
import { get, aborted } from './api.js';
import { parse, serialize, whatifParams, VIEWS } from './state.js';
import { h, fill, $, debounce, ms } from './dom.js';
import { NetworkView } from './network.js';
import { TimelineView } from './timeline.js';
import { CoverageView } from './coverage.js';
import { StatsView } from './stats.js';
import { WhatIfView } from './whatif.js';

const DAY = 86400000;

/** `date` (YYYY-MM-DD) plus `n` days, as YYYY-MM-DD (calendar arithmetic, no zone involved). */
function addDays(date, n) {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d) + n * DAY).toISOString().slice(0, 10);
}

class Dashboard {
  constructor(scenario, lifecycles) {
    this.scenario = scenario;
    this.agreements = new Map(scenario.agreements.map((a) => [a.id, a]));
    this.parties = new Map(scenario.parties.map((p) => [p.id, p]));
    this.setLifecycles(lifecycles);
    this.window = this.computeWindow();
    this.state = parse(location.search);
    this.instant = null; // the last /network answer: {at, states}
    this.instantAbort = null;
    this.pendingT0 = undefined;
    this.cache = new Map();
    this.dirty = new Set(VIEWS);
    this.views = {
      network: new NetworkView(this),
      timeline: new TimelineView(this),
      coverage: new CoverageView(this),
      stats: new StatsView(this),
      whatif: new WhatIfView(this),
    };
  }

  // --- shared data ----------------------------------------------------------------------

  setLifecycles(list) {
    this.lifecycles = new Map(list.map((l) => [l.agreement, l]));
    // instants where something happens or a state changes: the ◀ event ▶ buttons step through them
    const points = new Map();
    for (const l of list) {
      for (const e of l.events) points.set(ms(e.at), e.at);
      for (const s of l.segments) if (s.start) points.set(ms(s.start), s.start);
    }
    this.changePoints = [...points.entries()].sort((a, b) => a[0] - b[0]);
  }

  computeWindow() {
    const w = this.scenario.window;
    if (w) return { from: w.from, to: w.to, fromMs: ms(w.from), toMs: ms(w.to), fromDate: w.from.slice(0, 10) };
    const first = this.changePoints[0]?.[1] ?? new Date().toISOString();
    const last = this.changePoints.at(-1)?.[1] ?? new Date().toISOString();
    return { from: first, to: last, fromMs: ms(first), toMs: ms(last) + DAY, fromDate: first.slice(0, 10) };
  }

  agreement = (id) => this.agreements.get(id);
  partyName = (id) => this.parties.get(id)?.name ?? id;
  whatifActive = () => this.state.drop.length + this.state.add.length > 0;
  instantMs = () => ms(this.instant?.at);

  /** The focus parties (known ids only). */
  focus() {
    return (this.state.parties ?? '')
      .split(',')
      .map((p) => p.trim().toUpperCase())
      .filter((p) => this.parties.has(p));
  }

  async once(key, load) {
    if (!this.cache.has(key))
      this.cache.set(
        key,
        load().catch((err) => (this.cache.delete(key), Promise.reject(err))),
      );
    return this.cache.get(key);
  }

  reports = () => this.once('reports', () => get('/api/v1/reports'));
  provisions = () => this.once('provisions', () => get('/api/v1/provisions'));
  events = () => this.once('events', () => get('/api/v1/events'));

  /** Gaps among the focus parties for the topic, recorded and with the what-if (one comparison). */
  gaps() {
    const params = whatifParams(this.state, { parties: this.focus().join(','), topic: this.state.topic });
    const key = `gaps?${params}`;
    for (const k of this.cache.keys()) if (k.startsWith('gaps?') && k !== key) this.cache.delete(k);
    return this.once(key, () => get('/api/v1/whatif', params));
  }

  // --- state ------------------------------------------------------------------------------

  /** Fill what the URL leaves out with the scenario's defaults. */
  async defaults() {
    const s = this.state;
    const q = this.scenario.question;
    if (!s.at) {
      const now = Date.now();
      s.at = now < this.window.toMs ? new Date(now).toISOString().slice(0, 10) : addDays(this.window.to.slice(0, 10), -1);
    }
    const topics = this.scenario.topics.map((t) => t.id);
    if (!s.topic || !topics.includes(s.topic)) {
      // the topic most past reports are about, else the first one
      const counts = new Map();
      for (const r of await this.reports()) counts.set(r.topic, (counts.get(r.topic) ?? 0) + 1);
      s.topic = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? topics[0] ?? null;
    }
    if (!s.parties) s.parties = (q?.parties ?? this.scenario.parties.slice(0, 2).map((p) => p.id)).join(',');
    if (!s.stats_at && q?.stats_at) s.stats_at = q.stats_at;
  }

  /** Change the state (and the URL); `push` adds a history entry (for view and what-if changes). */
  set(patch, { push = false, changedAt = false } = {}) {
    const prev = changedAt ? { ...this.state, at: null } : this.state;
    this.state = { ...this.state, ...patch };
    history[push ? 'pushState' : 'replaceState'](null, '', `?${serialize(this.state)}`);
    this.clearProblem();
    this.react(prev, { instantDone: changedAt });
  }

  /** Set the instant; the network redraw measures from now (or from the slider's input). */
  setAt(at) {
    this.pendingT0 ??= performance.now();
    this.set({ at });
  }

  async react(prev, { instantDone = false } = {}) {
    const s = this.state;
    const changed = (k) => JSON.stringify(prev[k]) !== JSON.stringify(s[k]);
    this.syncControls();
    if (changed('drop') || changed('add')) {
      this.showWhatifBanner();
      try {
        this.setLifecycles(await get('/api/v1/lifecycles', whatifParams(s)));
      } catch (err) {
        this.report(err);
      }
      VIEWS.filter((v) => v !== 'stats').forEach((v) => this.dirty.add(v));
      this.requestInstant();
    } else {
      if (changed('at')) {
        if (!instantDone) this.requestInstant();
        this.dirty.add('coverage');
      }
      if (changed('topic') || changed('parties')) ['timeline', 'coverage', 'whatif'].forEach((v) => this.dirty.add(v));
      if (changed('stats_at')) this.dirty.add('stats');
      if (changed('agreement') && this.views.network.cy) this.views.network.details(s.agreement);
    }
    if (changed('view')) this.showTab();
    else this.renderIfDirty();
  }

  // --- the instant ---------------------------------------------------------------------------

  /** Ask for the states at the current instant. A newer request cancels an older one, except
   * with `coalesce` (the slider): then the request in flight completes and one more follows
   * for the latest position, so a drag shows progress without queuing requests. */
  requestInstant({ coalesce = false } = {}) {
    if (coalesce && this.instantAbort) {
      this.instantAgain = true;
      return;
    }
    this.instantAbort?.abort();
    this.instantAgain = false;
    const ctrl = (this.instantAbort = new AbortController());
    const t0 = this.pendingT0;
    this.pendingT0 = undefined;
    const settled = () => {
      if (this.instantAbort !== ctrl) return; // replaced by a newer request
      this.instantAbort = null;
      if (this.instantAgain) this.requestInstant();
    };
    get('/api/v1/network', whatifParams(this.state, { at: this.state.at }), { signal: ctrl.signal })
      .finally(settled)
      .then((result) => {
        this.instant = result;
        this.showInstant();
        if (this.state.view === 'network') {
          this.views.network.apply(result, t0);
          this.dirty.delete('network');
        } else this.dirty.add('network');
        if (this.state.view === 'timeline') this.views.timeline.moveInstant();
        this.renderIfDirty();
      })
      .catch((err) => {
        if (!aborted(err)) this.report(err);
      });
  }

  dayOf(msValue) {
    const max = Number($('#at-slider').max);
    return Math.min(max, Math.max(0, Math.floor((msValue - this.window.fromMs) / DAY)));
  }

  showInstant() {
    const at = this.instant.at;
    $('#instant-shown').textContent = `${at} (${this.scenario.timezone})`;
    document.body.dataset.instant = at;
    const slider = $('#at-slider');
    if (document.activeElement !== slider) slider.value = String(this.dayOf(ms(at)));
    $('#slider-date').textContent = at.slice(0, 10);
    slider.setAttribute('aria-valuetext', at);
  }

  // --- controls --------------------------------------------------------------------------------

  bindControls() {
    const slider = $('#at-slider');
    slider.max = String(Math.max(1, Math.ceil((this.window.toMs - this.window.fromMs) / DAY) - 1));
    // While the slider moves, the network follows at once (one request in flight at most, the
    // latest position next); the URL and the heavier views follow once it rests for a moment.
    const settle = debounce(() => this.set({}, { changedAt: true }), 150);
    slider.addEventListener('input', () => {
      const date = addDays(this.window.fromDate, Number(slider.value));
      this.pendingT0 = performance.now();
      $('#slider-date').textContent = date;
      $('#at-input').value = date;
      this.state = { ...this.state, at: date };
      this.requestInstant({ coalesce: true });
      settle();
    });
    $('#at-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const value = $('#at-input').value.trim();
      if (value) this.setAt(value);
    });
    const step = (dir) => {
      const cur = this.instantMs();
      const pts = this.changePoints;
      const next = dir > 0 ? pts.find(([t]) => t > cur) : [...pts].reverse().find(([t]) => t < cur);
      if (next) this.setAt(next[1]);
    };
    $('#prev-event').addEventListener('click', () => step(-1));
    $('#next-event').addEventListener('click', () => step(1));

    fill(
      $('#topic'),
      this.scenario.topics.map((t) => h('option', { value: t.id, title: t.description }, t.id)),
    );
    $('#topic').addEventListener('change', (ev) => this.set({ topic: ev.target.value }));
    $('#focus-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const ids = $('#focus')
        .value.split(',')
        .map((p) => p.trim().toUpperCase())
        .filter(Boolean);
      const unknown = ids.filter((p) => !this.parties.has(p));
      if (unknown.length) {
        this.report(new Error(`Unknown parties: ${unknown.join(', ')}`));
        return;
      }
      this.set({ parties: ids.join(',') });
    });
    $('#stats-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.set({ stats_at: $('#stats-at').value.trim() || null });
    });
    $('#stats-now').addEventListener('click', () => this.set({ stats_at: null }));

    // Tabs (WAI-ARIA tabs pattern): arrows, Home and End move between tabs, activating them.
    const tabs = [...document.querySelectorAll('[role=tab]')];
    tabs.forEach((tab, i) => {
      tab.addEventListener('click', () => this.set({ view: tab.dataset.view }, { push: true }));
      tab.addEventListener('keydown', (ev) => {
        const to = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[ev.key];
        if (to === undefined) return;
        ev.preventDefault();
        const target = tabs[(to + tabs.length) % tabs.length];
        target.focus();
        this.set({ view: target.dataset.view }, { push: true });
      });
    });
    window.addEventListener('popstate', async () => {
      const prev = this.state;
      this.state = parse(location.search);
      await this.defaults();
      this.react(prev);
    });
    window.addEventListener(
      'resize',
      debounce(() => this.views[this.state.view].resize?.(), 150),
    );
  }

  /** Put the state's values in the controls (unless the user is typing in them). */
  syncControls() {
    const s = this.state;
    const put = (sel, v) => {
      const el = $(sel);
      if (document.activeElement !== el) el.value = v ?? '';
    };
    put('#at-input', s.at);
    put('#focus', s.parties);
    put('#stats-at', s.stats_at);
    $('#topic').value = s.topic ?? '';
  }

  showWhatifBanner() {
    const banner = $('#whatif-banner');
    const items = [...this.state.drop.map((d) => `drop ${d}`), ...this.state.add.map((a) => `add ${a}`)];
    banner.hidden = items.length === 0;
    document.body.dataset.whatif = items.join('; ');
    fill(
      banner,
      items.length
        ? [
            h('strong', {}, 'What-if applied to every view: '),
            h('code', {}, items.join('; ')),
            ' ',
            this.state.view !== 'whatif'
              ? h('button', { type: 'button', class: 'small', onclick: () => this.set({ view: 'whatif' }, { push: true }) }, 'Compare')
              : null,
            ' ',
            h('button', { type: 'button', class: 'small', onclick: () => this.set({ drop: [], add: [] }, { push: true }) }, 'Back to the record'),
          ]
        : [],
    );
  }

  showTab() {
    const view = this.state.view;
    for (const tab of document.querySelectorAll('[role=tab]')) {
      const on = tab.dataset.view === view;
      tab.setAttribute('aria-selected', String(on));
      tab.tabIndex = on ? 0 : -1;
      $(`#${tab.getAttribute('aria-controls')}`).hidden = !on;
    }
    document.title = `gsomia — ${$(`#tab-${view}`).textContent} — ${this.scenario.name}`;
    this.showWhatifBanner();
    if (!this.dirty.has(view)) this.views[view].resize?.();
    this.renderIfDirty();
  }

  async renderIfDirty() {
    const view = this.state.view;
    if (!this.dirty.has(view)) return;
    this.dirty.delete(view);
    const panel = $(`#panel-${view}`);
    if (view === 'network') {
      if (this.instant) this.views.network.apply(this.instant);
      else this.dirty.add(view); // drawn when the states arrive
      return;
    }
    panel.setAttribute('aria-busy', 'true');
    try {
      await this.views[view].render();
      panel.dataset.rendered = String(Number(panel.dataset.rendered ?? 0) + 1);
    } catch (err) {
      if (!aborted(err)) this.report(err);
    } finally {
      panel.removeAttribute('aria-busy');
    }
  }

  // --- messages ----------------------------------------------------------------------------

  report(err) {
    const box = $('#problem');
    const p = err.problem;
    box.hidden = false;
    fill(
      box,
      h('strong', {}, p ? `${p.title}: ` : 'Error: '),
      p?.detail ?? err.message,
      ' ',
      h('button', { type: 'button', class: 'small', onclick: () => this.clearProblem() }, 'Dismiss'),
    );
  }

  clearProblem() {
    const box = $('#problem');
    box.hidden = true;
    box.replaceChildren();
  }

  header() {
    const s = this.scenario;
    fill(
      $('#source'),
      'Scenario ',
      h('strong', { id: 'scenario-name' }, s.name),
      ` — ${s.title} · database `,
      h('code', { id: 'database' }, s.database),
      ` · times in ${s.timezone} unless an offset says otherwise`,
    );
    fill(
      $('#assumption-list'),
      s.assumptions.map((a) => h('li', {}, a)),
      h(
        'li',
        {},
        'Relay delays shown anywhere on this page are the arrangement’s modelled relay delay, a scenario parameter: the sources give no figure.',
      ),
    );
  }

  async start() {
    this.header();
    await this.defaults();
    history.replaceState(null, '', `?${serialize(this.state)}`);
    this.bindControls();
    this.syncControls();
    this.showWhatifBanner();
    this.showTab();
    this.requestInstant();
    document.body.dataset.ready = 'true';
  }
}

async function main() {
  try {
    const state = parse(location.search);
    const [scenario, lifecycles] = await Promise.all([get('/api/v1/scenario'), get('/api/v1/lifecycles', whatifParams(state))]);
    await new Dashboard(scenario, lifecycles).start();
  } catch (err) {
    const box = $('#problem');
    box.hidden = false;
    fill(box, h('strong', {}, 'The dashboard cannot start: '), err.problem?.detail ?? err.message);
    $('#source').textContent = 'No scenario loaded.';
  }
}

main();
