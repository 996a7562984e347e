// Consents (third-party rule, DESIGN §3 rule 6): the hub asks this party, as originator, to
// relay one of its reports onward; an approver grants or refuses, with a reason that goes on
// the record. Standing consents cover a topic and a recipient for a period.

import * as api from '../api.js';
import { append, h, fill, field, select, table } from '../dom.js';
import { instant, dayAfter } from '../format.js';
import { PARTY_LANG } from '../markings.js';
import { fieldError, problemBox, say, busy, confirmDialog, card } from '../widgets.js';

const STATE = { pending: 'Pending', granted: 'Granted', refused: 'Refused', expired: 'Expired' };

export function render(ctx, main) {
  const approver = ctx.can('approver');
  const pending = h('div', { id: 'consents-pending', 'aria-busy': 'true' });
  const history = h('div', { id: 'consents-history' });
  const standingTable = h('div', { class: 'standing-list' });
  // the form is drawn once: a live reload (another request arriving) redraws the lists only,
  // never what an approver is typing
  const standing = h('div', { id: 'standing' }, standingTable, approver ? standingForm(ctx, () => load()) : null);
  const shown = new Map(); // consent id → its request element, kept across reloads with its draft
  append(
    main,
    h(
      'div',
      { class: 'view-head' },
      h('h1', { tabindex: '-1' }, 'Consents'),
      h(
        'p',
        { class: 'lead' },
        `Requests to relay ${ctx.session.party}’s reports to a third party. Nothing is relayed without ${ctx.session.party}’s consent.`,
      ),
    ),
    approver ? null : h('p', { class: 'note' }, 'Only an approver may grant or refuse a request.'),
    card('Waiting for an answer', pending),
    card('Standing consents', standing),
    card('Answered requests', history),
  );

  const load = async () => {
    let open, all, st;
    try {
      [open, all, st] = await Promise.all([
        api.get('/api/consents', { state: 'pending' }),
        api.get('/api/consents', { state: 'all' }),
        api.get('/api/standing-consents'),
      ]);
    } catch (err) {
      fill(pending, problemBox(err, 'Consents could not be read.'));
      pending.removeAttribute('aria-busy');
      return;
    }
    pending.removeAttribute('aria-busy');
    const count = document.getElementById('consent-count');
    if (count) count.textContent = open.items.length ? ` ${open.items.length}` : '';
    const focused = document.activeElement;
    const keep = new Set(open.items.map((c) => c.id));
    for (const id of [...shown.keys()]) if (!keep.has(id)) shown.delete(id);
    for (const c of open.items) if (!shown.has(c.id)) shown.set(c.id, request(ctx, c, approver, load));
    fill(
      pending,
      open.items.length
        ? h(
            'ol',
            { class: 'requests' },
            open.items.map((c) => shown.get(c.id)),
          )
        : h('p', { id: 'no-pending' }, 'No request is waiting.'),
    );
    // moving a request in the page takes the focus from it: give it back
    if (focused instanceof HTMLElement && focused !== document.activeElement && pending.contains(focused)) focused.focus();
    const answered = all.items.filter((c) => c.state !== 'pending');
    fill(
      history,
      table({
        caption: 'Answered consent requests',
        hideCaption: true,
        id: 'consents-table',
        cls: 'stack',
        head: ['Report', 'Recipient', 'Hub', 'State', 'Answered', 'Reason'],
        empty: 'No request has been answered yet.',
        rows: answered.map((c) =>
          h(
            'tr',
            { dataset: { consent: c.id, state: c.state } },
            h('td', {}, h('code', {}, c.report)),
            h('td', {}, c.recipient),
            h('td', {}, c.hub),
            h('td', {}, h('span', { class: `badge consent-${c.state}` }, STATE[c.state] ?? c.state)),
            h('td', {}, c.resolved_at ? instant(c.resolved_at) : '—'),
            h('td', {}, c.reason || '—'),
          ),
        ),
      }),
    );
    fill(standingTable, standingList(ctx, st.items ?? st.standing_consents ?? [], approver, load));
  };
  load();
  return { title: 'Consents', onEvent: (type) => type === 'consent' && load() };
}

