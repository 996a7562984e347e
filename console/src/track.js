// A missile track payload read for the officer: a table of its samples and a plot, drawn here
// as SVG (no map: the node is air-gapped and a plot needs none). Two shapes are read:
//   - samples with times (the node's API contract):
//     {"kind": "missile-track", "track": [{"t": ISO 8601, "lat", "lon", "alt_km", "range_km"?, "speed_mps"?}, …]}
//     with the usual variants (points/samples, time, latitude/longitude, altitude_km, alt_m),
//     plotted as altitude and ground range against time;
//   - positions without times, as the CoT bridge reads them: {"track": [[lat, lon, hae], …]}
//     with the height above the ellipsoid in metres (CoT's `hae`), plotted as height against
//     ground range.
// Anything else is not drawn (no unit or time is guessed). Pure functions, unit-tested.

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

const validLat = (v) => v !== null && v >= -90 && v <= 90;
const validLon = (v) => v !== null && v >= -180 && v <= 180;

/** One sample from an object with a time; null when it is not one. */
function timedSample(p) {
  const t = first(p, ['t', 'time', 'at']);
  let ms = null;
  if (typeof t === 'string') ms = Date.parse(t);
  else if (finite(p.t_s) !== null) ms = p.t_s * 1000;
  if (ms === null || Number.isNaN(ms)) return null;
  let alt = finite(first(p, ['alt_km', 'altitude_km']));
  const altM = finite(first(p, ['alt_m', 'altitude_m']));
  if (alt === null && altM !== null) alt = altM / 1000;
  if (alt === null) return null;
  const lat = finite(first(p, ['lat', 'latitude']));
  const lon = finite(first(p, ['lon', 'lng', 'longitude']));
  const range = finite(first(p, ['range_km', 'downrange_km']));
  const placed = validLat(lat) && validLon(lon);
  if (range === null && !placed) return null;
  return { ms, lat: placed ? lat : null, lon: placed ? lon : null, altKm: alt, rangeKm: range, speed: finite(first(p, ['speed_mps', 'speed'])) };
}

/** One position [lat, lon, hae in metres]; null when it is not one. */
function position(p) {
  if (p.length < 3) return null;
  const [lat, lon, hae] = p.map(finite);
  if (!validLat(lat) || !validLon(lon) || hae === null) return null;
  return { ms: null, lat, lon, altKm: hae / 1000, rangeKm: null, speed: null };
}

/**
 * The samples of a track, or null when `json` is not one (fewer than two samples, or any
 * sample unreadable). `timed` tracks are sorted by time with `s`, seconds since the first;
 * positions keep their order. Ground range is from the first sample unless given.
 */
export function parseTrack(json) {
  if (!json || typeof json !== 'object') return null;
  const raw = Array.isArray(json) ? json : first(json, ['track', 'points', 'samples']);
  if (!Array.isArray(raw) || raw.length < 2) return null;
  const timed = !Array.isArray(raw[0]);
  const points = [];
  for (const p of raw) {
    if (!p || typeof p !== 'object' || Array.isArray(p) === timed) return null;
    const sample = timed ? timedSample(p) : position(p);
    if (!sample) return null;
    points.push(sample);
  }
  if (timed) points.sort((a, b) => a.ms - b.ms);
  const start = points[0];
  for (const p of points) {
    p.s = timed ? (p.ms - start.ms) / 1000 : null;
    if (p.rangeKm === null) p.rangeKm = start.lat === null || p.lat === null ? null : groundRangeKm(start, p);
  }
  if (points.some((p) => p.rangeKm === null)) return null;
  return { points, timed, kind: typeof json.kind === 'string' ? json.kind : null };
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
 * The plot's geometry in a `width` × `height` box. A timed track: two panels sharing the time
 * axis (altitude above, ground range below). Positions without times: one panel, height
 * against ground range. Each panel has its y ticks and its polyline.
 */
export function plotModel(track, { width = 720, height = 400, xCount = 6 } = {}) {
  const { points, timed } = track;
  // the right margin holds half of the last x label, which is centred on its tick
  const m = { left: 56, right: 34, top: 28, bottom: 40, gap: 44 };
  const plotW = width - m.left - m.right;
  const panels = timed ? 2 : 1;
  const panelH = (height - m.top - m.bottom - m.gap * (panels - 1)) / panels;
  const xKey = timed ? 's' : 'rangeKm';
  const xMaxRaw = Math.max(...points.map((p) => p[xKey])) || 1;
  const xTicksRaw = timed ? timeTicks(xMaxRaw, xCount) : ticks(0, xMaxRaw, xCount);
  const xMax = timed ? xMaxRaw : Math.max(xMaxRaw, xTicksRaw[xTicksRaw.length - 1]);
  const x = (v) => m.left + (v / xMax) * plotW;
  const panel = (key, label, top) => {
    const vals = points.map((p) => p[key]);
    const lo = Math.min(0, ...vals);
    const hiRaw = Math.max(...vals);
    const yt = ticks(lo, hiRaw > lo ? hiRaw : lo + 1, 4);
    const hi = Math.max(hiRaw, yt[yt.length - 1]);
    const y = (v) => top + panelH - ((v - lo) / (hi - lo || 1)) * panelH;
    const path = points.map((p, i) => `${i ? 'L' : 'M'}${x(p[xKey]).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' ');
    return {
      key,
      label,
      top,
      height: panelH,
      yTicks: yt.filter((v) => v <= hi).map((v) => ({ v, y: y(v) })),
      path,
      dots: points.map((p) => ({ x: x(p[xKey]), y: y(p[key]) })),
    };
  };
  return {
    width,
    height,
    margin: m,
    plotW,
    timed,
    xLabel: timed ? 'Time since the first sample' : 'Ground range from the first position (km)',
    xTicks: xTicksRaw.filter((v) => v <= xMax).map((v) => ({ v, x: x(v) })),
    panels: timed
      ? [panel('altKm', 'Altitude (km)', m.top), panel('rangeKm', 'Ground range (km)', m.top + panelH + m.gap)]
      : [panel('altKm', 'Height above the ellipsoid (km)', m.top)],
  };
}
