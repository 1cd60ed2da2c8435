// §4 Scaling out: cluster mode. Several broker processes on NATS JetStream (build/nats/nats-server, 2.10)
// share users and events: the same API and guarantees (§2, §3) on every node — identical ids and frames,
// snapshot, resume, ?events, tickets across nodes; unique usernames; a node killed with -9 loses no
// subscriber's event (reconnect elsewhere with Last-Event-ID) and catches up on restart; a JetStream
// server killed under load loses and duplicates nothing acknowledged; without quorum /insert and /users
// answer 503 + Retry-After within --request_timeout, /healthz 503, and everything resumes once the
// servers are back; a deleted --db is rebuilt from the stream; Idempotency-Key works across nodes;
// nats-server 2.9 and a missing --jwt_secret are refused at start.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startNats } from './lib/nats.js';
import { startBroker, runBroker, freePort, tmpDir } from './lib/broker.js';
import { request, insert, createUser, login, assertJsonError, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { insertMany, assertSameIds, recordingEventSource, until } from './lib/streams.js';
import { scrape } from './lib/metrics.js';
import { REPO, SECRET, ms } from './lib/config.js';
import { sleep, uniq } from './lib/util.js';
import { totpCode } from './lib/totp.js';

const NATS_29 = process.env.NATS_SERVER_OLD || `${REPO}/build/nats/nats-server-2.9`;
const STREAM = 'BROKER_EVENTS';

// ---------------------------------------------------------------------------------------------------
// Harness: one JetStream (1 or 3 nats-servers) and its broker nodes; everything is stopped by pid in
// after(), also when a test failed; on a failure every node's log tail and every server's are printed.

/** Start a broker node on `env.nats`, the URLs rotated so that node k dials server k first. */
async function startNode(env, { extra = [], rotate = env.nodes.length } = {}) {
  const urls = env.nats.servers.map((s) => s.url);
  const k = rotate % urls.length;
  const rotated = [...urls.slice(k), ...urls.slice(0, k)].join(',');
  const b = await startBroker({
    args: [`--cluster=${rotated}`, ...(env.args ?? []), ...extra],
    logLevel: 'info',
    readyTimeoutMs: 30000,
  });
  env.nodes.push(b);
  return b;
}

function dumpEnv(env, label) {
  env.nodes.forEach((b, i) => b.dump(`node ${i} ${label}`));
  env.nats?.dump(40);
}

/** Stops every node (SIGTERM, exit 0 required for a node that should be alive) and the servers. */
async function shutdown(env) {
  const errors = [];
  for (const b of env.nodes) {
    if (b.exit) {
      if (!b.expectExit) errors.push(new Error(`a node died: code=${b.exit.code} signal=${b.exit.signal}\n${b.tail(60)}`));
      b.cleanup();
      continue;
    }
    try { await b.stop(); } catch (e) { b.dump('(stop)'); errors.push(e); }
  }
  env.nodes.length = 0;
  if (env.nats) await env.nats.stop();
  env.nats = null;
  if (errors.length) throw errors[0];
}

/** it() that prints every log of `env` when the test fails. */
function clusterIt(env, name, fn, opts = {}) {
  it(name, opts, async (t) => {
    try {
      await fn(t);
      env.nodes.forEach((b) => { if (!b.expectExit) b.assertAlive(); });
    } catch (e) {
      dumpEnv(env, `(test: ${name})`);
      throw e;
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// A model of the whole event stream as acknowledged (one per JetStream), to check frames against.

function makeModel() {
  return { byId: new Map(), last: 0 };
}
function record(model, e) {
  model.byId.set(e.id, e);
  if (e.id > model.last) model.last = e.id;
}
async function ins(model, b, token, event, data) {
  const id = await insert(b, token, event, data);
  record(model, { id, event, data });
  return id;
}
const sortedIds = (model) => [...model.byId.keys()].sort((x, y) => x - y);
const idsAfter = (model, n) => sortedIds(model).filter((id) => id > n);
function snapshotIds(model, names) {
  const latest = new Map();
  for (const id of sortedIds(model)) {
    const e = model.byId.get(id);
    if (!names || names.includes(e.event)) latest.set(e.event, id);
  }
  return [...latest.values()].sort((x, y) => x - y);
}
const range = (from, to) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);

/** Every frame has the exact shape, and its name and compact data are what was inserted under its id. */
function assertFramesMatchModel(model, frames, what) {
  frames.forEach((f, i) => {
    assert.ok(f.exact, `${what}: frame ${i} has the exact shape: ${JSON.stringify(f.raw.slice(0, 200))}`);
    const e = model.byId.get(f.idNum);
    assert.ok(e, `${what}: frame ${i} has id ${f.idNum}, which was never acknowledged to an insert`);
    assert.equal(f.event, e.event, `${what}: event name of id ${f.idNum}`);
    assert.equal(f.data, JSON.stringify(e.data), `${what}: data of id ${f.idNum} (compact JSON of what was inserted)`);
  });
}

/** Frames of two subscribers carry the same bytes (retry: lines aside) for every id both received. */
function assertSameBytes(frames, refFrames, what) {
  const ref = new Map(refFrames.map((f) => [f.idNum, f.canonical]));
  let compared = 0;
  for (const f of frames) {
    if (!ref.has(f.idNum)) continue;
    assert.equal(f.canonical, ref.get(f.idNum), `${what}: frame of id ${f.idNum} differs between nodes`);
    compared++;
  }
  return compared;
}

/**
 * Open /sse on `b`, insert a marker through `via`, wait for it; returns the frames (stream closed).
 * `token` inserts the marker and opens the stream, unless opts.sseToken is given (undefined = none).
 */
async function framesUntilMarker(model, b, via, token, { sseToken = token, ...opts } = {}) {
  const sub = await openSSE(b, { token: sseToken, ...opts });
  assert.equal(sub.status, 200, `GET ${opts.path ?? '/sse'} on ${b.port}: ${sub.status} ${sub.body}`);
  try {
    const marker = await ins(model, via, token, 'marker', { marker: uniq('m') });
    await sub.waitId(marker, ms(20000));
    await sleep(100); // a late duplicate would show up here
    return { frames: sub.frames.slice(), marker };
  } finally {
    sub.close();
  }
}

async function clusterMetrics(b) {
  const m = await scrape(b);
  return {
    m,
    connected: m.value('broker_cluster_connected'),
    writable: m.value('broker_cluster_writable'),
    last: m.value('broker_cluster_stream_last_seq'),
    applied: m.value('broker_cluster_applied_seq'),
    lag: m.value('broker_cluster_replication_lag'),
    reconnects: m.value('broker_cluster_reconnects_total'),
    publishes: m.value('broker_cluster_publish_seconds_count'),
  };
}

/** Waits until `b` applied exactly `id` with no lag (its /metrics); returns the metrics. */
async function waitApplied(b, id, what, timeoutMs = ms(20000)) {
  let seen;
  try {
    await until(async () => {
      seen = await clusterMetrics(b);
      return seen.applied === id && seen.last === id && seen.lag === 0;
    }, timeoutMs, `${what}: applied == stream last == ${id}, lag 0`, 100);
  } catch (e) {
    assert.fail(`${what}: ${e.message}; last seen applied=${seen?.applied} stream_last=${seen?.last} lag=${seen?.lag}`);
  }
  return seen;
}

/** The leader of the events stream, from the monitoring endpoint of the server that leads it. */
async function streamLeader(nats) {
  for (let round = 0; round < 50; round++) {
    for (const s of nats.servers.filter((x) => x.running)) {
      try {
        const r = await fetch(`http://127.0.0.1:${s.monitorPort}/jsz?accounts=true&streams=true`,
          { signal: AbortSignal.timeout(2000) });
        const j = await r.json();
        const detail = (j.account_details ?? []).flatMap((a) => a.stream_detail ?? []).find((d) => d.name === STREAM);
        if (detail?.cluster?.leader === s.name) return s;
      } catch { /* try the next one */ }
    }
    await sleep(200);
  }
  throw new Error(`no server says it leads ${STREAM}`);
}

// ---------------------------------------------------------------------------------------------------

describe('cluster mode: refused configurations', () => {
  it('--cluster without --jwt_secret exits 2 with a one-line reason, before any connection', async () => {
    const db = tmpDir('broker-cli-db-');
    try {
      // Nothing listens on port 1: a node that tried to connect first would fail differently.
      const r = await runBroker(['--cluster=nats://127.0.0.1:1', `--db=${db}`, `--port=${await freePort()}`]);
      assert.equal(r.timedOut, false, 'still running after the guard timeout: it should refuse at once');
      assert.equal(r.code, 2, `exit code ${r.code} (signal ${r.signal}), want 2; stderr: ${r.stderr}`);
      const text = r.stderr.replace(/\n$/, '');
      assert.ok(text.length > 0 && !text.includes('\n'), `exactly one line on stderr, got:\n${r.stderr}`);
      assert.match(text, /jwt_secret/, `the reason names --jwt_secret: ${text}`);
    } finally {
      fs.rmSync(db, { recursive: true, force: true });
    }
  });

  it('nats-server 2.9 is refused at start, with a message naming the version; no stream is created', async () => {
    assert.ok(fs.existsSync(NATS_29), `no nats-server 2.9 at ${NATS_29}`);
    const nats = await startNats({ servers: 1, binary: NATS_29 });
    const db = tmpDir('broker-cli-db-');
    try {
      const r = await runBroker([`--cluster=${nats.urls}`, `--jwt_secret=${SECRET}`, `--db=${db}`,
        `--port=${await freePort()}`], { timeoutMs: ms(20000) });
      assert.equal(r.timedOut, false, `still running after ${ms(20000)} ms on a 2.9 server: it must refuse to start\n${r.stderr}`);
      assert.notEqual(r.code, 0, `exit code 0 on nats-server 2.9; stderr:\n${r.stderr}`);
      assert.equal(r.signal, null, `it exits, not crashes: signal ${r.signal}\n${r.stderr}`);
      assert.match(r.stderr, /2\.9/, `stderr names the version 2.9:\n${r.stderr}`);
      assert.match(r.stderr, /2\.10/, `stderr says what is needed (2.10):\n${r.stderr}`);
      const jsz = await (await fetch(`http://127.0.0.1:${nats.servers[0].monitorPort}/jsz`)).json();
      assert.equal(jsz.streams, 0, `refused before creating the stream or the bucket: ${jsz.streams} streams exist`);
    } catch (e) {
      nats.dump(30);
      throw e;
    } finally {
      fs.rmSync(db, { recursive: true, force: true });
      await nats.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------------

describe('cluster mode: one nats-server (1 replica), two nodes', () => {
  const env = { nats: null, nodes: [] };
  const model = makeModel();
  let user; // { username, password, jwt }

  before(async () => {
    env.nats = await startNats({ servers: 1 });
    await startNode(env);
    await startNode(env);
  });
  after(() => shutdown(env));

  clusterIt(env, 'users, ids, frames, snapshot, resume, ?events and tickets are the same on both nodes', async (t) => {
    const [A, B] = env.nodes;

    // Users: created on A, logs in on B; the name is taken on both.
    const username = uniq('c1');
    const password = `pw-${uniq('p')}`;
    for (const b of env.nodes) (b.opts.neverLog ??= []).push(password);
    const created = await createUser(A, username, password);
    assert.equal(created.status, 200, `POST /users on node A: ${created.status} ${created.text}`);
    assert.equal(created.json.username, username);
    const l = await login(B, username, password);
    assert.equal(l.status, 200, `a user created on node A logs in on node B: ${l.status} ${l.text}`);
    const payload = JSON.parse(Buffer.from(l.json.jwt.split('.')[1], 'base64url').toString());
    assert.equal(payload.sub, created.json.id, 'the token from node B names the user id node A created');
    assertJsonError(await createUser(B, username, 'another-password-1'), 409, 'the same username on node B');
    assertJsonError(await createUser(A, username, 'another-password-2'), 409, 'the same username again on node A');
    assertJsonError(await login(A, username, 'wrong-password-123'), 401, 'a wrong password on node A');
    user = { username, password, jwt: l.json.jwt };
    const tok = user.jwt;

    // A subscriber on each node, then inserts through both, sequential and concurrent.
    const subA = await openSSE(A, { token: tok });
    const subB = await openSSE(B, { token: tok });
    try {
      assert.equal(subA.status, 200, `GET /sse on A: ${subA.status} ${subA.body}`);
      assert.equal(subB.status, 200, `GET /sse on B: ${subB.status} ${subB.body}`);
      const names = ['alpha', 'beta', 'gamma', 'delta'];
      const values = [{ n: 1 }, 'text ü € 😀', [1, 2, { x: null }], 42, true, null, { nested: { deep: [1, 'a'] } }];
      for (let i = 0; i < 12; i++) {
        await ins(model, i % 2 ? B : A, tok, names[i % 4], { i, v: values[i % values.length] });
      }
      const batch = (node, k) => Array.from({ length: 20 }, (_, i) => ({ event: names[(i + k) % 4], data: { node: k, i } }));
      const [ra, rb] = await Promise.all([
        insertMany(A, tok, batch(A, 0), { concurrency: 4 }),
        insertMany(B, tok, batch(B, 1), { concurrency: 4 }),
      ]);
      for (const e of [...ra, ...rb]) record(model, e);
      const N = model.last;
      assertSameIds(sortedIds(model), range(1, N), 'the ids acknowledged by both nodes are the stream sequences 1..N');

      await subA.waitId(N, ms(20000));
      await subB.waitId(N, ms(20000));
      await sleep(100);
      assertSameIds(subA.ids, range(1, N), 'node A subscriber');
      assertSameIds(subB.ids, range(1, N), 'node B subscriber');
      assertFramesMatchModel(model, subA.frames, 'node A subscriber');
      assertFramesMatchModel(model, subB.frames, 'node B subscriber');
      assert.deepEqual(subB.frames.map((f) => f.canonical), subA.frames.map((f) => f.canonical),
        'both nodes sent byte-identical frames (retry: aside)');
      assert.equal(subA.frames[0].retry, '2000', 'the first frame carries the retry hint');

      // Snapshot on a third subscriber opened later on B (once B applied everything): the latest of
      // each name, with the same bytes as node A sent live.
      await waitApplied(B, N, 'node B before the snapshot');
      const snap = snapshotIds(model);
      const s1 = await framesUntilMarker(model, B, A, tok);
      assertSameIds(s1.frames.map((f) => f.idNum), [...snap, s1.marker], 'snapshot on node B, then a live marker inserted on A');
      assertFramesMatchModel(model, s1.frames, 'snapshot on node B');

      // Resume on the other node: a subscriber of node A that saw id k reconnects to node B.
      const k = subA.ids[Math.floor(N / 2)];
      const wantResume = idsAfter(model, k);
      const r1 = await framesUntilMarker(model, B, A, tok, { headers: { 'last-event-id': String(k) } });
      assertSameIds(r1.frames.map((f) => f.idNum), [...wantResume, r1.marker], `Last-Event-ID ${k} (seen on A) resumed on B`);
      assertFramesMatchModel(model, r1.frames, 'resume on node B');

      // ?events= on node B for events inserted on node A: snapshot and live.
      const fsnap = snapshotIds(model, ['alpha', 'gamma']);
      const fsub = await openSSE(B, { token: tok, path: '/sse?events=alpha,gamma' });
      try {
        assert.equal(fsub.status, 200, `GET /sse?events= on B: ${fsub.status} ${fsub.body}`);
        const live = [];
        for (const name of ['beta', 'alpha', 'delta', 'gamma', 'marker']) {
          const id = await ins(model, A, tok, name, { filtered: name });
          if (name === 'alpha' || name === 'gamma') live.push(id);
        }
        await fsub.waitId(live.at(-1), ms(20000));
        await sleep(200); // the beta/delta/marker inserted on A must not show up
        assertSameIds(fsub.ids, [...fsnap, ...live], '?events=alpha,gamma on B: latest alpha and gamma, then live alpha and gamma from A');
        assertFramesMatchModel(model, fsub.frames, '?events on node B');
      } finally { fsub.close(); }

      // A ticket taken on node A opens a stream on node B (tickets are stateless).
      const tr = await request(A, 'POST', '/sse/ticket', { token: tok });
      assert.equal(tr.status, 200, `POST /sse/ticket on A: ${tr.status} ${tr.text}`);
      await waitApplied(B, model.last, 'node B before the ticket stream');
      const tsnap = snapshotIds(model);
      const ts = await framesUntilMarker(model, B, A, tok, { sseToken: undefined, path: `/sse?ticket=${encodeURIComponent(tr.json.ticket)}` });
      assertSameIds(ts.frames.map((f) => f.idNum), [...tsnap, ts.marker], 'a ticket from node A on node B: snapshot then live');

      // The long-lived subscribers saw everything, the same bytes, still open.
      await subA.waitId(model.last, ms(20000));
      await subB.waitId(model.last, ms(20000));
      await sleep(100);
      assert.ok(!subA.ended && !subB.ended, `both streams are still open (A: ${subA.endReason}, B: ${subB.endReason})`);
      assertSameIds(subA.ids, range(1, model.last), 'node A subscriber, in the end');
      assertSameIds(subB.ids, range(1, model.last), 'node B subscriber, in the end');
      assert.deepEqual(subB.frames.map((f) => f.canonical), subA.frames.map((f) => f.canonical),
        'both nodes sent byte-identical frames, in the end');
      for (const f of [...s1.frames, ...r1.frames, ...ts.frames]) {
        assert.equal(f.canonical, subA.frames[f.idNum - 1].canonical, `id ${f.idNum}: the same bytes in a snapshot/resume on B as live on A`);
      }
      t.diagnostic(`${model.last} events, ${subA.frames.length} frames compared on each node`);
    } finally {
      subA.close();
      subB.close();
    }

    // /metrics: both nodes applied the last id, no lag, connected and writable.
    for (const [name, b] of [['A', A], ['B', B]]) {
      const m = await waitApplied(b, model.last, `node ${name} /metrics`);
      assert.equal(m.connected, 1, `node ${name}: broker_cluster_connected`);
      assert.equal(m.writable, 1, `node ${name}: broker_cluster_writable`);
      assert.equal(m.reconnects, 0, `node ${name}: broker_cluster_reconnects_total`);
      assert.ok(m.publishes >= 20, `node ${name}: broker_cluster_publish_seconds_count ${m.publishes} counts its inserts (>= 20)`);
    }
  });

  clusterIt(env, 'Idempotency-Key across nodes: the retry on the other node answers the same id, stored once', async () => {
    const [A, B] = env.nodes;
    const tok = user?.jwt ?? (await newUser(A, 'idem')).jwt;
    const post = (b, key, data) => request(b, 'POST', '/insert', { token: tok, json: { event: 'idem', data }, headers: { 'idempotency-key': key } });

    const key = uniq('key');
    const first = await post(A, key, { n: 1 });
    assert.equal(first.status, 200, `first insert with the key on A: ${first.status} ${first.text}`);
    assert.equal(first.headers['idempotent-replayed'], undefined, 'the first insert is not a replay');
    const again = await post(B, key, { n: 1 });
    assert.equal(again.status, 200, `retry with the key on B: ${again.status} ${again.text}`);
    assert.equal(again.json.id, first.json.id, `the retry on node B answers the id node A gave: ${again.text} vs ${first.text}`);
    assert.equal(again.headers['idempotent-replayed'], 'true', 'the retry carries Idempotent-Replayed: true');
    record(model, { id: first.json.id, event: 'idem', data: { n: 1 } });

    // Both nodes at once with a second key: one id, one stored event.
    const key2 = uniq('key');
    const both = await Promise.all([post(A, key2, { n: 2 }), post(B, key2, { n: 2 })]);
    for (const r of both) assert.equal(r.status, 200, `concurrent insert with one key: ${r.status} ${r.text}`);
    assert.equal(both[0].json.id, both[1].json.id, `one key on both nodes at once: one id (${both[0].text} / ${both[1].text})`);
    assert.equal(both.filter((r) => r.headers['idempotent-replayed'] === 'true').length, 1, 'exactly one of the two is a replay');
    record(model, { id: both[0].json.id, event: 'idem', data: { n: 2 } });

    // One stored event per key, on both nodes: resume from before the first shows exactly them.
    for (const [name, b, via] of [['A', A, B], ['B', B, A]]) {
      const want = idsAfter(model, first.json.id - 1); // the two, and the marker of the previous round
      const { frames, marker } = await framesUntilMarker(model, b, via, tok, { headers: { 'last-event-id': String(first.json.id - 1) } });
      assertSameIds(frames.map((f) => f.idNum), [...want, marker], `node ${name}: each key stored once`);
      assert.deepEqual(frames.filter((f) => f.event === 'idem').map((f) => f.idNum), [first.json.id, both[0].json.id],
        `node ${name}: one stored event per key`);
      assertFramesMatchModel(model, frames, `node ${name}`);
    }
  });

  clusterIt(env, 'a node whose --db was deleted rebuilds it from the stream: the same snapshot and resume from 0', async (t) => {
    const [A, B] = env.nodes;
    const tok = user?.jwt ?? (await newUser(A, 'rebuild')).jwt;
    for (let i = 0; i < 5; i++) await ins(model, A, tok, `rb${i % 2}`, { i });
    const last = model.last;
    await waitApplied(B, last, 'node B before the stop');

    await B.stop({ cleanup: false });
    fs.rmSync(B.db, { recursive: true, force: true });
    assert.ok(!fs.existsSync(B.db), 'the --db of node B is gone');
    // Inserted while node B is down: only the stream has them.
    for (let i = 0; i < 5; i++) await ins(model, A, tok, `rb${i % 3}`, { down: i });
    const t0 = Date.now();
    await B.start();
    await waitApplied(B, model.last, 'node B after its --db was deleted');
    t.diagnostic(`node B rebuilt ${model.last} events in ${Date.now() - t0} ms (start included)`);

    // The same snapshot on both nodes, then one marker: byte-identical.
    const snap = snapshotIds(model);
    const sa = await openSSE(A, { token: tok });
    const sb = await openSSE(B, { token: tok });
    try {
      const marker = await ins(model, A, tok, 'marker', { after: 'rebuild' });
      await sa.waitId(marker, ms(20000));
      await sb.waitId(marker, ms(20000));
      await sleep(100);
      assertSameIds(sb.ids, [...snap, marker], 'snapshot on the rebuilt node B, then live');
      assertSameIds(sa.ids, [...snap, marker], 'snapshot on node A, then live');
      assert.deepEqual(sb.frames.map((f) => f.canonical), sa.frames.map((f) => f.canonical), 'the same snapshot bytes on both nodes');
      assertFramesMatchModel(model, sb.frames, 'rebuilt node B snapshot');
    } finally { sa.close(); sb.close(); }

    // Resume from 0: the whole log, the same on both nodes.
    const ra = await framesUntilMarker(model, A, B, tok, { path: '/sse?lastEventId=0' });
    const rb = await framesUntilMarker(model, B, A, tok, { path: '/sse?lastEventId=0' });
    assertSameIds(rb.frames.map((f) => f.idNum), range(1, rb.marker), 'resume from 0 on the rebuilt node B: every id');
    assertSameIds(ra.frames.map((f) => f.idNum), range(1, ra.marker), 'resume from 0 on node A: every id');
    assertFramesMatchModel(model, rb.frames, 'resume from 0 on node B');
    const compared = assertSameBytes(rb.frames, ra.frames, 'resume from 0, node B vs node A');
    assert.equal(compared, ra.marker, 'every id of node A resume compared with node B');
  });
});

// ---------------------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------------------
// SPEC §5 in a cluster: users, roles, token versions and TOTP live in the users bucket, so an admin
// change on one node holds on every node, and a revocation closes the user's streams everywhere
// within a second.

describe('cluster mode: identity and access across nodes', () => {
  const ADMIN = 'cluster-admin-token-0123456789abcdef';
  const env = { nats: null, nodes: [], args: [`--admin_token=${ADMIN}`] };
  const admin = { headers: { authorization: `Bearer ${ADMIN}` } };
  let rulesDir;

  before(async () => {
    rulesDir = tmpDir('broker-rules-');
    fs.writeFileSync(`${rulesDir}/rules.json`, JSON.stringify({ rules: [
      { events: 'user.{user_id}.*', publish: 'self', subscribe: 'self' },
      { events: '*', publish: 'any', subscribe: 'any' },
    ] }));
    env.args.push(`--rules=${rulesDir}/rules.json`);
    env.nats = await startNats({ servers: 1 });
    await startNode(env);
    await startNode(env);
    for (const b of env.nodes) (b.opts.neverLog ??= []).push(ADMIN);
  });
  after(async () => {
    await shutdown(env);
    fs.rmSync(rulesDir, { recursive: true, force: true });
  });

  clusterIt(env, 'admin changes, revocation, password and TOTP made on one node hold on the other at once', async (t) => {
    const [A, B] = env.nodes;
    const username = uniq('cid');
    const password = 'cluster-identity-pw-1';
    for (const b of env.nodes) b.opts.neverLog.push(password, 'a-newer-cluster-pw-2');
    const created = await request(A, 'POST', '/admin/users', { ...admin, json: { username, password, roles: ['staff'] } });
    assert.equal(created.status, 200, created.text);
    const id = created.json.id;
    // Node B learns the user from the bucket's watch: the admin API there finds it.
    let seen;
    await until(async () => (seen = await request(B, 'GET', `/admin/users/${id}`, admin)).status === 200, ms(5000),
      'GET /admin/users/<id> on node B');
    assert.deepEqual(seen.json.roles, ['staff']);
    const page = await request(B, 'GET', '/admin/users?limit=1000', admin);
    assert.ok(page.json.users.some((u) => u.id === id), 'the user is in node B\'s list');
    const l = await login(B, username, password);
    assert.equal(l.status, 200, l.text);
    assert.deepEqual(JSON.parse(Buffer.from(l.json.jwt.split('.')[1], 'base64url')).roles, ['staff']);
    const jwt = l.json.jwt;

    // A private event inserted on A reaches the owner's stream on B, and no one else's.
    const other = await newUser(A, 'cother');
    const own = await openSSE(B, { token: jwt });
    const stranger = await openSSE(B, { token: other.jwt });
    try {
      assert.equal(own.status, 200);
      assert.equal(stranger.status, 200);
      const priv = await insert(A, jwt, `user.${id}.note`, { secret: true });
      const pub = await insert(A, other.jwt, 'public-marker', 1);
      await own.waitId(pub, ms(10000));
      await stranger.waitId(pub, ms(10000));
      assert.ok(own.ids.includes(priv), 'the owner sees its private event on the other node');
      assert.ok(!stranger.ids.includes(priv), 'a stranger never does');
      assertJsonError(await request(B, 'POST', '/insert', { token: other.jwt, json: { event: `user.${id}.note`, data: 1 } }),
        403, 'publishing into another user\'s names on node B');

      // Revoke on A: B's stream closes within a second, and B refuses the token.
      const t0 = performance.now();
      const r = await request(A, 'PATCH', `/admin/users/${id}`, { ...admin, json: { revoked: true } });
      assert.equal(r.status, 200, r.text);
      await own.waitFor((s) => s.ended, ms(3000), 'the stream on node B ends').catch(() => {});
      const closedAfter = performance.now() - t0;
      assert.ok(own.ended, 'the stream on node B ended');
      assert.equal(own.frames.at(-1)?.event, 'revoked', `the last frame on B is event:revoked: ${own.raw.slice(-200)}`);
      assert.ok(closedAfter < ms(1500), `closed on node B ${Math.round(closedAfter)} ms after the revocation on A`);
      let refused;
      await until(async () => (refused = await request(B, 'GET', '/users/me', { token: jwt })).status === 401, ms(1000),
        'node B refuses the old token');
      t.diagnostic(`revocation on node A: node B's stream closed after ${Math.round(closedAfter)} ms`);
      assertJsonError(await login(B, username, password), 403, 'login on node B of a user revoked on node A');
      assert.ok(!stranger.ended, 'the other user\'s stream stays open');
    } finally {
      own.close();
      stranger.close();
    }

    // Un-revoke on B; password change on A; the older token is refused on B.
    assert.equal((await request(B, 'PATCH', `/admin/users/${id}`, { ...admin, json: { revoked: false } })).status, 200);
    const l2 = await login(A, username, password);
    assert.equal(l2.status, 200, l2.text);
    const ch = await request(A, 'POST', '/users/me/password', { token: l2.json.jwt,
      json: { password, new_password: 'a-newer-cluster-pw-2' } });
    assert.equal(ch.status, 200, ch.text);
    await until(async () => (await request(B, 'GET', '/users/me', { token: l2.json.jwt })).status === 401, ms(1000),
      'node B refuses the token from before the password change');
    const l3 = await login(B, username, 'a-newer-cluster-pw-2');
    assert.equal(l3.status, 200, l3.text);

    // TOTP: enrol on A, confirm on B; a code used on A is a replay on B.
    const e = await request(A, 'POST', '/users/me/totp', { token: l3.json.jwt });
    assert.equal(e.status, 200, e.text);
    for (const b of env.nodes) b.opts.neverLog.push(e.json.secret);
    const c = await request(B, 'POST', '/users/me/totp/confirm', { token: l3.json.jwt, json: { code: totpCode(e.json.secret, { steps: -1 }) } });
    assert.equal(c.status, 200, c.text);
    const code = totpCode(e.json.secret);
    const withCode = (b, totp) => request(b, 'POST', '/login', { json: { username, password: 'a-newer-cluster-pw-2', totp } });
    assert.equal((await withCode(A, code)).status, 200, 'login on A with the current code');
    assertJsonError(await withCode(B, code), 401, 'the same code on node B (replay)');
    assertJsonError(await login(B, username, 'a-newer-cluster-pw-2'), 401, 'no code on node B');
  });
});

describe('cluster mode: three nats-servers (3 replicas), three nodes', () => {
  const env = { nats: null, nodes: [], args: ['--request_timeout=5'] };
  const model = makeModel();
  let user;
  let tok;

  before(async () => {
    env.nats = await startNats({ servers: 3 });
    for (let i = 0; i < 3; i++) await startNode(env);
    user = await newUser(env.nodes[0], 'r3');
    for (const b of env.nodes) (b.opts.neverLog ??= []).push(user.password);
    tok = user.jwt;
  });
  after(() => shutdown(env));

  clusterIt(env, '200 concurrent inserts over three nodes: every node streams the same gapless ids, byte for byte', async (t) => {
    const base = model.last;
    const subs = await Promise.all(env.nodes.map((b) => openSSE(b, { token: tok, headers: { 'last-event-id': String(base) } })));
    try {
      subs.forEach((s, i) => assert.equal(s.status, 200, `GET /sse on node ${i}: ${s.status} ${s.body}`));
      const N = 200;
      const items = Array.from({ length: N }, (_, i) => ({ event: `r${i % 5}`, data: { i, pad: 'x'.repeat(i % 13) } }));
      const per = env.nodes.map((_, k) => items.filter((_, i) => i % 3 === k));
      const t0 = Date.now();
      const results = await Promise.all(env.nodes.map((b, k) => insertMany(b, tok, per[k], { concurrency: 6 })));
      const took = Date.now() - t0;
      for (const e of results.flat()) record(model, e);
      assertSameIds(sortedIds(model).filter((id) => id > base), range(base + 1, base + N),
        'the acknowledged ids are contiguous stream sequences');
      for (const [i, s] of subs.entries()) await s.waitId(base + N, ms(30000)).catch((e) => assert.fail(`node ${i}: ${e.message}`));
      await sleep(200);
      subs.forEach((s, i) => {
        assertSameIds(s.ids, range(base + 1, base + N), `node ${i} subscriber: gapless, ordered, no duplicates`);
        assertFramesMatchModel(model, s.frames, `node ${i} subscriber`);
      });
      const ref = subs[0].frames.map((f) => f.canonical);
      for (let i = 1; i < subs.length; i++) {
        assert.deepEqual(subs[i].frames.map((f) => f.canonical), ref, `node ${i} sent the same bytes as node 0`);
      }
      t.diagnostic(`${N} inserts over 3 nodes in ${took} ms; ${subs.length} streams identical`);
    } finally {
      subs.forEach((s) => s.close());
    }
  });

  clusterIt(env, 'username race: 20 concurrent POST /users for one name over three nodes, exactly one 200', async () => {
    const username = uniq('race');
    const passwords = Array.from({ length: 20 }, (_, i) => `race-pw-${i}-${uniq('p')}`);
    for (const b of env.nodes) (b.opts.neverLog ??= []).push(...passwords);
    const answers = await Promise.all(passwords.map((pw, i) => createUser(env.nodes[i % 3], username, pw)));
    const statuses = answers.map((r) => r.status);
    const winners = answers.map((r, i) => (r.status === 200 ? i : -1)).filter((i) => i >= 0);
    assert.equal(winners.length, 1, `exactly one 200 among 20 racing creations; statuses ${JSON.stringify(statuses)}`);
    answers.forEach((r, i) => {
      if (i !== winners[0]) assertJsonError(r, 409, `creation ${i} on node ${i % 3} lost the race`);
    });
    // The winner's password is the one stored, on every node; a loser's is not.
    const w = winners[0];
    assert.equal(answers[w].json.username, username);
    for (const [k, b] of env.nodes.entries()) {
      const l = await login(b, username, passwords[w]);
      assert.equal(l.status, 200, `the winner (request ${w}) logs in on node ${k}: ${l.status} ${l.text}`);
    }
    const loser = (w + 1) % 20;
    assertJsonError(await login(env.nodes[0], username, passwords[loser]), 401, `a loser's password (request ${loser})`);
  });

  clusterIt(env, 'kill -9 of a node under load: its subscriber resumes on another node, nothing lost; the node catches up', async (t) => {
    const [A, B, C] = env.nodes;
    const base = await ins(model, B, tok, 'k4start', {});
    // The eventsource@4 subscriber of node A (from base: only this test's events).
    const rec = recordingEventSource(`${A.url}/sse?lastEventId=${base}`, { token: tok, names: ['k4'] });
    let sub2;
    const acked = [];
    const failures = [];
    let stop = false;
    const inserter = (async () => {
      for (let i = 0; i < 600 && !stop; i++) {
        const r = await request(B, 'POST', '/insert', { token: tok, json: { event: 'k4', data: { i } } });
        if (r.status === 200) {
          acked.push(r.json.id);
          record(model, { id: r.json.id, event: 'k4', data: { i } });
        } else {
          failures.push(`${r.status} ${r.text}`);
        }
        await sleep(5);
      }
    })();
    try {
      await until(() => rec.ids().length >= 40, ms(20000), 'node A subscriber: 40 live events');
      const killedAt = acked.length;
      await A.kill9();
      rec.close();
      const seenOnA = rec.ids();
      const lastSeen = seenOnA.at(-1);
      assertSameIds(seenOnA, range(base + 1, lastSeen), 'what the eventsource received from node A before the kill');

      // Reconnect to node C with the last id seen, while inserts go on through B.
      sub2 = await openSSE(C, { token: tok, headers: { 'last-event-id': String(lastSeen) } });
      assert.equal(sub2.status, 200, `GET /sse on node C: ${sub2.status} ${sub2.body}`);
      await until(() => acked.length >= killedAt + 60 || failures.length > 0, ms(30000), '60 more inserts through B');
      stop = true;
      await inserter;
      assert.deepEqual(failures, [], 'every insert through node B succeeded while node A was killed');
      const last = acked.at(-1);
      assertSameIds([...acked].sort((x, y) => x - y), range(base + 1, last), 'the acknowledged ids are contiguous');
      await sub2.waitId(last, ms(20000));
      await sleep(200);
      assertSameIds([...seenOnA, ...sub2.ids], range(base + 1, last),
        `node A (eventsource, up to ${lastSeen}) + node C (from Last-Event-ID ${lastSeen}): every acknowledged event once, in order`);
      assertFramesMatchModel(model, sub2.frames, 'node C resume');
      t.diagnostic(`${acked.length} inserts through B; node A killed after ${killedAt}; subscriber saw ${seenOnA.length} on A, ${sub2.ids.length} on C`);

      // Node A restarts on its --db and catches up; a new subscriber there resumes correctly.
      await A.start();
      await waitApplied(A, model.last, 'node A after the restart');
      const r = await framesUntilMarker(model, A, C, tok, { headers: { 'last-event-id': String(base) } });
      const want = idsAfter(model, base);
      assertSameIds(r.frames.map((f) => f.idNum), [...want.filter((id) => id < r.marker), r.marker], 'resume on the restarted node A');
      assertFramesMatchModel(model, r.frames, 'resume on the restarted node A');
      const compared = assertSameBytes(r.frames, sub2.frames, 'restarted node A vs node C');
      assert.equal(compared, sub2.frames.length, 'every frame node C sent was compared with node A');
    } finally {
      stop = true;
      rec.close();
      sub2?.close();
      await inserter.catch(() => {});
    }
  });

  clusterIt(env, 'kill -9 of JetStream servers under load: no acknowledged insert lost or duplicated; 503 without quorum; recovery', async (t) => {
    const nats = env.nats;
    const [P, Q, R] = env.nodes;
    const base = await ins(model, P, tok, 'k5start', {});
    await Promise.all(env.nodes.map((b, i) => waitApplied(b, base, `node ${i} before the test`)));
    const subs = await Promise.all(env.nodes.map((b) => openSSE(b, { token: tok, headers: { 'last-event-id': String(base) } })));
    subs.forEach((s, i) => assert.equal(s.status, 200, `GET /sse on node ${i}: ${s.status} ${s.body}`));
    const bad = []; // non-200 answers that are not 503 JSON with Retry-After
    const refused = []; // the 503s
    const acked = []; // { id, key, at }

    function check503(r, what) {
      try {
        assertJsonError(r, 503, what);
        assert.match(r.headers['retry-after'] ?? '', /^\d+$/, `${what}: Retry-After in seconds`);
      } catch (e) { bad.push(e.message); }
    }
    const postKeyed = (b, key, data) => request(b, 'POST', '/insert',
      { token: tok, json: { event: 'k5', data }, headers: { 'idempotency-key': key } });
    /** One logical insert: retried with its key until 200 (a 503 means "not known to be stored"). */
    async function insertKeyed(b, key, data, deadlineMs) {
      const deadline = Date.now() + deadlineMs;
      for (let attempt = 0; attempt < 10000; attempt++) {
        const r = await postKeyed(b, key, data);
        if (r.status === 200) {
          const e = { id: r.json.id, key, at: Date.now(), replayed: r.headers['idempotent-replayed'] === 'true' };
          acked.push(e);
          record(model, { id: e.id, event: 'k5', data });
          return e;
        }
        if (r.status === 503) refused.push(Date.now());
        check503(r, `insert ${key} attempt ${attempt}`);
        assert.deepEqual(bad, [], 'every non-200 answer is 503 JSON with Retry-After');
        if (Date.now() > deadline) assert.fail(`insert ${key}: no 200 within ${deadlineMs} ms (last ${r.status} ${r.text})`);
        await sleep(100);
      }
      throw new Error('unreachable');
    }

    try {
      // Phase 1: kill -9 the stream's leader under a stream of inserts through P.
      let n = 0;
      for (; n < 20; n++) await insertKeyed(P, `k5-${n}`, { n }, ms(10000));
      const leader = await streamLeader(nats);
      const killAt = Date.now();
      await leader.kill('SIGKILL');
      const afterKill = n;
      for (; n < afterKill + 40; n++) await insertKeyed(P, `k5-${n}`, { n }, ms(60000));
      const times = [killAt, ...acked.map((e) => e.at)].sort((x, y) => x - y);
      let maxGap = 0;
      for (let i = 1; i < times.length; i++) maxGap = Math.max(maxGap, times[i] - times[i - 1]);
      const firstAfter = acked[afterKill].at - killAt;
      t.diagnostic(`killed stream leader ${leader.name}: longest gap between successful inserts ${maxGap} ms, ` +
        `first 200 ${firstAfter} ms after the kill, ${refused.length} 503s on the way`);
      console.log(`# cluster failover: stream leader ${leader.name} killed, longest gap between successful inserts ${maxGap} ms, ` +
        `${refused.length} x 503`);

      const ids1 = acked.map((e) => e.id);
      assertSameIds(ids1, range(base + 1, base + ids1.length), 'acknowledged ids after the leader kill: contiguous, in order, each key once');
      for (const [i, s] of subs.entries()) await s.waitId(ids1.at(-1), ms(30000)).catch((e) => assert.fail(`node ${i}: ${e.message}`));
      await sleep(200);
      subs.forEach((s, i) => {
        assertSameIds(s.ids, ids1, `node ${i} subscriber during the failover: every acknowledged event exactly once`);
        assertFramesMatchModel(model, s.frames, `node ${i} subscriber`);
      });
      const full = await framesUntilMarker(model, Q, R, tok, { path: '/sse?lastEventId=0' });
      assertSameIds(full.frames.map((f) => f.idNum), range(1, full.marker), 'resume from 0 on node Q after the failover: the whole log');
      assertFramesMatchModel(model, full.frames, 'resume from 0 on node Q');
      const keysSeen = full.frames.filter((f) => f.event === 'k5').map((f) => JSON.parse(f.data).n);
      assert.deepEqual(keysSeen, range(0, n - 1), 'each logical insert (key) is stored exactly once, in order');

      // Phase 2: kill a second server: no quorum. /insert and /users 503 within --request_timeout (5 s).
      const second = nats.servers.find((s) => s.running);
      const noQuorumAt = Date.now();
      await second.kill('SIGKILL');
      // Every node's /healthz, polled from the kill on: when does each answer 503?
      const health = env.nodes.map(() => ({ r: null, after: null }));
      const healthPoll = Promise.all(env.nodes.map((b, i) => until(async () => {
        health[i].r = await request(b, 'GET', '/healthz');
        health[i].after = Date.now() - noQuorumAt;
        return health[i].r.status === 503;
      }, ms(15000), `node ${i} /healthz 503 without quorum`, 200)
        .catch((e) => assert.fail(`${e.message}: last ${health[i].r?.status} ${health[i].r?.text}`))));
      healthPoll.catch(() => {}); // awaited below; no unhandled rejection if a check fails first
      const slack = ms(2500);
      const qKeys = env.nodes.map((_, i) => `k5-q${i}`);
      const timed = async (fn) => { const t0 = Date.now(); const r = await fn(); return { r, took: Date.now() - t0 }; };
      const noQuorum = await Promise.all(env.nodes.map((b, i) => timed(() => postKeyed(b, qKeys[i], { q: i }))));
      noQuorum.forEach(({ r, took }, i) => {
        assertJsonError(r, 503, `insert on node ${i} without quorum`);
        assert.match(r.headers['retry-after'] ?? '', /^\d+$/, `insert on node ${i} without quorum: Retry-After`);
        assert.ok(took <= 5000 + slack, `insert on node ${i} without quorum answered in ${took} ms (want <= --request_timeout 5 s + ${slack} ms)`);
      });
      const users = await timed(() => createUser(Q, uniq('nq'), 'no-quorum-pw-123'));
      assertJsonError(users.r, 503, 'POST /users without quorum');
      assert.match(users.r.headers['retry-after'] ?? '', /^\d+$/, 'POST /users without quorum: Retry-After');
      assert.ok(users.took <= 5000 + slack, `POST /users without quorum answered in ${users.took} ms`);
      await healthPoll;
      health.forEach((h, i) => {
        assert.ok(h.after <= ms(8000), `node ${i}: /healthz answered 503 ${h.after} ms after quorum was lost (want a few seconds)`);
        assertJsonError(h.r, 503, `node ${i}: /healthz without quorum says why`);
      });
      // /login reads the user from any replica: it keeps working without quorum (a node whose server
      // died may answer 503 until it has reconnected to the survivor).
      const logins = [];
      for (const [i, b] of env.nodes.entries()) {
        let l;
        const t0 = Date.now();
        await until(async () => {
          l = await login(b, user.username, user.password);
          if (l.status !== 200) check503(l, `login on node ${i} without quorum`);
          return l.status === 200;
        }, ms(10000), `login on node ${i} without quorum`, 200).catch((e) => assert.fail(`${e.message}: last ${l?.status} ${l?.text}`));
        logins.push(Date.now() - t0);
      }
      assert.deepEqual(bad, [], 'every non-200 answer is 503 JSON with Retry-After');
      // Still no quorum, every node reconnected by now: /healthz stays 503, for that reason.
      const steady = await Promise.all(env.nodes.map((b) => request(b, 'GET', '/healthz')));
      steady.forEach((h, i) => assertJsonError(h, 503, `node ${i}: /healthz while quorum is still lost`));
      t.diagnostic(`no quorum: /insert 503 in ${noQuorum.map((x) => x.took).join('/')} ms, /users 503 in ${users.took} ms, ` +
        `/healthz 503 after ${health.map((h) => h.after).join('/')} ms (${[...new Set(health.map((h) => h.r.json?.error))].join('; ')}), ` +
        `then ${[...new Set(steady.map((h) => h.json?.error))].join('; ')}; /login 200 after ${logins.join('/')} ms`);
      subs.forEach((s, i) => assert.ok(!s.ended, `node ${i}: the open stream stays open without quorum (${s.endReason})`));

      // Phase 3: both servers back: inserts succeed again (the 503'd keys retried), streams go on.
      const restartAt = Date.now();
      await Promise.all([leader.restart(), second.restart()]);
      const back = await Promise.all(env.nodes.map((b, i) => insertKeyed(b, qKeys[i], { q: i }, ms(40000))));
      const recovery = Math.max(...back.map((e) => e.at)) - restartAt;
      t.diagnostic(`servers restarted: every node inserts again ${recovery} ms after the restart began`);
      assert.ok(recovery <= ms(30000), `inserts succeed again ${recovery} ms after the restart began (want 30 s at most)`);
      for (let i = 0; i < 6; i++) await insertKeyed(env.nodes[i % 3], `k5-after-${i}`, { after: i }, ms(10000));
      const all = idsAfter(model, base); // the keyed inserts and the marker of the resume from 0
      assert.equal(new Set(acked.map((e) => e.id)).size, acked.length, 'no two keys were answered the same id');
      assertSameIds(all, range(base + 1, model.last), 'every acknowledged id, contiguous: nothing stored twice or lost');
      for (const [i, s] of subs.entries()) await s.waitId(all.at(-1), ms(30000)).catch((e) => assert.fail(`node ${i}: ${e.message}`));
      await sleep(200);
      subs.forEach((s, i) => {
        assert.ok(!s.ended, `node ${i}: the stream that stayed open is still open (${s.endReason})`);
        assertSameIds(s.ids, all, `node ${i}: the stream that stayed open through the outage got every acknowledged event once`);
        assertFramesMatchModel(model, s.frames, `node ${i} stream after the outage`);
      });
      for (const [i, b] of env.nodes.entries()) {
        await until(async () => (await request(b, 'GET', '/healthz')).status === 200, ms(20000), `node ${i} /healthz 200 again`, 200);
        const m = await waitApplied(b, model.last, `node ${i} after the outage`);
        assert.equal(m.writable, 1, `node ${i}: broker_cluster_writable back to 1`);
        assert.equal(m.connected, 1, `node ${i}: broker_cluster_connected back to 1`);
      }
      assert.deepEqual(bad, [], 'every non-200 answer was 503 JSON with Retry-After');
    } finally {
      subs.forEach((s) => s.close());
      // Leave every server running for the shutdown of the nodes (restart() is a no-op when running).
      for (const s of nats.servers) if (!s.running) await s.restart().catch(() => {});
    }
  });
});
