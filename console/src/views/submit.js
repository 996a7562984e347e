// Submit a report: topic, level from this party's own ladder, explicit recipients and the
// originator's caveats (REL TO, ORCON, NOFORN). Before anything is signed, the exchange's
// decision is shown for each recipient — direct, relay needing the originator's consent, or
// denied and why — and any change to the form withdraws that preview. The node signs.

import * as api from '../api.js';
import { append, h, fill, field, select, table } from '../dom.js';
import { instant } from '../format.js';
import { PARTY_LANG, bannerParts } from '../markings.js';
import { fieldError, problemBox, say, busy, confirmDialog } from '../widgets.js';

const DECISION = { direct: 'Direct', relay: 'Relay', deny: 'Denied' };

export function render(ctx, main) {
  const meta = ctx.meta;
  const own = ctx.session.party;
  const others = meta.parties.filter((p) => p !== own);
  const lang = PARTY_LANG[own];

  const topic = select({ id: 'submit-topic', required: true }, meta.topics, { empty: 'Choose a topic' });
  const ladder = [...meta.ladder].sort((a, b) => a.rank - b.rank);
  const level = select(
    { id: 'submit-level', required: true, lang },
    ladder.map((l) => [l.level, l.english ? `${l.level} — ${l.english}` : l.level, lang]),
    { empty: 'Choose a level' },
  );
  const boxes = (name, parties) =>
    h(
      'div',
      { class: 'party-boxes' },
      parties.map((p) =>
        h('div', { class: 'check' }, h('input', { type: 'checkbox', name, value: p, id: `${name}-${p}` }), h('label', { for: `${name}-${p}` }, p)),
      ),
    );
  const recipients = h(
    'fieldset',
    { id: 'submit-recipients' },
    h('legend', {}, 'Recipients'),
    h('p', { class: 'help' }, 'Name every recipient: nothing goes to a party not ticked here.'),
    boxes('recipient', others),
  );
  const relTo = h(
    'fieldset',
    { id: 'submit-relto' },
    h('legend', {}, 'REL TO'),
    h('p', { class: 'help' }, 'Releasable only to the parties ticked (leave all clear for no REL TO caveat).'),
    boxes('relto', meta.parties),
  );
  const orcon = h('input', { type: 'checkbox', id: 'submit-orcon' });
  const noforn = h('input', { type: 'checkbox', id: 'submit-noforn' });
  const handling = h(
    'fieldset',
    { id: 'submit-handling' },
    h('legend', {}, 'Handling caveats'),
    h(
      'div',
      { class: 'check' },
      orcon,
      h('label', { for: orcon.id }, h('strong', {}, 'ORCON'), ' — originator controlled: every relay needs consent for this very report'),
    ),
    meta.caveats.includes('NOFORN')
      ? h('div', { class: 'check' }, noforn, h('label', { for: noforn.id }, h('strong', {}, 'NOFORN'), ' — not releasable to any foreign party'))
      : null,
  );
  const ctype = select(
    { id: 'submit-content-type' },
    [
      ['application/json', 'JSON (application/json)'],
      ['text/plain', 'Text (text/plain)'],
    ],
    { value: 'application/json' },
  );
  const payload = h('textarea', { id: 'submit-payload', rows: '10', spellcheck: 'false', required: true, class: 'mono' });
  const previewButton = h('button', { type: 'submit', class: 'primary', id: 'preview-button' }, 'Preview the release');
  const formOut = h('div', { hidden: true });
  const form = h(
    'form',
    { class: 'card submit-form', 'aria-labelledby': 'submit-form-title', novalidate: true },
    h('h2', { id: 'submit-form-title' }, 'The report'),
    h('div', { class: 'form-grid' }, field('Topic', topic), field(`Level (${own} ladder)`, level)),
    recipients,
    relTo,
    handling,
    h('div', { class: 'form-grid' }, field('Content type', ctype)),
    field('Content', payload, 'The report’s content. It is signed and encrypted in this node; the exchange never sees it in clear.'),
    h('div', { class: 'actions' }, previewButton),
    formOut,
  );

  const previewOut = h('div', { id: 'preview', 'aria-live': 'polite' });
  const resultOut = h('div', { id: 'submit-result', 'aria-live': 'polite' });
  append(
    main,
    h(
      'div',
      { class: 'view-head' },
      h('h1', { tabindex: '-1' }, 'Submit a report'),
      h('p', { class: 'lead' }, `Originated by ${own}. Preview the exchange’s decision for every recipient, then sign and submit.`),
    ),
    form,
    previewOut,
    resultOut,
  );

  const ticked = (name) => [...form.querySelectorAll(`input[name="${name}"]:checked`)].map((b) => b.value);
  const read = () => {
    const rel = ticked('relto');
    return {
      topic: topic.value,
      level: level.value,
      recipients: ticked('recipient'),
      caveats: { rel_to: rel.length ? rel : null, orcon: orcon.checked, noforn: noforn.checked },
      content_type: ctype.value,
      payload: payload.value,
    };
  };
  const check = (r) => {
    if (!r.topic) return [topic, 'Choose a topic.'];
    if (!r.level) return [level, 'Choose a level of your ladder.'];
    if (!r.recipients.length) return [form.querySelector('input[name="recipient"]'), 'Tick at least one recipient.'];
    if (!r.payload.trim()) return [payload, 'Write the report’s content.'];
    if (r.content_type === 'application/json') {
      try {
        JSON.parse(r.payload);
      } catch (e) {
        return [payload, `The content is not valid JSON: ${e.message}`];
      }
    }
    return null;
  };

  let previewed = null; // the form as previewed; any change withdraws the preview
  const withdraw = () => {
    if (!previewed) return;
    previewed = null;
    fill(previewOut, h('p', { class: 'note', id: 'preview-stale' }, 'The report changed: preview the release again before signing.'));
  };
  form.addEventListener('input', withdraw);
  form.addEventListener('change', withdraw);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    fill(resultOut);
    const r = read();
    const bad = check(r);
    if (bad) {
      fieldError(formOut, bad[0], bad[1]);
      return;
    }
    say(formOut, null);
    let preview;
    try {
      preview = await busy(previewButton, api.post('/api/preview', { topic: r.topic, level: r.level, recipients: r.recipients, caveats: r.caveats }));
    } catch (err) {
      fill(previewOut, problemBox(err, 'No preview.'));
      return;
    }
    previewed = r;
    fill(
      previewOut,
      previewCard(ctx, r, preview, () => send(r)),
    );
    previewOut.querySelector('h2')?.focus();
  });

  const send = async (r) => {
    if (previewed !== r) return; // the preview shown is not of this form any more
    const sure = await confirmDialog({
      title: 'Sign and submit?',
      body: h(
        'p',
        {},
        `The node signs this report with ${own}’s key and submits it to the exchange for ${r.recipients.join(', ')}. A signed report cannot be withdrawn.`,
      ),
      confirm: 'Sign and submit',
    });
    if (!sure || previewed !== r) return;
    const button = previewOut.querySelector('#submit-button');
    let result;
    try {
      result = await busy(button, api.post('/api/submit', r));
    } catch (err) {
      fill(resultOut, problemBox(err, 'The report was not submitted.'));
      return;
    }
    previewed = null;
    fill(previewOut);
    fill(resultOut, resultCard(result));
    resultOut.querySelector('h2')?.focus();
    form.reset();
  };
  return { title: 'Submit' };
}

