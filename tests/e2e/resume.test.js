// §2 GET /sse Resume and Reset: Last-Event-ID / ?lastEventId=N replays every later event (paged from
// the store), then live, with an exact seam; an id that cannot be served starts with a reset frame and
// the snapshot; eventsource@4's own reconnection resumes across a restart and a server-side disconnect.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { withBroker, sharedBroker } from './lib/broker.js';
import { insert, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { rng } from './lib/seam.js';
import { scrape } from './lib/metrics.js';
import { insertMany, assertSameIds, recordingEventSource, until } from './lib/streams.js';
import { ms } from './lib/config.js';
import { sleep } from './lib/util.js';

// The shared broker's whole store, as acknowledged: resumes and snapshots are checked against it.
const model = { log: [], byId: new Map() };
function record(e) {
  model.log.push(e.id);
  model.byId.set(e.id, e);
}
const idsAfter = (n) => [...model.log].sort((x, y) => x - y).filter((id) => id > n);
function snapshotIds() {
  const latest = new Map();
  for (const id of [...model.log].sort((x, y) => x - y)) latest.set(model.byId.get(id).event, id);
  return [...latest.values()].sort((x, y) => x - y);
}
async function ins(b, u, event, data) {
  const id = await insert(b, u.jwt, event, data);
  record({ id, event, data });
  return id;
}

/**
 * Open a stream, insert a live marker, wait for it, and return the frames (the stream is closed).
 * A late duplicate would show up in the short pause after the marker.
 */
async function framesUntilMarker(b, u, opts) {
  const sub = await openSSE(b, { token: u.jwt, ...opts });
  assert.equal(sub.status, 200, `GET ${opts.path ?? '/sse'}: ${sub.status} ${sub.body}`);
  try {
    const marker = await ins(b, u, 'marker', { marker: true });
    await sub.waitId(marker, ms(20000));
    await sleep(50);
    return { frames: sub.frames.slice(), raw: sub.raw, marker };
  } finally {
    sub.close();
  }
}

/** Every frame is exact, only the first carries retry:, and its name and data are what was inserted. */
function assertFrames(frames, what) {
  frames.forEach((f, i) => {
    assert.ok(f.exact, `${what}: frame ${i} has the exact shape: ${JSON.stringify(f.raw.slice(0, 200))}`);
    if (i === 0) assert.equal(f.retry, '2000', `${what}: the first frame carries retry:2000: ${JSON.stringify(f.raw.slice(0, 200))}`);
    else assert.equal(f.retry, undefined, `${what}: frame ${i} carries no retry: line: ${JSON.stringify(f.raw.slice(0, 200))}`);
    const e = model.byId.get(f.idNum);
    assert.ok(e, `${what}: id ${f.idNum} was inserted`);
    assert.equal(f.event, e.event, `${what}: id ${f.idNum} event name`);
    assert.deepEqual(JSON.parse(f.data), e.data, `${what}: id ${f.idNum} data`);
  });
}

describe('resume and reset on one store', () => {
  let u;
  const srv = sharedBroker({ before, after, it }, {
    logLevel: 'info',
    setup: async (b) => {
      u = await newUser(b, 'resume');
      // a, b, c repeated: a resume (every event after N) and a snapshot (latest per name) differ.
      for (let i = 0; i < 12; i++) await ins(b, u, ['a', 'b', 'c'][i % 3], { i, s: `event ${i}` });
    },
  });
  const test = srv.test;

  test('?lastEventId=N: exactly every event with id > N, in order, then live; 0 replays the whole log', async (b) => {
    const ids = [...model.log];
    for (const n of [ids[4], ids[10], ids[0], 0]) {
      const want = idsAfter(n);
      const { frames, marker } = await framesUntilMarker(b, u, { path: `/sse?lastEventId=${n}` });
      assertSameIds(frames.map((f) => f.idNum), [...want, marker], `lastEventId=${n}`);
      assertFrames(frames, `lastEventId=${n}`);
    }
  });

  test('Last-Event-ID header; the header wins over ?lastEventId when both are present', async (b) => {
    const ids = [...model.log];
    const cases = [
      { what: 'header only', header: ids[6], path: '/sse', from: ids[6] },
      { what: 'header > query', header: ids[8], path: `/sse?lastEventId=${ids[2]}`, from: ids[8] },
      { what: 'header < query', header: ids[1], path: `/sse?lastEventId=${ids[9]}`, from: ids[1] },
    ];
    for (const c of cases) {
      const want = idsAfter(c.from);
      const { frames, marker } = await framesUntilMarker(b, u, { path: c.path, headers: { 'last-event-id': String(c.header) } });
      assertSameIds(frames.map((f) => f.idNum), [...want, marker], c.what);
      assertFrames(frames, c.what);
    }
  });

  test('resume from the newest id: nothing until a live insert, which then arrives exactly once', async (b) => {
    const last = await ins(b, u, 'x', 1);
    const sub = await openSSE(b, { token: u.jwt, headers: { 'last-event-id': String(last) } });
    try {
      assert.equal(sub.status, 200, sub.body);
      await sleep(300);
      assert.deepEqual(sub.frames.map((f) => f.raw), [], 'no frames: the client has everything');
      const x = await ins(b, u, 'x', 2);
      const y = await ins(b, u, 'y', 3);
      await sub.waitId(y, ms(10000));
      await sleep(50);
      assertSameIds(sub.ids, [x, y], 'live after a resume at the head');
      assertFrames(sub.frames, 'resume at the head');
    } finally { sub.close(); }
  });

  const RESET_RE = /^event:reset\nretry:2000\ndata:(\{[^\n]*\})\n\n/;

  /** The stream starts with a reset frame, then exactly the current snapshot, then live. */
  async function checkReset(b, opts, what) {
    const snapshot = snapshotIds();
    const { frames, raw, marker } = await framesUntilMarker(b, u, opts);
    const m = RESET_RE.exec(raw);
    assert.ok(m, `${what}: the stream starts with event:reset, retry:2000, data (no id line); got ${JSON.stringify(raw.slice(0, 300))}`);
    const data = JSON.parse(m[1]);
    assert.equal(typeof data.reason, 'string', `${what}: reset data {"reason": "..."}: ${m[1]}`);
    assert.ok(data.reason.length > 0, `${what}: a non-empty reason`);
    assert.equal(frames[0].event, 'reset', `${what}: first parsed frame`);
    assert.equal(frames[0].id, undefined, `${what}: the reset frame has no id (it must not move Last-Event-ID)`);
    const rest = frames.slice(1);
    assert.equal(rest.filter((f) => f.event === 'reset').length, 0, `${what}: one reset frame only`);
    assertSameIds(rest.map((f) => f.idNum), [...snapshot, marker], `${what}: the snapshot then live`);
    for (const f of rest) {
      assert.ok(f.exact, `${what}: exact frame ${JSON.stringify(f.raw)}`);
      assert.equal(f.retry, undefined, `${what}: retry: only in the first frame, got it in ${JSON.stringify(f.raw)}`);
      assert.equal(f.data, JSON.stringify(model.byId.get(f.idNum)?.data), `${what}: data of ${f.idNum}`);
    }
  }

  test('a future id (query or header) and non-numeric ids: reset frame first, then the snapshot, then live', async (b) => {
    const head = () => Math.max(...model.log); // the newest id in the store
    const first = Math.min(...model.log);
    const cases = [
      ['future id in the query', () => ({ path: `/sse?lastEventId=${head() + 1000}` })],
      ['the next id in the header', () => ({ headers: { 'last-event-id': String(head() + 1) } })],
      ['the next id in the query', () => ({ path: `/sse?lastEventId=${head() + 1}` })],
      ['huge id in the header', () => ({ headers: { 'last-event-id': '9223372036854775807' } })],
      ['non-numeric header', () => ({ headers: { 'last-event-id': 'abc' } })],
      ['non-numeric query', () => ({ path: '/sse?lastEventId=xyz' })],
      ['negative id', () => ({ path: '/sse?lastEventId=-1' })],
      ['digits then junk', () => ({ headers: { 'last-event-id': `${first}x` } })],
      ['fraction', () => ({ path: `/sse?lastEventId=${first}.5` })],
      ['20 digits', () => ({ headers: { 'last-event-id': '12345678901234567890' } })],
      ['non-numeric header beats a valid query', () => ({ path: `/sse?lastEventId=${first}`, headers: { 'last-event-id': 'nope' } })],
    ];
    for (const [what, opts] of cases) await checkReset(b, opts(), what);
  });

  test('5,000 events (many store pages) resumed from near their start arrive complete, in order, then live', async (b) => {
    const N = 5000;
    const all = await insertMany(b, u.jwt, Array.from({ length: N }, (_, i) => ({ event: `h${i % 7}`, data: { i } })),
      { concurrency: 64 });
    all.forEach(record);
    const from = all[36].id;
    const want = idsAfter(from);
    const sub = await openSSE(b, { token: u.jwt, path: `/sse?lastEventId=${from}`, keepRaw: false });
    try {
      assert.equal(sub.status, 200, sub.body);
      await sub.waitCount(want.length, ms(60000), `${want.length} replayed events`);
      const live = await ins(b, u, 'after-replay', { live: true });
      await sub.waitId(live, ms(10000));
      await sleep(50);
      assertSameIds(sub.ids, [...want, live], 'long resume');
      const bad = [];
      for (const f of sub.frames) {
        const e = model.byId.get(f.idNum);
        if (!f.exact) bad.push(`malformed ${JSON.stringify(f.raw.slice(0, 80))}`);
        else if (f.event !== e.event || f.data !== JSON.stringify(e.data)) bad.push(`id ${f.idNum}: ${f.event} ${f.data}`);
      }
      assert.deepEqual(bad.slice(0, 10), [], 'every replayed frame has its own name and data');
    } finally { sub.close(); }
  });
});

describe('reset on an empty store', () => {
  it('a future id: reset, an empty snapshot, then live', async () => {
    await withBroker({}, async (b) => {
      const u0 = await newUser(b, 'reset0');
      const sub = await openSSE(b, { token: u0.jwt, headers: { 'last-event-id': '5' } });
      try {
        assert.equal(sub.status, 200, sub.body);
        await sub.waitCount(1, ms(10000), 'the reset frame');
        const live = await insert(b, u0.jwt, 'first', { live: 1 });
        await sub.waitId(live, ms(10000));
        await sleep(50);
        assert.match(sub.raw, /^event:reset\nretry:2000\ndata:\{"reason":"[^"\n]+"\}\n\n/, 'the reset frame first');
        assert.deepEqual(sub.frames.map((f) => [f.event, f.idNum]), [['reset', undefined], ['first', live]]);
        assert.ok(sub.frames[1].exact && sub.frames[1].retry === undefined, `then the live frame: ${JSON.stringify(sub.frames[1].raw)}`);
      } finally { sub.close(); }
    });
  });
});

describe('resume under concurrent inserts', () => {
  const SEED = Number(process.env.BROKER_E2E_SEED) || (Date.now() % 1e9);
  it(`every resumed stream is exactly the events after its id while 300 inserts run (seed ${SEED})`, async () => {
    const rand = rng(SEED);
    await withBroker({ logLevel: 'info' }, async (b) => {
      const u = await newUser(b, 'rseam');
      // A history longer than a few store pages, so early resumers replay while live batches pass by.
      const pre = await insertMany(b, u.jwt, Array.from({ length: 1200 }, (_, i) => ({ event: `p${i % 5}`, data: { i } })),
        { concurrency: 32 });
      const acked = pre.map((e) => e.id);
      const PUBLISHERS = 3;
      const PER = 100;
      const SUBS = 20;
      const thresholds = Array.from({ length: SUBS }, (_, i) => Math.floor(((i + rand()) * (PUBLISHERS * PER - 10)) / SUBS));
      const pending = [];
      let done = 0;
      const maybeSubscribe = () => {
        while (thresholds.length && thresholds[0] <= done) {
          thresholds.shift();
          // resume from any id acknowledged so far (or 0), so some replay a lot and some a little
          const from = rand() < 0.1 ? 0 : acked[Math.floor(rand() * acked.length)];
          const useHeader = rand() < 0.5;
          pending.push(openSSE(b, {
            token: u.jwt, keepRaw: false,
            ...(useHeader ? { headers: { 'last-event-id': String(from) } } : { path: `/sse?lastEventId=${from}` }),
          }).then((s) => Object.assign(s, { from })));
        }
      };
      const publisher = async (p) => {
        for (let i = 0; i < PER; i++) {
          const id = await insert(b, u.jwt, `p${Math.floor(rand() * 5)}`, { p, i });
          acked.push(id);
          done++;
          maybeSubscribe();
        }
      };
      maybeSubscribe();
      await Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => publisher(p)));
      const subs = await Promise.all(pending);
      try {
        assert.equal(subs.length, SUBS);
        for (const s of subs) assert.equal(s.status, 200, s.body);
        const marker = await insert(b, u.jwt, 'marker', { done: true });
        acked.push(marker);
        await Promise.all(subs.map((s) => s.waitId(marker, ms(30000))));
        await sleep(50);
        const all = [...acked].sort((x, y) => x - y);
        const problems = [];
        subs.forEach((s, k) => {
          const want = all.filter((id) => id > s.from);
          const got = s.ids;
          if (got.length !== want.length || got.some((id, i) => id !== want[i])) {
            try { assertSameIds(got, want, `subscriber ${k} (from ${s.from})`); } catch (e) { problems.push(e.message); }
          }
          const bad = s.frames.find((f) => !f.exact);
          if (bad) problems.push(`subscriber ${k}: malformed frame ${JSON.stringify(bad.raw.slice(0, 100))}`);
        });
        assert.deepEqual(problems, [], `resume seam violations (seed ${SEED}):\n${problems.slice(0, 10).join('\n')}`);
      } finally {
        for (const s of subs) s.close();
      }
    });
  });
});

