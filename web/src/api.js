// The JSON API, same origin. Errors are RFC 9457 problem+json: shown to the user as they are.

export class ApiError extends Error {
  constructor(problem, status) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.problem = problem;
    this.status = status;
  }
}

/** GET `path` with `params` (URLSearchParams or object); rejects with ApiError on a problem.
 * `headers` are added to the request (e.g. Authorization), `cache` is fetch's cache mode. */
export async function get(path, params, { signal, headers, cache } = {}) {
  const query = params instanceof URLSearchParams ? params : new URLSearchParams(params ?? {});
  const qs = query.toString();
  const res = await fetch(qs ? `${path}?${qs}` : path, { signal, cache, headers: { Accept: 'application/json', ...headers } });
  if (!res.ok) {
    let problem;
    try {
      problem = await res.json();
    } catch {
      problem = { title: res.statusText, detail: '' };
    }
    throw new ApiError(problem, res.status);
  }
  return res.json();
}

/** True for the rejection of an aborted fetch (a newer request replaced it). */
export const aborted = (err) => err && err.name === 'AbortError';
