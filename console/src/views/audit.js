// The node's audit log (administrators only): every officer's action, append-only, newest first.

import * as api from '../api.js';
import { append, h, fill, table } from '../dom.js';
import { instant } from '../format.js';
import { problemBox, card } from '../widgets.js';

const PAGE = 100;

/** An entry's detail as "name: value; …" (nested values as JSON), '—' when empty. */
function detailText(detail) {
  if (detail === null || detail === undefined) return '—';
  if (typeof detail !== 'object') return String(detail);
  const parts = Object.entries(detail).map(([k, v]) => `${k}: ${v !== null && typeof v === 'object' ? JSON.stringify(v) : v}`);
  return parts.length ? parts.join('; ') : '—';
}

export function render(_ctx, main) {
  const body = h('tbody', { role: 'rowgroup' });
  const out = h('div', { id: 'audit', 'aria-busy': 'true' });
  const more = h('button', { type: 'button', id: 'audit-more', hidden: true }, 'Show older entries');
  const problem = h('div');
  append(
    main,
    h(
      'div',
      { class: 'view-head' },
      h('h1', { tabindex: '-1' }, 'Audit log'),
      h('p', { class: 'lead' }, 'What each user of this node did, newest first. Entries are never changed or removed.'),
    ),
    card('Entries', out, problem, h('div', { class: 'actions' }, more)),
  );
  const wrap = table({
    caption: 'Audit log',
    hideCaption: true,
    id: 'audit-table',
    cls: 'stack',
    head: ['When', 'User', 'Action', 'Target', 'Detail'],
    rows: [],
  });
  wrap.querySelector('tbody').replaceWith(body);
  fill(out, wrap);
  let before = null;
  const load = async () => {
    let res;
    try {
      res = await api.get('/api/audit', { limit: PAGE, before });
    } catch (err) {
      fill(problem, problemBox(err, 'The audit log could not be read.'));
      return;
    } finally {
      out.removeAttribute('aria-busy');
    }
    fill(problem);
    body.append(
      ...res.items.map((e) =>
        h(
          'tr',
          // rows come page by page after the table is made: each names its column itself, and
          // says it is a row and cells, for the stacked layout on a phone (dom.js table())
          { dataset: { action: e.action }, role: 'row' },
          h('td', { class: 'nowrap', role: 'cell', dataset: { label: 'When' } }, h('time', { datetime: e.at }, instant(e.at))),
          h('td', { role: 'cell', dataset: { label: 'User' } }, e.user ?? '—'),
          h('td', { role: 'cell', dataset: { label: 'Action' } }, h('code', {}, e.action)),
          h('td', { class: 'target', role: 'cell', dataset: { label: 'Target' } }, e.target ?? ''),
          h('td', { class: 'detail', role: 'cell', dataset: { label: 'Detail' } }, detailText(e.detail)),
        ),
      ),
    );
    if (!body.children.length) body.append(h('tr', {}, h('td', { colspan: '5', class: 'empty' }, 'Nothing recorded yet.')));
    before = res.next ?? (res.items.length === PAGE ? res.items[res.items.length - 1].at : null);
    more.hidden = !before;
  };
  more.addEventListener('click', load);
  load();
  return { title: 'Audit log' };
}
