// What the status line says beyond reachability and counts: the exchange's last error and an
// inbox read again from the start, the party's keys as the exchange sees them, the CoT bridge's
// counters. Each note is plain text (drawn with textContent), bad news marked; a field the node
// does not give (absent or null) says nothing.

import { instant, short } from './format.js';

const count = (n) => (Number.isFinite(n) ? n : 0);

/** The CoT bridge's counters in one line: "CoT in 12 received · 10 sent · 1 dropped; out 9 sent". */
export function cotText(cot) {
  const i = cot?.in ?? {};
  const o = cot?.out ?? {};
  const extra = (parts) => parts.filter(([n]) => count(n) > 0).map(([n, what]) => ` · ${count(n)} ${what}`);
  return [
    `CoT in ${count(i.received)} received · ${count(i.sent)} sent`,
    ...extra([
      [i.unmapped, 'unmapped'],
      [i.malformed, 'malformed'],
      [i.refused, 'refused'],
      [i.dropped, 'dropped'],
      [i.stale, 'stale'],
      [i.connections_refused, 'connections refused'],
      [i.idle_closed, 'connections closed idle'],
    ]),
    `; out ${count(o.sent)} sent`,
    ...extra([
      [o.failed, 'failed'],
      [o.dropped, 'dropped'],
      [o.stale, 'stale'],
      [o.withheld, 'withheld by marking'],
      [o.refused, 'refused (no track)'],
    ]),
  ].join('');
}

/** The notes for a status from /api/status: [{id, text, bad, title?}]. */
export function statusNotes(st) {
  const notes = [];
  const x = st?.exchange ?? {};
  const k = st?.keys ?? {};
  if (x.reachable === false && x.error) notes.push({ id: 'exchange-error', bad: true, text: `last error: ${x.error}` });
  if (x.rewound) {
    const r = x.rewound;
    const at = r.at ? ` at ${instant(r.at)}` : '';
    const from = r.from !== null && r.from !== undefined ? ` (cursor was ${r.from})` : '';
    notes.push({ id: 'exchange-rewound', bad: false, text: `inbox read again from the start${at}${from}`, title: r.why ?? '' });
  }
  if (k.missing) {
    const fp = k.missing.fingerprint ?? '';
    notes.push({
      id: 'keys-missing',
      bad: true,
      text: `KEYS MISSING: the exchange’s current key set ${short(fp)} is not in this node: it cannot open new deliveries`,
      title: fp,
    });
  }
  if (k.registered === false) {
    const pending = k.pending ? ` (set ${short(k.pending)} pending)` : '';
    notes.push({ id: 'keys-state', bad: true, text: `keys NOT registered with the exchange${pending}`, title: k.pending ?? '' });
  }
  const cot = st?.cot;
  if (cot && (cot.in || cot.out)) {
    const i = cot.in ?? {};
    const o = cot.out ?? {};
    // a track withheld from an endpoint its marking does not allow is the rules at work, and a TCP
    // connection closed after a quiet spell is reopened by its sender: neither is bad news; a
    // connection refused (too many open) is a sender shut out
    const bad =
      count(i.dropped) + count(i.stale) + count(i.connections_refused) + count(o.failed) + count(o.dropped) + count(o.stale) + count(o.refused) > 0;
    notes.push({ id: 'cot-counts', bad, text: cotText(cot) });
  }
  return notes;
}
