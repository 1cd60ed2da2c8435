// §2 GET /sse Slow consumers and §3 isolation: a subscriber that stops reading is disconnected past
// --max_backlog (memory stays bounded, others are not disturbed, Last-Event-ID recovers everything), or
// with --slow_consumer=conflate its backlog collapses to the latest event per name.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { withBroker } from './lib/broker.js';
import { insert, newUser, request } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { scrape } from './lib/metrics.js';
import { insertMany, assertSameIds, stalledSubscriber, until } from './lib/streams.js';
import { ms } from './lib/config.js';
import { sleep } from './lib/util.js';

// Generous: the point is "bounded", not "small". A sanitized build keeps freed memory in quarantine.
const RSS_LIMIT_KB = (process.env.BROKER_SANITIZED ? 600 : 200) * 1024;

async function waitSubscribers(b, n, what) {
  await until(async () => (await scrape(b)).value('broker_subscribers') === n, ms(10000), `${n} subscribers (${what})`);
}

it('a subscriber that stops reading is disconnected; RSS stays bounded; others get everything; Last-Event-ID recovers the rest', async () => {
  await withBroker({ args: ['--max_backlog=262144'], logLevel: 'info' }, async (b) => {
    const u = await newUser(b, 'slow');
    const fast = await openSSE(b, { token: u.jwt, keepRaw: false });
    const slow = await stalledSubscriber(b, { token: u.jwt });
    let resumed;
    try {
      assert.equal(fast.status, 200, fast.body);
      await waitSubscribers(b, 2, 'the fast and the stalled one');
      const before = await scrape(b);
      const pad = 'x'.repeat(100 * 1024);
      const inserted = [];
      let rssMax = 0;
      let dropped = false;
      for (let round = 0; round < 60 && !dropped; round++) { // at most 60 x 8 x 100 KB = 48 MB
        inserted.push(...await insertMany(b, u.jwt,
          Array.from({ length: 8 }, (_, i) => ({ event: `big${i % 4}`, data: { round, i, pad } })), { concurrency: 8 }));
        rssMax = Math.max(rssMax, b.memory().rss);
        dropped = (await scrape(b)).count('broker_slow_consumer_disconnects_total') > before.count('broker_slow_consumer_disconnects_total');
      }
      assert.ok(dropped, `broker_slow_consumer_disconnects_total moved after ${inserted.length} events of 100 KB to a reader that stopped`);
      assert.ok(rssMax < RSS_LIMIT_KB, `server RSS stayed bounded: max ${Math.round(rssMax / 1024)} MB (limit ${RSS_LIMIT_KB / 1024} MB)`);
      inserted.sort((x, y) => x.id - y.id);
      const all = inserted.map((e) => e.id);

      // The other subscriber was not held back: it has every event, in order.
      await fast.waitId(all.at(-1), ms(30000));
      assertSameIds(fast.ids, all, 'the fast subscriber');
      await waitSubscribers(b, 1, 'the stalled one is gone');

      // What the stalled socket still holds (kernel buffers) is a gap-free prefix, then the server's close.
      slow.startReading();
      await slow.waitFor((s) => s.ended, ms(20000), 'the end of the dropped stream');
      assert.equal(slow.status, 200);
      const got = slow.ids;
      assertSameIds(got, all.slice(0, got.length), 'the dropped subscriber received a prefix');
      assert.ok(got.length < all.length, `it missed some (${got.length} of ${all.length})`);
      for (const f of slow.frames) assert.ok(f.exact, `whole frames only: ${JSON.stringify(f.raw.slice(0, 80))}`);

      // Reconnecting with Last-Event-ID recovers every missed event, then live.
      const last = got.at(-1) ?? 0;
      resumed = await openSSE(b, { token: u.jwt, keepRaw: false, headers: { 'last-event-id': String(last) } });
      assert.equal(resumed.status, 200, resumed.body);
      const marker = await insert(b, u.jwt, 'marker', { done: true });
      await resumed.waitId(marker, ms(30000));
      await fast.waitId(marker, ms(10000));
      await sleep(50);
      assertSameIds(resumed.ids, [...all.filter((id) => id > last), marker], 'the catch-up after reconnecting');
      const byId = new Map(inserted.map((e) => [e.id, e]));
      for (const f of resumed.frames.slice(0, -1)) {
        const d = JSON.parse(f.data);
        const e = byId.get(f.idNum);
        assert.deepEqual([f.event, d.round, d.i, d.pad.length], [e.event, e.data.round, e.data.i, pad.length], `data of id ${f.idNum}`);
      }
      assertSameIds(fast.ids, [...all, marker], 'the fast subscriber, still connected');
      const health = await request(b, 'GET', '/healthz');
      assert.equal(health.status, 200);
      b.assertAlive();
    } finally {
      fast.close();
      slow.close();
      resumed?.close();
    }
  });
});

