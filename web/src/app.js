// The dashboard's controller: the state in the URL, the shared instant/topic/focus
// controls, the tabs, and the caches of what several views read. Each view module draws
// one tab from the JSON API; none of them computes what the API already answers.
//
// A what-if is applied only once the API has accepted it: a refused one never enters the
// state, the URL or the views, and the page says what was refused (state.js, proposeWhatif).

import './app.css';
import { get, aborted } from './api.js';
import { parse, serialize, whatifParams, proposeWhatif, withoutWhatif, hasWhatif, whatifItems, isInstant, isParties, VIEWS } from './state.js';
import { addHours, addDays, shortInstant, stepPoint } from './instants.js';
import { h, fill, $, debounce, ms } from './dom.js';
import { NetworkView } from './network.js';
import { TimelineView } from './timeline.js';
import { CoverageView } from './coverage.js';
import { RouteView } from './route.js';
import { StatsView } from './stats.js';
import { WhatIfView } from './whatif.js';
import { SourcesView, tagged } from './sources.js';

const DAY = 86400000;
const PHONE = window.matchMedia('(max-width: 640px)');

class Dashboard {
  constructor({ scenario, lifecycles, sources, state, refused }) {
    this.scenario = scenario;
    this.agreements = new Map(scenario.agreements.map((a) => [a.id, a]));
    this.parties = new Map(scenario.parties.map((p) => [p.id, p]));
    this.sources = new Map(sources.map((s) => [s.id, s]));
    this.setLifecycles(lifecycles);
    this.window = this.computeWindow();
    this.state = state;
    this.refusedAtStart = refused;
    this.instant = null; // the last /network answer: {at, states, unknown}
    this.instantAbort = null;
    this.pendingT0 = undefined;
    this.cache = new Map();
    this.dirty = new Set(VIEWS);
    this.reportList = [];
    this.views = {
      network: new NetworkView(this),
      timeline: new TimelineView(this),
      coverage: new CoverageView(this),
      route: new RouteView(this),
      stats: new StatsView(this),
      whatif: new WhatIfView(this),
      sources: new SourcesView(this),
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
  whatifActive = () => hasWhatif(this.state);
  instantMs = () => ms(this.instant?.at);
  tagged = (text) => tagged(this, text);

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

  // the record's past reports (not the exchange's submissions, which live under /reports)
  reports = () => this.once('reports', () => get('/api/v1/record/reports'));
  provisions = () => this.once('provisions', () => get('/api/v1/provisions'));
  events = () => this.once('events', () => get('/api/v1/events'));

  /** Gaps among the focus parties for the topic, recorded and with the what-if (one comparison). */
  gaps() {
    const params = whatifParams(this.state, { parties: this.focus().join(','), topic: this.state.topic });
    const key = `gaps?${params}`;
    for (const k of this.cache.keys()) if (k.startsWith('gaps?') && k !== key) this.cache.delete(k);
    return this.once(key, () => get('/api/v1/whatif', params));
  }

  /** Intervals among the focus parties whose coverage is not known (not gaps), with the what-if. */
  unknowns() {
    const params = whatifParams(this.state, { parties: this.focus().join(','), topic: this.state.topic });
    const key = `unknowns?${params}`;
    for (const k of this.cache.keys()) if (k.startsWith('unknowns?') && k !== key) this.cache.delete(k);
    return this.once(key, () => get('/api/v1/unknowns', params));
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
    this.reportList = await this.reports();
    const topics = this.scenario.topics.map((t) => t.id);
    if (!s.topic || !topics.includes(s.topic)) {
      // the topic most past reports are about, else the first one
      const counts = new Map();
      for (const r of this.reportList) counts.set(r.topic, (counts.get(r.topic) ?? 0) + 1);
      s.topic = [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? topics[0] ?? null;
    }
    if (!s.parties) s.parties = (q?.parties ?? this.scenario.parties.slice(0, 2).map((p) => p.id)).join(',');
    if (!s.stats_at && q?.stats_at) s.stats_at = q.stats_at;
  }

  /** Change the state (and the URL); `push` adds a history entry (for view and what-if changes).
   * A what-if change goes through `changeWhatif`, which asks the API first. */
  set(patch, { push = false, changedAt = false } = {}) {
    if ('drop' in patch || 'add' in patch) {
      const { drop, add, ...rest } = patch;
      return this.changeWhatif({ drop, add }, { push, also: rest });
    }
    const prev = changedAt ? { ...this.state, at: null } : this.state;
    this.state = { ...this.state, ...patch };
    history[push ? 'pushState' : 'replaceState'](null, '', `?${serialize(this.state)}`);
    this.clearProblem();
    this.react(prev, { instantDone: changedAt });
  }

  /** Apply a what-if change once the API accepts it; if it refuses, say so and keep the state
   * (and so the URL and every view) as it was. Resolves true if applied. */
  async changeWhatif(what, { push = true, also = {} } = {}) {
    const patch = Object.fromEntries(Object.entries(what).filter(([, v]) => v !== undefined));
    const result = await proposeWhatif(this.state, patch, (params) => get('/api/v1/lifecycles', params));
    if (!result.accepted) {
      this.refused(result.refused, 'This what-if was refused, so nothing changed');
      return false;
    }
    const prev = this.state;
    this.setLifecycles(result.answer);
    this.state = { ...result.state, ...also };
    history[push ? 'pushState' : 'replaceState'](null, '', `?${serialize(this.state)}`);
    this.clearProblem();
    this.react(prev);
    return true;
  }

  /** Set the instant; the network redraw measures from now (or from the slider's input). */
  setAt(at) {
    if (!isInstant(at)) {
      this.report(new Error(`“${at}” is not an instant: give a date (2019-11-22) or an ISO 8601 instant with offset (2019-11-22T17:00+09:00).`));
      return;
    }
    this.pendingT0 ??= performance.now();
    this.set({ at });
  }

  async react(prev, { instantDone = false } = {}) {
    const s = this.state;
    const changed = (k) => JSON.stringify(prev[k]) !== JSON.stringify(s[k]);
    this.syncControls();
    if (changed('drop') || changed('add')) {
      this.showWhatifBanner();
      VIEWS.filter((v) => v !== 'stats' && v !== 'sources').forEach((v) => this.dirty.add(v));
      this.requestInstant();
    } else {
      if (changed('at')) {
        if (!instantDone) this.requestInstant();
        this.dirty.add('coverage');
        if (!s.route_at) this.dirty.add('route');
      }
      if (changed('topic') || changed('parties')) ['timeline', 'coverage', 'whatif', 'route'].forEach((v) => this.dirty.add(v));
      if (['route_from', 'route_to', 'route_level', 'route_topic', 'route_at'].some(changed)) this.dirty.add('route');
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
    $('#slider-date').textContent = shortInstant(at);
    slider.setAttribute('aria-valuetext', at);
    const t = ms(at);
    $('#prev-event').disabled = !stepPoint(this.changePoints, t, -1);
    $('#next-event').disabled = !stepPoint(this.changePoints, t, 1);
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
    // ◀ event ▶: the previous/next recorded event or derived change; ◀ hour ▶: one hour either
    // side of the instant shown, written in the scenario's zone (17:00 → 18:00 → 19:00 KST)
    const stepEvent = (dir) => {
      const next = stepPoint(this.changePoints, this.instantMs(), dir);
      if (next) this.setAt(next[1]);
    };
    const stepHour = (n) => {
      if (this.instant) this.setAt(addHours(this.instant.at, n, this.scenario.timezone));
    };
    $('#prev-event').addEventListener('click', () => stepEvent(-1));
    $('#next-event').addEventListener('click', () => stepEvent(1));
    $('#prev-hour').addEventListener('click', () => stepHour(-1));
    $('#next-hour').addEventListener('click', () => stepHour(1));

    fill(
      $('#topic'),
      this.scenario.topics.map((t) => h('option', { value: t.id, title: t.description }, t.id)),
    );
    $('#topic').addEventListener('change', (ev) => this.set({ topic: ev.target.value }));
    $('#focus-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const text = $('#focus').value;
      const ids = text
        .split(',')
        .map((p) => p.trim().toUpperCase())
        .filter(Boolean);
      const unknown = ids.filter((p) => !this.parties.has(p));
      if (!isParties(text) || unknown.length || !ids.length) {
        this.report(new Error(unknown.length ? `Unknown parties: ${unknown.join(', ')}` : 'Give party ids separated by commas, e.g. JPN,KOR'));
        return;
      }
      this.set({ parties: ids.join(',') });
    });
    $('#stats-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const value = $('#stats-at').value.trim();
      if (value && !isInstant(value)) {
        this.report(new Error(`“${value}” is not an instant: give a date or an ISO 8601 instant with offset.`));
        return;
      }
      this.set({ stats_at: value || null });
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

    // A source tag anywhere on the page opens its entry in the sources view (the link's own
    // address does the same in a new tab).
    document.addEventListener('click', (ev) => {
      const link = ev.target.closest?.('a.source-link');
      if (!link || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
      ev.preventDefault();
      this.showSource(link.dataset.source);
    });

    window.addEventListener('popstate', async () => {
      const prev = this.state;
      const { state, refused } = parse(location.search);
      let next = state;
      if (JSON.stringify(whatifItems(state)) !== JSON.stringify(whatifItems(prev))) {
        // an address from history (or typed) is checked like any what-if: refused, the page
        // shows the record rather than keep the previous what-if's picture
        const result = await proposeWhatif(withoutWhatif(state), { drop: state.drop, add: state.add }, (params) => get('/api/v1/lifecycles', params));
        if (result.accepted) this.setLifecycles(result.answer);
        else {
          next = withoutWhatif(state);
          this.setLifecycles(await get('/api/v1/lifecycles'));
          refused.push(...result.refused);
        }
      }
      this.state = next;
      await this.defaults();
      history.replaceState(null, '', `?${serialize(this.state)}${location.hash}`);
      if (refused.length) this.refused(refused, 'Part of this address was refused; the page shows the rest');
      else this.clearProblem();
      this.react(prev);
      if (this.state.view === 'sources') this.views.sources.reveal();
    });
    window.addEventListener(
      'resize',
      debounce(() => this.views[this.state.view].resize?.(), 150),
    );
  }

  /** Open the sources view at entry `id`. */
  showSource(id) {
    history.pushState(null, '', `?${serialize({ ...this.state, view: 'sources' })}#source-${id}`);
    const prev = this.state;
    this.state = { ...this.state, view: 'sources' };
    if (prev.view === 'sources') this.views.sources.reveal();
    else this.react(prev);
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
    const items = whatifItems(this.state).map((x) => `${x.param} ${x.value}`);
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
      if (on) tab.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    }
    document.title = `gsomia — ${$(`#tab-${view}`).textContent} — ${this.scenario.name}`;
    this.showWhatifBanner();
    if (!this.dirty.has(view)) {
      this.views[view].resize?.();
      this.views[view].redisplayed?.(); // e.g. a token set in another view since it was drawn
    }
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

  /** Scroll `el` into view if a narrow screen left it below the fold (the details of a tapped edge). */
  bringIntoView(el) {
    const box = el.getBoundingClientRect();
    if (PHONE.matches || box.top > window.innerHeight - 80) el.scrollIntoView({ block: 'start', behavior: 'auto' });
  }

  // --- messages ----------------------------------------------------------------------------

  report(err) {
    const box = $('#problem');
    const p = err.problem;
    box.hidden = false;
    box.dataset.kind = 'error';
    fill(
      box,
      h('strong', {}, p ? `${p.title}: ` : 'Error: '),
      p?.detail ?? err.message,
      ' ',
      h('button', { type: 'button', class: 'small', onclick: () => this.clearProblem() }, 'Dismiss'),
    );
  }

  /** Say what was refused (`items`: {param, value, why}) and that the state is unchanged. */
  refused(items, heading) {
    const box = $('#problem');
    box.hidden = false;
    box.dataset.kind = 'refused';
    fill(
      box,
      h('strong', {}, `${heading}:`),
      h(
        'ul',
        { id: 'refused-list' },
        items.map((x) =>
          // the value comes from the URL: isolated, its characters cannot turn the words around it
          h('li', { dataset: { param: x.param } }, h('code', {}, `${x.param}=`, h('bdi', {}, x.value)), ` — ${x.why}`),
        ),
      ),
      h('button', { type: 'button', class: 'small', onclick: () => this.clearProblem() }, 'Dismiss'),
    );
  }

  clearProblem() {
    const box = $('#problem');
    box.hidden = true;
    delete box.dataset.kind;
    box.replaceChildren();
  }

  header() {
    const s = this.scenario;
    fill(
      $('#source'),
      'Scenario ',
      h('strong', { id: 'scenario-name' }, s.name),
      h('span', { class: 'scenario-title' }, ` — ${s.title}`),
      h('span', { class: 'scenario-db' }, ' · database ', h('code', { id: 'database' }, s.database)),
      ` · times in ${s.timezone} unless an offset says otherwise`,
    );
    fill(
      $('#assumption-list'),
      s.assumptions.map((a) => h('li', {}, this.tagged(a))),
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
    history.replaceState(null, '', `?${serialize(this.state)}${location.hash}`);
    this.bindControls();
    this.syncControls();
    this.showWhatifBanner();
    if (this.refusedAtStart.length) this.refused(this.refusedAtStart, 'Part of this address was refused; the page shows the rest');
    this.showTab();
    this.requestInstant();
    document.body.dataset.ready = 'true';
  }
}

/** Open the dashboard on the address's state; a what-if the API refuses is left out (the
 * page opens on the record and says what was refused) instead of failing to start. */
async function main() {
  try {
    const { state, refused } = parse(location.search);
    const [scenario, sources, record] = await Promise.all([get('/api/v1/scenario'), get('/api/v1/sources'), get('/api/v1/lifecycles')]);
    let lifecycles = record;
    let shown = state;
    if (hasWhatif(state)) {
      const result = await proposeWhatif(withoutWhatif(state), { drop: state.drop, add: state.add }, (params) => get('/api/v1/lifecycles', params));
      if (result.accepted) lifecycles = result.answer;
      else {
        shown = withoutWhatif(state);
        refused.push(...result.refused);
      }
    }
    await new Dashboard({ scenario, lifecycles, sources, state: shown, refused }).start();
  } catch (err) {
    const box = $('#problem');
    box.hidden = false;
    fill(box, h('strong', {}, 'The dashboard cannot start: '), err.problem?.detail ?? err.message);
    $('#source').textContent = 'No scenario loaded.';
  }
}

main();
