// The node's JSON API, same origin, session cookie. Every change carries the session's CSRF
// token in X-CSRF-Token (the node answers 403 without it). Errors are RFC 9457 problem+json
// and are shown to the officer as the node words them.

let csrf = null;

/** Remember the CSRF token of the session (from POST/GET /api/session); null on sign-out. */
export function setCsrf(token) {
  csrf = token;
}

export class ApiError extends Error {
  constructor(problem, status, retryAfter = null) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.problem = problem;
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const SAFE = new Set(['GET', 'HEAD']);

/** Query parameters without empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v !== null && v !== undefined && v !== '') q.set(k, String(v));
  return q.toString();
}

/** Seconds from a Retry-After header (delta-seconds or an HTTP date, RFC 9110 §10.2.3). */
export function retryAfterSeconds(value, now = Date.now()) {
  if (!value) return null;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - now) / 1000));
}

async function request(method, path, { params, body, signal } = {}) {
  const qs = query(params);
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (!SAFE.has(method) && csrf) headers['X-CSRF-Token'] = csrf;
  const res = await fetch(qs ? `${path}?${qs}` : path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
    cache: 'no-store',
    signal,
  });
  if (res.status === 204) return null;
  if (!res.ok) {
    let problem;
    try {
      problem = await res.json();
    } catch {
      problem = { title: res.statusText || `HTTP ${res.status}`, detail: '' };
    }
    const err = new ApiError(problem, res.status, retryAfterSeconds(res.headers.get('Retry-After')));
    // a session that ended (expired, revoked by an administrator): back to the sign-in form
    if (res.status === 401 && path !== '/api/session') document.dispatchEvent(new CustomEvent('gsomia:unauthenticated'));
    throw err;
  }
  return res.json();
}

export const get = (path, params, opts = {}) => request('GET', path, { ...opts, params });
export const post = (path, body = {}, opts = {}) => request('POST', path, { ...opts, body });
export const del = (path, opts = {}) => request('DELETE', path, opts);

/** True for the rejection of an aborted fetch (a newer request replaced it). */
export const aborted = (err) => err && err.name === 'AbortError';