function previewCard(ctx, r, preview, onSubmit) {
  const rows = preview.recipients.map((p) =>
    h(
      'tr',
      { class: `decision-${p.decision}`, dataset: { party: p.party, decision: p.decision } },
      h('th', { scope: 'row' }, p.party),
      h(
        'td',
        { dataset: { label: 'Decision' } },
        h('span', { class: `badge decision decision-${p.decision}` }, DECISION[p.decision] ?? p.decision),
        p.via ? ` via ${p.via}` : '',
        p.needs_consent ? h('span', { class: 'needs-consent' }, ' — needs the originator’s consent') : '',
      ),
      h('td', { dataset: { label: 'Their marking' } }, p.banner ? markingOf(p, r, ctx.session.party) : (p.translated_level ?? '—')),
      h(
        'td',
        { dataset: { label: 'Why' } },
        p.reasons?.length
          ? h(
              'ul',
              { class: 'reasons' },
              p.reasons.map((x) =>
                h(
                  'li',
                  {},
                  x.text,
                  x.article ? h('span', { class: 'article' }, ` (${x.article})`) : null,
                  x.code ? h('code', { class: 'code' }, ` ${x.code}`) : null,
                ),
              ),
            )
          : '—',
      ),
    ),
  );
  const allowed = preview.recipients.filter((p) => p.decision !== 'deny').length;
  const denied = preview.recipients.length - allowed;
  const button = h('button', { type: 'button', class: 'primary', id: 'submit-button', disabled: !allowed, onclick: onSubmit }, 'Sign and submit');
  const wrap = table({
    caption: 'Decision for each recipient',
    id: 'preview-table',
    cls: 'stack',
    head: ['Recipient', 'Decision', 'Their marking', 'Why'],
    rows,
  });
  return h(
    'section',
    { class: 'card preview', 'aria-labelledby': 'preview-title' },
    h('h2', { id: 'preview-title', tabindex: '-1' }, 'Before signing: who would receive it'),
    h('p', { class: 'help' }, `Decided by the exchange at ${instant(preview.at)} (its clock). Nothing has been signed or sent yet.`),
    wrap,
    denied
      ? h(
          'p',
          { class: 'warning' },
          `${denied} recipient${denied === 1 ? '' : 's'} would be denied: the report would not reach ${denied === 1 ? 'it' : 'them'}.`,
        )
      : null,
    !allowed ? h('p', { class: 'problem' }, 'No recipient may receive this report as it stands.') : null,
    h('div', { class: 'actions' }, button),
  );
}

