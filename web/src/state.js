// What the page shows lives in the query string, so any view (what-if included) can be
// shared as a URL and reopened as it was. The API takes the same `drop`/`add` parameters.
//
// Everything here is pure (no DOM, no fetch), so it is unit-tested under node (web/test/).
// Values are checked as they are read: a malformed one is left out of the state and listed
// in `refused`, so the page can say what it did not apply instead of failing to open.

export const VIEWS = ['network', 'timeline', 'coverage', 'route', 'stats', 'whatif', 'sources'];

// The event kinds a hypothetical event may have (the API's --add-event KIND).
export const ADD_KINDS = ['notice', 'suspension', 'revival', 'withdrawal', 'termination', 'entry_into_force', 'signature', 'amendment'];

// Scalar keys in the order they appear in a URL (stable, readable URLs); `drop` and `add` follow.
const KEYS = ['view', 'at', 'topic', 'parties', 'stats_at', 'agreement', 'route_from', 'route_to', 'route_level', 'route_topic', 'route_at'];

// The shapes the scenario format and the API accept (scenario/model.py).
const INSTANT = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2}))?$/;
const TOPIC = /^[a-z0-9][a-z0-9_-]*(\.[a-z0-9][a-z0-9_-]*)*$/;
const PARTY = /^[A-Z][A-Z0-9_-]{1,15}$/;
const AGREEMENT = /^[A-Z0-9][A-Z0-9-]{1,62}$/;
const EVENT_ID = /^[a-z0-9][a-z0-9._-]{1,80}$/;

/** True for an ISO 8601 instant with offset, or a date, that names a real calendar day and time. */
export function isInstant(text) {
  const m = INSTANT.exec(text ?? '');
  if (!m) return false;
  const [, y, mo, d, hh = '00', mm = '00', ss = '00'] = m;
  const day = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d)));
  const dateOk = day.getUTCFullYear() === Number(y) && day.getUTCMonth() === Number(mo) - 1 && day.getUTCDate() === Number(d);
  return dateOk && Number(hh) < 24 && Number(mm) < 60 && Number(ss) < 60;
}

export const isTopic = (text) => TOPIC.test(text ?? '');
export const isParties = (text) => (text ?? '').split(',').every((p) => PARTY.test(p.trim().toUpperCase()));

/**
 * Why `spec` ('AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]') is malformed, or null if
 * its form is right. Whether the agreement, party or event fit the record is the API's to say.
 */
export function addSpecProblem(spec) {
  const words = (spec ?? '').trim().split(/\s+/).filter(Boolean);
  const form = 'expected AGREEMENT KIND INSTANT [by PARTY] [effective INSTANT]';
  if (words.length < 3) return form;
  if (!AGREEMENT.test(words[0])) return `${words[0]} is not an agreement id`;
  if (!ADD_KINDS.includes(words[1])) return `${words[1]} is not an event kind (${ADD_KINDS.join(', ')})`;
  if (!isInstant(words[2])) return `${words[2]} is not an instant (e.g. 2019-11-23 or 2019-11-22T18:00+09:00)`;
  const seen = new Set();
  for (let i = 3; i < words.length; i += 2) {
    const [key, value] = [words[i], words[i + 1]];
    if (!['by', 'effective'].includes(key) || value === undefined || seen.has(key)) return form;
    seen.add(key);
    if (key === 'by' && !PARTY.test(value)) return `${value} is not a party id`;
    if (key === 'effective' && !isInstant(value)) return `${value} is not an instant`;
  }
  return null;
}

export const dropProblem = (id) => (EVENT_ID.test(id ?? '') ? null : `${id} is not an event id`);

/** An empty state: the page fills what is missing with the scenario's defaults. */
export function emptyState() {
  const s = { view: 'network', drop: [], add: [] };
  for (const k of KEYS.slice(1)) s[k] = null;
  return s;
}

/**
 * The state in `search` (a location.search string): `{state, refused}`. `refused` lists what
 * the address asked for but the page will not apply, as `{param, value, why}`; a malformed
 * what-if item refuses the whole what-if (half a what-if would answer another question).
 */
