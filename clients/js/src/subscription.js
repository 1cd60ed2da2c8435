// src/subscription.js: one live subscription. Owns the EventSource on /sse?ticket=... and its
// lifecycle: the resume point (the id of the last event applied), fresh tickets when the
// EventSource gives up, the swap to a renewed token on token_expiring, clearing the state on
// reset, stopping on revoked, and the status (connecting / live / reconnecting / stopped).
//
// Nothing is lost or applied twice across any of it: every new EventSource resumes with
// ?lastEventId=<last applied>, a native one reconnecting by itself sends Last-Event-ID, and an
// event at or below the last applied id is dropped.
import { BrokerError } from './errors.js';
import { CONTROL_FRAMES, checkEventNames, streamUrl, parseFrame } from './frames.js';
import { createStore } from './store.js';

const CLOSED = 2; // EventSource.CLOSED: the EventSource gave up and will not reconnect by itself
const RETRY_MIN_MS = 250;
const RETRY_MAX_MS = 15000;

/** Call an app callback; its exception must not break the subscription's own bookkeeping. */
function notify(fn, ...args) {
  if (!fn) return;
  try {
    fn(...args);
  } catch (e) {
    queueMicrotask(() => { throw e; });
  }
}

/**
 * @param {{
 *   base: string,
 *   EventSource: any,
 *   ticket: () => Promise<{ticket: string}>,
 *   renew: (exp: number|null, refresh?: Function) => Promise<boolean>,
 *   tokenExp: () => number,
 *   attach: (sub: object) => void,
 *   release: (sub: object) => void,
 * }} ctx  what the broker lends a subscription
 * @param {import('../index.js').SubscribeOptions} opts
 */
