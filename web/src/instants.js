// Instants as the page writes them: ISO 8601 to the minute, in the scenario's time zone, with
// its offset (2019-11-22T17:00+09:00), like the API. Pure (Intl only), unit-tested under node.

const HOUR = 3600000;
const DAY = 24 * HOUR;

/** Milliseconds since the epoch of an ISO 8601 instant with offset (as the API writes them). */
export const ms = (iso) => (iso ? Date.parse(iso) : NaN);

const formatters = new Map();
function partsIn(zone, t) {
  if (!formatters.has(zone)) {
    formatters.set(
      zone,
      new Intl.DateTimeFormat('en-US', {
        timeZone: zone,
        hourCycle: 'h23',
        year: 'numeric',
        month: '2-digit',
        day: '2-digit',
        hour: '2-digit',
        minute: '2-digit',
        second: '2-digit',
      }),
    );
  }
  const p = Object.fromEntries(
    formatters
      .get(zone)
      .formatToParts(t)
      .map((x) => [x.type, x.value]),
  );
  return { y: Number(p.year), mo: Number(p.month), d: Number(p.day), h: Number(p.hour), mi: Number(p.minute), s: Number(p.second) };
}

const pad = (n, w = 2) => String(Math.abs(n)).padStart(w, '0');

/** `t` (ms since the epoch) in `zone`, as 2019-11-22T17:00+09:00 (seconds only when not zero). */
export function formatInstant(t, zone) {
  const p = partsIn(zone, t);
  const offset = Math.round((Date.UTC(p.y, p.mo - 1, p.d, p.h, p.mi, p.s) - Math.floor(t / 1000) * 1000) / 60000);
  const sign = offset < 0 ? '-' : '+';
  const secs = p.s ? `:${pad(p.s)}` : '';
  return `${pad(p.y, 4)}-${pad(p.mo)}-${pad(p.d)}T${pad(p.h)}:${pad(p.mi)}${secs}${sign}${pad(Math.trunc(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
}

/** The instant `n` hours after `iso` (negative: before), written in `zone`. */
export const addHours = (iso, n, zone) => formatInstant(ms(iso) + n * HOUR, zone);

/** `date` (YYYY-MM-DD) plus `n` days, as YYYY-MM-DD (calendar arithmetic, no zone involved). */
export function addDays(date, n) {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d) + n * DAY).toISOString().slice(0, 10);
}

/** A short label of an instant as the API writes it: the date, and the time unless 00:00 (2019-11-22 17:00). */
export function shortInstant(iso) {
  if (!iso) return '';
  const date = iso.slice(0, 10);
  const time = iso.slice(11, 16);
  return time && time !== '00:00' ? `${date} ${time}` : date;
}

/** The change point just after (`dir` > 0) or just before (`dir` < 0) the instant `t` among
 * `points` (sorted `[ms, iso]` pairs), or undefined. */
export function stepPoint(points, t, dir) {
  return dir > 0 ? points.find(([p]) => p > t) : points.findLast(([p]) => p < t);
}
