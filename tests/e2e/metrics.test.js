// §2 Operations: GET /metrics in the Prometheus text format; the counters move with the traffic.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { withBroker, tmpDir } from './lib/broker.js';
import { insert, newUser, request, nodeRequest, createUser, login } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { scrape } from './lib/metrics.js';
import { until } from './lib/streams.js';
import { ms } from './lib/config.js';
import { uniq, sleep } from './lib/util.js';

const FAMILIES = {
  broker_subscribers: 'gauge',
  broker_resident_memory_bytes: 'gauge',
  broker_connections_accepted_total: 'counter',
  broker_events_inserted_total: 'counter',
  broker_events_delivered_total: 'counter',
  broker_slow_consumer_disconnects_total: 'counter',
  broker_slow_consumer_conflations_total: 'counter',
  broker_heartbeats_total: 'counter',
  broker_http_requests_total: 'counter',
  broker_store_commit_seconds: 'histogram',
};

const req = (route, status) => ({ route, status: String(status) });

it('exposition format: every family has HELP and TYPE, histogram buckets are cumulative', async () => {
  await withBroker({}, async (b) => {
    const m = await scrape(b);
    for (const [name, type] of Object.entries(FAMILIES)) {
      assert.equal(m.type.get(name), type, `# TYPE ${name} ${type}`);
      assert.ok(m.help.get(name)?.length > 0, `# HELP ${name}`);
    }
    for (const s of m.samples) {
      assert.ok(Number.isFinite(s.value) || s.value === Infinity, `${s.name} value ${s.value}`);
      const family = s.name.replace(/_(bucket|sum|count)$/, '');
      assert.ok(m.type.has(s.name) || m.type.has(family), `sample ${s.name} belongs to a declared family`);
    }
    assert.equal(m.value('broker_subscribers'), 0);
    assert.ok(m.value('broker_resident_memory_bytes') > 1024 * 1024, 'RSS in bytes');
    const rssKb = b.memory().rss;
    const rss = m.value('broker_resident_memory_bytes') / 1024;
    assert.ok(rss > rssKb / 2 && rss < rssKb * 2, `broker_resident_memory_bytes (${rss} KiB) ~ VmRSS (${rssKb} KiB)`);
    const buckets = m.samples.filter((s) => s.name === 'broker_store_commit_seconds_bucket');
    assert.ok(buckets.length >= 2, 'histogram buckets');
    assert.equal(buckets.at(-1).labels.le, '+Inf');
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(Number(buckets[i].labels.le) > Number(buckets[i - 1].labels.le) || buckets[i].labels.le === '+Inf', 'ascending le');
      assert.ok(buckets[i].value >= buckets[i - 1].value, 'cumulative buckets');
    }
    assert.equal(buckets.at(-1).value, m.value('broker_store_commit_seconds_count'), '+Inf bucket == count');
    assert.ok(m.value('broker_store_commit_seconds_sum') >= 0);
  });
});

