// src/http.js: one JSON request to the broker: the bearer header, the body, and turning every
// failure (no answer, an error status, a body that is not JSON) into a BrokerError.
import { BrokerError } from './errors.js';

/**
 * @param {string} base   the broker's URL without a trailing slash ('' = the page's origin)
 * @param {typeof fetch} fetchFn
 * @returns {(method: string, path: string, opts?: {body?: unknown, token?: string|null, headers?: Record<string,string>}) => Promise<any>}
 */
export function createHttp(base, fetchFn) {
  return async function call(method, path, { body, token, headers = {} } = {}) {
    const h = { ...headers };
    if (body !== undefined) h['Content-Type'] = 'application/json';
    if (token) h.Authorization = `Bearer ${token}`;
    let res;
    let text;
    try {
      res = await fetchFn(base + path, {
        method,
        headers: h,
        body: body === undefined ? undefined : JSON.stringify(body),
        // Answers are per user and per moment: never let an HTTP cache replay one.
        cache: 'no-store',
      });
      text = await res.text();
    } catch (e) {
      throw new BrokerError(`${method} ${path}: ${e?.message ?? e}`, { code: 'network', cause: e });
    }
    let json;
    try { json = text ? JSON.parse(text) : undefined; } catch { json = undefined; }
    if (!res.ok) {
      const ra = Number(res.headers.get('retry-after'));
      throw new BrokerError(typeof json?.error === 'string' ? json.error : `${method} ${path} answered ${res.status}`, {
        status: res.status,
        retryAfter: Number.isFinite(ra) && ra >= 0 && res.headers.has('retry-after') ? ra : undefined,
      });
    }
    if (json === undefined) {
      throw new BrokerError(`${method} ${path}: the answer is not JSON`, { status: res.status, code: 'http' });
    }
    return json;
  };
}
