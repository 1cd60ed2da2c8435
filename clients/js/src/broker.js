// src/broker.js: createBroker(): the HTTP calls (register, login, insert, ticket, me), the login
// token (in memory only: never storage, a cookie or a URL), its renewal through the app's hook,
// and the subscriptions that depend on it.
import { BrokerError } from './errors.js';
import { createHttp } from './http.js';
import { claimsOf, userOf } from './token.js';
import { createSubscription } from './subscription.js';

/**
 * @param {import('../index.js').BrokerOptions} options
 * @returns {import('../index.js').Broker}
 */
export function createBroker(options = {}) {
  const { url = '', onTokenExpiring } = options;
  if (typeof url !== 'string') throw new TypeError('createBroker({url}): url must be a string');
  const base = url.replace(/\/+$/, '');
  // Called through a wrapper: a browser's fetch refuses to run with another object as `this`.
  const fetchFn = options.fetch ?? (typeof globalThis.fetch === 'function' ? (...a) => globalThis.fetch(...a) : null);
  if (!fetchFn) throw new TypeError('createBroker: no fetch (pass {fetch})');
  const call = createHttp(base, fetchFn);

  let token = null;
  const subs = new Set();
  let renewing = null; // one renewal at a time, shared by every subscription that asks

  function setToken(jwt) {
    if (jwt !== null && (typeof jwt !== 'string' || jwt === '')) throw new TypeError('setToken(jwt): a token string or null');
    token = jwt;
    for (const s of [...subs]) s._tokenChanged();
  }

  // Unix seconds the current token is good until; a token without a readable exp counts as lasting.
  function tokenExp() {
    if (!token) return 0;
    const c = claimsOf(token);
    return typeof c?.exp === 'number' ? c.exp : Infinity;
  }

  /**
   * Make sure a login token valid after `exp` is in hand (exp null: the current one was refused).
   * Returns whether it is; calls the app's hook at most once at a time.
   */
  async function renew(exp, refresh) {
    if (exp !== null && tokenExp() > exp) return true; // renewed already (another stream, or the app)
    const hook = refresh ?? onTokenExpiring;
    if (typeof hook !== 'function') return false;
    const before = token;
    if (!renewing) {
      renewing = (async () => {
        try {
          const r = await hook({ exp, broker: api });
          if (typeof r === 'string' && r !== '') setToken(r);
        } finally {
          renewing = null;
        }
      })();
    }
    await renewing;
    return exp === null ? token !== null && token !== before : tokenExp() > exp;
  }

  const ctx = {
    base,
    EventSource: options.EventSource ?? globalThis.EventSource,
    ticket: () => call('POST', '/sse/ticket', { token }),
    renew,
    tokenExp,
    attach: (s) => subs.add(s),
    release: (s) => subs.delete(s),
  };

  const api = {
    get url() { return base; },
    get token() { return token; },
    get user() { return userOf(token); },
    setToken,

    register(username, password) {
      return call('POST', '/users', { body: { username, password } });
    },

    async login(username, password, { totp } = {}) {
      const body = { username, password };
      if (totp !== undefined && totp !== null) body.totp = String(totp);
      const r = await call('POST', '/login', { body });
      if (typeof r?.jwt !== 'string') throw new BrokerError('login: the answer holds no token', { status: 200, code: 'http' });
      setToken(r.jwt);
      return r;
    },

    /** Forget the token and stop every subscription (nothing is sent: tokens are stateless). */
    logout() {
      for (const s of [...subs]) s.stop();
      token = null;
    },

    insert(event, data, { idempotencyKey } = {}) {
      if (data === undefined) return Promise.reject(new TypeError('insert(event, data): data is required (any JSON value)'));
      const headers = idempotencyKey === undefined ? {} : { 'Idempotency-Key': String(idempotencyKey) };
      return call('POST', '/insert', { body: { event, data }, token, headers });
    },

    ticket: ctx.ticket,
    me: () => call('GET', '/users/me', { token }),
    subscribe: (opts) => createSubscription(ctx, opts),
  };
  return api;
}
