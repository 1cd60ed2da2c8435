// clients/js (@broker/client) against the real binary, in Node.js with the eventsource package's
// EventSource: register / login / insert / subscribe, snapshot then live into the state store,
// filters, a restart of the broker (same --db and port) without losing an insert, token expiry
// renewed through the app's hook without losing an event, ticket expiry, a reset after the
// database was replaced, revocation through the admin API, TOTP, and the client's own unit suite.
import { describe, it, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { EventSource } from 'eventsource';
import { createBroker, BrokerError } from '../../clients/js/index.js';
import { tests as unitTests } from '../../clients/js/test/unit.js';
import { withBroker, tmpDir } from './lib/broker.js';
import { request, post, newUser } from './lib/http.js';
import { until, assertSameIds } from './lib/streams.js';
import { totpCode } from './lib/totp.js';
import { ms, SLOW } from './lib/config.js';
import { sleep, uniq } from './lib/util.js';

const client = (b, opts = {}) => createBroker({ url: b.url, EventSource, ...opts });

/** A logged-in client for a fresh user (created with lib/http, so its password is kept off the log). */
async function loggedIn(b, prefix, opts = {}) {
  const u = await newUser(b, prefix);
  const c = client(b, opts);
  await c.login(u.username, u.password);
  return { u, c };
}

// Every subscription a test opens: stopped after each test, pass or fail, so that no EventSource
// keeps reconnecting to a broker that is gone (and keeps the test process alive).
const open = new Set();
afterEach(() => {
  for (const s of open) s.stop();
  open.clear();
});

/** subscribe() recording every event and status. */
function follow(c, events, opts = {}) {
  const rec = { events: [], statuses: [], changes: [] };
  rec.sub = c.subscribe({
    events,
    onEvent: (e) => rec.events.push(e),
    onStatus: (s) => rec.statuses.push(s),
    ...opts,
  });
  open.add(rec.sub);
  rec.sub.store.subscribe((ch) => rec.changes.push(ch.type));
  rec.ids = () => rec.events.map((e) => e.id);
  rec.hasId = (id) => rec.events.some((e) => e.id === id);
  rec.live = () => until(() => rec.sub.status === 'live', ms(10000), 'status live');
  rec.statusNames = () => rec.statuses.map((s) => s.status);
  return rec;
}

async function rejects(promise, status, what) {
  try {
    await promise;
  } catch (e) {
    assert.ok(e instanceof BrokerError, `${what}: a BrokerError, got ${e}`);
    assert.equal(e.status, status, `${what}: status (${e.message})`);
    return e;
  }
  assert.fail(`${what}: did not fail`);
}

describe('the unit suite of clients/js, in Node.js', () => {
  for (const t of unitTests) it(t.name, t.fn);
});

it('register, login, insert, subscribe: snapshot then live into the state store, filters, idempotency, errors', async () => {
  await withBroker({}, async (b) => {
    const c = client(b);
    const username = uniq('alice');
    const password = `pw-${uniq('p')}`;
    (b.opts.neverLog ??= []).push(password); // checked against the log when the broker stops
    const reg = await c.register(username, password);
    assert.equal(reg.username, username);
    await rejects(c.register(username, password), 409, 'a taken username');
    await rejects(c.login(username, 'wrong-password'), 401, 'a wrong password');
    assert.equal(c.token, null, 'no token after a failed login');
    await rejects(c.insert('a', 1), 401, 'insert before login');
    const r = await c.login(username, password);
    assert.equal(typeof r.jwt, 'string');
    assert.equal(c.token, r.jwt, 'the token getter');
    assert.equal(c.user.id, reg.id, 'the token names the user');
    assert.equal(c.user.username, username);
    assert.deepEqual(await c.me(), { id: reg.id, username, roles: [], totp: false }, 'GET /users/me');

    const a1 = await c.insert('a', { n: 1 });
    const b1 = (await c.insert('b', 'x')).id;
    const a2 = (await c.insert('a', { n: 2 })).id;
    const c1 = (await c.insert('c', ['other'])).id;
    assert.equal(a1.event, 'a');
    await rejects(c.insert('', 1), 400, 'an empty event name');
    assert.throws(() => c.subscribe({}), TypeError, 'events are required');
    assert.throws(() => c.subscribe({ events: ['reset'] }), /reserved/, 'reserved names');
    assert.throws(() => createBroker({ url: b.url }).subscribe({ events: ['a'] }), /EventSource/, 'Node 20 has no global EventSource');

    const rec = follow(c, ['a', 'b']);
    const states = [];
    rec.sub.store.subscribe(() => states.push(rec.sub.state));
    await until(() => rec.hasId(a2), ms(10000), 'the snapshot');
    await rec.live();
    assert.deepEqual(rec.ids(), [b1, a2], 'the snapshot: the latest of each followed name, in id order (c filtered out)');
    assert.deepEqual(rec.sub.state, { a: { n: 2 }, b: 'x' });
    const snapState = rec.sub.state;

    const other = await loggedIn(b, 'bob');
    const recC = follow(other.c, ['c']);
    await until(() => recC.hasId(c1), ms(10000), 'another user\'s filtered snapshot');

    const a3 = (await c.insert('a', { n: 3 })).id;
    const c2 = (await other.c.insert('c', 'two')).id;
    const k = uniq('key');
    const b2 = (await c.insert('b', 'y', { idempotencyKey: k })).id;
    assert.equal((await c.insert('b', 'y', { idempotencyKey: k })).id, b2, 'the same idempotency key answers the same id');
    const end = (await c.insert('a', { n: 4 })).id;
    await until(() => rec.hasId(end) && recC.hasId(c2), ms(10000), 'the live events');
    await sleep(100);
    assert.deepEqual(rec.ids(), [b1, a2, a3, b2, end], 'live, in order, once each, filtered');
    assert.deepEqual(rec.sub.state, { a: { n: 4 }, b: 'y' });
    assert.deepEqual(snapState, { a: { n: 2 }, b: 'x' }, 'an earlier snapshot object never changes');
    assert.ok(Object.isFrozen(rec.sub.state));
    assert.equal(new Set(states).size, states.length, 'a new state object for every change');
    assert.equal(rec.sub.store.version, 5, 'one version per event applied');
    assert.deepEqual(recC.sub.state, { c: 'two' });
    assert.deepEqual(rec.statusNames(), ['connecting', 'live']);
    assert.equal(rec.sub.lastEventId, end);

    rec.sub.stop();
    assert.equal(rec.sub.status, 'stopped');
    await c.insert('a', { n: 5 });
    await sleep(200);
    assert.equal(rec.events.length, 5, 'nothing after stop()');
    other.c.logout();
    assert.equal(recC.sub.status, 'stopped', 'logout stops the subscriptions');
    assert.equal(other.c.token, null);
  });
});

it('login with a TOTP code', async () => {
  await withBroker({}, async (b) => {
    const { u, c } = await loggedIn(b, 'totp');
    const auth = { token: c.token };
    const { secret } = (await post(b, '/users/me/totp', {}, auth)).json;
    assert.equal((await post(b, '/users/me/totp/confirm', { code: totpCode(secret, { steps: -1 }) }, auth)).status, 200);
    await rejects(client(b).login(u.username, u.password), 401, 'no code');
    const c2 = client(b);
    await c2.login(u.username, u.password, { totp: totpCode(secret) });
    assert.equal((await c2.me()).totp, true);
  });
});

it('a broker restart (same --db, same port) in the middle: the client resumes, no insert lost or repeated', async () => {
  await withBroker({}, async (b) => {
    const { c } = await loggedIn(b, 'restart');
    const want = [];
    const ins = async (n) => { want.push((await c.insert('ev', { n })).id); };
    await ins(0);
    const rec = follow(c, ['ev']);
    await rec.live();
    await ins(1);
    await ins(2);
    await until(() => rec.hasId(want.at(-1)), ms(10000), 'live events before the restart');

    await b.stop({ cleanup: false });
    await until(() => rec.sub.status === 'reconnecting', ms(10000), 'status reconnecting while the broker is down');
    const down = await rejects(c.insert('ev', { n: -1 }), 0, 'an insert while the broker is down');
    assert.equal(down.code, 'network');
    await b.start();
    // Inserted before the client is back (its EventSource waits the server's 2 s retry hint).
    await ins(3);
    await ins(4);
    await until(() => rec.hasId(want.at(-1)), ms(15000), 'the events inserted around the restart');
    await ins(5);
    await until(() => rec.hasId(want.at(-1)), ms(10000), 'live after the restart');
    await sleep(100);
    assertSameIds(rec.ids(), want, 'every event across the restart, once');
    assert.deepEqual(rec.sub.state, { ev: { n: 5 } });
    assert.equal(rec.sub.status, 'live');
    const names = rec.statusNames();
    assert.deepEqual(names.slice(0, 2), ['connecting', 'live']);
    assert.ok(names.includes('reconnecting') && names.at(-1) === 'live', `statuses: ${names}`);
    assert.ok(!names.includes('stopped'));
    rec.sub.stop();
  });
});

// Tokens live 3 s (more under a slowdown, where every Argon2id login is slower): the server warns
// token_expiring 1 s before exp. The writer logs in again whenever its own token is near its end.
const EXPIRY = 3 * SLOW;

it('token expiry: the onTokenExpiring hook logs in again and the stream moves over with nothing lost; without a hook it warns, then stops', async () => {
  await withBroker({ args: [`--jwt_expiry=${EXPIRY}`] }, async (b) => {
    let renewals = 0;
    const { u, c } = await loggedIn(b, 'renew', {
      onTokenExpiring: async ({ broker }) => { renewals += 1; await broker.login(u.username, u.password); },
    });
    const plain = await loggedIn(b, 'norenew');
    const writer = await loggedIn(b, 'writer');
    const want = [];
    const ins = async (n) => {
      if (writer.c.user.exp - Date.now() / 1000 < 1.5) await writer.c.login(writer.u.username, writer.u.password);
      want.push((await writer.c.insert('ev', { n })).id);
    };
    await ins(0);
    const rec = follow(c, ['ev']);
    const recPlain = follow(plain.c, ['ev']);
    await rec.live();
    await recPlain.live();
    const firstToken = c.token;
    const deadline = Date.now() + ms(20000);
    for (let n = 1; renewals < 2 || recPlain.sub.status !== 'stopped'; n++) {
      assert.ok(Date.now() < deadline, `renewals ${renewals}, the hookless client ${recPlain.sub.status}`);
      await ins(n);
      await sleep(150);
    }
    await ins(-1);
    await until(() => rec.hasId(want.at(-1)), ms(10000), 'every event on the renewing client');
    await sleep(100);
    assertSameIds(rec.ids(), want, 'the renewing client: every event across two renewals, once');
    assert.notEqual(c.token, firstToken, 'a new token');
    assert.equal(rec.sub.status, 'live');
    assert.ok(!rec.statusNames().includes('stopped'), `statuses: ${rec.statusNames()}`);

    const warned = recPlain.statuses.find((s) => s.lastError?.code === 'token_expiring');
    assert.ok(warned, 'the hookless client was warned');
    assert.equal(warned.status, 'live', 'the warning comes while live');
    assert.equal(recPlain.sub.lastError.status, 401, `stopped with the refusal: ${recPlain.sub.lastError.message}`);
    const seen = recPlain.ids();
    assertSameIds(seen, want.slice(0, seen.length), 'the hookless client: no gap until it stopped');
  });
});

it('ticket expiry (--ticket_ttl=2, long tokens): a fresh ticket, no login, nothing lost', async () => {
  await withBroker({ args: [`--ticket_ttl=${2 * SLOW}`] }, async (b) => {
    const { c } = await loggedIn(b, 'ticket');
    let hooks = 0;
    let tickets = 0;
    const counting = client(b, {
      onTokenExpiring: () => { hooks += 1; },
      fetch: (u, init) => { if (String(u).endsWith('/sse/ticket')) tickets += 1; return fetch(u, init); },
    });
    counting.setToken(c.token);
    const want = [];
    const rec = follow(counting, ['ev']);
    await rec.live();
    const deadline = Date.now() + ms(15000);
    for (let n = 0; tickets < 3; n++) {
      assert.ok(Date.now() < deadline, `tickets ${tickets}`);
      want.push((await c.insert('ev', { n })).id);
      await sleep(150);
    }
    await until(() => rec.hasId(want.at(-1)), ms(10000), 'every event');
    await sleep(100);
    assertSameIds(rec.ids(), want, 'every event across two ticket renewals, once');
    assert.equal(hooks, 0, 'the login token outlives the tickets: no renewal asked');
    assert.equal(rec.sub.status, 'live');
    rec.sub.stop();
  });
});

it('reset: after the database is replaced by an older copy, the state is rebuilt from its snapshot', async () => {
  const backup = tmpDir('broker-client-backup-');
  try {
    await withBroker({}, async (b) => {
      const { c } = await loggedIn(b, 'reset');
      const a1 = (await c.insert('a', 'a1')).id;
      const b1 = (await c.insert('b', 'b1')).id;
      await b.stop({ cleanup: false });
      fs.cpSync(b.db, backup, { recursive: true });
      await b.start();

      const rec = follow(c, ['a', 'b', 'c']);
      await until(() => rec.hasId(b1), ms(10000), 'the first snapshot');
      const a2 = (await c.insert('a', 'a2')).id;
      const c1 = (await c.insert('c', 'c1')).id;
      await until(() => rec.hasId(c1), ms(10000), 'live');
      assert.deepEqual(rec.sub.state, { a: 'a2', b: 'b1', c: 'c1' });

      await b.stop({ cleanup: false });
      fs.rmSync(b.db, { recursive: true, force: true });
      fs.cpSync(backup, b.db, { recursive: true });
      await b.start(); // the log now ends at b1, below the client's last id
      await until(() => rec.changes.includes('clear'), ms(15000), 'the reset');
      await until(() => rec.sub.store.size === 2, ms(10000), 'the new snapshot');
      assert.deepEqual(rec.sub.state, { a: 'a1', b: 'b1' }, 'rebuilt from the replaced store: c is gone, a is back to a1');
      const c2 = (await c.insert('c', 'c2')).id;
      assert.ok(c2 <= c1, `the replaced store reuses ids (${c2} after ${c1})`);
      await until(() => rec.sub.state.c === 'c2', ms(10000), 'live after the reset, with a lower id');
      assert.deepEqual(rec.ids(), [a1, b1, a2, c1, a1, b1, c2], 'events as applied');
      assert.deepEqual(rec.sub.state, { a: 'a1', b: 'b1', c: 'c2' });
      assert.equal(rec.sub.status, 'live');
      rec.sub.stop();
    });
  } finally {
    fs.rmSync(backup, { recursive: true, force: true });
  }
});

it('revoked through the admin API: the subscription stops with status stopped and the reason', async () => {
  const ADMIN = `admin-${uniq('t')}-0123456789`;
  await withBroker({ args: [`--admin_token=${ADMIN}`], neverLog: [ADMIN] }, async (b) => {
    const { u, c } = await loggedIn(b, 'victim');
    const { c: bystander } = await loggedIn(b, 'bystander');
    const rec = follow(c, ['ev']);
    const recB = follow(bystander, ['ev']);
    await rec.live();
    await recB.live();
    const id1 = (await c.insert('ev', 1)).id;
    await until(() => rec.hasId(id1) && recB.hasId(id1), ms(10000), 'an event');
    const r = await request(b, 'PATCH', `/admin/users/${u.id}`, { token: ADMIN, json: { revoked: true } });
    assert.equal(r.status, 200, r.text);
    await until(() => rec.sub.status === 'stopped', ms(5000), 'status stopped');
    assert.equal(rec.sub.lastError.code, 'revoked');
    assert.equal(rec.sub.lastError.reason, 'user revoked');
    assert.deepEqual(rec.statusNames(), ['connecting', 'live', 'stopped']);
    await rejects(c.insert('ev', 2), 401, 'the revoked token');
    await rejects(c.login(u.username, u.password), 403, 'login of a revoked user');
    const id3 = (await bystander.insert('ev', 3)).id;
    await until(() => recB.hasId(id3), ms(10000), 'the other user is untouched');
    assert.equal(recB.sub.status, 'live');
    assert.equal(rec.events.length, 1, 'nothing after the revocation');
    recB.sub.stop();
  });
});
