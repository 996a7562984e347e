// One delivered report: its marking at the top and the bottom, why the node trusts it (or
// quarantined it), its content (JSON pretty-printed, text as written, a missile track as a
// table and a plot), the need-to-know acknowledgement and loss/compromise incidents (Art. 17).

import * as api from '../api.js';
import { append, h, fill, facts, field } from '../dom.js';
import { instant } from '../format.js';
import { href, lastInbox } from '../routes.js';
import { parseTrack } from '../track.js';
import { trackPlot, trackTable } from '../plot.js';
import { fieldError, banner, caveats, stateBadge, exerciseBadge, problemBox, say, busy, card, reasonText } from '../widgets.js';
import { incidentList } from './incidents.js';

export function render(ctx, main, route) {
  const id = route.id;
  const own = ctx.session.party;
  const body = h('div', { class: 'report', id: 'report', 'aria-busy': 'true' }, h('h1', { tabindex: '-1' }, 'Report'), h('p', {}, 'Loading…'));
  append(main, h('p', { class: 'back' }, h('a', { href: lastInbox() }, '← Inbox')), body);

  let showQuarantined = route.params.show === 'quarantined';
  const load = async () => {
    let d;
    try {
      d = await api.get(`/api/deliveries/${encodeURIComponent(id)}`, showQuarantined ? { show: 'quarantined' } : {});
    } catch (err) {
      const refocus = headingFocused();
      fill(body, h('h1', { tabindex: '-1' }, 'Report'), problemBox(err, 'This report could not be read.'));
      body.removeAttribute('aria-busy');
      if (refocus) body.querySelector('h1')?.focus();
      return;
    }
    draw(d);
  };

  // The heading had the focus (the view was just opened): the loaded view's heading takes it,
  // so a screen reader announces the report rather than losing the focus to the page.
  const headingFocused = () => document.activeElement === body.querySelector('h1');

  const draw = (d) => {
    const refocus = headingFocused();
    body.removeAttribute('aria-busy');
    body.dataset.state = d.state;
    const quarantined = d.state === 'quarantined';
    fill(
      body,
      h('div', { class: `doc-banner doc-banner-top state-${d.state}` }, banner(d, own, { cls: 'banner-big' }), caveats(d)),
      h(
        'div',
        { class: 'view-head' },
        h('h1', { tabindex: '-1' }, d.topic, h('span', { class: 'from' }, ` from ${d.originator}`)),
        h(
          'p',
          { class: 'badges' },
          d.exercise ? exerciseBadge() : null,
          stateBadge(d),
          d.acknowledged ? h('span', { class: 'badge badge-ack' }, 'Acknowledged') : null,
        ),
      ),
      quarantined
        ? h(
            'div',
            { class: 'quarantine-alert', role: 'alert', id: 'quarantine-alert' },
            h('h2', {}, 'Quarantined: do not use this report'),
            h('p', { id: 'quarantine-reason' }, h('strong', {}, 'Reason: '), reasonText(d)),
            h(
              'p',
              {},
              'The node could not verify that it comes from its originator unaltered. Its content is withheld; an approver may inspect it for an investigation.',
            ),
          )
        : d.state === 'pending'
          ? h('div', { class: 'pending-note', role: 'status' }, 'Verification is not finished: treat this report as unverified until it is.')
          : null,
      h(
        'div',
        { class: 'report-grid' },
        h(
          'div',
          { class: 'report-main' },
          contentCard(ctx, d, () => {
            showQuarantined = true;
            load();
          }),
          ackCard(ctx, d, load),
          incidentsCard(ctx, d, load),
        ),
        h('div', { class: 'report-side' }, factsCard(d), verificationCard(d)),
      ),
      h('div', { class: `doc-banner doc-banner-bottom state-${d.state}` }, banner(d, own)),
    );
    if (refocus) body.querySelector('h1')?.focus();
  };
  load();
  return {
    title: `Report ${id}`,
    // a pending delivery verified (or quarantined) while on screen: show what the node found
    onEvent: (type, data) =>
      type === 'delivery' && data?.delivery_id === id && body.dataset.state === 'pending' && data.state !== 'pending' && load(),
  };
}