it('counters move as expected: requests by route and status, inserted, delivered, subscribers up and down, commits, connections', async () => {
  await withBroker({}, async (b) => {
    const u = await newUser(b, 'metrics');
    const m0 = await scrape(b);

    // Requests by route and status.
    const name = uniq('m');
    assert.equal((await createUser(b, name, 'password-123')).status, 200);
    assert.equal((await createUser(b, name, 'password-123')).status, 409);
    assert.equal((await login(b, name, 'wrong-password')).status, 401);
    assert.equal((await login(b, name, 'password-123')).status, 200);
    assert.equal((await request(b, 'POST', '/insert', { json: { event: 'x', data: 1 } })).status, 401);
    assert.equal((await request(b, 'POST', '/insert', { token: u.jwt, body: '{', headers: { 'content-type': 'application/json' } })).status, 400);
    assert.equal((await request(b, 'GET', '/nope')).status, 404);
    assert.equal((await request(b, 'GET', '/insert')).status, 405);
    const unauth = await openSSE(b, {});
    assert.equal(unauth.status, 401);
    assert.equal((await request(b, 'POST', '/sse/ticket', { token: u.jwt })).status, 200);
    assert.equal((await request(b, 'GET', '/healthz')).status, 200);

    // Inserts, each its own commit (sequential), then two subscribers and live deliveries.
    const N = 5;
    const ids = [];
    for (let i = 0; i < N; i++) ids.push(await insert(b, u.jwt, `n${i % 2}`, { i }));
    const m1 = await scrape(b);
    const d = (m, name, labels) => m.count(name, labels) - m0.count(name, labels);
    assert.equal(d(m1, 'broker_http_requests_total', req('/users', 200)), 1, '/users 200');
    assert.equal(d(m1, 'broker_http_requests_total', req('/users', 409)), 1, '/users 409');
    assert.equal(d(m1, 'broker_http_requests_total', req('/login', 401)), 1, '/login 401');
    assert.equal(d(m1, 'broker_http_requests_total', req('/login', 200)), 1, '/login 200');
    assert.equal(d(m1, 'broker_http_requests_total', req('/insert', 401)), 1, '/insert 401');
    assert.equal(d(m1, 'broker_http_requests_total', req('/insert', 400)), 1, '/insert 400');
    assert.equal(d(m1, 'broker_http_requests_total', req('/insert', 200)), N, '/insert 200');
    assert.equal(d(m1, 'broker_http_requests_total', req('/sse', 401)), 1, '/sse 401');
    assert.equal(d(m1, 'broker_http_requests_total', req('/sse/ticket', 200)), 1, '/sse/ticket 200');
    assert.equal(d(m1, 'broker_http_requests_total', req('/healthz', 200)), 1, '/healthz 200');
    assert.ok(d(m1, 'broker_http_requests_total', req('/metrics', 200)) >= 1, 'the first scrape is counted');
    const other = m1.samples.filter((s) => s.name === 'broker_http_requests_total' && s.labels.status === '404')
      .reduce((a, s) => a + s.value, 0) - m0.samples.filter((s) => s.name === 'broker_http_requests_total' && s.labels.status === '404')
      .reduce((a, s) => a + s.value, 0);
    assert.equal(other, 1, 'one 404 (GET /nope)');
    const allRequests = (m) => m.samples.filter((s) => s.name === 'broker_http_requests_total').reduce((a, s) => a + s.value, 0);
    assert.ok(allRequests(m1) - allRequests(m0) >= 12 + N, 'every request is counted somewhere');
    assert.equal(d(m1, 'broker_events_inserted_total'), N, 'broker_events_inserted_total');
    const commits = d(m1, 'broker_store_commit_seconds_count');
    assert.ok(commits >= 1 && commits <= N + 2, `commit histogram count moved by ${commits} for ${N} inserts + 1 user`);
    assert.ok(d(m1, 'broker_store_commit_seconds_bucket', { le: '+Inf' }) === commits);
    assert.equal(m1.value('broker_last_event_id'), ids.at(-1), 'broker_last_event_id');

    // Subscribers gauge up and down; delivered = exactly the frames the subscribers received.
    const sA = await openSSE(b, { token: u.jwt, keepRaw: false });
    const sB = await openSSE(b, { token: u.jwt, keepRaw: false, path: `/sse?lastEventId=${ids[1]}` });
    try {
      await until(async () => (await scrape(b)).value('broker_subscribers') === 2, ms(10000), 'broker_subscribers == 2');
      const live = [];
      for (let i = 0; i < 3; i++) live.push(await insert(b, u.jwt, 'live', { i }));
      await sA.waitId(live.at(-1), ms(10000));
      await sB.waitId(live.at(-1), ms(10000));
      const received = sA.frames.length + sB.frames.length;
      assert.equal(received, 2 + 3 + (N - 2) + 3, 'snapshot (2 names) + live for A; resume + live for B');
      const m2 = await until(async () => {
        const m = await scrape(b);
        return d(m, 'broker_events_delivered_total') === received ? m : null;
      }, ms(5000), `broker_events_delivered_total to move by exactly the ${received} frames received`);
      assert.equal(d(m2, 'broker_events_inserted_total'), N + 3);
      assert.equal(d(m2, 'broker_http_requests_total', req('/sse', 200)), 2, '/sse 200 counted when the streams start');
      sA.close();
      await until(async () => (await scrape(b)).value('broker_subscribers') === 1, ms(10000), 'broker_subscribers back to 1');
      sB.close();
      await until(async () => (await scrape(b)).value('broker_subscribers') === 0, ms(10000), 'broker_subscribers back to 0');
    } finally {
      sA.close();
      sB.close();
    }

    // Connections: K fresh connections (no keep-alive) are K accepts at least.
    const c0 = (await scrape(b)).value('broker_connections_accepted_total');
    for (let i = 0; i < 5; i++) assert.equal((await nodeRequest(b, 'GET', '/healthz')).status, 200);
    const c1 = (await scrape(b)).value('broker_connections_accepted_total');
    assert.ok(c1 - c0 >= 5, `broker_connections_accepted_total moved by ${c1 - c0} for 5 new connections (+ scrapes)`);
    assert.ok(c1 - c0 <= 5 + 2, `... and not by more than the connections made (${c1 - c0})`);
  });
});

