// test/unit.js: the client's unit suite (pure logic: the state store, frame handling, token claims,
// and the subscription's state machine driven by a hand-held EventSource). Runs in Node.js
// (test/run-node.js, and tests/e2e/client.test.js) and in a browser page (tests/e2e/client_browser.test.js),
// so it imports nothing but the package and its own small helpers.
import { createStore, createBroker, parseFrame, checkEventNames, streamUrl, claimsOf, userOf, BrokerError } from '../index.js';
import { ok, equal, deepEqual, throws } from './assert.js';
import { FakeEventSource, fakeFetch, fakeJwt, settle } from './fakes.js';

export const tests = [];
const test = (name, fn) => tests.push({ name, fn });

// ---- the store ----

test('store: apply, get, entry, all, version', () => {
  const s = createStore();
  const empty = s.all();
  deepEqual(empty, {}, 'empty');
  equal(s.version, 0, 'version 0');
  ok(s.apply({ name: 'a', id: 1, data: { n: 1 } }), 'first apply changes');
  deepEqual(s.get('a'), { n: 1 }, 'get');
  deepEqual(s.entry('a'), { id: 1, data: { n: 1 } }, 'entry');
  equal(s.version, 1, 'version 1');
  const one = s.all();
  deepEqual(one, { a: { n: 1 } }, 'all');
  ok(one !== empty, 'a new snapshot object on change');
  equal(s.all(), one, 'the same object while nothing changes');
  ok(Object.isFrozen(one), 'the snapshot is frozen');
  throws(() => { 'use strict'; one.a = 2; }, null, 'writing to the snapshot');
});

test('store: an id at or below the held one is ignored', () => {
  const s = createStore();
  s.apply({ name: 'a', id: 5, data: 'five' });
  const snap = s.all();
  equal(s.apply({ name: 'a', id: 5, data: 'again' }), false, 'same id');
  equal(s.apply({ name: 'a', id: 3, data: 'older' }), false, 'older id');
  equal(s.get('a'), 'five', 'kept');
  equal(s.version, 1, 'no version change');
  equal(s.all(), snap, 'same snapshot object');
  ok(s.apply({ name: 'a', id: 6, data: 'six' }), 'newer id applies');
  ok(s.apply({ name: 'b', id: 2, data: 'b' }), 'another name with a lower id applies');
  deepEqual(s.all(), { a: 'six', b: 'b' }, 'both');
});

test('store: listeners, unsubscribe, clear, a throwing listener does not stop the others', () => {
  const errors = [];
  const s = createStore({ onError: (e) => errors.push(e) });
  const seen = [];
  const un = s.subscribe((c) => seen.push(c.type === 'event' ? `${c.name}:${c.id}` : c.type));
  s.subscribe(() => { throw new Error('listener bug (expected by the test)'); });
  const late = [];
  s.subscribe((c) => late.push(c.type));
  s.apply({ name: 'x', id: 1, data: null });
  s.clear();
  equal(s.clear(), false, 'clearing an empty store changes nothing');
  un();
  s.apply({ name: 'x', id: 2, data: null });
  deepEqual(seen, ['x:1', 'clear'], 'what the first listener saw');
  deepEqual(late, ['event', 'clear', 'event'], 'the listener after the broken one still heard everything');
  equal(errors.length, 3, 'the broken listener\'s errors went to onError');
  ok(errors.every((e) => /listener bug/.test(e.message)), 'the errors themselves');
  equal(s.version, 3, 'version counts changes');
  deepEqual(s.all(), { x: null }, 'after clear and apply');
  throws(() => s.subscribe('nope'), /function/, 'a listener must be a function');
});

// ---- frames ----

test('parseFrame: events, reset, token_expiring, revoked, and what is not usable', () => {
  deepEqual(parseFrame('chat', { data: '{"t":"hé"}', lastEventId: '42' }), { kind: 'event', name: 'chat', id: 42, data: { t: 'hé' } }, 'event');
  deepEqual(parseFrame('n', { data: 'null', lastEventId: '1' }), { kind: 'event', name: 'n', id: 1, data: null }, 'null data');
  deepEqual(parseFrame('reset', { data: '{"reason":"ahead"}' }), { kind: 'reset', reason: 'ahead' }, 'reset');
  deepEqual(parseFrame('token_expiring', { data: '{"exp":1700000000}', lastEventId: '9' }), { kind: 'token_expiring', exp: 1700000000 }, 'token_expiring (a browser repeats the previous id)');
  deepEqual(parseFrame('revoked', { data: '{"reason":"user revoked"}' }), { kind: 'revoked', reason: 'user revoked' }, 'revoked');
  equal(parseFrame('chat', { data: '{', lastEventId: '1' }).kind, 'invalid', 'data not JSON');
  equal(parseFrame('chat', { data: '1', lastEventId: '' }).kind, 'invalid', 'no id');
  equal(parseFrame('chat', { data: '1', lastEventId: '1e3' }).kind, 'invalid', 'not decimal');
});

