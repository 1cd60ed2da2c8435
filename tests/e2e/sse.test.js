// §2 GET /sse (seed): auth, headers, snapshot then live, exact frames, real clients.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import BrokerClient from './lib/broker-client.js';
import { withBroker } from './lib/broker.js';
import { insert, insertRaw, newUser } from './lib/http.js';
import { openSSE, FRAME_RE } from './lib/sse.js';
import { signJwt, decodeJwt, nowSec } from './lib/jwt.js';
import { ms, SECRET } from './lib/config.js';
import { sleep, pollUntil } from './lib/util.js';

/** A fresh broker + one logged-in user for each test (the snapshot depends on the whole store). */
function withUser(fn, opts = {}) {
  return withBroker(opts, async (b) => fn(b, await newUser(b, 'sse')));
}

function assertJson401(sub, what) {
  assert.equal(sub.status, 401, `${what}: status ${sub.status} ${sub.body}`);
  assert.match(sub.headers['content-type'] ?? '', /^application\/json/i, `${what}: JSON error, not a stream`);
  assert.equal(typeof sub.json?.error, 'string', `${what}: {"error"} body: ${sub.body}`);
}

describe('GET /sse authentication', () => {
  it('401 JSON and no stream without a valid token', async () => {
    await withUser(async (b, u) => {
      assertJson401(await openSSE(b, {}), 'no Authorization');
      assertJson401(await openSSE(b, { headers: { authorization: 'garbage' } }), 'garbage Authorization');
      assertJson401(await openSSE(b, { token: 'not.a.jwt' }), 'bad token');
      const { payload } = decodeJwt(u.jwt);
      assertJson401(await openSSE(b, { token: signJwt(payload, 'wrong-secret-0123456789abcdef0123456789ab') }),
        'token signed with another secret');
      assertJson401(await openSSE(b, { token: signJwt({ ...payload, exp: nowSec() - 10 }, SECRET) }), 'expired token');
      assertJson401(await openSSE(b, { token: signJwt(payload, SECRET, { alg: 'HS512' }) }), 'HS512 token');
      assertJson401(await openSSE(b, { token: signJwt(payload, '', { alg: 'none' }) }), 'alg none');
      // positive control
      const ok = await openSSE(b, { token: u.jwt });
      assert.equal(ok.status, 200);
      ok.close();
    });
  });
});