// Disk full needs a small filesystem of its own: a tmpfs, which only a privileged (root) run can mount.
function mountTmpfs(sizeMb) {
  const dir = tmpDir('broker-full-');
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'tmpfs', dir], { stdio: 'pipe', timeout: 10000 });
  } catch (e) {
    fs.rmSync(dir, { recursive: true, force: true });
    return { error: `${e.message}`.split('\n')[0] };
  }
  return {
    dir,
    unmount: () => {
      try {
        execFileSync('umount', [dir], { stdio: 'pipe', timeout: 10000 });
      } catch {
        try { execFileSync('umount', ['-l', dir], { stdio: 'pipe', timeout: 10000 }); } catch { /* nothing more to do */ }
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

it('disk full: the insert is refused and nothing is stored or published, /healthz 503 then 200 again, failures counted', async (t) => {
  const fsys = mountTmpfs(8);
  if (fsys.error) {
    t.skip(`cannot mount a tmpfs here (needs root): ${fsys.error}`);
    return;
  }
  try {
    await withBroker({ db: path.join(fsys.dir, 'db'), logLevel: 'info' }, async (b) => {
      const u = await newUser(b, 'full');
      const first = await insert(b, u.jwt, 'f', { before: true });
      const sub = await openSSE(b, { token: u.jwt });
      try {
        await sub.waitId(first, ms(10000));
        const m0 = await scrape(b);
        // Fill the filesystem, leaving less than one event's worth.
        const st = fs.statfsSync(fsys.dir);
        const ballast = path.join(fsys.dir, 'ballast');
        fs.writeFileSync(ballast, Buffer.alloc(Math.max(0, st.bavail * st.bsize - 16 * 1024)));
        const pad = 'x'.repeat(64 * 1024);
        let refused;
        for (let i = 0; i < 20 && !refused; i++) {
          const r = await request(b, 'POST', '/insert', { token: u.jwt, json: { event: 'f', data: { i, pad } } });
          if (r.status !== 200) refused = r;
        }
        assert.ok(refused, 'an insert fails once the disk is full');
        // SPEC §2: 503 with Retry-After when the store cannot take writes for now.
        assert.equal(refused.status, 503, `full disk: ${refused.status} ${refused.text}`);
        assert.match(refused.headers['retry-after'] ?? '', /^[1-9]\d*$/, `Retry-After on the full-disk 503: ${JSON.stringify(refused.headers)}`);
        assert.equal(typeof refused.json?.error, 'string', `JSON error: ${refused.text}`);
        // A user is a small row: it may still fit in what the failed insert left, so try a few.
        let userRefused;
        for (let i = 0; i < 40 && !userRefused; i++) {
          const r = await request(b, 'POST', '/users', { json: { username: `full-disk-${i}-${'n'.repeat(100)}`, password: 'password-123' } });
          if (r.status !== 200) userRefused = r;
        }
        assert.equal(userRefused?.status, 503, `POST /users on a full disk: ${userRefused?.status} ${userRefused?.text}`);
        assert.match(userRefused.headers['retry-after'] ?? '', /^[1-9]\d*$/, 'Retry-After on the /users 503');
        const h = await request(b, 'GET', '/healthz');
        assert.equal(h.status, 503, `/healthz while commits fail: ${h.status} ${h.text}`);
        assert.match(h.headers['retry-after'] ?? '', /^[1-9]\d*$/, 'Retry-After on the /healthz 503');
        assert.equal(h.json?.status, 'unavailable', h.text);
        const m1 = await scrape(b);
        assert.ok(m1.value('broker_store_commit_failures_total') > m0.value('broker_store_commit_failures_total'),
          'broker_store_commit_failures_total moved');
        assert.equal(m1.count('broker_http_requests_total', req('/healthz', 503)) - m0.count('broker_http_requests_total', req('/healthz', 503)), 1);

        fs.rmSync(ballast); // space is back: the writer's probe brings /healthz back by itself
        const h2 = await until(async () => {
          const r = await request(b, 'GET', '/healthz');
          return r.status === 200 ? r : null;
        }, ms(10000), '/healthz back to 200 once writes succeed again');
        assert.deepEqual(h2.json, { status: 'ok' });
        const after = await insert(b, u.jwt, 'f', { after: true });
        await sub.waitId(after, ms(10000));
        await sleep(50);
        // Only acknowledged events were published, and only they are in the store.
        assert.deepEqual(sub.frames.map((f) => f.data), ['{"before":true}', '{"after":true}'], 'nothing published for the refused insert(s)');
        const replay = await openSSE(b, { token: u.jwt, path: '/sse?lastEventId=0' });
        try {
          await replay.waitId(after, ms(10000));
          await sleep(50);
          assert.deepEqual(replay.frames.map((f) => f.data), ['{"before":true}', '{"after":true}'], 'nothing stored for the refused insert(s)');
        } finally { replay.close(); }
      } finally { sub.close(); }
    });
  } finally {
    fsys.unmount();
  }
});
