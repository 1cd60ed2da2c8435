// test/fakes.js: stand-ins for the unit suite only (the e2e suites run the real server and real
// EventSources): an EventSource the test drives by hand, and a fetch that answers like broker's
// /login, /sse/ticket and /insert, counting what it was asked.

/** A JWT-shaped token with these claims (unsigned: the client never verifies). */
export function fakeJwt(claims) {
  const b64 = (o) => btoa(String.fromCharCode(...new TextEncoder().encode(JSON.stringify(o))))
    .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}.sig`;
}

export class FakeEventSource {
  static instances = [];

  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.listeners = new Map();
    this.closed = false;
    FakeEventSource.instances.push(this);
  }

  static reset() { FakeEventSource.instances = []; }
  static last() { return FakeEventSource.instances.at(-1); }

  addEventListener(type, fn) {
    if (!this.listeners.has(type)) this.listeners.set(type, []);
    this.listeners.get(type).push(fn);
  }

  close() { this.readyState = 2; this.closed = true; }

  emit(type, ev = {}) {
    for (const fn of this.listeners.get(type) ?? []) fn({ type, ...ev });
  }

  open() { this.readyState = 1; this.emit('open'); }

  /** A frame: an event (with an id) or a control frame (no id). */
  frame(type, data, id) { this.emit(type, { data: JSON.stringify(data), lastEventId: id === undefined ? '' : String(id) }); }

  /** A dropped connection (reconnecting by itself) or, with closed, a refusal (given up). */
  fail(closed = false) { this.readyState = closed ? 2 : 0; this.emit('error'); }
}

/** fetch for /login, /sse/ticket, /insert; `state.ticketStatus` can make tickets fail. */
export function fakeFetch(state = {}) {
  state.calls = [];
  state.tickets = 0;
  state.logins = 0;
  state.ticketStatus ??= 200;
  const json = (status, body) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
  const fn = async (url, init = {}) => {
    const path = new URL(url, 'http://x').pathname;
    state.calls.push({ path, method: init.method, headers: init.headers, body: init.body });
    if (path === '/login') {
      state.logins += 1;
      return json(200, { jwt: fakeJwt({ sub: 'u1', username: 'ann', exp: (state.exp ?? 1000) + state.logins * 100 }) });
    }
    if (path === '/sse/ticket') {
      if (state.ticketStatus !== 200) return json(state.ticketStatus, { error: 'token expired' });
      state.tickets += 1;
      return json(200, { ticket: `t${state.tickets}`, expires_in: 60 });
    }
    if (path === '/insert') return json(200, { id: 1, event: JSON.parse(init.body).event });
    return json(404, { error: 'not found' });
  };
  return fn;
}

/** Let pending promise continuations (ticket fetches) run. */
export const settle = async (n = 10) => { for (let i = 0; i < n; i++) await new Promise((r) => setTimeout(r, 0)); };
