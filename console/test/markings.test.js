import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bannerParts, caveatText, can } from '../src/markings.js';
import { retryAfterSeconds, query } from '../src/api.js';
import { instant, sinceStart, waitText } from '../src/format.js';

const item = (extra = {}) => ({
  originator: 'JPN',
  level: '군사II급비밀',
  banner: '군사II급비밀 (JPN 極秘)',
  originator_marking: { party: 'JPN', level: '極秘', caveats: { rel_to: ['JPN', 'KOR'], orcon: true, noforn: false } },
  exercise: false,
  ...extra,
});

test('the banner keeps the node’s words, each level in its party’s language', () => {
  const parts = bannerParts(item(), 'KOR');
  assert.equal(parts.map((p) => p.text).join(''), '군사II급비밀 (JPN 極秘)');
  assert.deepEqual(
    parts.filter((p) => p.lang).map((p) => [p.text, p.lang]),
    [
      ['군사II급비밀', 'ko'],
      ['極秘', 'ja'],
    ],
  );
});

test('an exercise banner starts with EXERCISE', () => {
  const parts = bannerParts(item({ exercise: true, banner: 'EXERCISE 군사II급비밀 (JPN 極秘)' }), 'KOR');
  assert.equal(parts.map((p) => p.text).join(''), 'EXERCISE 군사II급비밀 (JPN 極秘)');
  assert.equal(parts[0].cls, 'exercise');
});

test('a banner the parts would not reproduce is shown as the node gave it', () => {
  const parts = bannerParts(item({ banner: '군사II급비밀 // JPN 極秘' }), 'KOR');
  assert.deepEqual(parts, [{ text: '군사II급비밀 // JPN 極秘', lang: null }]);
});

test('caveats in words', () => {
  assert.equal(caveatText(item().originator_marking.caveats), 'REL TO JPN, KOR · ORCON');
  assert.equal(caveatText({ rel_to: null, orcon: false, noforn: false }), '');
  assert.equal(caveatText(null), '');
});

test('roles include the lower ones', () => {
  assert.ok(can('admin', 'approver'));
  assert.ok(can('approver', 'officer'));
  assert.ok(!can('officer', 'approver'));
  assert.ok(!can(undefined, 'officer'));
});

test('Retry-After as seconds or as a date', () => {
  assert.equal(retryAfterSeconds('840'), 840);
  assert.equal(retryAfterSeconds('Thu, 01 Jan 2026 00:10:00 GMT', Date.parse('2026-01-01T00:00:00Z')), 600);
  assert.equal(retryAfterSeconds(null), null);
  assert.equal(waitText(840), 'in 14 minutes');
  assert.equal(waitText(1), 'in 1 second');
});

test('formatting', () => {
  assert.equal(instant('2019-11-28T17:05:00+09:00'), '2019-11-28 08:05:00 UTC');
  assert.equal(sinceStart(125), 'T+02:05');
  assert.equal(sinceStart(3725), 'T+1:02:05');
  assert.equal(query({ a: '', b: 'x y', c: null, d: 0 }), 'b=x+y&d=0');
});