/** A recipient's banner with each level in its party's language (`군사II급비밀 (JPN 極秘)`). */
function markingOf(p, r, own) {
  const item = {
    level: p.translated_level,
    originator: own,
    originator_marking: { party: own, level: r.level },
    exercise: p.banner.startsWith('EXERCISE '),
    banner: p.banner,
  };
  return h(
    'span',
    { class: 'banner' },
    bannerParts(item, p.party).map((x) => (x.lang || x.cls ? h('span', { lang: x.lang, class: x.cls }, x.text) : x.text)),
  );
}

function resultCard(result) {
  const rows = (result.recipients ?? []).map((x) =>
    h(
      'tr',
      { dataset: { party: x.recipient, outcome: x.outcome } },
      h('th', { scope: 'row' }, x.recipient),
      h('td', { dataset: { label: 'Outcome' } }, x.outcome),
      h('td', { dataset: { label: 'Route' } }, x.decision, x.via ? ` via ${x.via}` : ''),
      h('td', { dataset: { label: 'Their marking' }, lang: PARTY_LANG[x.recipient] }, x.marking?.banner ?? '—'),
      h('td', { dataset: { label: 'Reasons' } }, (x.reasons ?? []).map((y) => y.message).join(' ') || '—'),
    ),
  );
  return h(
    'section',
    { class: 'card result', 'aria-labelledby': 'result-title' },
    h('h2', { id: 'result-title', tabindex: '-1' }, `Submitted: report ${result.report}`),
    h('p', {}, `Signed and recorded in the exchange’s ledger (entry ${result.leaf_index}).`),
    table({
      caption: 'What happened for each recipient',
      id: 'result-table',
      cls: 'stack',
      head: ['Recipient', 'Outcome', 'Route', 'Their marking', 'Reasons'],
      rows,
    }),
  );
}
