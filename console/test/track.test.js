import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTrack, groundRangeKm, ticks, timeTicks, plotModel, peak } from '../src/track.js';

const sample = (i, extra = {}) => ({
  t: new Date(Date.UTC(2019, 10, 28, 7, 59, i * 30)).toISOString(),
  lat: 39 + i * 0.1,
  lon: 125 + i * 0.2,
  alt_km: i * 10,
  ...extra,
});

test('a track of samples is read, sorted by time, with seconds since the first', () => {
  const tr = parseTrack({ kind: 'missile-track', track: [sample(2), sample(0), sample(1)] });
  assert.equal(tr.points.length, 3);
  assert.deepEqual(
    tr.points.map((p) => p.s),
    [0, 30, 60],
  );
  assert.equal(tr.points[0].rangeKm, 0);
  assert.ok(tr.points[2].rangeKm > tr.points[1].rangeKm);
});

test('ground range comes from the payload when it gives one', () => {
  const tr = parseTrack({ points: [sample(0, { range_km: 0 }), sample(1, { range_km: 55.5 })] });
  assert.equal(tr.points[1].rangeKm, 55.5);
});

test('variants: time, latitude/longitude, altitude in metres', () => {
  const tr = parseTrack({
    samples: [
      { time: '2019-11-28T08:00:00Z', latitude: 39, longitude: 125, alt_m: 0 },
      { time: '2019-11-28T08:01:00Z', latitude: 40, longitude: 125, alt_m: 120000 },
    ],
  });
  assert.equal(tr.points[1].altKm, 120);
  assert.ok(Math.abs(tr.points[1].rangeKm - 111.2) < 0.1, tr.points[1].rangeKm);
});

test('positions without times are CoT-style [lat, lon, hae in metres], in their order', () => {
  const tr = parseTrack({
    launch: '2019-11-22T09:51+09:00',
    track: [
      [39.7, 127.1, 0],
      [40.9, 133.25, 380000],
    ],
  });
  assert.equal(tr.timed, false);
  assert.equal(tr.points[1].altKm, 380);
  assert.equal(tr.points[1].s, null);
  assert.ok(tr.points[1].rangeKm > 500 && tr.points[1].rangeKm < 600, tr.points[1].rangeKm);
  assert.equal(
    parseTrack({
      track: [
        [39.7, 127.1],
        [40.9, 133.25],
      ],
    }),
    null,
  ); // no height
  assert.equal(
    parseTrack({
      track: [
        [99, 127.1, 0],
        [40.9, 133.25, 1],
      ],
    }),
    null,
  ); // no such latitude
  assert.equal(parseTrack({ track: [[39.7, 127.1, 0], sample(1)] }), null); // shapes mixed
});

test('anything else is not a track', () => {
  assert.equal(parseTrack(null), null);
  assert.equal(parseTrack({ track: 'x' }), null);
  assert.equal(parseTrack({ track: [sample(0)] }), null); // one sample is not a track
  assert.equal(parseTrack({ track: [sample(0), { t: 'not a time', alt_km: 1, range_km: 2 }] }), null);
  assert.equal(parseTrack({ track: [sample(0), { t: '2019-11-28T08:00:00Z', range_km: 2 }] }), null); // no altitude
  assert.equal(parseTrack({ track: [{ t: '2019-11-28T08:00:00Z', alt_km: 1 }, sample(1)] }), null); // no range nor position
  assert.equal(parseTrack({ yield_kt: 10 }), null);
});

test('the great-circle distance of one degree of latitude is about 111.2 km', () => {
  assert.ok(Math.abs(groundRangeKm({ lat: 0, lon: 0 }, { lat: 1, lon: 0 }) - 111.19) < 0.01);
  assert.equal(groundRangeKm({ lat: 35, lon: 139 }, { lat: 35, lon: 139 }), 0);
});

test('ticks are round and cover the range', () => {
  assert.deepEqual(ticks(0, 400, 4), [0, 100, 200, 300, 400]);
  assert.deepEqual(ticks(0, 749.2, 4), [0, 200, 400, 600]);
  assert.deepEqual(timeTicks(600, 6), [0, 120, 240, 360, 480, 600]);
  assert.deepEqual(timeTicks(45, 4), [0, 15, 30, 45]);
});

test('the plot puts the apogee at the top of its panel and time left to right', () => {
  const track = parseTrack({ track: [0, 1, 2, 3, 4].map((i) => sample(i, { alt_km: [0, 300, 400, 300, 0][i] })) });
  const pts = track.points;
  const m = plotModel(track, { width: 600, height: 400 });
  assert.equal(m.panels.length, 2);
  const alt = m.panels[0];
  const ys = alt.dots.map((d) => d.y);
  assert.equal(Math.min(...ys), ys[2]);
  const xs = alt.dots.map((d) => d.x);
  assert.deepEqual(
    [...xs].sort((a, b) => a - b),
    xs,
  );
  assert.ok(xs[xs.length - 1] <= 600 - m.margin.right + 1e-9);
  assert.equal(peak(pts, 'altKm').altKm, 400);
  assert.match(alt.path, /^M[\d.]+,[\d.]+( L[\d.]+,[\d.]+){4}$/);
});

test('positions are plotted as one panel of height against ground range', () => {
  const track = parseTrack({
    track: [
      [39, 125, 0],
      [39.5, 126, 300000],
      [40, 127, 0],
    ],
  });
  const m = plotModel(track, { width: 600, height: 300 });
  assert.equal(m.panels.length, 1);
  assert.equal(m.xLabel, 'Ground range from the first position (km)');
  const dots = m.panels[0].dots;
  assert.ok(dots[1].y < dots[0].y && dots[1].y < dots[2].y);
  assert.ok(dots[0].x < dots[1].x && dots[1].x < dots[2].x);
});