it('--slow_consumer=conflate: once it reads again, the stalled subscriber gets the latest of every name, never older after newer', async () => {
  await withBroker({ args: ['--slow_consumer=conflate'], logLevel: 'info' }, async (b) => {
    const u = await newUser(b, 'conflate');
    const names = ['c0', 'c1', 'c2'];
    const fast = await openSSE(b, { token: u.jwt, keepRaw: false });
    const slow = await stalledSubscriber(b, { token: u.jwt });
    try {
      await waitSubscribers(b, 2, 'the fast and the stalled one');
      const before = await scrape(b);
      const pad = 'y'.repeat(50 * 1024); // 3 names x 50 KB fit well within the default 1 MiB backlog
      const inserted = [];
      let rssMax = 0;
      let conflations = 0;
      let extra = 0;
      for (let round = 0; round < 120 && extra < 5; round++) { // at most 120 x 6 x 50 KB = 36 MB
        inserted.push(...await insertMany(b, u.jwt,
          Array.from({ length: 6 }, (_, i) => ({ event: names[i % 3], data: { round, i, pad } })), { concurrency: 6 }));
        rssMax = Math.max(rssMax, b.memory().rss);
        conflations = (await scrape(b)).count('broker_slow_consumer_conflations_total') - before.count('broker_slow_consumer_conflations_total');
        if (conflations > 0) extra++; // a few more rounds once conflating
      }
      assert.ok(conflations > 0, `broker_slow_consumer_conflations_total moved (after ${inserted.length} events of 50 KB)`);
      const after = await scrape(b);
      assert.equal(after.count('broker_slow_consumer_disconnects_total'), before.count('broker_slow_consumer_disconnects_total'),
        'no disconnect: the conflated backlog fits');
      assert.equal(after.value('broker_subscribers'), 2, 'the stalled subscriber is still connected');
      assert.ok(rssMax < RSS_LIMIT_KB, `server RSS stayed bounded: max ${Math.round(rssMax / 1024)} MB`);

      // The newest event of every name, inserted while it is still stalled.
      const finals = [];
      for (const name of names) {
        const id = await insert(b, u.jwt, name, { round: 'final', i: name, pad: '' });
        inserted.push({ id, event: name, data: { round: 'final', i: name, pad: '' } });
        finals.push(id);
      }
      inserted.sort((x, y) => x.id - y.id);
      slow.startReading();
      await slow.waitFor((s) => finals.every((id) => s.ids.includes(id)), ms(30000), 'the latest event of every name');
      assert.equal(slow.status, 200);
      const live = await insert(b, u.jwt, 'c0', { round: 'live', i: 0, pad: '' });
      inserted.push({ id: live, event: 'c0', data: { round: 'live', i: 0, pad: '' } });
      await slow.waitId(live, ms(10000));
      await sleep(50);

      const got = slow.ids;
      const byId = new Map(inserted.map((e) => [e.id, e]));
      const lastOf = new Map();
      for (const f of slow.frames) {
        assert.ok(f.exact, `whole, exact frames: ${JSON.stringify(f.raw.slice(0, 80))}`);
        const e = byId.get(f.idNum);
        assert.ok(e, `id ${f.idNum} was inserted`);
        assert.equal(f.event, e.event, `name of id ${f.idNum}`);
        const d = JSON.parse(f.data);
        assert.deepEqual([d.round, d.i, d.pad.length], [e.data.round, e.data.i, e.data.pad.length], `data of id ${f.idNum}`);
        const prev = lastOf.get(f.event);
        assert.ok(prev === undefined || f.idNum > prev, `${f.event}: id ${f.idNum} after the newer ${prev}`);
        lastOf.set(f.event, f.idNum);
      }
      for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], `ascending ids: ${got[i - 1]} then ${got[i]}`);
      for (const id of finals) assert.ok(got.includes(id), `the latest ${byId.get(id).event} (id ${id}) arrived`);
      assert.ok(got.length < inserted.length, `conflation dropped superseded events (${got.length} of ${inserted.length} delivered)`);
      assert.ok(!slow.ended, 'still connected');

      await fast.waitId(live, ms(30000));
      assertSameIds(fast.ids, inserted.map((e) => e.id), 'the fast subscriber gets everything, unconflated');
    } finally {
      fast.close();
      slow.close();
    }
  });
});