test('checkEventNames: required, valid, not reserved; streamUrl encodes', () => {
  deepEqual(checkEventNames(['a', 'b', 'a', 'é x']), ['a', 'b', 'é x'], 'de-duplicated');
  throws(() => checkEventNames(undefined), /non-empty array/, 'missing');
  throws(() => checkEventNames([]), /non-empty array/, 'empty');
  throws(() => checkEventNames(['']), /non-empty string/, 'empty name');
  throws(() => checkEventNames(['a,b']), /commas/, 'comma');
  throws(() => checkEventNames([' a']), /leading space/, 'leading space');
  throws(() => checkEventNames(['a\nb']), /control/, 'control character');
  throws(() => checkEventNames(['x'.repeat(256)]), /255 bytes/, 'too long');
  for (const r of ['reset', 'token_expiring', 'revoked', 'open', 'error']) throws(() => checkEventNames([r]), /reserved/, r);
  throws(() => checkEventNames(Array.from({ length: 65 }, (_, i) => `e${i}`)), /64/, '65 names');
  equal(streamUrl('http://h:1', { ticket: 'a.b+c', events: ['x y', 'é'] }), 'http://h:1/sse?ticket=a.b%2Bc&events=x%20y,%C3%A9', 'no resume point');
  equal(streamUrl('', { ticket: 't', events: ['a'], lastEventId: 7 }), '/sse?ticket=t&events=a&lastEventId=7', 'resume point');
});

test('claimsOf / userOf: the token\'s claims, UTF-8 names, and what is not a token', () => {
  const jwt = fakeJwt({ sub: 'abc', username: 'zoë 🎉', exp: 99, roles: ['staff'] });
  deepEqual(claimsOf(jwt), { sub: 'abc', username: 'zoë 🎉', exp: 99, roles: ['staff'] }, 'claims');
  deepEqual(userOf(jwt), { id: 'abc', username: 'zoë 🎉', roles: ['staff'], exp: 99 }, 'user');
  equal(claimsOf('nope'), null, 'not a JWT');
  equal(claimsOf('a.%%%.c'), null, 'bad base64');
  equal(userOf(null), null, 'null');
});

// ---- the subscription, driven by a hand-held EventSource ----

function setup(state = {}, opts = {}) {
  FakeEventSource.reset();
  const fetch = fakeFetch(state);
  const broker = createBroker({ url: 'http://b', fetch, EventSource: FakeEventSource, ...opts });
  return { broker, state };
}

test('subscribe: a ticket, the URL, snapshot then live into the store, onEvent once per event', async () => {
  const { broker, state } = setup();
  await broker.login('ann', 'pw');
  const events = [];
  const statuses = [];
  const states = [];
  const sub = broker.subscribe({ events: ['a', 'b'], onEvent: (e) => events.push(e), onStatus: (s) => statuses.push(s.status), onState: (st, v) => states.push([st, v]) });
  equal(sub.status, 'connecting', 'connecting at once');
  await settle();
  const es = FakeEventSource.last();
  equal(es.url, 'http://b/sse?ticket=t1&events=a,b', 'URL: the ticket and the filter, no resume point yet');
  equal(state.calls.find((c) => c.path === '/sse/ticket').headers.Authorization, `Bearer ${broker.token}`, 'the ticket is taken with the login token');
  es.open();
  es.frame('a', { n: 1 }, 3);
  es.frame('b', 'x', 5);
  es.frame('a', { n: 2 }, 6);
  es.frame('a', { n: 2 }, 6); // a replay must not count twice
  deepEqual(sub.state, { a: { n: 2 }, b: 'x' }, 'state');
  deepEqual(events.map((e) => [e.name, e.id]), [['a', 3], ['b', 5], ['a', 6]], 'onEvent');
  equal(states.length, 3, 'onState per change');
  equal(states.at(-1)[0], sub.state, 'onState gets the immutable state');
  deepEqual(statuses, ['connecting', 'live'], 'statuses');
  equal(sub.lastEventId, 6, 'resume point');
  sub.stop();
  equal(sub.status, 'stopped', 'stopped');
  ok(es.closed, 'the EventSource is closed');
  es.frame('a', { n: 9 }, 7);
  equal(events.length, 3, 'nothing after stop');
});

