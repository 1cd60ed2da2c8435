// §2 GET /sse Heartbeat and the retry hint: a bare ":" comment line (no blank line after it, so no
// client dispatches anything for it) after --heartbeat seconds of silence (0 = off); retry:<ms> rides in
// the first frame of a stream only, between event: and data:, never on its own.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import BrokerClient from './lib/broker-client.js';
import { withBroker } from './lib/broker.js';
import { insert, newUser } from './lib/http.js';
import { recordingEventSource } from './lib/streams.js';
import { openSSE } from './lib/sse.js';
import { scrape } from './lib/metrics.js';
import { until } from './lib/streams.js';
import { ms } from './lib/config.js';
import { sleep } from './lib/util.js';

const BEAT = ':\n';

/** The raw body split into heartbeat lines (":\n") and frames (each ending in "\n\n"); an unfinished
 * rest is returned as the tail. */
function splitFrames(raw) {
  const frames = [];
  let rest = raw;
  for (let i = 0; i < 1e6 && rest.length; i++) {
    const end = rest.startsWith(':') ? rest.indexOf('\n') + 1 : rest.indexOf('\n\n') + 2;
    if (end <= 1) break;
    frames.push(rest.slice(0, end));
    rest = rest.slice(end);
  }
  return { frames, tail: rest };
}

describe('heartbeat', () => {
  it('--heartbeat=1: an idle stream gets ":" comments, between whole frames, and the counter moves', async () => {
    await withBroker({ args: ['--heartbeat=1'] }, async (b) => {
      const u = await newUser(b, 'hb');
      const before = (await scrape(b)).count('broker_heartbeats_total');
      const sub = await openSSE(b, { token: u.jwt }); // empty store: nothing to send
      try {
        assert.equal(sub.status, 200, sub.body);
        // (Subscriber.waitFor wakes on event frames only, so comments are polled.)
        await until(() => sub.comments >= 1 || sub.ended, ms(4000), 'a heartbeat comment within ~3 s of silence');
        assert.ok(!sub.ended, `the stream is open: ${sub.endReason}`);
        assert.equal(sub.raw, BEAT.repeat(sub.comments), `only bare heartbeat lines so far: ${JSON.stringify(sub.raw)}`);
        const id = await insert(b, u.jwt, 'tick', { n: 1 });
        await sub.waitId(id, ms(10000));
        const comments = sub.comments;
        await until(() => sub.comments > comments || sub.ended, ms(4000), 'another heartbeat after the event, once silent again');
        assert.ok(!sub.ended, `the stream is open: ${sub.endReason}`);
        const { frames, tail } = splitFrames(sub.raw);
        assert.equal(tail, '', 'nothing half-written');
        const kinds = frames.map((f) => (f === BEAT ? 'beat' : /^id:\d+\nevent:tick\nretry:2000\ndata:\{"n":1\}\n\n$/.test(f) ? 'event' : f));
        assert.deepEqual(kinds.filter((k) => k !== 'beat'), ['event'], `frames: ${JSON.stringify(sub.raw)}`);
        assert.equal(kinds.at(-1), 'beat');
        const after = (await scrape(b)).count('broker_heartbeats_total');
        assert.ok(after - before >= sub.comments, `broker_heartbeats_total moved by ${after - before}, this stream alone got ${sub.comments}`);
      } finally { sub.close(); }
    });
  });

  it('--heartbeat=0: no comment at all in 3 s of silence, and the stream still delivers', async () => {
    await withBroker({ args: ['--heartbeat=0'] }, async (b) => {
      const u = await newUser(b, 'hb0');
      const sub = await openSSE(b, { token: u.jwt });
      try {
        assert.equal(sub.status, 200, sub.body);
        await sleep(3000);
        assert.equal(sub.raw, '', `nothing on an idle stream with heartbeats off: ${JSON.stringify(sub.raw)}`);
        assert.ok(!sub.ended, 'the stream is still open');
        const id = await insert(b, u.jwt, 'late', 1);
        await sub.waitId(id, ms(10000));
        assert.equal(sub.comments, 0);
        assert.equal((await scrape(b)).count('broker_heartbeats_total'), 0, 'no heartbeat counted');
      } finally { sub.close(); }
    });
  });

  // broker-client@0.0.8 splits on blank lines only: a ":\n\n" heartbeat reached onmessage as an empty
  // message. A bare ":\n" folds into the next frame, which it parses by the position of its fields.
  it('--heartbeat=1: broker-client@0.0.8 onmessage sees exactly the inserted events across heartbeats', async () => {
    await withBroker({ args: ['--heartbeat=1'] }, async (b) => {
      const u = await newUser(b, 'hbbc');
      const want = [];
      const add = async (event, data) => {
        want.push({ type: event, data: JSON.stringify(data), id: String(await insert(b, u.jwt, event, data)) });
      };
      await add('state', { v: 1 });
      const client = new BrokerClient(`${b.url}/sse`, { headers: { Authorization: `Bearer ${u.jwt}` } });
      const got = [];
      client.onmessage = (e) => got.push({ type: e.type, data: e.data, id: e.lastEventId });
      try {
        await until(() => got.length >= 1, ms(10000), 'the snapshot through broker-client');
        for (let round = 0; round < 3; round++) {
          await sleep(2500); // two or more heartbeats of silence
          await add('state', { v: round + 2 });
          await add('chat', { text: `after beat ${round}` });
          await until(() => got.length >= want.length, ms(10000), `round ${round} through broker-client`);
        }
        await sleep(2500);
        const beats = (await scrape(b)).count('broker_heartbeats_total');
        assert.ok(beats >= 3, `heartbeats were sent meanwhile (${beats})`);
        assert.deepEqual(got, want, 'exactly the inserted events, none empty, none extra');
      } finally {
        if (client.reader) client.close();
        await sleep(50);
      }
    });
  });

  it('--heartbeat=1: eventsource@4 sees exactly the inserted events across heartbeats, no "message" event', async () => {
    await withBroker({ args: ['--heartbeat=1'] }, async (b) => {
      const u = await newUser(b, 'hbes');
      const rec = recordingEventSource(`${b.url}/sse`, { token: u.jwt, names: ['state', 'message'] });
      try {
        await until(() => rec.opens >= 1, ms(10000), 'the stream to open');
        const want = [];
        for (let round = 0; round < 2; round++) {
          await sleep(2500);
          const data = { v: round };
          want.push({ type: 'state', id: String(await insert(b, u.jwt, 'state', data)), data: JSON.stringify(data) });
          await until(() => rec.events.length >= want.length, ms(10000), `round ${round}`);
        }
        await sleep(2500);
        assert.deepEqual(rec.events, want, 'the heartbeats dispatch nothing');
        assert.deepEqual(rec.errors, []);
        assert.equal(rec.opens, 1, 'no reconnection');
      } finally { rec.close(); }
    });
  });
});

