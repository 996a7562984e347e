// The console's address is its state: `#/inbox?topic=…&q=…`, `#/deliveries/ID`, … so the back
// button, a reload and a copied link all show the same view. Pure functions, unit-tested.

export const INBOX_FILTERS = ['q', 'topic', 'originator', 'level', 'from', 'to', 'state'];
export const INBOX_STATES = ['all', 'verified', 'quarantined', 'pending'];

/** `#/deliveries/abc?x=1` → {view: 'deliveries', id: 'abc', params: {x: '1'}}. */
export function parseHash(hash) {
  const raw = (hash ?? '').replace(/^#/, '');
  const [path, qs = ''] = raw.split('?', 2);
  const segments = path.split('/').filter(Boolean).map(decodeURIComponent);
  const params = Object.fromEntries(new URLSearchParams(qs));
  return { view: segments[0] ?? '', id: segments[1] ?? null, params };
}

/** The address of a view: `href('inbox', null, {topic: 'x'})` → `#/inbox?topic=x`. */
export function href(view, id = null, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== null && v !== undefined && v !== '') q.set(k, v);
  const qs = q.toString();
  return `#/${view}${id ? `/${encodeURIComponent(id)}` : ''}${qs ? `?${qs}` : ''}`;
}

/** The inbox filters from the address: known names only, an unknown state read as "all". */
export function inboxFilters(params) {
  const f = {};
  for (const k of INBOX_FILTERS) f[k] = (params[k] ?? '').trim();
  if (!INBOX_STATES.includes(f.state)) f.state = 'all';
  if (f.from && !/^\d{4}-\d{2}-\d{2}$/.test(f.from)) f.from = '';
  if (f.to && !/^\d{4}-\d{2}-\d{2}$/.test(f.to)) f.to = '';
  return f;
}

/** The address parameters of the filters (defaults left out, so a plain inbox is `#/inbox`). */
export function filterParams(f) {
  const out = {};
  for (const k of INBOX_FILTERS) if (f[k] && !(k === 'state' && f[k] === 'all')) out[k] = f[k];
  return out;
}

const INBOX_KEY = 'gsomia.node.inbox';
/** Remember the inbox address with its filters, so "back to the inbox" keeps them. */
export function rememberInbox(hash) {
  try {
    sessionStorage.setItem(INBOX_KEY, hash);
  } catch {
    // no session storage: the link goes to the plain inbox
  }
}
/** The inbox address last shown in this tab (its filters kept), or the plain inbox. */
export function lastInbox() {
  try {
    const hash = sessionStorage.getItem(INBOX_KEY);
    return hash && hash.startsWith('#/inbox') ? hash : '#/inbox';
  } catch {
    return '#/inbox';
  }
}