export function createSubscription(ctx, opts = {}) {
  const events = checkEventNames(opts.events);
  const ES = opts.EventSource ?? ctx.EventSource;
  if (typeof ES !== 'function') {
    throw new TypeError('no EventSource: pass createBroker({EventSource}) (in Node.js, the eventsource package\'s)');
  }
  const store = opts.store ?? createStore();
  const { onEvent, onState, onStatus, refresh } = opts;

  let es = null; // the current EventSource
  let lastId = null; // id of the last event applied: the resume point
  let stopped = false;
  let generation = 0; // bumped by every (re)connect and by stop, so stale async steps give up
  let retryTimer = null;
  let retryMs = 0;
  let authRetried = false; // one renewal per refused ticket, then stop (never a loop)
  let expiringAt = null; // exp of a token_expiring warning not acted on yet
  let movedFor = 0; // the latest exp a move to a new stream was made for
  let current = Object.freeze({ status: 'connecting', lastError: null });

  const unState = onState ? store.subscribe(() => onState(store.all(), store.version)) : null;

  function setStatus(status, lastError = current.lastError) {
    if (current.status === status && current.lastError === lastError) return;
    current = Object.freeze({ status, lastError });
    notify(onStatus, current);
  }

  function closeSource() {
    const s = es;
    es = null;
    if (s) s.close();
  }

  function reconnect() {
    connect().catch((e) => stop(e instanceof BrokerError ? e : new BrokerError(String(e?.message ?? e), { code: 'stream', cause: e })));
  }

  function retry(gen, err) {
    if (gen !== generation || stopped) return;
    setStatus('reconnecting', err);
    const delay = Math.max(retryMs, (err?.retryAfter ?? 0) * 1000);
    retryMs = Math.min(RETRY_MAX_MS, Math.max(RETRY_MIN_MS, retryMs * 2));
    // Jitter, so that a restarted server is not hit by every client in the same millisecond.
    retryTimer = setTimeout(() => {
      retryTimer = null;
      if (gen === generation && !stopped) reconnect();
    }, delay * (0.8 + Math.random() * 0.4));
  }

  /** Take a fresh ticket and open a new EventSource that resumes after lastId. */
  async function connect() {
    const gen = ++generation;
    clearTimeout(retryTimer);
    retryTimer = null;
    closeSource();
    let ticket;
    try {
      ticket = (await ctx.ticket()).ticket;
    } catch (e) {
      if (gen !== generation || stopped) return;
      if (e?.status === 401 || e?.status === 403) {
        // The login token is refused (expired, revoked, logged out): one renewal if the app can, else stop.
        if (!authRetried) {
          authRetried = true;
          let ok = false;
          let why = e;
          try { ok = await ctx.renew(null, refresh); } catch (err) { why = err; }
          if (gen !== generation || stopped) return;
          if (ok) { reconnect(); return; }
          stop(why);
          return;
        }
        stop(e);
        return;
      }
      retry(gen, e); // no answer or a 5xx: the server is away for now
      return;
    }
    if (gen !== generation || stopped) return;
    const source = new ES(streamUrl(ctx.base, { ticket, events, lastEventId: lastId }));
    es = source;
    source.addEventListener('open', () => {
      if (es !== source || stopped) return;
      retryMs = 0;
      authRetried = false;
      setStatus('live', null);
    });
    source.addEventListener('error', (ev) => {
      if (es !== source || stopped) return;
      if (source.readyState === CLOSED) {
        // Refused with an HTTP status (an expired ticket, a 503 while the server shuts down): take a
        // fresh ticket and open a new EventSource from the last event applied.
        es = null;
        source.close();
        const code = typeof ev?.code === 'number' ? ev.code : 0; // the eventsource package tells the status; browsers do not
        retry(gen, new BrokerError(`the stream was refused${code ? ` (${code})` : ''}`, { code: 'stream', status: code }));
      } else {
        // The connection dropped: the EventSource reconnects by itself, sending Last-Event-ID.
        setStatus('reconnecting', new BrokerError('the stream was interrupted; reconnecting', { code: 'stream' }));
      }
    });
    for (const name of [...events, ...CONTROL_FRAMES]) {
      source.addEventListener(name, (message) => {
        if (es === source && !stopped) onFrame(name, message);
      });
    }
  }

  function onFrame(name, message) {
    const f = parseFrame(name, message);
    switch (f.kind) {
      case 'event': {
        if (lastId !== null && f.id <= lastId) return; // a replay of something applied already
        lastId = f.id;
        const event = Object.freeze({ name: f.name, id: f.id, data: f.data });
        store.apply(event);
        notify(onEvent, event);
        return;
      }
      case 'reset':
        // The server's log is not the one our state came from (replaced, or our id is unknown to it):
        // forget everything; the snapshot that follows rebuilds it, and its ids may be lower than ours.
        lastId = null;
        store.clear();
        return;
      case 'token_expiring':
        // A warning for an exp we already moved away from means the new credential ends in the same
        // second (a ticket_ttl of a second or two): moving again would only spin. This stream then
        // ends, and the refused reconnection takes a fresh ticket.
        if (f.exp <= movedFor) return;
        expiringAt = f.exp;
        renewThenSwap(f.exp);
        return;
      case 'revoked':
        stop(new BrokerError(`revoked: ${f.reason}`, { code: 'revoked', reason: f.reason }));
        return;
      default:
        setStatus(current.status, new BrokerError(f.why, { code: 'stream' }));
    }
  }

  /** token_expiring: renew the login token (the app's hook), then move to a stream opened with it. */
  async function renewThenSwap(exp) {
    let ok = false;
    let err = null;
    try { ok = await ctx.renew(exp, refresh); } catch (e) { err = e; }
    if (stopped || expiringAt !== exp) return; // stopped, or already moved over by tokenChanged()
    if (ok) {
      expiringAt = null;
      movedFor = exp;
      reconnect();
      return;
    }
    // No way to renew here: say so; the app may still log in (tokenChanged() then moves us over).
    setStatus(current.status, err ?? new BrokerError('the token expires soon: log in again to keep the stream',
      { code: 'token_expiring', exp }));
  }

  /** The broker's token changed (login, setToken): after a warning, move to a stream opened with it. */
  function tokenChanged() {
    if (stopped || expiringAt === null || !(ctx.tokenExp() > expiringAt)) return;
    movedFor = expiringAt;
    expiringAt = null;
    reconnect();
  }

  function stop(err = null) {
    if (stopped) return;
    stopped = true;
    generation += 1;
    clearTimeout(retryTimer);
    retryTimer = null;
    closeSource();
    if (unState) unState();
    ctx.release(sub);
    setStatus('stopped', err);
  }

  const sub = {
    stop: () => stop(null),
    get state() { return store.all(); },
    get status() { return current.status; },
    get lastError() { return current.lastError; },
    get lastEventId() { return lastId; },
    store,
    _tokenChanged: tokenChanged,
  };
  ctx.attach(sub);
  notify(onStatus, current);
  reconnect();
  return sub;
}
