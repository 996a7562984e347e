// Live exchange: the exchange's own counts (GET /api/v1/exchange/stats), for auditors and
// operators. The analyst pastes a bearer token; it is kept in this tab's sessionStorage only
// (never in the URL, never in localStorage), sent only in the Authorization header to this
// same origin, and dropped by "Forget token", by closing the tab, or when the exchange
// refuses it. The endpoint returns counts only: no payload, key or report content.
//
// These are the exchange's counts now: the instant, the what-if and "as known at" above apply
// to the scenario's record, not to them.

import { get, aborted } from './api.js';
import { base, chart, css } from './charts.js';
import { h, fill, $, table } from './dom.js';

const STORAGE_KEY = 'gsomia.exchange-token';
const AUTO_REFRESH_MS = 15000;
const ENDPOINT = '/api/v1/exchange/stats';

// What each code means, in the order a reader expects them; codes not listed are shown as
// the API names them, after these.
const OUTCOMES = {
  delivered: 'delivered directly',
  relayed: 'relayed (with the originator’s consent)',
  pending_consent: 'relay waiting for the originator’s consent',
  consent_refused: 'relay refused by the originator',
  consent_expired: 'consent request expired',
  relay_refused: 'relay refused at the onward leg',
  denied: 'denied by the agreements’ rules',
  no_key: 'not delivered: the recipient has registered no encryption key',
};
const DELIVERY_STATES = {
  ready: 'ready, not yet fetched by the recipient',
  fetched: 'fetched by the recipient',
  acknowledged: 'acknowledged by the recipient',
};
const CONSENT_STATES = {
  pending: 'waiting for the originator',
  granted: 'granted',
  refused: 'refused',
  expired: 'expired unanswered',
};

/** Rows of `counts` ({code: n}) in the order of `known`, then any other code alphabetically. */
function ordered(counts, known) {
  const codes = Object.keys(counts ?? {});
  const rank = (c) => (c in known ? Object.keys(known).indexOf(c) : Infinity);
  return codes.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)).map((c) => [c, counts[c]]);
}

const sum = (counts) => Object.values(counts ?? {}).reduce((a, b) => a + b, 0);

