// Small DOM helpers. Everything is built with createElement/textContent: no innerHTML (so no
// markup injection from report content) and no style attributes (the node serves the console
// under a Content-Security-Policy without 'unsafe-inline'; looks come from classes in console.css).

const SVG_NS = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') el.setAttribute('class', value);
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else if (key === 'checked' || key === 'disabled' || key === 'selected' || key === 'hidden') el[key] = Boolean(value);
    else if (key === 'value') el.value = String(value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/**
 * Create an HTML element. `attrs`: `class`, `text`, `dataset` (object), `on<event>` (listener),
 * `checked`/`disabled`/`selected`/`hidden`/`value` as properties, anything else as an attribute
 * (`true` → empty attribute, null/false → omitted).
 */
export const h = (tag, attrs = {}, ...children) => build(document.createElement(tag), attrs, children);

/** Create an SVG element (attributes are presentation attributes, which the CSP allows). */
export const s = (tag, attrs = {}, ...children) => build(document.createElementNS(SVG_NS, tag), attrs, children);

/** Append `children` to `el` (null, undefined and false are left out). */
export const append = (el, ...children) => build(el, {}, children);

/** Replace the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return build(el, {}, children);
}

export const $ = (selector, root = document) => root.querySelector(selector);

let ids = 0;
/** A fresh id for label/field pairs. */
export const uid = (prefix) => `${prefix}-${++ids}`;

/** A table in a wrapper that scrolls sideways inside its card, never widening the page. */
export function table({ caption, head, rows, id, cls, empty = 'None.', hideCaption = false }) {
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
  const el = h(
    'table',
    { id, class: cls },
    caption ? h('caption', { class: hideCaption ? 'visually-hidden' : null }, caption) : null,
    h(
      'thead',
      {},
      h(
        'tr',
        {},
        // a column of buttons has no visible heading; a screen reader still says what it holds
        head.map((c) => h('th', { scope: 'col' }, c === '' ? h('span', { class: 'visually-hidden' }, 'Actions') : c)),
      ),
    ),
    h('tbody', {}, body),
  );
  // A table stacked into blocks on a phone (console.css) keeps its table semantics: CSS
  // display changes can drop them, the ARIA roles say them again.
  if (cls && cls.split(' ').includes('stack')) {
    // each value is named by its column when the header row is out of sight
    for (const r of el.querySelectorAll('tbody tr'))
      [...r.children].forEach((c, i) => {
        if (c.tagName === 'TD' && !c.dataset.label && !c.classList.contains('empty') && head[i]) c.dataset.label = head[i];
      });
    el.setAttribute('role', 'table');
    for (const g of el.querySelectorAll('thead, tbody')) g.setAttribute('role', 'rowgroup');
    for (const r of el.querySelectorAll('tr')) r.setAttribute('role', 'row');
    for (const c of el.querySelectorAll('thead th')) c.setAttribute('role', 'columnheader');
    for (const c of el.querySelectorAll('tbody th')) c.setAttribute('role', 'rowheader');
    for (const c of el.querySelectorAll('td')) c.setAttribute('role', 'cell');
  }
  // a hidden caption repeats its card's heading: the region says it is the table, so the two
  // landmarks keep distinct names
  const name = caption ? (hideCaption ? `${caption} (table)` : caption) : 'Table';
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': name }, el);
}

/** A definition list from [term, value] pairs (pairs with a null value are left out). */
export function facts(pairs, cls = 'facts') {
  return h(
    'dl',
    { class: cls },
    pairs.filter(([, v]) => v !== null && v !== undefined && v !== '').map(([k, v]) => h('div', {}, h('dt', {}, k), h('dd', {}, v))),
  );
}

/** A labelled form field: the label, the control, and an optional help line tied to it. */
export function field(label, control, help = null) {
  const id = control.id || uid('f');
  control.id = id;
  let helpEl = null;
  if (help) {
    helpEl = h('span', { class: 'help', id: `${id}-help` }, help);
    control.setAttribute('aria-describedby', helpEl.id);
  }
  return h('div', { class: 'field' }, h('label', { for: id }, label), control, helpEl);
}

/** A select from [value, label] pairs (or plain values), with an optional empty first choice. */
export function select(attrs, options, { empty = null, value = '' } = {}) {
  const el = h(
    'select',
    attrs,
    empty !== null ? h('option', { value: '' }, empty) : null,
    options.map((o) => {
      const [v, label, lang] = Array.isArray(o) ? o : [o, o];
      return h('option', { value: v, lang }, label);
    }),
  );
  el.value = value ?? '';
  return el;
}
