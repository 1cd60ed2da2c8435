// §1 graceful shutdown and §3 durability: events survive SIGTERM and kill -9.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker } from './lib/broker.js';
import { request, insert, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { ms } from './lib/config.js';
import { sleep } from './lib/util.js';
import { exchange } from './lib/raw.js';

/** Subscribe, insert a marker, and return the frames received up to and including the marker. */
async function snapshotThenMarker(b, jwt) {
  const sub = await openSSE(b, { token: jwt });
  assert.equal(sub.status, 200, sub.body);
  try {
    const marker = await insert(b, jwt, 'marker', { m: true });
    await sub.waitId(marker, ms(15000));
    return { frames: sub.frames.slice(), marker };
  } finally {
    sub.close();
  }
}

/** Run fn(b) on a broker that may be restarted; print its log on failure. */
async function scenario(fn) {
  const b = await startBroker();
  try {
    await fn(b);
  } catch (e) {
    b.dump();
    b.cleanup();
    throw e;
  }
  await b.stop();
}

it('SIGTERM, restart on the same --db: snapshot has the events, users and tokens persist, ids continue', async () => {
  await scenario(async (b) => {
    const u = await newUser(b, 'dur');
    const x1 = await insert(b, u.jwt, 'x', { v: 1 });
    const y1 = await insert(b, u.jwt, 'y', { v: 'y1' });
    const x2 = await insert(b, u.jwt, 'x', { v: 2 });
    await b.stop({ cleanup: false }); // asserts exit 0
    await b.start();

    const { frames, marker } = await snapshotThenMarker(b, u.jwt);
    assert.deepEqual(frames.map((f) => [f.idNum, f.event, f.data]),
      [[y1, 'y', '{"v":"y1"}'], [x2, 'x', '{"v":2}'], [marker, 'marker', '{"m":true}']]);
    assert.ok(marker > x2 && x2 > x1, `new ids continue above the old ones: ${marker} after ${x2}`);
    // The user survived too: log in again, and the name is still taken.
    const l = await request(b, 'POST', '/login', { json: { username: u.username, password: u.password } });
    assert.equal(l.status, 200, l.text);
    const dup = await request(b, 'POST', '/users', { json: { username: u.username, password: u.password } });
    assert.equal(dup.status, 409, dup.text);
  });
});

it('names repeated inside one group commit: after a restart the snapshot holds the newest of each', async () => {
  await scenario(async (b) => {
    const u = await newUser(b, 'group');
    // Pipelined on one connection, so they are handed to the writer together (one group, most likely).
    const names = ['a', 'b', 'a', 'c', 'b', 'a'];
    const body = (n, i) => JSON.stringify({ event: n, data: i });
    const reqs = names.map((n, i) => `POST /insert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${u.jwt}\r\n`
      + `Content-Length: ${Buffer.byteLength(body(n, i))}\r\n\r\n${body(n, i)}`).join('');
    const r = await exchange(b, reqs, { until: (t) => (t.match(/HTTP\/1\.1 200/g) ?? []).length === names.length });
    const ids = [...r.text.matchAll(/\{"id":(\d+),"event":"(\w)"\}/g)].map((m) => [Number(m[1]), m[2]]);
    assert.equal(ids.length, names.length, r.text);
    await b.stop({ cleanup: false });
    await b.start();
    const { frames } = await snapshotThenMarker(b, u.jwt);
    const newest = (n) => Math.max(...ids.filter(([, e]) => e === n).map(([id]) => id));
    assert.deepEqual(frames.filter((f) => f.event !== 'marker').map((f) => [f.event, f.idNum, f.data]),
      [['c', newest('c'), '3'], ['b', newest('b'), '4'], ['a', newest('a'), '5']]);
  });
});

it('kill -9 right after a 200 from /insert: the acknowledged event is there after restart', async () => {
  await scenario(async (b) => {
    const u = await newUser(b, 'crash');
    await insert(b, u.jwt, 'before', 0);
    const r = await request(b, 'POST', '/insert', { json: { event: 'acked', data: { crash: 1 } }, token: u.jwt });
    b.proc.kill('SIGKILL'); // immediately, before anything else
    await b.exited;
    assert.equal(r.status, 200, r.text);
    const id = r.json.id;
    await b.start();
    const { frames } = await snapshotThenMarker(b, u.jwt);
    const f = frames.find((x) => x.event === 'acked');
    assert.ok(f, `acknowledged event ${id} survived kill -9; got ${JSON.stringify(frames.map((x) => x.raw))}`);
    assert.equal(f.idNum, id);
    assert.equal(f.data, '{"crash":1}');
  });
});

it('kill -9 during concurrent inserts: every acknowledged event survives', async () => {
  await scenario(async (b) => {
    const u = await newUser(b, 'crash2');
    const acked = [];
    let killed = false;
    const KILL_AT = 40;
    const publisher = async (p) => {
      for (let i = 0; i < 100 && !killed; i++) {
        const event = `k-${p}-${i}`; // unique names: the snapshot then lists every stored event
        let r;
        try {
          r = await request(b, 'POST', '/insert', { json: { event, data: { p, i } }, token: u.jwt });
        } catch {
          return; // connection died with the server
        }
        // Any 200 that reached us was sent before the kill, so it must be durable too.
        if (r.status === 200) acked.push({ id: r.json.id, event });
        else if (!killed) assert.fail(`insert ${event}: ${r.status} ${r.text}`);
        if (killed) return;
        if (acked.length === KILL_AT) {
          killed = true;
          b.proc.kill('SIGKILL');
        }
      }
    };
    await Promise.all([0, 1, 2, 3].map(publisher));
    assert.ok(killed, 'the server was killed mid-stream');
    await b.exited;
    await b.start();
    const { frames, marker } = await snapshotThenMarker(b, u.jwt);
    const byEvent = new Map(frames.map((f) => [f.event, f.idNum]));
    const lost = acked.filter((a) => byEvent.get(a.event) !== a.id);
    assert.deepEqual(lost, [], `acknowledged events lost or renumbered after kill -9`);
    assert.ok(marker > Math.max(...acked.map((a) => a.id)), 'ids continue above every acknowledged id');
    const ids = frames.map((f) => f.idNum);
    for (let i = 1; i < ids.length; i++) assert.ok(ids[i] > ids[i - 1], `ascending snapshot: ${ids}`);
  });
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  it(`${signal} with open streams and inserts in flight: streams end, acknowledged inserts are kept, exit 0`, async () => {
    const b = await startBroker();
    let u;
    const subs = [];
    try {
      u = await newUser(b, 'grace');
      for (let i = 0; i < 5; i++) subs.push(await openSSE(b, { token: u.jwt, keepRaw: false }));
      const inflight = Array.from({ length: 10 }, (_, i) =>
        request(b, 'POST', '/insert', { json: { event: `g${i}`, data: i }, token: u.jwt }).catch((e) => ({ error: e })));
      await sleep(5);
      await b.stop({ cleanup: false, signal }); // asserts exit 0 within the guard
      const results = await Promise.all(inflight);
      await Promise.all(subs.map((s) => s.waitFor((x) => x.ended, ms(5000), 'stream closed by shutdown')));
      const acked = results.filter((r) => r.status === 200).map((r) => ({ id: r.json.id, event: r.json.event }));
      for (const r of results) {
        if (!r.error) assert.ok([200, 503].includes(r.status), `in-flight insert during shutdown: ${r.status} ${r.text}`);
        if (r.status === 503) assert.match(r.headers['retry-after'] ?? '', /^[1-9]\d*$/, 'Retry-After on a shutdown 503');
      }
      await b.start();
      const { frames } = await snapshotThenMarker(b, u.jwt);
      for (const a of acked) {
        assert.ok(frames.some((f) => f.idNum === a.id && f.event === a.event), `acked ${a.event}/${a.id} kept after ${signal}`);
      }
    } catch (e) {
      b.dump();
      b.cleanup();
      throw e;
    } finally {
      for (const s of subs) s.close();
    }
    await b.stop();
  });
}
