// §2/§3 The snapshot/live seam is exact under concurrent inserts.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { withBroker } from './lib/broker.js';
import { newUser, request } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { makeSeamChecker, rng } from './lib/seam.js';
import { ms } from './lib/config.js';

const SEED = Number(process.env.BROKER_E2E_SEED) || (Date.now() % 1e9);
const PUBLISHERS = 3;
const PER_PUBLISHER = 100; // 300 events in all
const SUBSCRIBERS = 20;
const NAMES = ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7'];

it(`snapshot + live is exact for ${SUBSCRIBERS} subscribers joining during ${PUBLISHERS * PER_PUBLISHER} concurrent inserts (seed ${SEED})`, async () => {
  const rand = rng(SEED);
  await withBroker({ logLevel: 'info' }, async (b) => {
    const u = await newUser(b, 'seam');
    const events = new Map(); // id -> { id, event, data }
    let maxAcked = 0;

    async function ins(event, data) {
      const r = await request(b, 'POST', '/insert', { json: { event, data }, token: u.jwt });
      assert.equal(r.status, 200, `insert ${event}: ${r.status} ${r.text}`);
      const { id } = r.json;
      assert.equal(typeof id, 'number');
      assert.ok(!events.has(id), `id ${id} acknowledged twice`);
      events.set(id, { id, event, data });
      if (id > maxAcked) maxAcked = id;
      return id;
    }

    // Something in the store before anyone subscribes, so snapshots are not trivial.
    for (let i = 0; i < 12; i++) await ins(NAMES[i % 6], { pre: i });

    // Subscribers join when the publishers' progress crosses random thresholds (independent of speed).
    const total = PUBLISHERS * PER_PUBLISHER;
    const thresholds = Array.from({ length: SUBSCRIBERS }, (_, i) =>
      Math.floor(((i + rand()) * (total - 10)) / SUBSCRIBERS)).sort((x, y) => x - y);
    const pending = [];
    let acked = 0;
    const maybeSubscribe = () => {
      while (thresholds.length && thresholds[0] <= acked) {
        thresholds.shift();
        const lb = maxAcked; // every id <= lb is committed before this request is even sent
        pending.push(openSSE(b, { token: u.jwt, keepRaw: false }).then((s) => Object.assign(s, { lb })));
      }
    };

    const publisher = async (p) => {
      let last = 0;
      for (let i = 0; i < PER_PUBLISHER; i++) {
        const event = NAMES[Math.floor(rand() * NAMES.length)];
        const id = await ins(event, { p, i, s: `publisher ${p} #${i}` });
        assert.ok(id > last, `publisher ${p}: id ${id} after ${last} (ids increase in commit order)`);
        last = id;
        acked++;
        maybeSubscribe();
      }
    };
    maybeSubscribe();
    await Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => publisher(p)));
    thresholds.length = 0;

    const subs = await Promise.all(pending);
    try {
      assert.equal(subs.length, SUBSCRIBERS);
      for (const s of subs) assert.equal(s.status, 200, s.body);
      const marker = await ins('marker', { done: true });
      await Promise.all(subs.map((s) => s.waitId(marker, ms(30000))));

      const check = makeSeamChecker([...events.values()]);
      const problems = [];
      subs.forEach((s, k) => {
        const ids = s.ids;
        const why = check(ids, s.lb);
        if (why) problems.push(`subscriber ${k} (lb ${s.lb}): ${why}`);
        for (const f of s.frames) {
          const e = events.get(f.idNum);
          if (!f.exact) { problems.push(`subscriber ${k}: malformed frame ${JSON.stringify(f.raw)}`); continue; }
          if (!e) { problems.push(`subscriber ${k}: unknown id ${f.id}`); continue; }
          if (f.event !== e.event) problems.push(`subscriber ${k}: id ${f.id} has event ${f.event}, want ${e.event}`);
          else assert.deepEqual(JSON.parse(f.data), e.data, `id ${f.id} data`);
        }
        // Spelled out: the latest event of every name is there, and the marker is the last frame.
        const latest = new Map();
        for (const e of [...events.values()].sort((x, y) => x.id - y.id)) latest.set(e.event, e.id);
        for (const [name, id] of latest) {
          if (!ids.includes(id)) problems.push(`subscriber ${k}: misses the latest ${name} (id ${id})`);
        }
        if (ids[ids.length - 1] !== marker) problems.push(`subscriber ${k}: last frame ${ids[ids.length - 1]} is not the marker ${marker}`);
      });
      assert.deepEqual(problems, [], `seam violations (seed ${SEED}):\n${problems.slice(0, 20).join('\n')}`);
    } finally {
      for (const s of subs) s.close();
    }
  });
});
