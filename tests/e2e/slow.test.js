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

// SPEC §2: the snapshot is sent as the socket drains and never counts as backlog. 8,000 names of ~2 KB
// make a ~17 MB snapshot, far more than the kernel buffers of a loopback socket hold, read at 4 MB/s
// while events keep flowing, against a --max_backlog of 64 KiB.
it('a snapshot far larger than --max_backlog reaches a slow reader whole while events flow, then live; stopping after it still drops at the bound', async () => {
  await withBroker({ args: ['--max_backlog=65536'], logLevel: 'info' }, async (b) => {
    const u = await newUser(b, 'bigsnap');
    const pad = 'z'.repeat(2000);
    const N = 8000;
    const seeded = await insertMany(b, u.jwt, Array.from({ length: N }, (_, i) => ({ event: `name${i}`, data: { i, pad } })),
      { concurrency: 32 });
    const before = await scrape(b);
    const slow = await stalledSubscriber(b, { token: u.jwt });
    try {
      slow.keepRaw = false;
      slow.startReading({ bytesPerSec: 4 * 1024 * 1024 });
      await waitSubscribers(b, 1, 'the slow reader');
      const live = [];
      const deadline = Date.now() + ms(60000);
      for (let k = 0; k < 3000 && slow.frames.length < N && !slow.ended && Date.now() < deadline; k++) {
        live.push(await insert(b, u.jwt, `live${k % 4}`, { k }));
        await sleep(20);
      }
      assert.ok(live.length >= 10, `events flowed while the snapshot was read (${live.length})`);
      assert.ok(!slow.ended, `the reader was not dropped during its snapshot: ${slow.endReason}`);
      await slow.waitId(live.at(-1), ms(30000));
      assertSameIds(slow.ids, [...seeded.map((e) => e.id), ...live], 'the whole snapshot, then every live event in order');
      for (const f of slow.frames.slice(0, 5)) assert.ok(f.exact, `exact frames: ${JSON.stringify(f.raw.slice(0, 80))}`);
      const mid = await scrape(b);
      assert.equal(mid.count('broker_slow_consumer_disconnects_total'), before.count('broker_slow_consumer_disconnects_total'),
        'no slow-consumer disconnect while the snapshot was read');

      // Caught up and live: a reader that now stops is a slow consumer like any other.
      slow.stopReading();
      const big = 'w'.repeat(16 * 1024);
      let dropped = false;
      for (let round = 0; round < 100 && !dropped; round++) { // at most 100 x 8 x 16 KB = 12.8 MB
        await insertMany(b, u.jwt, Array.from({ length: 8 }, (_, i) => ({ event: `after${i % 4}`, data: { round, big } })),
          { concurrency: 8 });
        dropped = (await scrape(b)).count('broker_slow_consumer_disconnects_total') > before.count('broker_slow_consumer_disconnects_total');
      }
      assert.ok(dropped, 'a reader that stops after its snapshot is dropped at --max_backlog');
      await waitSubscribers(b, 0, 'the dropped reader is gone');
      b.assertAlive();
    } finally {
      slow.close();
    }
  });
});

// SPEC §2: conflation never disconnects; what it keeps is at most a frame per name, even when that is
// still more bytes than --max_backlog (here 4 names x 16 KB against 64 KiB).
it('--slow_consumer=conflate --max_backlog=65536: a stalled reader is never closed; reading again it gets the latest of every name in id order, then live', async () => {
  await withBroker({ args: ['--slow_consumer=conflate', '--max_backlog=65536'], logLevel: 'info' }, async (b) => {
    const u = await newUser(b, 'conflate4');
    const names = ['k0', 'k1', 'k2', 'k3'];
    const slow = await stalledSubscriber(b, { token: u.jwt });
    try {
      await waitSubscribers(b, 1, 'the stalled one');
      const before = await scrape(b);
      const pad = 'q'.repeat(16 * 1024);
      const inserted = await insertMany(b, u.jwt,
        Array.from({ length: 600 }, (_, i) => ({ event: names[i % 4], data: { i, pad } })), { concurrency: 8 });
      const after = await scrape(b);
      assert.ok(after.count('broker_slow_consumer_conflations_total') > before.count('broker_slow_consumer_conflations_total'),
        'the backlog was conflated');
      assert.equal(after.count('broker_slow_consumer_disconnects_total'), before.count('broker_slow_consumer_disconnects_total'),
        'no disconnect');
      assert.equal(after.value('broker_subscribers'), 1, 'the stalled subscriber is still connected');

      const latest = names.map((n) => inserted.filter((e) => e.event === n).at(-1).id).sort((x, y) => x - y);
      slow.keepRaw = false;
      slow.startReading();
      await slow.waitFor((s) => latest.every((id) => s.ids.includes(id)), ms(30000), 'the latest event of every name');
      const live = await insert(b, u.jwt, 'k0', { live: true });
      await slow.waitId(live, ms(10000));
      await sleep(50);
      const got = slow.ids;
      for (let i = 1; i < got.length; i++) assert.ok(got[i] > got[i - 1], `ascending ids: ${got[i - 1]} then ${got[i]}`);
      const byId = new Map(inserted.map((e) => [e.id, e]));
      for (const f of slow.frames.slice(0, -1)) {
        assert.ok(f.exact, `whole, exact frames: ${JSON.stringify(f.raw.slice(0, 80))}`);
        assert.equal(f.event, byId.get(f.idNum)?.event, `id ${f.idNum} is the event inserted with it`);
        assert.equal(JSON.parse(f.data).i, byId.get(f.idNum).data.i, `data of id ${f.idNum}`);
      }
      // Every name's latest arrived (in id order, as all of them: checked above), and the live event last.
      for (const id of latest) assert.ok(got.includes(id), `the latest ${byId.get(id).event} (id ${id}) arrived`);
      assert.equal(got.at(-1), live, 'then the live event');
      assert.ok(got.length < inserted.length, `superseded events were dropped (${got.length} of ${inserted.length + 1})`);
      assert.ok(!slow.ended, 'still connected');
      b.assertAlive();
    } finally {
      slow.close();
    }
  });
});