describe('GET /sse stream', () => {
  it('headers: text/event-stream, Cache-Control: no-cache, X-Accel-Buffering: no', async () => {
    await withUser(async (b, u) => {
      const sub = await openSSE(b, { token: u.jwt });
      try {
        assert.equal(sub.status, 200);
        assert.match(sub.headers['content-type'], /^text\/event-stream/i);
        assert.match(sub.headers['cache-control'] ?? '', /(^|,\s*)no-cache(\s*,|$)/i,
          `cache-control: ${sub.headers['cache-control']}`);
        assert.equal((sub.headers['x-accel-buffering'] ?? '').toLowerCase(), 'no');
      } finally { sub.close(); }
    });
  });

  it('snapshot after a1, b1, a2 is exactly b1 then a2 (latest per name, ascending id), then live', async () => {
    await withUser(async (b, u) => {
      const a1 = await insert(b, u.jwt, 'a', { v: 'a1' });
      const b1 = await insert(b, u.jwt, 'b', { v: 'b1' });
      const a2 = await insert(b, u.jwt, 'a', { v: 'a2' });
      assert.ok(a1 < b1 && b1 < a2);
      const sub = await openSSE(b, { token: u.jwt });
      try {
        assert.equal(sub.status, 200);
        await sub.waitCount(2, ms(10000), 'the two snapshot frames');
        // latest of each name, ascending id: b1 (older) then a2
        const c = await insert(b, u.jwt, 'c', { v: 'c1' });
        await sub.waitId(c, ms(10000));
        await sleep(100); // a late duplicate would show up here
        assert.deepEqual(sub.frames.map((f) => [f.idNum, f.event, JSON.parse(f.data).v]),
          [[b1, 'b', 'b1'], [a2, 'a', 'a2'], [c, 'c', 'c1']]);
        for (const f of sub.frames) assert.ok(f.exact, `exact frame shape: ${JSON.stringify(f.raw)}`);
      } finally { sub.close(); }
    });
  });

  it('a large snapshot: 300 names x 8 KB, exactly the latest of each in ascending id order', async () => {
    await withUser(async (b, u) => {
      const latest = new Map(); // name -> id
      let next = 0;
      const pad = 'p'.repeat(8 * 1024);
      const publisher = async () => {
        for (let k = 0; k < 400 && next < 400; k++) {
          const n = next++;
          const name = `name-${n % 300}`; // 100 names get a second, newer event
          const id = await insert(b, u.jwt, name, { n, pad });
          if (!latest.has(name) || latest.get(name) < id) latest.set(name, id);
        }
      };
      await Promise.all([publisher(), publisher(), publisher(), publisher()]);
      const want = [...latest.entries()].sort((x, y) => x[1] - y[1]);
      const sub = await openSSE(b, { token: u.jwt, keepRaw: false });
      try {
        await sub.waitCount(300, ms(20000), '300 snapshot frames');
        await sleep(200);
        assert.deepEqual(sub.frames.map((f) => [f.event, f.idNum]), want);
        for (const f of sub.frames) {
          assert.ok(f.exact, 'frame shape');
          assert.equal(JSON.parse(f.data).pad.length, pad.length);
        }
      } finally { sub.close(); }
    });
  });

  it('empty store: no frames until a live insert, which then arrives', async () => {
    await withUser(async (b, u) => {
      const sub = await openSSE(b, { token: u.jwt });
      try {
        assert.equal(sub.status, 200);
        await sleep(400);
        assert.equal(sub.frames.length, 0, `no frames on an empty store: ${JSON.stringify(sub.raw)}`);
        const id = await insert(b, u.jwt, 'first', [1]);
        await sub.waitId(id, ms(10000));
        assert.equal(sub.frames.length, 1);
        assert.equal(sub.frames[0].event, 'first');
      } finally { sub.close(); }
    });
  });

  it('exact frame bytes: id:N\\nevent:E\\ndata:J\\n\\n (snapshot and live), compact data', async () => {
    await withUser(async (b, u) => {
      const body = '{ "event" : "bytes" , "data" : { "k" : [ 1 , 2 , { "x" : "y z" } ] , "t" : true , "n" : null } }';
      const compact = '{"k":[1,2,{"x":"y z"}],"t":true,"n":null}';
      const r1 = await insertRaw(b, u.jwt, body);
      assert.equal(r1.status, 200, r1.text);
      const sub = await openSSE(b, { token: u.jwt });
      try {
        await sub.waitCount(1, ms(10000), 'snapshot frame');
        const r2 = await insertRaw(b, u.jwt, '{"event":"bytes2","data":"plain"}');
        assert.equal(r2.status, 200, r2.text);
        await sub.waitCount(2, ms(10000), 'live frame');
        await sleep(100);
        // The whole byte stream, allowing only a retry: line between event: and data: and comment lines.
        const stream = sub.raw.replace(/^(:[^\n]*\n)+\n?/gm, '');
        const frames = stream.split(/(?<=\n\n)/).filter((s) => s.length > 0);
        assert.equal(frames.length, 2, `two frames in ${JSON.stringify(sub.raw)}`);
        for (const fr of frames) assert.match(fr, FRAME_RE);
        const strip = (s) => s.replace(/\nretry:\d+\n/, '\n');
        assert.equal(strip(frames[0]), `id:${r1.json.id}\nevent:bytes\ndata:${compact}\n\n`);
        assert.equal(strip(frames[1]), `id:${r2.json.id}\nevent:bytes2\ndata:"plain"\n\n`);
      } finally { sub.close(); }
    });
  });

  it('eventsource@4 (fetch with Authorization) receives snapshot and live events', async () => {
    await withUser(async (b, u) => {
      const s1 = await insert(b, u.jwt, 'alpha', { n: 1, s: 'snap' });
      const got = [];
      const errors = [];
      let opened = false;
      const es = new EventSource(`${b.url}/sse`, {
        fetch: (url, init) => fetch(url, { ...init, headers: { ...init.headers, Authorization: `Bearer ${u.jwt}` } }),
      });
      es.addEventListener('open', () => { opened = true; });
      es.addEventListener('alpha', (e) => { got.push({ type: e.type, data: e.data, id: e.lastEventId }); });
      es.addEventListener('error', (e) => errors.push(e.message ?? String(e)));
      try {
        await pollUntil(() => opened || errors.length > 0, { timeoutMs: ms(10000), stepMs: 20, what: 'EventSource open' });
        assert.deepEqual(errors, [], 'EventSource connected without errors');
        await pollUntil(() => got.length >= 1, { timeoutMs: ms(10000), stepMs: 20, what: 'snapshot event' });
        const s2 = await insert(b, u.jwt, 'alpha', { n: 2, s: 'live' });
        await pollUntil(() => got.length >= 2, { timeoutMs: ms(10000), stepMs: 20, what: 'live event' });
        assert.deepEqual(got, [
          { type: 'alpha', data: '{"n":1,"s":"snap"}', id: String(s1) },
          { type: 'alpha', data: '{"n":2,"s":"live"}', id: String(s2) },
        ]);
        assert.deepEqual(errors, []);
      } finally {
        es.close();
      }
    });
  });

  it('broker-client@0.0.8 receives snapshot and live events with the right data', async () => {
    await withUser(async (b, u) => {
      const s1 = await insert(b, u.jwt, 'note', { text: 'snapshot', n: 1 });
      await insert(b, u.jwt, 'other', 'x');
      const client = new BrokerClient(`${b.url}/sse`, { headers: { Authorization: `Bearer ${u.jwt}` } });
      const notes = [];
      const others = [];
      client.addEventListener('note', (e) => notes.push({ data: e.data, id: e.lastEventId }));
      client.addEventListener('other', (e) => others.push(e.data));
      try {
        await pollUntil(() => notes.length >= 1 && others.length >= 1,
          { timeoutMs: ms(10000), stepMs: 20, what: 'broker-client snapshot' });
        const s2 = await insert(b, u.jwt, 'note', { text: 'live', n: 2 });
        const s3 = await insert(b, u.jwt, 'note', { text: 'héllo 🎉', n: 3 });
        await pollUntil(() => notes.length >= 3, { timeoutMs: ms(10000), stepMs: 20, what: 'broker-client live' });
        assert.deepEqual(notes.slice(0, 2), [
          { data: '{"text":"snapshot","n":1}', id: String(s1) },
          { data: '{"text":"live","n":2}', id: String(s2) },
        ]);
        assert.deepEqual(others, ['"x"']);
        // broker-client decodes bytes one by one (String.fromCharCode): undo that to compare UTF-8.
        assert.equal(notes[2].id, String(s3));
        assert.deepEqual(JSON.parse(Buffer.from(notes[2].data, 'latin1').toString('utf8')), { text: 'héllo 🎉', n: 3 });
      } finally {
        if (client.reader) client.close();
        await sleep(50);
      }
    });
  });
});
