// The party's keys and the node's watch on the exchange's ledger: the current signing and
// encryption keys and those before them (a rotated key stays, to verify what it signed), the
// ledger as last verified, and the witness's cosignatures (C2SP tlog-cosignature).

import * as api from '../api.js';
import { append, h, fill, facts, table } from '../dom.js';
import { instant } from '../format.js';
import { cotText } from '../status.js';
import { problemBox, busy, confirmDialog, card } from '../widgets.js';

const KEY_STATE = {
  retired: 'retired: verifies what it signed, opens what was sent to it',
  pending: 'made, not yet registered with the exchange',
  current: 'current',
};

export function render(ctx, main) {
  const keysOut = h('div', { id: 'keys', 'aria-busy': 'true' });
  const ledgerOut = h('div', { id: 'ledger' });
  append(
    main,
    h(
      'div',
      { class: 'view-head' },
      h('h1', { tabindex: '-1' }, 'Keys and ledger'),
      h('p', { class: 'lead' }, `${ctx.session.party}’s keys, and what this node has verified of the exchange’s ledger.`),
    ),
    h('div', { class: 'two-col' }, card('Keys', keysOut), card('Ledger and witness', ledgerOut)),
  );
  const drawLedger = () => {
    const st = ctx.status;
    const l = st.ledger ?? {};
    const w = st.witness ?? {};
    const x = st.exchange ?? {};
    const ks = st.keys ?? {};
    const rw = x.rewound;
    fill(
      ledgerOut,
      st.alarm
        ? h('p', { class: 'problem', role: 'alert' }, h('strong', {}, 'Alarm: '), st.alarm.detail)
        : h('p', { class: 'ok', id: 'ledger-ok' }, '✓ No fork or rollback seen.'),
      ks.missing
        ? h(
            'p',
            { class: 'problem', role: 'alert', id: 'keys-missing-detail' },
            h('strong', {}, 'Keys missing: '),
            'the exchange’s current key set ',
            h('code', { class: 'wrap' }, ks.missing.fingerprint ?? '—'),
            ' is not in this node. New deliveries sealed to it cannot be opened (they are quarantined), and the exchange refuses what the node signs. Restore the node’s database that holds it, or rotate the keys.',
          )
        : null,
      h('h3', {}, 'Keys at the exchange'),
      facts([
        [
          'Registered',
          ks.registered === undefined || ks.registered === null
            ? null
            : ks.registered
              ? 'yes'
              : h('span', { class: 'bad', id: 'keys-registered' }, ks.pending ? 'no: a set is waiting to be registered' : 'no'),
        ],
        ['Pending set', ks.pending ? h('code', { class: 'wrap' }, ks.pending) : null],
        ['Last refusal', ks.error ? h('span', { class: 'bad' }, ks.error) : null],
      ]),
      h('h3', {}, 'Ledger'),
      facts([
        ['Size verified', l.size !== undefined ? `${l.size} entries` : null],
        ['Root hash', l.root ? h('code', { class: 'wrap' }, l.root) : null],
        ['Checked', l.checked_at ? instant(l.checked_at) : 'not yet'],
      ]),
      h('h3', {}, 'Witness'),
      facts([
        ['Name', w.name ? h('code', { class: 'wrap' }, w.name) : null],
        ['Key', w.vkey ? h('code', { class: 'wrap' }, w.vkey) : null],
        ['Registered with the exchange', w.registered ? 'yes' : 'no'],
        [
          'Last cosigned',
          w.cosigned_size !== null && w.cosigned_size !== undefined
            ? `size ${w.cosigned_size}${w.cosigned_at ? `, ${instant(w.cosigned_at)}` : ''}`
            : 'nothing yet',
        ],
      ]),
      h('h3', {}, 'Exchange'),
      facts([
        ['Address', x.url ? h('code', { class: 'wrap' }, x.url) : null],
        ['Reachable', x.reachable ? 'yes' : h('span', { class: 'bad' }, 'no')],
        ['Last error', x.reachable === false && x.error ? h('span', { class: 'bad', id: 'exchange-error-detail' }, x.error) : null],
        ['Last event', x.last_event_at ? instant(x.last_event_at) : null],
        ['Cursor', x.cursor],
        [
          'Inbox read again',
          rw
            ? `from the start${rw.at ? ` at ${instant(rw.at)}` : ''}${rw.from !== null && rw.from !== undefined ? ` (cursor was ${rw.from})` : ''}${rw.why ? `: ${rw.why}` : ''}`
            : null,
        ],
      ]),
      st.cot ? [h('h3', {}, 'Cursor-on-Target'), h('p', { id: 'cot-detail' }, cotText(st.cot), ' (since the node started serving)')] : null,
    );
  };
  const load = async () => {
    let k;
    try {
      [k] = await Promise.all([api.get('/api/keys'), ctx.refreshStatus()]);
    } catch (err) {
      fill(keysOut, problemBox(err, 'Keys could not be read.'));
      keysOut.removeAttribute('aria-busy');
      return;
    }
    keysOut.removeAttribute('aria-busy');
    drawLedger();
    const rotate = ctx.can('admin') ? h('button', { type: 'button', class: 'danger', id: 'rotate-button' }, 'Rotate the keys') : null;
    rotate?.addEventListener('click', async () => {
      const sure = await confirmDialog({
        title: 'Rotate the keys?',
        body: [
          h(
            'p',
            {},
            `The node makes new keys for ${ctx.session.party} and registers them with the exchange. New reports are signed, and new deliveries encrypted, with the new keys.`,
          ),
          h('p', {}, 'The current keys are kept: reports they signed still verify, and deliveries made to them still open.'),
        ],
        confirm: 'Rotate',
        danger: true,
      });
      if (!sure) return;
      try {
        await busy(rotate, api.post('/api/keys/rotate', {}));
      } catch (err) {
        rotate.after(problemBox(err, 'The keys were not rotated.'));
        return;
      }
      load();
    });
    const cur = k.current ?? {};
    const from = (x) => x.registered_at ?? x.valid_from ?? x.created_at;
    const to = (x) => x.retired_at ?? x.valid_to;
    fill(
      keysOut,
      h('h3', {}, 'Current'),
      facts([
        ['Fingerprint', h('code', { class: 'wrap', id: 'key-current' }, cur.fingerprint ?? '—')],
        ['In use since', from(cur) ? instant(from(cur)) : null],
        ['Profile', cur.profile],
      ]),
      rotate ? h('div', { class: 'actions' }, rotate) : h('p', { class: 'help' }, 'An administrator rotates the keys.'),
      h('h3', {}, 'Earlier keys (kept for verification)'),
      table({
        caption: 'Earlier keys',
        hideCaption: true,
        id: 'key-history',
        cls: 'stack',
        head: ['Fingerprint', 'State', 'In use from', 'Retired'],
        empty: 'No earlier key.',
        rows: (k.history ?? [])
          .filter((x) => x.fingerprint !== cur.fingerprint)
          .map((x) =>
            h(
              'tr',
              { dataset: { fingerprint: x.fingerprint, state: x.state ?? '' } },
              h('td', {}, h('code', { class: 'wrap' }, x.fingerprint)),
              h('td', {}, KEY_STATE[x.state] ?? x.state ?? '—'),
              h('td', { class: 'nowrap' }, from(x) ? instant(from(x)) : '—'),
              h('td', { class: 'nowrap' }, to(x) ? instant(to(x)) : '—'),
            ),
          ),
      }),
    );
  };
  load();
  return { title: 'Keys and ledger', onEvent: (type) => (type === 'status' || type === 'alarm') && drawLedger() };
}
