import { test } from 'node:test';
import assert from 'node:assert/strict';
import { alarmWords } from '../src/alarm.js';

test('each alarm kind says what the exchange did', () => {
  assert.equal(alarmWords('rollback').heading, 'LEDGER ALARM: the exchange rolled its ledger back');
  assert.equal(alarmWords('fork').heading, 'LEDGER ALARM: the exchange showed two different ledgers (fork)');
  const key = alarmWords('key');
  assert.match(key.heading, /not signed by the ledger key this node pinned/);
  assert.equal(key.first, 'Last checkpoint accepted');
  assert.match(key.second, /not signed by the pinned key/);
});

test('a kind this console does not know is named, not taken for a fork', () => {
  assert.equal(alarmWords('split').heading, 'LEDGER ALARM (split)');
  assert.equal(alarmWords('toString').heading, 'LEDGER ALARM (toString)');
  assert.equal(alarmWords(undefined).heading, 'LEDGER ALARM (unknown)');
});