function factsCard(d) {
  return card(
    'Delivery',
    facts([
      ['Report', h('code', {}, d.report_id)],
      ['Originator', d.originator],
      ['Relayed via', d.via],
      ['Topic', d.topic],
      ['Created', h('time', { datetime: d.created }, instant(d.created))],
      ['Received', h('time', { datetime: d.received_at }, instant(d.received_at))],
      ['Content type', d.content_type],
      ['Delivery', h('code', {}, d.delivery_id)],
    ]),
  );
}

function verificationCard(d) {
  const v = d.verification;
  if (!v) return card('Verification', h('p', {}, 'Not verified yet.'));
  const ok = (good, yes, no) => h('span', { class: good ? 'ok' : 'bad' }, good ? `✓ ${yes}` : `✗ ${no}`);
  return card(
    'Verification',
    facts([
      ['Originator’s signature', ok(v.signature === 'ok', 'valid', 'failed')],
      ['Signing key', v.key_fingerprint ? h('code', { class: 'wrap' }, v.key_fingerprint) : null],
      ['Key valid', v.key_valid_from ? `${instant(v.key_valid_from)} – ${v.key_valid_to ? instant(v.key_valid_to) : 'now'}` : null],
      [
        'Ledger inclusion',
        v.inclusion
          ? ok(
              v.inclusion.ok,
              `entry ${v.inclusion.index} of ${v.inclusion.size}`,
              `entry ${v.inclusion.index} not proven${v.inclusion.size ? ` in ${v.inclusion.size}` : ''}`,
            )
          : 'not checked',
      ],
      ['Checkpoint verified', v.checkpoint_size ? `size ${v.checkpoint_size}` : null],
      ['Detail', v.detail],
    ]),
  );
}

function contentCard(ctx, d, reveal) {
  const p = d.payload;
  if (!p) {
    const canShow = d.state === 'quarantined' && ctx.can('approver');
    return card(
      'Content',
      h(
        'p',
        { class: 'withheld', id: 'payload-withheld' },
        d.state === 'quarantined' ? 'Withheld: the report is quarantined.' : 'Not available yet.',
      ),
      canShow ? h('button', { type: 'button', class: 'danger', id: 'reveal-quarantined', onclick: reveal }, 'Inspect the quarantined content') : null,
    );
  }
  const unverified =
    d.state !== 'verified' ? h('p', { class: 'unverified-note', role: 'note' }, 'Unverified content: shown for inspection only.') : null;
  let json = p.json;
  if ((json === null || json === undefined) && /json/.test(p.content_type ?? '')) {
    try {
      json = JSON.parse(p.text);
    } catch {
      json = null;
    }
  }
  const track = json ? parseTrack(json) : null;
  if (track) {
    return card(
      'Content: missile track',
      unverified,
      h('div', { class: `payload payload-track${unverified ? ' payload-unverified' : ''}` }, trackPlot(track), trackTable(track)),
      h('details', { class: 'raw' }, h('summary', {}, 'The track as received (JSON)'), h('pre', { class: 'json' }, JSON.stringify(json, null, 2))),
    );
  }
  if (json !== null && json !== undefined) {
    return card(
      'Content',
      unverified,
      h('pre', { class: `payload json${unverified ? ' payload-unverified' : ''}`, id: 'payload', tabindex: '0' }, JSON.stringify(json, null, 2)),
    );
  }
  return card(
    'Content',
    unverified,
    h('pre', { class: `payload text${unverified ? ' payload-unverified' : ''}`, id: 'payload', tabindex: '0' }, p.text ?? ''),
  );
}