test('subscribe: a dropped connection is left to the EventSource; a refused one gets a fresh ticket and resumes with ?lastEventId', async () => {
  const { broker, state } = setup();
  await broker.login('ann', 'pw');
  const statuses = [];
  const sub = broker.subscribe({ events: ['a'], onStatus: (s) => statuses.push(s.status) });
  await settle();
  const es1 = FakeEventSource.last();
  es1.open();
  es1.frame('a', 1, 10);
  es1.fail(false);
  equal(sub.status, 'reconnecting', 'reconnecting');
  await settle();
  equal(FakeEventSource.instances.length, 1, 'no new EventSource: it reconnects by itself with Last-Event-ID');
  es1.open();
  equal(sub.status, 'live', 'live again');
  es1.frame('a', 2, 11);
  es1.fail(true); // e.g. 401 for an expired ticket
  equal(sub.status, 'reconnecting', 'reconnecting after a refusal');
  await settle();
  equal(state.tickets, 2, 'a fresh ticket');
  const es2 = FakeEventSource.last();
  ok(es2 !== es1, 'a new EventSource');
  equal(es2.url, 'http://b/sse?ticket=t2&events=a&lastEventId=11', 'resumes after the last event applied');
  es2.open();
  es2.frame('a', 3, 12);
  equal(sub.store.get('a'), 3, 'live on the new stream');
  deepEqual(statuses, ['connecting', 'live', 'reconnecting', 'live', 'reconnecting', 'live'], 'statuses');
  sub.stop();
});

test('subscribe: reset clears the state and accepts the lower ids of the snapshot that follows', async () => {
  const { broker } = setup();
  await broker.login('ann', 'pw');
  const sub = broker.subscribe({ events: ['a', 'b', 'c'] });
  await settle();
  const es = FakeEventSource.last();
  es.open();
  es.frame('a', 'old', 7);
  es.frame('c', 'gone', 8);
  es.frame('reset', { reason: 'Last-Event-ID is ahead of the store' });
  deepEqual(sub.state, {}, 'cleared');
  equal(sub.lastEventId, null, 'no resume point');
  es.frame('a', 'new', 1);
  es.frame('b', 'b', 2);
  deepEqual(sub.state, { a: 'new', b: 'b' }, 'rebuilt from the snapshot');
  equal(sub.lastEventId, 2, 'resume point from the new log');
  equal(sub.status, 'live', 'still live');
  sub.stop();
});

test('subscribe: revoked stops with the reason; logout stops too', async () => {
  const { broker } = setup();
  await broker.login('ann', 'pw');
  const sub = broker.subscribe({ events: ['a'] });
  await settle();
  FakeEventSource.last().open();
  FakeEventSource.last().frame('revoked', { reason: 'user revoked' });
  equal(sub.status, 'stopped', 'stopped');
  ok(sub.lastError instanceof BrokerError, 'a BrokerError');
  equal(sub.lastError.code, 'revoked', 'code');
  equal(sub.lastError.reason, 'user revoked', 'reason');
  ok(FakeEventSource.last().closed, 'closed');
  const sub2 = broker.subscribe({ events: ['a'] });
  await settle();
  broker.logout();
  equal(sub2.status, 'stopped', 'logout stops subscriptions');
  equal(broker.token, null, 'token forgotten');
});

test('subscribe: token_expiring calls the hook once, swaps to a stream with the new token, resuming', async () => {
  let hooks = 0;
  const { broker, state } = setup({}, { onTokenExpiring: async ({ broker: b }) => { hooks += 1; await b.login('ann', 'pw'); } });
  await broker.login('ann', 'pw');
  const exp1 = broker.user.exp;
  const s1 = broker.subscribe({ events: ['a'] });
  const s2 = broker.subscribe({ events: ['b'] });
  await settle();
  const [e1, e2] = FakeEventSource.instances;
  e1.open(); e2.open();
  e1.frame('a', 1, 4);
  e2.frame('b', 1, 5);
  e1.frame('token_expiring', { exp: exp1 });
  e2.frame('token_expiring', { exp: exp1 });
  await settle();
  equal(hooks, 1, 'one renewal for both streams');
  ok(broker.user.exp > exp1, 'a new token');
  ok(e1.closed && e2.closed, 'the old streams are closed');
  const urls = FakeEventSource.instances.slice(2).map((e) => e.url).sort();
  deepEqual(urls, ['http://b/sse?ticket=t3&events=a&lastEventId=4', 'http://b/sse?ticket=t4&events=b&lastEventId=5'].sort(), 'new tickets, resumed');
  equal(state.calls.filter((c) => c.path === '/sse/ticket').at(-1).headers.Authorization, `Bearer ${broker.token}`, 'taken with the new token');
  equal(s1.status, 'live', 'the swap is not a reconnection');
  s1.stop(); s2.stop();
});

