// Instants in the scenario's zone, stepping by hour, and the labels the slider shows.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addDays, addHours, formatInstant, ms, shortInstant, stepPoint } from '../src/instants.js';

test('an hour either side of 18:00 KST on 22 November 2019', () => {
  assert.equal(addHours('2019-11-22T17:00+09:00', 1, 'Asia/Seoul'), '2019-11-22T18:00+09:00');
  assert.equal(addHours('2019-11-22T17:00+09:00', 2, 'Asia/Seoul'), '2019-11-22T19:00+09:00');
  assert.equal(addHours('2019-11-23T00:00+09:00', -1, 'Asia/Seoul'), '2019-11-22T23:00+09:00');
});

test('instants are written in the zone with its offset, across a daylight-saving change', () => {
  assert.equal(formatInstant(Date.UTC(2019, 10, 22, 8, 0), 'Asia/Seoul'), '2019-11-22T17:00+09:00');
  assert.equal(formatInstant(Date.UTC(2019, 10, 22, 8, 0), 'UTC'), '2019-11-22T08:00+00:00');
  // New York leaves daylight saving at 02:00 on 3 November 2019
  assert.equal(addHours('2019-11-03T01:30-04:00', 1, 'America/New_York'), '2019-11-03T01:30-05:00');
  assert.equal(formatInstant(ms('2019-08-23T15:30:45+09:00'), 'Asia/Seoul'), '2019-08-23T15:30:45+09:00');
});

test('labels: the date, and the time unless midnight', () => {
  assert.equal(shortInstant('2019-11-22T17:00+09:00'), '2019-11-22 17:00');
  assert.equal(shortInstant('2019-11-23T00:00+09:00'), '2019-11-23');
  assert.equal(shortInstant('2019-11-23'), '2019-11-23');
  assert.equal(addDays('2019-12-31', 1), '2020-01-01');
});

test('stepping through change points', () => {
  const points = ['2019-08-23T15:30+09:00', '2019-11-22T18:00+09:00', '2023-03-21T00:00+09:00'].map((x) => [ms(x), x]);
  const at = ms('2019-11-22T17:00+09:00');
  assert.equal(stepPoint(points, at, 1)[1], '2019-11-22T18:00+09:00');
  assert.equal(stepPoint(points, at, -1)[1], '2019-08-23T15:30+09:00');
  assert.equal(stepPoint(points, ms('2019-11-22T18:00+09:00'), -1)[1], '2019-08-23T15:30+09:00');
  assert.equal(stepPoint(points, ms('2024-01-01'), 1), undefined);
});
