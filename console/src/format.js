// Instants are shown in UTC, always with the zone named, so officers of every party read the
// same clock; the full ISO 8601 value is in the element's title.

const pad = (n) => String(n).padStart(2, '0');

/** "2019-11-22 08:00:05 UTC" from an ISO 8601 instant (the input itself if unparseable). */
export function instant(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} UTC`;
}

/** "T+02:05" (or "T+1:02:05") from seconds since the first sample. */
export function sinceStart(seconds) {
  const total = Math.round(seconds);
  const sign = total < 0 ? '−' : '+';
  const a = Math.abs(total);
  const hh = Math.floor(a / 3600);
  const mm = Math.floor((a % 3600) / 60);
  const ss = a % 60;
  return hh ? `T${sign}${hh}:${pad(mm)}:${pad(ss)}` : `T${sign}${pad(mm)}:${pad(ss)}`;
}

/** A number with at most `digits` decimals, trailing zeros dropped ("12.5", "3"). */
export function num(value, digits = 1) {
  if (value === null || value === undefined || Number.isNaN(value)) return '';
  return String(Number(value.toFixed(digits)));
}

/** The beginning of a UTC date ("2019-11-22") as an ISO 8601 instant. */
export const dayStart = (date) => (date ? `${date}T00:00:00Z` : '');

/** The beginning of the day after a UTC date: the end of that date, for a bound that excludes it. */
export function dayAfter(date) {
  if (!date) return '';
  const d = new Date(`${date}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + 1);
  return d.toISOString().replace('.000Z', 'Z');
}

/** A fingerprint or hash shortened for a table cell, the whole value kept for the title. */
export const short = (value, n = 16) => (value && value.length > n ? `${value.slice(0, n)}…` : (value ?? ''));

/** "in 3 minutes", "in 1 hour" for a Retry-After in seconds. */
export function waitText(seconds) {
  if (seconds === null || seconds === undefined) return 'later';
  if (seconds < 60) return `in ${seconds} second${seconds === 1 ? '' : 's'}`;
  const minutes = Math.ceil(seconds / 60);
  return `in ${minutes} minute${minutes === 1 ? '' : 's'}`;
}
