import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statusNotes, cotText } from '../src/status.js';

const FP = '7a0b6dbf406c9afaeac17cb9441d21d5973d2376ba168942213243e5bfb6e899';

test('a status without the newer fields says nothing more', () => {
  assert.deepEqual(statusNotes({ exchange: { reachable: true } }), []);
  assert.deepEqual(statusNotes({ exchange: null, keys: null, cot: null }), []);
  assert.deepEqual(statusNotes(null), []);
});

test('the exchange’s last error, when it cannot be reached, and an inbox read again', () => {
  const notes = statusNotes({
    exchange: { reachable: false, error: 'connection refused', rewound: { at: '2019-11-22T01:00:00Z', from: 42, why: 'restored' } },
  });
  assert.deepEqual(
    notes.map((n) => [n.id, n.bad, n.text]),
    [
      ['exchange-error', true, 'last error: connection refused'],
      ['exchange-rewound', false, 'inbox read again from the start at 2019-11-22 01:00:00 UTC (cursor was 42)'],
    ],
  );
  assert.equal(notes[1].title, 'restored');
  assert.deepEqual(statusNotes({ exchange: { reachable: true, error: 'old news' } }), []);
});

test('keys the exchange holds and the node does not, and keys not registered', () => {
  const missing = statusNotes({ keys: { registered: true, current: 'abc', missing: { fingerprint: FP } } });
  assert.deepEqual(
    missing.map((n) => [n.id, n.bad]),
    [['keys-missing', true]],
  );
  assert.match(missing[0].text, /^KEYS MISSING: the exchange’s current key set 7a0b6dbf406c9afa… is not in this node/);
  assert.equal(missing[0].title, FP);
  const pending = statusNotes({ keys: { registered: false, pending: FP, missing: null } });
  assert.deepEqual(
    pending.map((n) => [n.id, n.bad, n.text]),
    [['keys-state', true, 'keys NOT registered with the exchange (set 7a0b6dbf406c9afa… pending)']],
  );
  assert.equal(statusNotes({ keys: { registered: false, pending: null } })[0].text, 'keys NOT registered with the exchange');
});

test('the CoT bridge’s counters, in and out', () => {
  const cot = {
    in: { received: 12, sent: 10, unmapped: 1, malformed: 0, refused: 0, dropped: 1 },
    out: { sent: 9, failed: 0, dropped: 0 },
  };
  const notes = statusNotes({ cot });
  assert.deepEqual(
    notes.map((n) => [n.id, n.bad, n.text]),
    [['cot-counts', true, 'CoT in 12 received · 10 sent · 1 unmapped · 1 dropped; out 9 sent']],
  );
  assert.equal(cotText({ in: { received: 3, sent: 3 }, out: null }), 'CoT in 3 received · 3 sent; out 0 sent');
  assert.equal(statusNotes({ cot: { in: { received: 0, sent: 0, dropped: 0 }, out: { sent: 0, failed: 2, dropped: 0 } } })[0].bad, true);
  // stale events (past their stale time: not sent) are counted in and out, and are bad news
  const stale = statusNotes({ cot: { in: { received: 4, sent: 1, stale: 3 }, out: { sent: 0, failed: 0, dropped: 0, stale: 2 } } });
  assert.deepEqual(
    stale.map((n) => [n.bad, n.text]),
    [[true, 'CoT in 4 received · 1 sent · 3 stale; out 0 sent · 2 stale']],
  );
  // tracks withheld by their marking are counted without alarm; reports that are no track are bad news
  const withheld = statusNotes({ cot: { in: { received: 0, sent: 0 }, out: { sent: 3, withheld: 5 } } });
  assert.deepEqual(
    withheld.map((n) => [n.bad, n.text]),
    [[false, 'CoT in 0 received · 0 sent; out 3 sent · 5 withheld by marking']],
  );
  const refused = statusNotes({ cot: { in: { received: 0, sent: 0 }, out: { sent: 0, refused: 1 } } });
  assert.deepEqual(
    refused.map((n) => [n.bad, n.text]),
    [[true, 'CoT in 0 received · 0 sent; out 0 sent · 1 refused (no track)']],
  );
});

test('CoT TCP connections refused (too many open) are bad news; connections closed idle are not', () => {
  const refused = statusNotes({ cot: { in: { received: 2, sent: 2, connections_refused: 3 }, out: { sent: 0 } } });
  assert.deepEqual(
    refused.map((n) => [n.bad, n.text]),
    [[true, 'CoT in 2 received · 2 sent · 3 connections refused; out 0 sent']],
  );
  const idle = statusNotes({ cot: { in: { received: 2, sent: 2, idle_closed: 4, connections_refused: 0 }, out: { sent: 0 } } });
  assert.deepEqual(
    idle.map((n) => [n.bad, n.text]),
    [[false, 'CoT in 2 received · 2 sent · 4 connections closed idle; out 0 sent']],
  );
});
