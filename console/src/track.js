// A missile track payload read for the officer: a table of its samples and a plot of altitude
// and ground range against time, drawn here as SVG (no map: the node is air-gapped and a plot
// needs none). The shape is in the node's API contract:
//   {"kind": "missile-track", "track": [{"t": ISO 8601, "lat", "lon", "alt_km", "range_km"?, "speed_mps"?}, …]}
// with the common variants accepted (points/samples, time, latitude/longitude, altitude_km,
// alt_m). Pure functions: parsing, ground range and the plot's geometry are unit-tested.

const EARTH_RADIUS_KM = 6371.0088; // IUGG mean radius

const first = (obj, names) => {
  for (const n of names) if (obj[n] !== undefined && obj[n] !== null) return obj[n];
  return undefined;
};
const finite = (v) => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** Great-circle distance in km between two {lat, lon} in degrees (haversine). */
export function groundRangeKm(a, b) {
  const rad = Math.PI / 180;
  const dLat = (b.lat - a.lat) * rad;
  const dLon = (b.lon - a.lon) * rad;
  const x = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * rad) * Math.cos(b.lat * rad) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_KM * Math.asin(Math.min(1, Math.sqrt(x)));
}

/**
 * The samples of a track, or null when `json` is not one: at least two samples, each with a
 * time (an instant, or seconds as `t_s`) and an altitude, and either a ground range or a
 * position. Samples are sorted by time; `s` is seconds since the first.
 */
export function parseTrack(json) {
  if (!json || typeof json !== 'object') return null;
  const raw = Array.isArray(json) ? json : first(json, ['track', 'points', 'samples']);
  if (!Array.isArray(raw) || raw.length < 2) return null;
  const points = [];
  for (const p of raw) {
    if (!p || typeof p !== 'object') return null;
    const t = first(p, ['t', 'time', 'at']);
    let ms = null;
    if (typeof t === 'string') ms = Date.parse(t);
    else if (finite(p.t_s) !== null) ms = p.t_s * 1000;
    if (ms === null || Number.isNaN(ms)) return null;
    let alt = finite(first(p, ['alt_km', 'altitude_km']));
    if (alt === null && finite(first(p, ['alt_m', 'altitude_m'])) !== null) alt = first(p, ['alt_m', 'altitude_m']) / 1000;
    if (alt === null) return null;
    const lat = finite(first(p, ['lat', 'latitude']));
    const lon = finite(first(p, ['lon', 'lng', 'longitude']));
    const range = finite(first(p, ['range_km', 'downrange_km']));
    if (range === null && (lat === null || lon === null)) return null;
    points.push({ ms, iso: typeof t === 'string' ? t : null, lat, lon, altKm: alt, rangeKm: range, speed: finite(first(p, ['speed_mps', 'speed'])) });
  }
  points.sort((a, b) => a.ms - b.ms);
  const start = points[0];
  for (const p of points) {
    p.s = (p.ms - start.ms) / 1000;
    if (p.rangeKm === null) p.rangeKm = start.lat === null ? null : groundRangeKm(start, p);
  }
  if (points.some((p) => p.rangeKm === null)) return null;
  return { points, kind: json.kind ?? null };
}

/** About `count` round tick values covering [lo, hi] (1, 2 or 5 × 10^k steps). */
export function ticks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((st) => st >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toFixed(10)));
  return out;
}

// Steps a reader counts in for time since launch: seconds, then whole minutes, then hours.
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 180, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600];

/** Ticks for [0, tMax] seconds at a step from TIME_STEPS, about `count` of them. */
export function timeTicks(tMax, count = 6) {
  const raw = tMax / count;
  const step = TIME_STEPS.find((st) => st >= raw) ?? Math.ceil(raw / 3600) * 3600;
  const out = [];
  for (let v = 0; v <= tMax + 1e-9; v += step) out.push(v);
  return out;
}

/** The largest sample of `key` with its time (apogee, final range). */
export function peak(points, key) {
  return points.reduce((best, p) => (p[key] > best[key] ? p : best), points[0]);
}

/**
 * The plot's geometry in a `width` × `height` box: two panels sharing the time axis (altitude
 * above, ground range below), each with its y ticks and its polyline; x ticks in seconds.
 */
export function plotModel(points, { width = 720, height = 400, xCount = 6 } = {}) {
  // the right margin holds half of the last time label, which is centred on its tick
  const m = { left: 56, right: 34, top: 28, bottom: 40, gap: 44 };
  const plotW = width - m.left - m.right;
  const panelH = (height - m.top - m.bottom - m.gap) / 2;
  const tMax = points[points.length - 1].s || 1;
  const xTicks = timeTicks(tMax, xCount);
  const x = (sec) => m.left + (sec / tMax) * plotW;
  const panel = (key, label, top) => {
    const vals = points.map((p) => p[key]);
    const lo = Math.min(0, ...vals);
    const hiRaw = Math.max(...vals);
    const yt = ticks(lo, hiRaw > lo ? hiRaw : lo + 1, 4);
    const hi = Math.max(hiRaw, yt[yt.length - 1]);
    const y = (v) => top + panelH - ((v - lo) / (hi - lo || 1)) * panelH;
    const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(p.s).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
    return {
      key,
      label,
      top,
      height: panelH,
      yTicks: yt.filter((v) => v <= hi).map((v) => ({ v, y: y(v) })),
      path,
      dots: points.map((p) => ({ x: x(p.s), y: y(p[key]) })),
    };
  };
  return {
    width,
    height,
    margin: m,
    plotW,
    xTicks: xTicks.map((v) => ({ v, x: x(v) })),
    panels: [panel('altKm', 'Altitude (km)', m.top), panel('rangeKm', 'Ground range (km)', m.top + panelH + m.gap)],
  };
}
