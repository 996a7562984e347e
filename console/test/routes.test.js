import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHash, href, inboxFilters, filterParams } from '../src/routes.js';

test('an address is a view, an id and parameters', () => {
  assert.deepEqual(parseHash('#/deliveries/d%2F1?show=quarantined'), { view: 'deliveries', id: 'd/1', params: { show: 'quarantined' } });
  assert.deepEqual(parseHash(''), { view: '', id: null, params: {} });
  assert.equal(href('deliveries', 'd/1'), '#/deliveries/d%2F1');
  assert.equal(href('inbox', null, { q: '極秘 track', topic: '' }), '#/inbox?q=%E6%A5%B5%E7%A7%98+track');
});

test('inbox filters round-trip through the address, defaults left out', () => {
  const f = inboxFilters(parseHash('#/inbox?topic=dprk.missile.launch&q=%EA%B5%B0%EC%82%AC&state=quarantined&from=2019-11-01').params);
  assert.equal(f.topic, 'dprk.missile.launch');
  assert.equal(f.q, '군사');
  assert.equal(f.state, 'quarantined');
  assert.equal(f.from, '2019-11-01');
  assert.deepEqual(inboxFilters(parseHash(href('inbox', null, filterParams(f))).params), f);
  assert.equal(href('inbox', null, filterParams(inboxFilters({}))), '#/inbox');
});

test('unknown states and malformed dates are dropped', () => {
  const f = inboxFilters({ state: 'everything', from: '28/11/2019', to: '2019-11-30', other: 'x' });
  assert.equal(f.state, 'all');
  assert.equal(f.from, '');
  assert.equal(f.to, '2019-11-30');
  assert.equal(f.other, undefined);
});
