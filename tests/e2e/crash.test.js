// §3 durability under crashes: concurrent publishers, kill -9 at random moments, restart, and
// check that every acknowledged event is in the store with its id, name and exact data, in id
// order; that SQLite's integrity_check says ok; and that a subscriber which reconnects after every
// crash with Last-Event-ID (eventsource@4's own reconnect) ends up with exactly the store's log.
//
// CRASH_ITERATIONS (default 10) sets the number of crashes; RELIABILITY.md records a long run.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { startBroker } from './lib/broker.js';
import { nodeRequest, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { recordingEventSource, assertSameIds, until } from './lib/streams.js';
import { rng } from './lib/seam.js';
import { ms } from './lib/config.js';
import { sleep } from './lib/util.js';

const ITERATIONS = Number(process.env.CRASH_ITERATIONS) || 10;
const PUBLISHERS = 4;

/** Every event in the store, oldest first, read back through a full resume (Last-Event-ID: 0). */
async function readWholeLog(b, jwt) {
  const marker = await nodeRequest(b, 'POST', '/insert', { token: jwt, json: { event: 'marker', data: null } });
  assert.equal(marker.status, 200, marker.text);
  const sub = await openSSE(b, { token: jwt, headers: { 'last-event-id': '0' }, keepRaw: false });
  assert.equal(sub.status, 200, sub.body);
  try {
    await sub.waitId(marker.json.id, ms(60000));
    return sub.frames.filter((f) => f.event !== 'marker');
  } finally {
    sub.close();
  }
}

function integrityCheck(dbDir) {
  return execFileSync('sqlite3', [path.join(dbDir, 'broker.db'), 'PRAGMA integrity_check;'], { encoding: 'utf8' }).trim();
}

it(`${ITERATIONS} kill -9 crashes under concurrent inserts lose no acknowledged event`, { timeout: ms(60000 + ITERATIONS * 15000) }, async () => {
  const random = rng(Number(process.env.BROKER_E2E_SEED) || 20261127);
  const b = await startBroker({ keepDb: false, logLevel: 'info' });
  const acked = new Map(); // id -> { event, data }
  let es;
  try {
    const u = await newUser(b, 'crash');
    es = recordingEventSource(`${b.url}/sse`, { token: u.jwt, names: Array.from({ length: PUBLISHERS }, (_, p) => `p${p}`) });
    let seq = 0;
    for (let round = 0; round < ITERATIONS; round++) {
      let stop = false;
      const agent = new http.Agent({ keepAlive: true, maxSockets: PUBLISHERS });
      const publisher = async (p) => {
        for (let i = 0; i < 100000 && !stop; i++) {
          const data = { p, round, seq: seq++, text: `payload ${random().toString(36)} \u00e9\u{1F600}` };
          let r;
          try {
            r = await nodeRequest(b, 'POST', '/insert', { agent, token: u.jwt, json: { event: `p${p}`, data } });
          } catch {
            return; // the server died under us: this insert was never acknowledged
          }
          if (r.status === 200) acked.set(r.json.id, { event: `p${p}`, data: JSON.stringify(data) });
          else if (!stop) assert.fail(`insert answered ${r.status} ${r.text}`);
        }
      };
      const running = Array.from({ length: PUBLISHERS }, (_, p) => publisher(p));
      // The window is scaled like the guards so a slowed-down binary (ASan, valgrind) still gets
      // some inserts acknowledged before each crash.
      await sleep(ms(50 + Math.floor(random() * 400)));
      stop = true;
      await b.kill9();
      await Promise.all(running);
      agent.destroy();
      assert.equal(integrityCheck(b.db), 'ok', `integrity_check after crash ${round + 1}`);
      await b.start();
    }

    const log = await readWholeLog(b, u.jwt);
    const ids = log.map((f) => f.idNum);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `ids ascend in the log at ${i}: ${ids[i - 1]}, ${ids[i]}`);
    const byId = new Map(log.map((f) => [f.idNum, f]));
    const lost = [...acked.keys()].filter((id) => !byId.has(id));
    assert.deepEqual(lost, [], `acknowledged ids missing after ${ITERATIONS} crashes`);
    for (const [id, want] of acked) {
      const got = byId.get(id);
      assert.equal(got.event, want.event, `event name of ${id}`);
      assert.deepEqual(JSON.parse(got.data), JSON.parse(want.data), `data of ${id}`);
    }
    assert.ok(acked.size > ITERATIONS * 5, `enough inserts were acknowledged to mean something: ${acked.size}`);

    // The subscriber lived through every crash by reconnecting with Last-Event-ID.
    const want = ids;
    await until(() => es.ids().length >= want.length && es.ids()[es.ids().length - 1] >= want[want.length - 1],
      ms(30000), 'the reconnecting subscriber to catch up');
    assertSameIds(es.ids(), want, 'eventsource@4 across crashes');
    assert.ok(es.opens > 1, `it reconnected after crashes (${es.opens} opens)`);
    console.log(`crash summary: crashes=${ITERATIONS} acknowledged=${acked.size} stored=${ids.length} ` +
      `lost=${lost.length} subscriber_reconnects=${es.opens - 1} subscriber_events=${es.ids().length}`);
  } catch (e) {
    b.dump();
    throw e;
  } finally {
    es?.close();
    if (b.exit) b.cleanup();
    else await b.stop();
  }
});