describe('retry hint', () => {
  /** Checks a whole raw stream: retry:2000 in frame 0 only, between event: and data:, never alone. */
  function assertRetryOnlyFirst(raw, what) {
    const { frames, tail } = splitFrames(raw);
    assert.equal(tail, '', `${what}: whole frames only`);
    const real = frames.filter((f) => f !== BEAT);
    assert.ok(real.length > 0, `${what}: frames`);
    assert.match(real[0], /^(id:\d+\n)?event:[^\n]+\nretry:2000\ndata:[^\n]*\n\n$/, `${what}: first frame ${JSON.stringify(real[0])}`);
    real.slice(1).forEach((f, i) => {
      assert.doesNotMatch(f, /(^|\n)retry:/, `${what}: frame ${i + 1} has no retry: ${JSON.stringify(f)}`);
    });
    for (const f of frames) {
      assert.doesNotMatch(f, /^retry:\d+\n\n$/, `${what}: no frame holds only retry: ${JSON.stringify(f)}`);
    }
  }

  it('in the first frame only: snapshot, live-only, resume and reset streams', async () => {
    await withBroker({}, async (b) => {
      const u = await newUser(b, 'retry');
      const empty = await openSSE(b, { token: u.jwt });
      try {
        const ids = [];
        for (const [e, d] of [['r1', 1], ['r2', 2], ['r1', 3], ['r3', 4]]) ids.push(await insert(b, u.jwt, e, d));
        await empty.waitId(ids.at(-1), ms(10000));
        assertRetryOnlyFirst(empty.raw, 'stream opened on an empty store (first live frame)');
      } finally { empty.close(); }

      const streams = {
        snapshot: await openSSE(b, { token: u.jwt }),
        resume: await openSSE(b, { token: u.jwt, path: '/sse?lastEventId=1' }),
        reset: await openSSE(b, { token: u.jwt, headers: { 'last-event-id': 'x' } }),
      };
      try {
        const l1 = await insert(b, u.jwt, 'r2', 'live1');
        const l2 = await insert(b, u.jwt, 'r4', 'live2');
        for (const [what, s] of Object.entries(streams)) {
          assert.equal(s.status, 200, `${what}: ${s.body}`);
          await s.waitId(l2, ms(10000));
          assert.ok(s.ids.includes(l1));
          assertRetryOnlyFirst(s.raw, what);
        }
        assert.match(streams.reset.raw, /^event:reset\nretry:2000\ndata:/, 'the reset frame is the first and carries retry');
      } finally {
        for (const s of Object.values(streams)) s.close();
      }
    });
  });

  it('broker-client@0.0.8 turns every frame into exactly one event: no bogus message from the hint', async () => {
    await withBroker({}, async (b) => {
      const u = await newUser(b, 'retrybc');
      const s1 = await insert(b, u.jwt, 'one', { v: 1 });
      const s2 = await insert(b, u.jwt, 'two', { v: 2 });
      const client = new BrokerClient(`${b.url}/sse`, { headers: { Authorization: `Bearer ${u.jwt}` } });
      const all = [];
      client.onmessage = (e) => all.push({ type: e.type, data: e.data, id: e.lastEventId });
      try {
        await until(() => all.length >= 2, ms(10000), 'the snapshot through broker-client');
        const l = await insert(b, u.jwt, 'one', { v: 3 });
        await until(() => all.length >= 3, ms(10000), 'the live event through broker-client');
        await sleep(200);
        assert.deepEqual(all, [
          { type: 'one', data: '{"v":1}', id: String(s1) },
          { type: 'two', data: '{"v":2}', id: String(s2) },
          { type: 'one', data: '{"v":3}', id: String(l) },
        ]);
      } finally {
        if (client.reader) client.close();
        await sleep(50);
      }
    });
  });
});
