// The dashboard's URL state: what the address says, what the page keeps, what it refuses.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VIEWS, addSpecProblem, emptyState, isInstant, parse, proposeWhatif, serialize, whatifParams, withoutWhatif } from '../src/state.js';

const SHARED =
  'view=whatif&at=2019-11-22T17%3A00%2B09%3A00&topic=dprk.missile.launch&parties=JPN%2CKOR&agreement=JPN-KOR-GSOMIA' +
  '&drop=jpn-kor-2019-suspension&add=TISA+termination+2019-11-23';

test('a shared address round-trips: view, instant, topic, what-if', () => {
  const { state, refused } = parse(`?${SHARED}`);
  assert.deepEqual(refused, []);
  assert.equal(state.view, 'whatif');
  assert.equal(state.at, '2019-11-22T17:00+09:00');
  assert.equal(state.topic, 'dprk.missile.launch');
  assert.deepEqual(state.drop, ['jpn-kor-2019-suspension']);
  assert.deepEqual(state.add, ['TISA termination 2019-11-23']);
  assert.equal(serialize(state), SHARED);
  assert.deepEqual(parse(serialize(state)).state, state);
});

test('every view and the route check round-trip', () => {
  for (const view of VIEWS) assert.equal(parse(serialize({ ...emptyState(), view })).state.view, view);
  const route = {
    ...emptyState(),
    view: 'route',
    route_from: 'JPN',
    route_to: 'KOR',
    route_level: '極秘',
    route_topic: 'dprk.missile.launch',
    route_at: '2019-12-01',
  };
  const again = parse(`?${serialize(route)}`);
  assert.deepEqual(again, { state: route, refused: [] });
  assert.match(serialize(route), /route_level=%E6%A5%B5%E7%A7%98/);
});

test('keys come in a fixed order, empty values are left out', () => {
  const s = { ...emptyState(), topic: 'dprk.nuclear.test', view: 'coverage', at: '2019-12-01', stats_at: '' };
  assert.equal(serialize(s), 'view=coverage&at=2019-12-01&topic=dprk.nuclear.test');
  assert.equal(serialize(emptyState()), 'view=network');
});

test('bad values are refused and left out, the rest is kept', () => {
  const { state, refused } = parse('?view=nope&at=2019-02-30&topic=Not+A+Topic&parties=JPN,k&stats_at=yesterday&agreement=x y');
  assert.equal(state.view, 'network');
  assert.equal(state.at, null);
  assert.equal(state.topic, null);
  assert.equal(state.parties, null);
  assert.equal(state.stats_at, null);
  assert.equal(state.agreement, null);
  assert.deepEqual(
    refused.map((r) => r.param),
    ['view', 'at', 'topic', 'parties', 'stats_at', 'agreement'],
  );
  assert.match(refused.find((r) => r.param === 'at').why, /not an instant/);
});

test('instants: dates, offsets, real calendar days only', () => {
  for (const ok of ['2019-11-22', '2019-11-22T17:00+09:00', '2019-11-22T08:00Z', '2019-11-22 17:00:30+0900', '2020-02-29'])
    assert.ok(isInstant(ok), ok);
  for (const bad of ['2019-11-22T17:00', '2019-13-01', '2019-02-29', '2019-11-22T24:00Z', '22/11/2019', '', null]) assert.ok(!isInstant(bad), bad);
});

test('a malformed what-if in the address is refused whole and never enters the state', () => {
  const { state, refused } = parse('?view=network&drop=jpn-kor-2019-suspension&add=TISA+explodes+2019-11-23');
  assert.deepEqual(state.drop, []);
  assert.deepEqual(state.add, []);
  assert.deepEqual(
    refused.map((r) => [r.param, r.value]),
    [
      ['add', 'TISA explodes 2019-11-23'],
      ['drop', 'jpn-kor-2019-suspension'],
    ],
  );
  assert.match(refused[0].why, /explodes is not an event kind/);
  assert.doesNotMatch(serialize(state), /drop|add/);
});

test('add specs: the form the API takes', () => {
  assert.equal(addSpecProblem('JPN-KOR-GSOMIA revival 2020-08-22 by KOR effective 2020-11-23'), null);
  assert.equal(addSpecProblem('TISA termination 2019-11-22T18:00+09:00'), null);
  assert.match(addSpecProblem('TISA termination'), /expected AGREEMENT KIND INSTANT/);
  assert.match(addSpecProblem('TISA termination 2019-11-23 by'), /expected/);
  assert.match(addSpecProblem('TISA termination 2019-11-23 by KOR by JPN'), /expected/);
  assert.match(addSpecProblem('TISA termination soon'), /soon is not an instant/);
  assert.match(addSpecProblem('tisa termination 2019-11-23'), /not an agreement id/);
});

test('whatifParams carries the what-if and the extra parameters the API needs', () => {
  const s = { ...emptyState(), drop: ['a-1'], add: ['TISA termination 2019-11-23'] };
  assert.equal(whatifParams(s, { at: '2019-12-01', topic: '', parties: null }).toString(), 'drop=a-1&add=TISA+termination+2019-11-23&at=2019-12-01');
  assert.deepEqual(withoutWhatif(s).drop, []);
});

test('a what-if the API refuses never enters the state', async () => {
  const before = { ...emptyState(), view: 'whatif', drop: ['jpn-kor-2019-suspension'] };
  const refuse = async () => {
    const err = new Error('Not Found');
    err.problem = { title: 'Not Found', detail: "unknown agreement 'NOPE'" };
    throw err;
  };
  const r = await proposeWhatif(before, { add: ['NOPE termination 2019-11-23'] }, refuse);
  assert.equal(r.accepted, false);
  assert.equal(r.state, before);
  assert.deepEqual(before.add, []);
  assert.equal(serialize(r.state), 'view=whatif&drop=jpn-kor-2019-suspension');
  assert.deepEqual(
    r.refused.map((x) => x.value),
    ['jpn-kor-2019-suspension', 'NOPE termination 2019-11-23'],
  );
  assert.match(r.refused[1].why, /unknown agreement 'NOPE'/);
});

test('a malformed what-if is refused before asking the API', async () => {
  let asked = 0;
  const r = await proposeWhatif(emptyState(), { add: ['TISA termination tomorrow'] }, async () => (asked += 1));
  assert.equal(r.accepted, false);
  assert.equal(asked, 0);
  assert.deepEqual(r.state.add, []);
});

test('an accepted what-if enters the state with the API answer', async () => {
  const seen = [];
  const r = await proposeWhatif(emptyState(), { drop: ['jpn-kor-2019-suspension', 'jpn-kor-2019-suspension'] }, async (params) => {
    seen.push(params.toString());
    return [{ agreement: 'JPN-KOR-GSOMIA' }];
  });
  assert.equal(r.accepted, true);
  assert.deepEqual(r.state.drop, ['jpn-kor-2019-suspension']);
  assert.deepEqual(seen, ['drop=jpn-kor-2019-suspension']);
  assert.deepEqual(r.answer, [{ agreement: 'JPN-KOR-GSOMIA' }]);
});
