// §2 POST /login under bursts: the password queue is bounded by time, not by a small count. A burst
// that the cores clear well within --request_timeout is served whole (plain HTTP and TLS, each login
// on a fresh connection); a flood far past it is refused at once with 503 + Retry-After, while the
// streams and inserts of other clients go on.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { withBroker, tmpDir } from './lib/broker.js';
import { insert, newUser, nodeRequest } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { scrape } from './lib/metrics.js';
import { makeCert } from './lib/tls.js';
import { ms } from './lib/config.js';
import fs from 'node:fs';

/** n logins at once, each on its own connection; resolves to [{ status, headers, json, took }]. */
function burst(b, u, n) {
  return Promise.all(Array.from({ length: n }, async () => {
    const start = performance.now();
    const r = await nodeRequest(b, 'POST', '/login', { json: { username: u.username, password: u.password }, timeoutMs: 60000 })
      .catch((e) => ({ status: `error ${e.message}` }));
    return { ...r, took: performance.now() - start };
  }));
}

function assertAllLoggedIn(results, what) {
  const statuses = {};
  for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
  assert.deepEqual(statuses, { 200: results.length }, `${what}: every login answers 200`);
  for (const r of results) assert.equal(typeof r.json?.jwt, 'string');
}

it('200 concurrent logins for one user on fresh connections all answer 200 (plain HTTP)', async () => {
  await withBroker({ args: ['--workers=2'] }, async (b) => {
    const u = await newUser(b, 'burst');
    const results = await burst(b, u, 200);
    assertAllLoggedIn(results, 'plain HTTP');
    const m = await scrape(b);
    assert.ok(m.value('broker_subscribers') === 0);
  });
});

it('200 concurrent logins over TLS, 200 fresh handshakes, all answer 200', async () => {
  const dir = tmpDir('broker-logins-tls-');
  try {
    await withBroker({ tls: makeCert(dir), args: ['--workers=2'] }, async (b) => {
      const u = await newUser(b, 'tlsburst');
      assertAllLoggedIn(await burst(b, u, 200), 'TLS');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

it('a flood far past the bound gets 503 + Retry-After at once; admitted logins succeed; streams and inserts go on', async () => {
  // --request_timeout=2: password work may wait at most 1.5 s, a few dozen logins on 2 workers.
  await withBroker({ args: ['--workers=2', '--request_timeout=2'], logLevel: 'info' }, async (b) => {
    const u = await newUser(b, 'flood');
    const sub = await openSSE(b, { token: u.jwt, keepRaw: false });
    try {
      const flood = burst(b, u, 600);
      // Meanwhile another client inserts and the subscriber receives every event.
      const ids = [];
      for (let i = 0; i < 20; i++) ids.push(await insert(b, u.jwt, 'during', { i }));
      await sub.waitId(ids.at(-1), ms(10000));
      assert.deepEqual(sub.ids, ids, 'the subscriber got every insert made during the flood, in order');
      const results = await flood;
      const ok = results.filter((r) => r.status === 200);
      const refused = results.filter((r) => r.status === 503);
      assert.equal(ok.length + refused.length, results.length,
        `only 200 or 503: ${JSON.stringify([...new Set(results.map((r) => r.status))])}`);
      assert.ok(ok.length >= 10, `the admitted logins succeed (${ok.length})`);
      assert.ok(refused.length >= 300, `most of a flood far past the bound is refused (${refused.length} of 600)`);
      for (const r of refused) {
        assert.match(r.headers['retry-after'] ?? '', /^[1-9]\d*$/, `Retry-After: ${JSON.stringify(r.headers)}`);
        assert.match(r.json?.error ?? '', /too many password operations/);
      }
      // Refused at once, not after queueing: faster than the admitted ones on average.
      const median = (xs) => xs.map((r) => r.took).sort((x, y) => x - y)[Math.floor(xs.length / 2)];
      assert.ok(median(refused) < median(ok), `a refusal (median ${Math.round(median(refused))} ms) comes sooner than a login (median ${Math.round(median(ok))} ms)`);
      // A retry after Retry-After seconds is served.
      const wait = Math.max(...refused.map((r) => Number(r.headers['retry-after'])));
      await new Promise((resolve) => setTimeout(resolve, wait * 1000));
      assertAllLoggedIn(await burst(b, u, 4), 'after Retry-After');
      b.assertAlive();
    } finally { sub.close(); }
  });
});
