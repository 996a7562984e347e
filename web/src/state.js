// What the page shows lives in the query string, so any view (what-if included) can be
// shared as a URL and reopened as it was. The API takes the same `drop`/`add` parameters.

export const VIEWS = ['network', 'timeline', 'coverage', 'stats', 'whatif'];

/** The state in `search` (a location.search string). */
export function parse(search) {
  const q = new URLSearchParams(search);
  const view = q.get('view');
  return {
    view: VIEWS.includes(view) ? view : 'network',
    at: q.get('at') || null,
    topic: q.get('topic') || null,
    parties: q.get('parties') || null,
    stats_at: q.get('stats_at') || null,
    agreement: q.get('agreement') || null,
    drop: q.getAll('drop').filter(Boolean),
    add: q.getAll('add').filter(Boolean),
  };
}

/** The query string of `state`, keys in a fixed order (stable, readable URLs). */
export function serialize(state) {
  const q = new URLSearchParams();
  for (const key of ['view', 'at', 'topic', 'parties', 'stats_at', 'agreement']) {
    if (state[key]) q.set(key, state[key]);
  }
  for (const id of state.drop) q.append('drop', id);
  for (const spec of state.add) q.append('add', spec);
  return q.toString();
}

/** The what-if part of `state` as API query parameters. */
export function whatifParams(state, extra = {}) {
  const q = new URLSearchParams();
  for (const id of state.drop) q.append('drop', id);
  for (const spec of state.add) q.append('add', spec);
  for (const [k, v] of Object.entries(extra)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  return q;
}
