// §3 order under load: 200 subscribers x 500 inserts from 10 concurrent publishers.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { withBroker } from './lib/broker.js';
import { newUser, nodeRequest } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { ms } from './lib/config.js';

const SUBSCRIBERS = 200;
const INSERTS = 500;
const PUBLISHERS = 10;

it(`${SUBSCRIBERS} subscribers each receive all ${INSERTS} events from ${PUBLISHERS} publishers, in id order`, async () => {
  await withBroker({ logLevel: 'warn' }, async (b) => {
    const u = await newUser(b, 'load');
    const agent = new http.Agent({ keepAlive: true, maxSockets: PUBLISHERS });
    const subs = [];
    try {
      // Open all subscribers (empty store: no snapshot frames), a few at a time.
      for (let i = 0; i < SUBSCRIBERS; i += 20) {
        const batch = await Promise.all(Array.from({ length: Math.min(20, SUBSCRIBERS - i) },
          () => openSSE(b, { token: u.jwt, keepRaw: false, timeoutMs: 30000 })));
        subs.push(...batch);
      }
      for (const s of subs) assert.equal(s.status, 200);

      // Make sure every subscription is established before the load starts: a sync event that every
      // subscriber has received (in its snapshot or live) proves its watermark is at most that id.
      const sync = await nodeRequest(b, 'POST', '/insert', { agent, token: u.jwt, json: { event: 'sync', data: 0 } });
      assert.equal(sync.status, 200, sync.text);
      await Promise.all(subs.map((s) => s.waitId(sync.json.id, ms(30000))));

      const acked = [];
      let next = 0;
      const publisher = async (p) => {
        for (let i = 0; i < INSERTS && next < INSERTS; i++) {
          const n = next++;
          const r = await nodeRequest(b, 'POST', '/insert', {
            agent, token: u.jwt, json: { event: `load${n % 7}`, data: { n, p } },
          });
          assert.equal(r.status, 200, `insert ${n}: ${r.status} ${r.text}`);
          acked.push(r.json.id);
        }
      };
      await Promise.all(Array.from({ length: PUBLISHERS }, (_, p) => publisher(p)));
      assert.equal(acked.length, INSERTS);
      const expected = [...acked].sort((x, y) => x - y);
      assert.equal(new Set(expected).size, INSERTS, 'distinct ids');
      const last = expected[expected.length - 1];

      await Promise.all(subs.map((s) => s.waitId(last, ms(90000))));
      const problems = [];
      subs.forEach((s, k) => {
        const ids = s.ids.filter((id) => id > sync.json.id);
        if (ids.length !== INSERTS || ids.some((id, i) => id !== expected[i])) {
          const missing = expected.filter((id) => !ids.includes(id));
          problems.push(`subscriber ${k}: ${ids.length} events, missing ${JSON.stringify(missing.slice(0, 10))}, ` +
            `first out-of-order at ${ids.findIndex((id, i) => id !== expected[i])}`);
        }
        const bad = s.frames.find((f) => !f.exact);
        if (bad) problems.push(`subscriber ${k}: malformed frame ${JSON.stringify(bad.raw.slice(0, 100))}`);
      });
      assert.deepEqual(problems, [], problems.slice(0, 10).join('\n'));
      b.assertAlive();
    } finally {
      for (const s of subs) s.close();
      agent.destroy();
    }
  });
});