test('subscribe: token_expiring for a ticket (the token lasts) swaps without the hook; no hook at all warns, then stops when refused', async () => {
  let hooks = 0;
  const { broker, state } = setup({}, { onTokenExpiring: () => { hooks += 1; } });
  await broker.login('ann', 'pw');
  const sub = broker.subscribe({ events: ['a'] });
  await settle();
  FakeEventSource.last().open();
  FakeEventSource.last().frame('token_expiring', { exp: broker.user.exp - 50 });
  await settle();
  equal(hooks, 0, 'no hook: the token outlives the ticket');
  equal(FakeEventSource.instances.length, 2, 'a new stream');
  sub.stop();

  const plain = setup();
  await plain.broker.login('ann', 'pw');
  const sub2 = plain.broker.subscribe({ events: ['a'] });
  await settle();
  const es = FakeEventSource.last();
  es.open();
  es.frame('token_expiring', { exp: plain.broker.user.exp });
  await settle();
  equal(sub2.status, 'live', 'still live');
  equal(sub2.lastError?.code, 'token_expiring', 'the warning is reported');
  plain.state.ticketStatus = 401;
  es.fail(true);
  await settle();
  equal(sub2.status, 'stopped', 'stopped once the ticket is refused');
  equal(sub2.lastError?.status, 401, 'with the refusal');
  equal(plain.state.logins, 1, 'no login happened by itself');
});

test('subscribe: a second warning for the same exp does not move the stream again (no spinning)', async () => {
  const { broker, state } = setup();
  await broker.login('ann', 'pw');
  const sub = broker.subscribe({ events: ['a'] });
  await settle();
  FakeEventSource.last().open();
  const exp = broker.user.exp - 50; // a ticket ending long before the token
  FakeEventSource.last().frame('token_expiring', { exp });
  await settle();
  equal(FakeEventSource.instances.length, 2, 'moved once');
  FakeEventSource.last().open();
  FakeEventSource.last().frame('token_expiring', { exp });
  await settle();
  equal(FakeEventSource.instances.length, 2, 'not again for the same exp');
  equal(state.tickets, 2, 'no extra ticket');
  FakeEventSource.last().frame('token_expiring', { exp: exp + 1 });
  await settle();
  equal(FakeEventSource.instances.length, 3, 'a later exp moves it again');
  sub.stop();
});

test('subscribe: after a warning, a login by the app moves the stream over', async () => {
  const { broker } = setup();
  await broker.login('ann', 'pw');
  const sub = broker.subscribe({ events: ['a'] });
  await settle();
  const es = FakeEventSource.last();
  es.open();
  es.frame('a', 1, 2);
  es.frame('token_expiring', { exp: broker.user.exp });
  await settle();
  equal(FakeEventSource.instances.length, 1, 'nothing to renew with yet');
  await broker.login('ann', 'pw');
  await settle();
  equal(FakeEventSource.instances.length, 2, 'moved over');
  ok(FakeEventSource.last().url.endsWith('lastEventId=2'), 'resumed');
  sub.stop();
});

test('createBroker: insert sends the event, the data and the idempotency key; errors are BrokerErrors', async () => {
  const { broker, state } = setup();
  await broker.login('ann', 'pw');
  deepEqual(await broker.insert('e', [1], { idempotencyKey: 'k-1' }), { id: 1, event: 'e' }, 'answer');
  const c = state.calls.at(-1);
  deepEqual(JSON.parse(c.body), { event: 'e', data: [1] }, 'body');
  equal(c.headers['Idempotency-Key'], 'k-1', 'idempotency key');
  equal(c.headers['Content-Type'], 'application/json', 'content type');
  let err;
  try { await broker.me(); } catch (e) { err = e; }
  ok(err instanceof BrokerError, 'a BrokerError');
  equal(err.status, 404, 'status');
  equal(err.message, 'not found', 'the server\'s message');
  const down = createBroker({ url: 'http://b', fetch: async () => { throw new TypeError('connection refused'); } });
  try { await down.register('a', 'b'); err = null; } catch (e) { err = e; }
  equal(err?.code, 'network', 'no answer is a network error');
  let typeErr;
  try { await broker.insert('e'); } catch (e) { typeErr = e; }
  ok(typeErr instanceof TypeError, 'data is required');
});

/** Runs every test (or those whose name includes `only`); resolves with [{name, ok, error}]. */
export async function run({ only } = {}) {
  const results = [];
  for (const t of tests) {
    if (only && !t.name.includes(only)) continue;
    try {
      await t.fn();
      results.push({ name: t.name, ok: true });
    } catch (e) {
      results.push({ name: t.name, ok: false, error: String(e?.stack ?? e) });
    }
  }
  return results;
}
