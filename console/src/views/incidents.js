// Loss and compromise incidents (Art. 17): those this party filed about reports it received,
// and those filed by others about reports it originated; each followed up with the results
// of the investigation and the measures taken, which the other side is told of.

import * as api from '../api.js';
import { append, h, fill, field } from '../dom.js';
import { instant } from '../format.js';
import { href } from '../routes.js';
import { fieldError, problemBox, say, busy } from '../widgets.js';

export const KIND_LABEL = { loss: 'Loss', compromise: 'Compromise', possible_compromise: 'Possible compromise' };

export function render(ctx, main) {
  const out = h('div', { id: 'incidents', 'aria-busy': 'true' }, h('p', {}, 'Loading…'));
  append(
    main,
    h(
      'div',
      { class: 'view-head' },
      h('h1', { tabindex: '-1' }, 'Incidents'),
      h('p', { class: 'lead' }, 'Loss or compromise of classified information (Art. 17), with their follow-up.'),
    ),
    out,
  );
  const load = async () => {
    let res;
    try {
      res = await api.get('/api/incidents');
    } catch (err) {
      fill(out, problemBox(err, 'Incidents could not be read.'));
      return;
    } finally {
      out.removeAttribute('aria-busy');
    }
    fill(out, res.items.length ? incidentList(ctx, res.items, load, { links: true }) : h('p', { class: 'card' }, 'No incident has been filed.'));
  };
  load();
  return { title: 'Incidents' };
}

/** Incidents with their updates, each with a follow-up form. */
export function incidentList(ctx, items, reload, { links = false } = {}) {
  return h(
    'ol',
    { class: 'incidents' },
    items.map((inc) =>
      h(
        'li',
        { class: `incident incident-${inc.kind}`, dataset: { incident: inc.id } },
        h(
          'h3',
          {},
          h('span', { class: `badge badge-${inc.kind}` }, KIND_LABEL[inc.kind] ?? inc.kind),
          ' ',
          h('time', { datetime: inc.created_at }, instant(inc.created_at)),
          inc.reporter ? ` — filed by ${inc.reporter}` : '',
        ),
        links && inc.delivery
          ? h(
              'p',
              { class: 'item-meta' },
              'Report ',
              // a link only where the delivery is this node's (the reporter's); the originator's
              // node holds no delivery of that id
              inc.reporter === ctx.session?.party
                ? h('a', { href: href('deliveries', inc.delivery) }, inc.report ?? inc.delivery)
                : (inc.report ?? inc.delivery),
              inc.originator ? ` from ${inc.originator}` : '',
            )
          : null,
        // the reporter's own words, set apart: a line in them cannot pass for a follow-up
        h('p', { class: 'incident-said' }, `Description, as ${inc.reporter ?? 'the reporter'} filed it:`),
        h('blockquote', { class: 'incident-description' }, inc.description),
        (inc.updates ?? []).length
          ? h(
              'ol',
              { class: 'updates', 'aria-label': 'Follow-up' },
              inc.updates.map((u) =>
                h(
                  'li',
                  {},
                  h('p', { class: 'item-meta' }, h('time', { datetime: u.created_at }, instant(u.created_at)), u.by ? ` — ${u.by}` : ''),
                  u.result ? h('p', {}, h('strong', {}, 'Result: '), u.result) : null,
                  u.measures ? h('p', {}, h('strong', {}, 'Measures: '), u.measures) : null,
                ),
              ),
            )
          : null,
        followUp(inc, reload),
      ),
    ),
  );
}

function followUp(inc, reload) {
  const result = h('textarea', { id: `result-${inc.id}`, rows: '3', maxlength: '8000' });
  const measures = h('textarea', { id: `measures-${inc.id}`, rows: '3', maxlength: '8000' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Add the follow-up');
  const out = h('div', { hidden: true });
  const form = h(
    'form',
    { class: 'follow-up', novalidate: true },
    field('Result of the investigation', result),
    field('Measures taken', measures),
    h('div', { class: 'actions' }, button),
    out,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!result.value.trim() && !measures.value.trim()) {
      fieldError(out, result, 'Write a result, the measures taken, or both.');
      return;
    }
    try {
      await busy(button, api.post(`/api/incidents/${encodeURIComponent(inc.id)}`, { result: result.value.trim(), measures: measures.value.trim() }));
    } catch (err) {
      say(out, problemBox(err, 'The follow-up was not recorded.'));
      return;
    }
    reload();
  });
  return h('details', { class: 'follow-up-details' }, h('summary', {}, 'Add a follow-up'), form);
}