export function parse(search) {
  const q = new URLSearchParams(search);
  const state = emptyState();
  const refused = [];
  const checks = {
    view: (v) => (VIEWS.includes(v) ? null : `no view called ${v}`),
    at: (v) => (isInstant(v) ? null : 'not an instant'),
    stats_at: (v) => (isInstant(v) ? null : 'not an instant'),
    route_at: (v) => (isInstant(v) ? null : 'not an instant'),
    topic: (v) => (isTopic(v) ? null : 'not a topic'),
    route_topic: (v) => (isTopic(v) ? null : 'not a topic'),
    parties: (v) => (isParties(v) ? null : 'not a list of party ids'),
    route_from: (v) => (PARTY.test(v) ? null : 'not a party id'),
    route_to: (v) => (PARTY.test(v) ? null : 'not a party id'),
    agreement: (v) => (AGREEMENT.test(v) ? null : 'not an agreement id'),
    route_level: () => null, // a national level is any text; the API checks it against the ladder
  };
  for (const key of KEYS) {
    const value = q.get(key);
    if (!value) continue;
    const why = checks[key](value);
    if (why) refused.push({ param: key, value, why });
    else state[key] = value;
  }
  const drop = q.getAll('drop').filter(Boolean);
  const add = q.getAll('add').filter(Boolean);
  const bad = [
    ...drop.map((v) => ({ param: 'drop', value: v, why: dropProblem(v) })),
    ...add.map((v) => ({ param: 'add', value: v, why: addSpecProblem(v) })),
  ].filter((x) => x.why);
  if (bad.length)
    refused.push(
      ...bad,
      ...whatifItems({ drop, add })
        .filter((x) => !bad.some((b) => b.value === x.value))
        .map((x) => ({ ...x, why: 'part of a refused what-if' })),
    );
  else Object.assign(state, { drop: [...new Set(drop)], add: [...new Set(add)] });
  return { state, refused };
}

/** The query string of `state`, keys in a fixed order. */
export function serialize(state) {
  const q = new URLSearchParams();
  for (const key of KEYS) if (state[key]) q.set(key, state[key]);
  for (const id of state.drop ?? []) q.append('drop', id);
  for (const spec of state.add ?? []) q.append('add', spec);
  return q.toString();
}

/** The what-if part of `state` as API query parameters, plus `extra` (empty values left out). */
export function whatifParams(state, extra = {}) {
  const q = new URLSearchParams();
  for (const id of state.drop ?? []) q.append('drop', id);
  for (const spec of state.add ?? []) q.append('add', spec);
  for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  return q;
}

/** The items of a what-if, `{param, value}`, as the banner and the refusals list them. */
export const whatifItems = (w) => [
  ...(w.drop ?? []).map((value) => ({ param: 'drop', value })),
  ...(w.add ?? []).map((value) => ({ param: 'add', value })),
];

export const hasWhatif = (state) => (state.drop?.length ?? 0) + (state.add?.length ?? 0) > 0;

/** `state` with no what-if (the record). */
export const withoutWhatif = (state) => ({ ...state, drop: [], add: [] });

/**
 * Try a what-if change: `patch` sets `drop` and/or `add`. Its form is checked here, then
 * `check(params)` asks the API (it resolves with the API's answer, or rejects with the
 * problem). Resolves `{accepted: true, state, answer}` with the new state, or
 * `{accepted: false, state, refused, error}` with `state` unchanged: a refused what-if never
 * enters the state, so it never reaches the URL or the views either.
 */
export async function proposeWhatif(state, patch, check) {
  const next = { ...state, drop: [...new Set(patch.drop ?? state.drop)], add: [...new Set(patch.add ?? state.add)] };
  const items = whatifItems(next);
  const malformed = items.map((x) => ({ ...x, why: x.param === 'drop' ? dropProblem(x.value) : addSpecProblem(x.value) })).filter((x) => x.why);
  if (malformed.length)
    return { accepted: false, state, refused: malformed, error: new Error(malformed.map((x) => `${x.param} ${x.value}: ${x.why}`).join('; ')) };
  try {
    const answer = await check(whatifParams(next));
    return { accepted: true, state: next, answer };
  } catch (error) {
    return { accepted: false, state, refused: items.map((x) => ({ ...x, why: error.problem?.detail ?? error.message })), error };
  }
}
