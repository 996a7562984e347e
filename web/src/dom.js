// Small DOM and formatting helpers. Everything is built with createElement/textContent:
// no innerHTML (so no markup injection from data) and no style attributes (the page runs
// under a Content-Security-Policy without 'unsafe-inline'; colours come from classes).

import { ms } from './instants.js';

/**
 * Create an element. `attrs`: `class`, `text`, `dataset` (object), `on<event>` (listener),
 * anything else is set as an attribute (`true` → empty attribute, null/false → omitted).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/**
 * A table from a header row and body rows (arrays of cells or ready <tr> elements), in a
 * scrolling wrapper that the keyboard can reach and scroll (a named region). `hideCaption`
 * keeps the caption for screen readers only (where a heading or summary above says it).
 */
export function table({ caption, head, rows, cls, id, empty = 'None.', hideCaption = false }) {
  const body = rows.length
    ? rows.map((r) =>
        r instanceof Node
          ? r
          : h(
              'tr',
              {},
              r.map((c) => (c instanceof Node && c.tagName === 'TD' ? c : h('td', {}, c))),
            ),
      )
    : [h('tr', {}, h('td', { colspan: head.length, class: 'empty' }, empty))];
  // wrapped, so a wide table scrolls inside its card instead of widening the page; focusable,
  // so a keyboard alone scrolls it
  return h(
    'div',
    { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption ? `${caption} (table)` : 'Table' },
    h(
      'table',
      { class: cls, id },
      caption ? h('caption', { class: hideCaption ? 'visually-hidden' : null }, caption) : null,
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          // a column with no visible heading still says what it holds to a screen reader
          head.map((c) => h('th', { scope: 'col' }, c === '' ? h('span', { class: 'visually-hidden' }, 'Note') : c)),
        ),
      ),
      h('tbody', {}, body),
    ),
  );
}

export const STATE_LABEL = {
  in_force: 'in force',
  notice_pending: 'notice pending',
  notice_suspended: 'notice suspended',
  terminated: 'terminated',
  expired: 'expired',
  not_yet_in_force: 'not yet in force',
  // not a derived state: shown instead of "not yet in force" once signed when no entry into
  // force is recorded (the API's `unknown`), because the record does not say
  unknown: 'not known (no entry into force recorded)',
};
export const STATES = Object.keys(STATE_LABEL);

export const KIND_LABEL = {
  signature: 'signature',
  entry_into_force: 'entry into force',
  notice: 'notice of termination',
  suspension: 'notice suspended',
  revival: 'notice revived',
  withdrawal: 'notice withdrawn',
  termination: 'termination',
  amendment: 'amendment',
};

// Events at the same instant, in the order a reader expects: the entry into force first (the
// agreement's state starts there), then the signature, then the rest as recorded.
const KIND_RANK = { entry_into_force: 0, signature: 1 };
export const eventOrder = (a, b) => ms(a.at) - ms(b.at) || (KIND_RANK[a.kind] ?? 2) - (KIND_RANK[b.kind] ?? 2);

// The release rules of DESIGN §3 by the names the API gives them, with their numbers.
export const RULES = {
  in_force: [1, 'agreement in force'],
  scope: [2, 'topic in scope'],
  level: [3, 'level and equivalence'],
  caveats: [4, 'originator’s caveats'],
  authority: [5, 'recipient’s authority cleared'],
  third_party: [6, 'third-party release (consent)'],
  known: [7, 'nothing released on a guess'],
};

/** A coloured state badge (colour from the `st-…` class in app.css). */
export const stateBadge = (state) => h('span', { class: `badge st-${state}` }, STATE_LABEL[state] ?? state);

/** ISO 8601 duration (PT4H, P1DT2H30M) → "4 h", "1 d 2 h 30 min". */
export function duration(iso) {
  if (!iso) return '';
  const m = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$/.exec(iso);
  if (!m) return iso;
  const parts = [];
  if (m[1]) parts.push(`${m[1]} d`);
  if (m[2]) parts.push(`${m[2]} h`);
  if (m[3]) parts.push(`${m[3]} min`);
  if (m[4]) parts.push(`${m[4]} s`);
  return parts.join(' ') || '0 s';
}

export { ms };

/** The marker of a modelling assumption, linked to the assumptions list in the footer. */
export const assumptionMark = () =>
  h('a', { href: '#assumptions', class: 'assumption-mark', title: 'Modelling assumption: see the assumptions below' }, '*');

/** Text of a route: "direct (AGREEMENT)", "relay via USA (+4 h*)", "none". */
export function routeCell(route, via, delay, agreement) {
  if (route === 'direct') return h('span', { class: 'route route-direct', title: agreement ?? '' }, 'direct');
  if (route === 'relay')
    return h(
      'span',
      { class: 'route route-relay', title: agreement ? `relayed under ${agreement}` : '' },
      `relay via ${via}`,
      delay ? [` (+${duration(delay)}`, assumptionMark(), ')'] : null,
    );
  if (route === 'unknown')
    return h(
      'span',
      { class: 'route route-unknown', title: agreement ? `${agreement}: no entry into force recorded, so the record cannot tell` : '' },
      'unknown',
    );
  return h('span', { class: 'route route-none' }, 'none');
}

/** Run `fn` once `wait` ms after the last call. */
export function debounce(fn, wait) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}