function request(ctx, c, approver, reload) {
  const reason = h('textarea', { id: `reason-${c.id}`, rows: '2', maxlength: '2000' });
  const grant = h('button', { type: 'button', class: 'primary', dataset: { answer: 'grant' } }, 'Grant');
  const refuse = h('button', { type: 'button', class: 'danger', dataset: { answer: 'refuse' } }, 'Refuse');
  const out = h('div', { hidden: true });
  const answer = async (yes, button) => {
    if (!reason.value.trim()) {
      fieldError(out, reason, 'Give the reason for your answer: it goes on the record.');
      return;
    }
    const sure = await confirmDialog({
      title: yes ? 'Grant this relay?' : 'Refuse this relay?',
      body: h(
        'p',
        {},
        yes ? `${c.hub} will relay report ${c.report} to ${c.recipient}.` : `Report ${c.report} will not reach ${c.recipient} through ${c.hub}.`,
      ),
      confirm: yes ? 'Grant' : 'Refuse',
      danger: !yes,
    });
    if (!sure) return;
    try {
      await busy(button, api.post(`/api/consents/${encodeURIComponent(c.id)}`, { grant: yes, reason: reason.value.trim() }));
    } catch (err) {
      say(out, problemBox(err, 'Not answered.'));
      return;
    }
    reload();
  };
  reason.addEventListener('input', () => say(out, null));
  grant.addEventListener('click', () => answer(true, grant));
  refuse.addEventListener('click', () => answer(false, refuse));
  return h(
    'li',
    { class: 'request', dataset: { consent: c.id } },
    h('h3', {}, `Relay report `, h('code', {}, c.report), ` to ${c.recipient} via ${c.hub}`),
    h(
      'p',
      { class: 'item-meta' },
      c.topic ? h('span', {}, c.topic) : null,
      c.level ? h('span', { lang: PARTY_LANG[c.originator] }, c.level) : null,
      h('span', {}, `under ${c.arrangement}`),
      h('span', {}, c.per_report ? 'consent for this report only (ORCON)' : 'consent for this report'),
      h('span', {}, `asked ${instant(c.requested_at)}`),
      h('span', { class: 'expires' }, `expires ${instant(c.expires_at)}`),
    ),
    approver ? [field('Reason (recorded in the ledger)', reason), h('div', { class: 'actions' }, grant, refuse), out] : null,
  );
}

function standingList(ctx, items, approver, reload) {
  // the exchange dates consents by its own clock (under an exercise, the exercise's, which this
  // page knows only as last read): lapsed is judged on it, the start is shown as given
  const now = ctx.status?.exercise?.at ? Date.parse(ctx.status.exercise.at) : Date.now();
  const stateOf = (s) => (s.revoked_at ? `revoked ${instant(s.revoked_at)}` : Date.parse(s.valid_until) > now ? 'in effect' : 'lapsed');
  const rows = items.map((s) => {
    const revoke = approver && !s.revoked_at ? h('button', { type: 'button', class: 'danger small' }, 'Revoke') : null;
    revoke?.addEventListener('click', async () => {
      const sure = await confirmDialog({
        title: 'Revoke this standing consent?',
        body: h('p', {}, `Relays of ${s.topic_prefix} to ${s.recipient} will need a consent per report again.`),
        confirm: 'Revoke',
        danger: true,
      });
      if (!sure) return;
      try {
        await busy(revoke, api.del(`/api/standing-consents/${encodeURIComponent(s.id)}`));
      } catch (err) {
        revoke.after(problemBox(err));
        return;
      }
      reload();
    });
    return h(
      'tr',
      { dataset: { standing: s.id } },
      h('td', {}, h('code', {}, s.topic_prefix)),
      h('td', {}, s.recipient),
      h('td', {}, s.hub ?? 'any'),
      h('td', {}, instant(s.valid_from)),
      h('td', {}, instant(s.valid_until)),
      h('td', {}, stateOf(s)),
      h('td', {}, s.note || '—'),
      h('td', {}, revoke),
    );
  });
  return table({
    caption: 'Standing consents',
    hideCaption: true,
    id: 'standing-table',
    cls: 'stack',
    head: ['Topic', 'Recipient', 'Hub', 'From', 'Until', 'State', 'Note', ''],
    rows,
    empty: 'No standing consent: every relay is asked for.',
  });
}

function standingForm(ctx, reload) {
  const own = ctx.session.party;
  const others = ctx.meta.parties.filter((p) => p !== own);
  const prefixes = ['*', ...new Set(ctx.meta.topics.flatMap((t) => t.split('.').map((_, i, a) => a.slice(0, i + 1).join('.'))))];
  const topic = select({ id: 'standing-topic' }, prefixes, { empty: 'Choose a topic or prefix' });
  const recipient = select({ id: 'standing-recipient' }, others, { empty: 'Choose a recipient' });
  const hub = select({ id: 'standing-hub' }, others, { empty: 'Any hub' });
  const until = h('input', { id: 'standing-until', type: 'date' });
  const note = h('input', { id: 'standing-note', type: 'text', maxlength: '2000' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Give the standing consent');
  const out = h('div', { hidden: true });
  const form = h(
    'form',
    { class: 'standing-form', novalidate: true },
    h(
      'div',
      { class: 'form-grid' },
      field('Topic or prefix', topic),
      field('Recipient', recipient),
      field('Hub', hub),
      field('Valid until (UTC date)', until),
      field('Note', note),
    ),
    h('div', { class: 'actions' }, button),
    out,
  );
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!topic.value || !recipient.value || !until.value) {
      fieldError(out, !topic.value ? topic : !recipient.value ? recipient : until, 'Choose a topic, a recipient and the last day.');
      return;
    }
    try {
      await busy(
        button,
        api.post('/api/standing-consents', {
          topic_prefix: topic.value,
          recipient: recipient.value,
          hub: hub.value || null,
          valid_until: dayAfter(until.value),
          note: note.value.trim(),
        }),
      );
    } catch (err) {
      say(out, problemBox(err, 'Not given.'));
      return;
    }
    form.reset();
    say(out, null);
    details.open = false;
    reload();
  });
  const details = h('details', { class: 'standing-details' }, h('summary', {}, 'Give a standing consent'), form);
  return details;
}
