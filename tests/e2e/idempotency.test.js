// §4 Idempotency-Key on POST /insert (one node): inserts carrying the same key within two minutes are
// stored once and all answer the same id; the key is durable (it survives a restart); a bad key is a 400.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { withBroker } from './lib/broker.js';
import { request, newUser, assertJsonError } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { scrape } from './lib/metrics.js';
import { ms } from './lib/config.js';
import { sleep } from './lib/util.js';

const insertWithKey = (b, token, key, event, data) =>
  request(b, 'POST', '/insert', { token, json: { event, data }, headers: { 'idempotency-key': key } });

/** Every event in the store, by a resume from id 0 up to a marker inserted now. */
async function storedEvents(b, token) {
  const marker = (await request(b, 'POST', '/insert', { token, json: { event: 'marker', data: Date.now() } })).json.id;
  const s = await openSSE(b, { token, headers: { 'last-event-id': '0' } });
  try {
    await s.waitId(marker, ms(10000));
    return s.frames.filter((f) => f.event !== 'marker').map((f) => ({ id: f.idNum, event: f.event, data: f.data }));
  } finally { s.close(); }
}

it('a retried insert with the same key is stored once and answers the same id; other keys and no key insert anew', async () => {
  await withBroker({}, async (b) => {
    const u = await newUser(b, 'idem');
    const first = await insertWithKey(b, u.jwt, 'order-42', 'order', { n: 1 });
    assert.equal(first.status, 200, first.text);
    assert.equal(first.headers['idempotent-replayed'], undefined, 'the first insert is not a replay');
    const again = await insertWithKey(b, u.jwt, 'order-42', 'order', { n: 1 });
    assert.equal(again.status, 200, again.text);
    assert.deepEqual(again.json, first.json, 'the retry answers the first id');
    assert.equal(again.headers['idempotent-replayed'], 'true');
    const other = await insertWithKey(b, u.jwt, 'order-43', 'order', { n: 2 });
    assert.ok(other.json.id > first.json.id, 'another key is another insert');
    const none = await request(b, 'POST', '/insert', { token: u.jwt, json: { event: 'order', data: { n: 3 } } });
    assert.ok(none.json.id > other.json.id);

    // 30 concurrent requests with one key (they share group commits): one event, one id for all.
    const burst = await Promise.all(Array.from({ length: 30 }, () => insertWithKey(b, u.jwt, 'burst-key', 'burst', { once: true })));
    const ids = new Set(burst.map((r) => { assert.equal(r.status, 200, r.text); return r.json.id; }));
    assert.equal(ids.size, 1, `every concurrent retry got the same id: ${[...ids]}`);
    assert.equal(burst.filter((r) => r.headers['idempotent-replayed'] === 'true').length, 29, 'all but one are replays');

    const stored = await storedEvents(b, u.jwt);
    assert.deepEqual(stored.map((e) => e.id), [first.json.id, other.json.id, none.json.id, [...ids][0]],
      'each key stored exactly one event');
    const m = await scrape(b);
    assert.equal(m.value('broker_events_inserted_total'), 5, 'replays are not counted as inserted (4 + the marker)');
  });
});

it('the key survives a restart: a retry after the server came back still answers the first id', async () => {
  await withBroker({}, async (b) => {
    const u = await newUser(b, 'idemrestart');
    const first = await insertWithKey(b, u.jwt, 'k-restart', 'r', 1);
    assert.equal(first.status, 200);
    await b.stop({ cleanup: false });
    await b.start();
    const again = await insertWithKey(b, u.jwt, 'k-restart', 'r', 1);
    assert.equal(again.status, 200, again.text);
    assert.equal(again.json.id, first.json.id);
    assert.equal(again.headers['idempotent-replayed'], 'true');
    await sleep(10);
    assert.deepEqual((await storedEvents(b, u.jwt)).map((e) => e.id), [first.json.id]);
  });
});

it('400 for a key that is empty, longer than 128 bytes, or not printable ASCII; 128 bytes is fine', async () => {
  await withBroker({}, async (b) => {
    const u = await newUser(b, 'idembad');
    for (const [what, key] of [['empty', ''], ['129 bytes', 'k'.repeat(129)], ['a tab', 'a\tb'], ['non-ASCII', 'clé']]) {
      const r = await request(b, 'POST', '/insert', { token: u.jwt, json: { event: 'x', data: 1 },
        headers: { 'idempotency-key': what === 'non-ASCII' ? Buffer.from(key).toString('latin1') : key } });
      assertJsonError(r, 400, what);
      assert.match(r.json.error, /Idempotency-Key/);
    }
    const ok = await insertWithKey(b, u.jwt, 'k'.repeat(128), 'x', 1);
    assert.equal(ok.status, 200, ok.text);
  });
});
