// The inbox: every delivery the node holds, newest first, with its marking banner in the
// party's own ladder and the originator's marking, EXERCISE where made under an exercise, and
// its verification state (a quarantined report is never shown like a verified one). Filters
// and the search in decrypted content live in the address.

import * as api from '../api.js';
import { append, h, fill, field, select } from '../dom.js';
import { instant, dayStart, dayAfter } from '../format.js';
import { href, inboxFilters, filterParams, rememberInbox } from '../routes.js';
import { banner, caveats, stateBadge, exerciseBadge, problemBox, say, reasonText } from '../widgets.js';
import { PARTY_LANG } from '../markings.js';

const PAGE = 50;
// Wide enough to show every filter at once; narrower (a phone), they fold away until used.
const WIDE = window.matchMedia('(min-width: 761px)');

export function render(ctx, main, route) {
  const f = inboxFilters(route.params);
  rememberInbox(href('inbox', null, filterParams(f)));
  const meta = ctx.meta;
  const own = ctx.session.party;

  const q = h('input', {
    id: 'filter-q',
    name: 'q',
    type: 'search',
    value: f.q,
    autocomplete: 'off',
    spellcheck: 'false',
    'aria-describedby': 'filter-q-help',
  });
  const topic = select({ id: 'filter-topic', name: 'topic' }, meta.topics, { empty: 'Any topic', value: f.topic });
  const originator = select({ id: 'filter-originator', name: 'originator' }, meta.parties, { empty: 'Any originator', value: f.originator });
  const level = select(
    { id: 'filter-level', name: 'level', lang: PARTY_LANG[own] },
    meta.ladder.map((l) => [l.level, l.level, PARTY_LANG[own]]),
    { empty: 'Any level', value: f.level },
  );
  const from = h('input', { id: 'filter-from', name: 'from', type: 'date', value: f.from });
  const to = h('input', { id: 'filter-to', name: 'to', type: 'date', value: f.to });
  const state = select(
    { id: 'filter-state', name: 'state' },
    [
      ['all', 'All states'],
      ['verified', 'Verified'],
      ['quarantined', 'Quarantined'],
      ['pending', 'Pending verification'],
    ],
    { value: f.state },
  );
  const inUse = ['topic', 'originator', 'level', 'from', 'to'].filter((k) => f[k]).length + (f.state !== 'all' ? 1 : 0);
  const current = () => ({
    q: q.value.trim(),
    topic: topic.value,
    originator: originator.value,
    level: level.value,
    from: from.value,
    to: to.value,
    state: state.value,
  });
  const apply = () => ctx.go(href('inbox', null, filterParams(current())));

  const form = h(
    'form',
    { class: 'card filters', role: 'search', 'aria-label': 'Filter the inbox' },
    h(
      'div',
      { class: 'field search' },
      h('label', { for: q.id }, 'Search in reports'),
      h('div', { class: 'search-row' }, q, h('button', { type: 'submit', class: 'primary' }, 'Search')),
      h('span', { class: 'help', id: 'filter-q-help' }, 'Searches the decrypted content and the metadata.'),
    ),
    h(
      'details',
      { class: 'more-filters', id: 'more-filters', open: inUse > 0 || WIDE.matches },
      h('summary', {}, inUse ? `Filters (${inUse} in use)` : 'Filters'),
      h(
        'div',
        { class: 'filter-grid' },
        field('Topic', topic),
        field('Originator', originator),
        field(`Level (${own} ladder)`, level),
        field('Received from (UTC)', from),
        field('Received to (UTC)', to),
        field('Verification', state),
      ),
    ),
    Object.values(filterParams(f)).length
      ? h('p', { class: 'clear' }, h('a', { href: href('inbox'), id: 'clear-filters' }, 'Clear all filters'))
      : null,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    apply();
  });
  for (const el of [topic, originator, level, from, to, state]) el.addEventListener('change', apply);

  const summary = h('p', { id: 'inbox-summary', class: 'summary', role: 'status' }, 'Loading…');
  // the news of new reports: the shell's live region says it (console.js), so this note has
  // no live role of its own; its button stays in reach until pressed
  const fresh = h('div', { id: 'inbox-fresh', hidden: true });
  const list = h('ol', { id: 'inbox-list', class: 'items', 'aria-label': 'Reports' });
  const more = h('button', { type: 'button', id: 'inbox-more', hidden: true }, 'Show older reports');
  const out = h('div', { hidden: true });

  append(
    main,
    h('div', { class: 'view-head' }, h('h1', { tabindex: '-1' }, 'Inbox'), h('p', { class: 'lead' }, `Reports delivered to ${own}, newest first.`)),
    form,
    fresh,
    summary,
    out,
    list,
    h('div', { class: 'actions' }, more),
  );

  let next = null;
  let shown = 0;
  let ctrl = null;
  const params = () => ({
    q: f.q,
    topic: f.topic,
    originator: f.originator,
    level: f.level,
    from: dayStart(f.from),
    to: dayAfter(f.to), // the node's bound excludes it: the whole of the last day is in
    state: f.state,
    limit: PAGE,
  });
  const load = async (cursor) => {
    ctrl?.abort();
    const mine = (ctrl = new AbortController());
    list.setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await api.get('/api/inbox', { ...params(), cursor }, { signal: mine.signal });
    } catch (err) {
      if (api.aborted(err)) return;
      say(out, problemBox(err, 'The inbox could not be read.'));
      summary.textContent = '';
      return;
    } finally {
      list.removeAttribute('aria-busy');
    }
    say(out, null);
    if (!cursor) {
      fill(list);
      shown = 0;
    }
    list.append(...page.items.map((item) => row(item, own)));
    shown += page.items.length;
    next = page.next;
    more.hidden = !next;
    const filtered = Object.keys(filterParams(f)).length > 0;
    summary.textContent = shown
      ? `${shown}${next ? '+' : ''} report${shown === 1 ? '' : 's'}${filtered ? ' match the filters' : ''}.`
      : filtered
        ? 'No report matches the filters.'
        : 'No report has been delivered yet.';
    list.dataset.loaded = '1';
  };
  more.addEventListener('click', () => load(next));
  load(null);

  return {
    title: 'Inbox',
    destroy: () => ctrl?.abort(),
    onEvent: (type) => {
      // shown already: drawn again, it would take the focus from its button
      if (type !== 'delivery' || !fresh.hidden) return;
      fill(
        fresh,
        h(
          'p',
          { class: 'note fresh' },
          'New reports have arrived. ',
          h(
            'button',
            {
              type: 'button',
              id: 'inbox-show-new',
              onclick: async () => {
                // the button goes away with the note: the focus moves to the newest report
                // (or the list's heading), never to the page's start
                await load(null);
                fresh.hidden = true;
                fill(fresh);
                const first = list.querySelector('.item-link');
                if (first) first.focus();
                else main.querySelector('h1')?.focus();
              },
            },
            'Show them',
          ),
        ),
      );
      fresh.hidden = false;
    },
  };
}