describe("eventsource@4's own reconnection", () => {
  it('across a server restart (SIGTERM, same --db and port): resumes with Last-Event-ID, no gap, no duplicate', async () => {
    await withBroker({}, async (b) => {
      const u = await newUser(b, 'esr');
      const inserted = [];
      const ins = async (n) => { const id = await insert(b, u.jwt, 'ev', { n }); inserted.push({ id, n }); return id; };
      await ins(0); // the snapshot
      const rec = recordingEventSource(`${b.url}/sse`, { token: u.jwt, names: ['ev', 'reset'] });
      try {
        await until(() => rec.events.length >= 1, ms(10000), 'the snapshot event');
        for (let n = 1; n <= 5; n++) await ins(n);
        const lastBefore = inserted.at(-1).id;
        await until(() => rec.ids().includes(lastBefore), ms(10000), 'live events before the restart');
        const requestsBefore = rec.requests.length;
        assert.equal(requestsBefore, 1, 'one connection so far');

        await b.stop({ cleanup: false }); // SIGTERM, exit 0, keep the db
        await b.start(); // same --db, same port
        // Inserted while the client waits for its retry delay: only a resume can deliver these.
        for (let n = 6; n <= 10; n++) await ins(n);
        await until(() => rec.opens >= 2, ms(20000), 'the client reconnecting by itself');
        for (let n = 11; n <= 15; n++) await ins(n);
        const last = inserted.at(-1).id;
        await until(() => rec.ids().includes(last), ms(10000), 'live events after the reconnection');
        await sleep(100);

        assertSameIds(rec.ids(), inserted.map((e) => e.id), 'events seen by the EventSource');
        assert.deepEqual(rec.events.map((e) => JSON.parse(e.data).n), inserted.map((e) => e.n), 'data in order');
        assert.equal(rec.events.filter((e) => e.type === 'reset').length, 0, 'no reset: the id was servable');
        const later = rec.requests.slice(requestsBefore);
        assert.ok(later.length >= 1, 'the client reconnected');
        for (const r of later) {
          assert.equal(r.lastEventId, String(lastBefore), `every reconnection carries Last-Event-ID ${lastBefore}: ${JSON.stringify(later)}`);
        }
        assert.equal(later.at(-1).status, 200);
      } finally {
        rec.close();
      }
    });
  });

  it('after the server drops it as a slow consumer: resumes from the store with no gap and no duplicate', async () => {
    await withBroker({ args: ['--max_backlog=65536'], logLevel: 'info' }, async (b) => {
      const u = await newUser(b, 'esslow');
      const first = await insert(b, u.jwt, 'ev', { round: -1, i: 0, pad: '' });
      const inserted = [{ id: first, event: 'ev', data: { round: -1, i: 0, pad: '' } }];
      const rec = recordingEventSource(`${b.url}/sse`, { token: u.jwt, names: ['ev'], pausable: true });
      try {
        await until(() => rec.events.length >= 1, ms(10000), 'the snapshot event');
        const before = (await scrape(b)).count('broker_slow_consumer_disconnects_total');
        rec.pause(); // the client stops reading: kernel buffers fill, then the server's queue grows
        const pad = 'x'.repeat(100 * 1024);
        let dropped = false;
        for (let round = 0; round < 50 && !dropped; round++) { // at most 50 x 8 x 100 KB = 40 MB
          inserted.push(...await insertMany(b, u.jwt, Array.from({ length: 8 }, (_, i) => ({ event: 'ev', data: { round, i, pad } })),
            { concurrency: 8 }));
          dropped = (await scrape(b)).count('broker_slow_consumer_disconnects_total') > before;
        }
        assert.ok(dropped, `the server disconnected the stalled EventSource (after ${inserted.length} events of 100 KB)`);
        const seenBeforeResume = rec.events.length;
        rec.resume();
        await until(() => rec.opens >= 2, ms(20000), 'the client reconnecting by itself');
        const live = await insert(b, u.jwt, 'ev', { round: 'live', i: 0, pad: '' });
        inserted.push({ id: live, event: 'ev', data: { round: 'live', i: 0, pad: '' } });
        await until(() => rec.ids().includes(live), ms(30000), 'the live event after the catch-up');
        await sleep(100);

        inserted.sort((x, y) => x.id - y.id);
        assertSameIds(rec.ids(), inserted.map((e) => e.id), 'events seen by the EventSource');
        const byId = new Map(inserted.map((e) => [e.id, e]));
        for (const e of rec.events) {
          const d = JSON.parse(e.data);
          const want = byId.get(Number(e.id)).data;
          assert.deepEqual([d.round, d.i, d.pad.length], [want.round, want.i, want.pad.length], `data of id ${e.id}`);
        }
        assert.ok(rec.requests.length >= 2, 'a second request');
        // The reconnection resumed from the last complete event the client had before the drop.
        const second = rec.requests[1];
        assert.notEqual(second.lastEventId, null, 'the reconnection carries Last-Event-ID');
        assert.ok(Number(second.lastEventId) >= first && Number(second.lastEventId) < live,
          `Last-Event-ID ${second.lastEventId} is an id the client had (seen ${seenBeforeResume} events before resuming)`);
      } finally {
        rec.close();
      }
    });
  });
});