/** The stored token, or null (sessionStorage may be unavailable: then nothing is kept). */
export function storedToken() {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

function storeToken(token) {
  try {
    if (token) sessionStorage.setItem(STORAGE_KEY, token);
    else sessionStorage.removeItem(STORAGE_KEY);
    return true;
  } catch {
    return false;
  }
}

export class LiveExchange {
  constructor(ctx) {
    this.ctx = ctx;
    this.section = $('#live');
    this.abort = null;
    this.timer = 0;
    this.started = false;
    this.chart = null;
    this.pairs = null; // the pairs last read, drawn once the panel is visible
    this.drawn = null; // the pairs the chart shows
    this.token = storedToken(); // also kept here, so a tab without sessionStorage still works
    this.bind();
    this.showTokenState();
    this.section.dataset.state = this.token ? 'idle' : 'none';
  }

  bind() {
    $('#live-form').addEventListener('submit', (ev) => {
      ev.preventDefault(); // the field has no name either: a token never reaches a URL
      const field = $('#live-token');
      const token = field.value.trim();
      if (!token) {
        this.problem(h('strong', {}, 'No token: '), 'paste an auditor or operator token first.');
        field.focus();
        return;
      }
      field.value = '';
      this.token = token;
      const kept = storeToken(token);
      this.showTokenState(kept ? null : 'This browser refuses session storage: the token is kept only until the page is reloaded.');
      this.clearData();
      this.load();
    });
    $('#live-forget').addEventListener('click', () => this.forget());
    $('#live-refresh').addEventListener('click', () => this.load());
    $('#live-auto').addEventListener('change', () => this.schedule());
    document.addEventListener('visibilitychange', () => this.schedule());
  }

  /** The stats view was drawn: load once, if a token is already kept for this tab. */
  start() {
    if (this.started) return;
    this.started = true;
    if (this.token) this.load();
  }

  forget(message = 'Token forgotten: it is no longer kept in this tab.') {
    this.abort?.abort();
    this.token = null;
    storeToken(null);
    $('#live-token').value = '';
    $('#live-auto').checked = false;
    this.schedule();
    this.clearData();
    this.clearProblem();
    this.showTokenState();
    this.section.dataset.state = 'none';
    $('#live-updated').textContent = message;
  }

  /** Auto-refresh runs only when asked for, with a token, while the page is visible. */
  schedule() {
    clearInterval(this.timer);
    this.timer = 0;
    if ($('#live-auto').checked && this.token && !document.hidden) {
      this.timer = setInterval(() => {
        if (this.ctx.state.view === 'stats' && !this.abort) this.load();
      }, AUTO_REFRESH_MS);
    }
  }

  showTokenState(extra = null) {
    const has = Boolean(this.token);
    this.section.dataset.token = has ? 'set' : 'none';
    $('#live-intro').hidden = has;
    $('#live-refresh').disabled = !has;
    $('#live-forget').disabled = !has;
    $('#live-auto').disabled = !has;
    $('#live-token').placeholder = has ? 'a token is set; paste another to replace it' : 'paste the token here';
    fill(
      $('#live-token-state'),
      has ? 'A token is set for this browser tab (session storage only; it goes away with the tab).' : 'No token is set.',
      extra ? [' ', h('span', { class: 'warning' }, extra)] : null,
    );
  }

  async load() {
    if (!this.token) return;
    this.abort?.abort();
    const ctrl = (this.abort = new AbortController());
    this.section.dataset.state = 'loading';
    this.section.setAttribute('aria-busy', 'true');
    let stats;
    try {
      stats = await get(ENDPOINT, null, {
        signal: ctrl.signal,
        cache: 'no-store',
        headers: { Authorization: `Bearer ${this.token}` },
      });
    } catch (err) {
      if (aborted(err)) return;
      this.failed(err);
      return;
    } finally {
      if (this.abort === ctrl) {
        this.abort = null;
        this.section.removeAttribute('aria-busy');
      }
    }
    this.clearProblem();
    this.show(stats);
  }

  /** A refusal (401, 403) drops the token: it cannot read these counts. Anything else keeps
   * it, and the last counts stay on the page marked with when they were read. */
  failed(err) {
    const status = err.status;
    const p = err.problem;
    if (status === 401 || status === 403) {
      this.token = null;
      storeToken(null);
      $('#live-auto').checked = false;
      this.schedule();
      this.clearData();
      this.showTokenState();
      this.section.dataset.state = 'refused';
      this.problem(
        h('strong', {}, `${p?.title ?? (status === 401 ? 'Not authenticated' : 'Forbidden')} (HTTP ${status}): `),
        h('span', { id: 'live-problem-detail' }, p?.detail || err.message),
        '. ',
        status === 403 ? 'These counts are for auditor and operator tokens; a party’s token cannot read them. ' : '',
        'The token was not kept: paste another one.',
      );
      $('#live-token').focus();
      return;
    }
    this.section.dataset.state = 'error';
    this.problem(
      h('strong', {}, p ? `${p.title} (HTTP ${status}): ` : 'The exchange could not be reached: '),
      h('span', { id: 'live-problem-detail' }, p?.detail || err.message),
      this.section.dataset.loaded ? ' The counts below are from the last successful refresh.' : '',
    );
  }

  problem(...children) {
    const box = $('#live-problem');
    box.hidden = false;
    fill(box, children);
  }

  clearProblem() {
    const box = $('#live-problem');
    box.hidden = true;
    box.replaceChildren();
  }

  clearData() {
    $('#live-out').hidden = true;
    fill($('#live-figures'));
    fill($('#live-tables'));
    fill($('#live-pairs-table'));
    this.chart?.clear();
    this.pairs = null;
    this.drawn = null;
    delete this.section.dataset.loaded;
    delete this.section.dataset.reports;
    $('#live-updated').textContent = '';
  }

  show(s) {
    const when = new Date();
    this.section.dataset.state = 'ok';
    this.section.dataset.loaded = String(Number(this.section.dataset.loaded ?? 0) + 1);
    this.section.dataset.reports = String(s.reports);
    $('#live-out').hidden = false;
    $('#live-updated').textContent =
      `Counts read from the exchange at ${when.toLocaleTimeString([], { hour12: false })} (your clock): ${s.reports} report${s.reports === 1 ? '' : 's'}, ${sum(s.deliveries)} deliveries.`;

    const figure = (id, label, value, note) =>
      h(
        'div',
        { class: 'figure', id, dataset: { value: String(value) } },
        h('dt', {}, label),
        h('dd', {}, h('span', { class: 'figure-value' }, String(value)), note ? h('span', { class: 'figure-note' }, note) : null),
      );
    fill(
      $('#live-figures'),
      figure('live-reports', 'Reports submitted', s.reports),
      figure('live-decisions', 'Recipient decisions', sum(s.decisions), 'one per report and recipient'),
      figure('live-deliveries', 'Deliveries', sum(s.deliveries)),
      figure('live-consents', 'Consent requests', sum(s.consents)),
      figure('live-incidents', 'Loss/compromise reports', s.incidents, 'Art. 17 incidents'),
    );

    const countTable = (id, caption, counts, known, head, empty) =>
      table({
        id,
        cls: 'data compact live-counts',
        caption,
        head: [head, 'Meaning', 'Count'],
        empty,
        rows: ordered(counts, known).map(([code, n]) =>
          h(
            'tr',
            { dataset: { code, count: String(n) } },
            h('th', { scope: 'row' }, h('code', {}, code)),
            h('td', {}, known[code] ?? ''),
            h('td', { class: 'num' }, String(n)),
          ),
        ),
      });
    fill(
      $('#live-tables'),
      countTable('live-decisions-table', 'Decisions by outcome', s.decisions, OUTCOMES, 'Outcome', 'No decisions yet.'),
      countTable('live-deliveries-table', 'Deliveries by state', s.deliveries, DELIVERY_STATES, 'State', 'No deliveries yet.'),
      countTable('live-consents-table', 'Consent requests by state', s.consents, CONSENT_STATES, 'State', 'No consent requests yet.'),
    );

    const pairs = s.pairs ?? [];
    const party = (id) => h('span', { title: this.ctx.partyName(id) }, id);
    fill(
      $('#live-pairs-table'),
      table({
        id: 'live-pairs',
        cls: 'data compact',
        caption: 'Deliveries per ordered pair (originator → recipient)',
        head: ['Originator', 'Recipient', 'Deliveries'],
        empty: 'No deliveries yet.',
        rows: pairs.map((p) =>
          h(
            'tr',
            { dataset: { from: p.originator, to: p.recipient, count: String(p.deliveries) } },
            h('td', {}, party(p.originator)),
            h('td', {}, party(p.recipient)),
            h('td', { class: 'num' }, String(p.deliveries)),
          ),
        ),
      }),
    );
    this.pairs = pairs;
    this.draw();
  }

  /** The bar chart of deliveries per pair (drawn only while visible, so ECharts can size it). */
  draw() {
    const box = $('#live-chart');
    const pairs = this.pairs;
    $('#live-chart-figure').hidden = !pairs || pairs.length === 0;
    if (!pairs || pairs.length === 0 || box.offsetParent === null) return;
    const labels = pairs.map((p) => `${p.originator}→${p.recipient}`);
    this.chart ??= chart(box);
    this.chart.setOption(
      {
        ...base(),
        tooltip: {
          ...base().tooltip,
          trigger: 'item',
          formatter: (p) => {
            const pair = pairs[p.dataIndex];
            return `${this.ctx.partyName(pair.originator)} → ${this.ctx.partyName(pair.recipient)}\n${p.value} deliver${p.value === 1 ? 'y' : 'ies'}`;
          },
        },
        grid: { left: 48, right: 16, top: 28, bottom: pairs.length > 24 ? 72 : 40 },
        xAxis: { type: 'category', data: labels, axisLabel: { rotate: pairs.length > 8 ? 45 : 0, interval: 0 } },
        yAxis: { type: 'value', name: 'deliveries', minInterval: 1 },
        dataZoom: pairs.length > 24 ? [{ type: 'slider', bottom: 8, startValue: 0, endValue: 23 }] : [],
        series: [
          {
            name: 'Deliveries',
            type: 'bar',
            barMaxWidth: 48,
            itemStyle: { color: css('--exchange') },
            label: { show: true, position: 'top' },
            data: pairs.map((p) => p.deliveries),
          },
        ],
      },
      { notMerge: true },
    );
    this.chart.resize();
    this.drawn = pairs;
    box.setAttribute(
      'aria-label',
      `Deliveries per ordered pair: ${pairs.map((p, i) => `${labels[i]} ${p.deliveries}`).join(', ')}; the table beside gives the same numbers.`,
    );
  }

  resize() {
    if (this.pairs !== this.drawn) this.draw();
    else this.chart?.resize();
  }
}