function row(item, own) {
  const link = h('a', { class: 'item-link', href: href('deliveries', item.delivery_id) }, item.topic);
  return h(
    'li',
    { class: `item item-${item.state}${item.exercise ? ' item-exercise' : ''}`, dataset: { delivery: item.delivery_id, state: item.state } },
    h(
      'div',
      { class: 'item-top' },
      banner(item, own),
      h(
        'span',
        { class: 'badges' },
        item.exercise ? exerciseBadge() : null,
        stateBadge(item),
        item.acknowledged ? h('span', { class: 'badge badge-ack' }, 'Acknowledged') : null,
      ),
    ),
    h('h2', { class: 'item-title' }, link, h('span', { class: 'from' }, ` from ${item.originator}${item.via ? ` via ${item.via}` : ''}`)),
    caveats(item),
    item.state === 'quarantined' ? h('p', { class: 'quarantine-reason' }, h('strong', {}, 'Quarantined: '), reasonText(item)) : null,
    h(
      'p',
      { class: 'item-meta' },
      h('span', {}, `Report ${item.report_id}`),
      h('span', {}, 'Created ', h('time', { datetime: item.created, title: item.created }, instant(item.created))),
      h('span', {}, 'Received ', h('time', { datetime: item.received_at, title: item.received_at }, instant(item.received_at))),
      h('span', {}, item.content_type),
    ),
  );
}
