// §2 GET /sse Token lifetime: a stream ends when its token expires; shortly before, an id-less
// event:token_expiring {"exp": <unix seconds>} lets the client log in again and resume with
// Last-Event-ID without losing anything.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { withBroker } from './lib/broker.js';
import { insert, login, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { decodeJwt } from './lib/jwt.js';
import { recordingEventSource, assertSameIds, until } from './lib/streams.js';
import { ms, SLOW } from './lib/config.js';
import { sleep } from './lib/util.js';

/** A fresh login token for `u` (tokens here live 3 s, or ES_EXPIRY, so every step logs in again). */
async function fresh(b, u) {
  const r = await login(b, u.username, u.password);
  assert.equal(r.status, 200, `login: ${r.status} ${r.text}`);
  return r.json.jwt;
}

it('--jwt_expiry=3: token_expiring with the token exp, then the stream ends; a resume after a new login loses nothing', async () => {
  await withBroker({ args: ['--jwt_expiry=3'] }, async (b) => {
    const u = await newUser(b, 'life');
    const s1 = await insert(b, u.jwt, 'snap', { n: 1 });
    const jwt = await fresh(b, u);
    const { exp, iat } = decodeJwt(jwt).payload;
    assert.equal(exp - iat, 3);
    const sub = await openSSE(b, { token: jwt });
    let lastSeen;
    try {
      assert.equal(sub.status, 200, sub.body);
      await sub.waitId(s1, ms(10000));
      const l1 = await insert(b, jwt, 'live', { n: 2 });
      await sub.waitId(l1, ms(10000));
      await sub.waitFor((s) => s.frames.some((f) => f.event === 'token_expiring'), ms(8000), 'token_expiring');
      assert.ok(!sub.ended || sub.frames.at(-1).event === 'token_expiring', 'the warning came before the end');
      await sub.waitFor((s) => s.ended, ms(8000), 'the stream to end when the token expires');
      assert.ok(Date.now() >= exp * 1000 - 1000, `ended at ${Date.now() / 1000}, not (much) before exp ${exp}`);
      const frames = sub.frames;
      assert.deepEqual(frames.map((f) => f.event), ['snap', 'live', 'token_expiring'], JSON.stringify(sub.raw));
      const warnRaw = frames[2].raw;
      assert.equal(warnRaw, `event:token_expiring\ndata:{"exp":${exp}}\n\n`, 'exact token_expiring frame, no id line');
      lastSeen = frames[1].idNum;
    } finally { sub.close(); }

    // While logged out, events keep coming.
    const jwt2 = await fresh(b, u);
    const missed = [];
    for (let n = 3; n <= 5; n++) missed.push(await insert(b, jwt2, n % 2 ? 'live' : 'other', { n }));
    const jwt3 = await fresh(b, u);
    const again = await openSSE(b, { token: jwt3, headers: { 'last-event-id': String(lastSeen) } });
    try {
      assert.equal(again.status, 200, again.body);
      await again.waitId(missed.at(-1), ms(10000));
      const l2 = await insert(b, jwt3, 'live', { n: 6 });
      await again.waitId(l2, ms(10000));
      await sleep(50);
      assertSameIds(again.ids, [...missed, l2], 'resume after logging in again');
      assert.deepEqual(again.frames.map((f) => JSON.parse(f.data).n), [3, 4, 5, 6]);
    } finally { again.close(); }
  });
});

// The first stream must outlive two logins and inserts, so under a slowdown (each Argon2id login
// takes seconds under valgrind) the tokens live longer.
const ES_EXPIRY = 3 * SLOW;

it('eventsource@4 that logs in on every connection: token_expiring, reconnect with Last-Event-ID, no gap, no duplicate', async () => {
  await withBroker({ args: [`--jwt_expiry=${ES_EXPIRY}`] }, async (b) => {
    const u = await newUser(b, 'lifees');
    const inserted = [];
    const ins = async (n) => { inserted.push(await insert(b, await fresh(b, u), 'ev', { n })); };
    await ins(0);
    const tokens = [];
    const rec = recordingEventSource(`${b.url}/sse`, {
      names: ['ev', 'token_expiring'],
      getToken: async () => { const t = await fresh(b, u); tokens.push(t); return t; },
    });
    try {
      await until(() => rec.events.length >= 1, ms(10000), 'the snapshot event');
      await ins(1);
      await ins(2);
      await until(() => rec.ids().includes(inserted.at(-1)), ms(10000), 'live events');
      await until(() => rec.events.some((e) => e.type === 'token_expiring'), ms(8000), 'token_expiring');
      const warn = rec.events.find((e) => e.type === 'token_expiring');
      assert.deepEqual(JSON.parse(warn.data), { exp: decodeJwt(tokens[0]).payload.exp }, 'the exp of the token that opened the stream');
      assert.equal(warn.id, '', 'token_expiring carries no id (eventsource@4 reports lastEventId "" then)');
      // The stream ends at exp; the client waits its retry delay, then reconnects with a new login.
      await until(() => rec.requests.length >= 2, ms(10000), 'the client reconnecting');
      for (let n = 3; n <= 5; n++) await ins(n);
      await until(() => rec.opens >= 2, ms(10000), 'the second connection open');
      await ins(6);
      await until(() => rec.ids().includes(inserted.at(-1)), ms(10000), 'every event after the reconnection');
      await sleep(100);
      const events = rec.events.filter((e) => e.type === 'ev');
      assertSameIds(events.map((e) => Number(e.id)), inserted, 'events across the token expiry');
      assert.deepEqual(events.map((e) => JSON.parse(e.data).n), [0, 1, 2, 3, 4, 5, 6]);
      assert.equal(rec.requests[1].lastEventId, String(inserted[2]), 'the reconnection resumes from the last event before the expiry');
      assert.equal(rec.requests[1].status, 200);
    } finally {
      rec.close();
    }
  });
});