function ackCard(ctx, d, reload) {
  const acks = d.acknowledgements ?? [];
  const list = acks.length
    ? h(
        'ul',
        { class: 'acks', id: 'acks' },
        acks.map((a) => h('li', {}, h('strong', {}, a.user), ' ', h('time', { datetime: a.at }, instant(a.at)))),
      )
    : null;
  if (d.acknowledged)
    return card('Need-to-know', h('p', { class: 'ok', id: 'ack-done' }, '✓ Receipt acknowledged; the exchange has recorded it.'), list);
  if (d.state === 'pending') return card('Need-to-know', h('p', {}, 'A report is acknowledged once the node has verified it.'), list);
  if (d.state === 'quarantined')
    return card(
      'Need-to-know',
      h('p', {}, 'A quarantined report is not acknowledged. If it may have been lost or compromised, file an incident below.'),
    );
  const box = h('input', { type: 'checkbox', id: 'ack-attest' });
  const button = h('button', { type: 'submit', class: 'primary', id: 'ack-button' }, 'Acknowledge receipt');
  const out = h('div', { hidden: true });
  const form = h(
    'form',
    { class: 'ack-form' },
    h(
      'div',
      { class: 'check' },
      box,
      h(
        'label',
        { for: box.id },
        'I attest that the recipients of this report in ',
        ctx.session.party,
        ' have a need to know it and are cleared for its level.',
      ),
    ),
    h('div', { class: 'actions' }, button),
    out,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!box.checked) {
      fieldError(out, box, 'Tick the attestation first: the acknowledgement states need-to-know.');
      return;
    }
    try {
      await busy(button, api.post(`/api/deliveries/${encodeURIComponent(d.delivery_id)}/ack`, {}));
    } catch (err) {
      say(out, problemBox(err, 'Not acknowledged.'));
      return;
    }
    reload();
  });
  return card(
    'Need-to-know',
    h('p', {}, 'Acknowledging tells the originator, through the exchange, that the report arrived and is held on a need-to-know basis.'),
    form,
    list,
  );
}

function incidentsCard(ctx, d, reload) {
  const kind = (value, label, hint) =>
    h(
      'div',
      { class: 'check' },
      h('input', { type: 'radio', name: 'incident-kind', id: `incident-kind-${value}`, value }),
      h('label', { for: `incident-kind-${value}` }, h('strong', {}, label), ` — ${hint}`),
    );
  const desc = h('textarea', { id: 'incident-description', rows: '4', maxlength: '8000', required: true });
  const button = h('button', { type: 'submit', class: 'danger' }, 'File the incident');
  const out = h('div', { hidden: true });
  const form = h(
    'form',
    { class: 'incident-form', id: 'incident-form', novalidate: true },
    h(
      'fieldset',
      {},
      h('legend', {}, 'What happened'),
      kind('loss', 'Loss', 'the report or a copy of it cannot be accounted for'),
      kind('compromise', 'Compromise', 'someone without need-to-know or clearance saw it'),
      kind('possible_compromise', 'Possible compromise', 'it may have been seen by someone not entitled to'),
    ),
    field('Description', desc, 'When, where, who knows, what was done at once. The originator is told at once (Art. 17).'),
    h('div', { class: 'actions' }, button),
    out,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const chosen = form.querySelector('input[name="incident-kind"]:checked');
    if (!chosen || !desc.value.trim()) {
      fieldError(out, chosen ? desc : form.querySelector('input[name="incident-kind"]'), 'Choose loss or compromise and describe what happened.');
      return;
    }
    try {
      await busy(
        button,
        api.post(`/api/deliveries/${encodeURIComponent(d.delivery_id)}/incidents`, { kind: chosen.value, description: desc.value.trim() }),
      );
    } catch (err) {
      say(out, problemBox(err, 'The incident was not filed.'));
      return;
    }
    reload();
  });
  const incidents = d.incidents ?? [];
  return card(
    'Loss or compromise (Art. 17)',
    incidents.length ? incidentList(ctx, incidents, reload) : h('p', {}, 'No incident has been filed for this report.'),
    h('details', { class: 'file-incident' }, h('summary', {}, 'File an incident for this report'), form),
    h('p', { class: 'help' }, 'Every incident is on the record: ', h('a', { href: href('incidents') }, 'all incidents'), '.'),
  );
}
