// §2 Browser auth and CORS in a real browser: headless Chromium (playwright-core) loads a page from
// another loopback origin that logs in with fetch, takes a ticket, and opens a native EventSource on
// /sse?ticket=...; snapshot and live events must reach the DOM. Chromium is required: when it is
// missing this suite fails (scripts/deps.sh installs it).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import { chromium } from 'playwright-core';
import { withBroker, freePort, tmpDir } from './lib/broker.js';
import { insert, newUser } from './lib/http.js';
import { ms } from './lib/config.js';
import { sleep, withTimeout } from './lib/util.js';
import { scrape } from './lib/metrics.js';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// The page reads everything from its fragment (never sent to the page server): broker URL, credentials,
// the event names to listen for.
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>broker e2e</title></head>
<body>
<p id="status">starting</p>
<ol id="events"></ol>
<script>
(async () => {
  const params = new URLSearchParams(location.hash.slice(1));
  const broker = params.get('broker');
  const status = document.getElementById('status');
  const list = document.getElementById('events');
  const set = (s) => { status.textContent = s; };
  window.opens = 0;
  window.errors = 0;
  try {
    set('login');
    const l = await fetch(broker + '/login', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: params.get('u'), password: params.get('p') }),
    });
    if (l.status !== 200) throw new Error('login answered ' + l.status);
    const { jwt } = await l.json();
    set('ticket');
    const t = await fetch(broker + '/sse/ticket', { method: 'POST', headers: { Authorization: 'Bearer ' + jwt } });
    if (t.status !== 200) throw new Error('ticket answered ' + t.status);
    const { ticket } = await t.json();
    const es = new EventSource(broker + '/sse?ticket=' + encodeURIComponent(ticket));
    window.es = es;
    es.onopen = () => { window.opens++; set('open'); };
    es.onerror = () => { window.errors++; set('error (readyState ' + es.readyState + ')'); };
    window.unnamed = 0; // "message" events: a heartbeat must never make one
    es.onmessage = () => { window.unnamed++; };
    for (const name of params.get('names').split(',')) {
      es.addEventListener(name, (e) => {
        const li = document.createElement('li');
        li.textContent = e.type + '|' + e.lastEventId + '|' + e.data;
        list.appendChild(li);
      });
    }
  } catch (e) {
    set('failed: ' + e.message);
  }
})();
</script>
</body></html>`;

/** A static page server on its own loopback port (so the page is cross-origin to the broker). */
async function pageServer() {
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/' || req.url.startsWith('/?'))) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(PAGE);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  const port = await freePort();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

/** Headless Chromium with a fresh profile; fn(context); always closed and removed. */
async function withChromium(fn) {
  assert.ok(fs.existsSync(CHROMIUM), `Chromium is required for this suite and is missing at ${CHROMIUM} ` +
    '(scripts/deps.sh installs it: apt-get install chromium)');
  const profile = tmpDir('broker-chromium-');
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: ms(30000),
    });
    return await fn(context);
  } finally {
    if (context) await withTimeout(context.close(), ms(15000), 'closing Chromium').catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

async function openPage(context, pageOrigin, b, u, names) {
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  const hash = new URLSearchParams({ broker: b.url, u: u.username, p: u.password, names: names.join(',') });
  await page.goto(`${pageOrigin}/#${hash}`, { timeout: ms(15000) });
  return { page, problems };
}

const items = (page) => page.$$eval('#events li', (els) => els.map((e) => e.textContent));
const statusOf = (page) => page.textContent('#status');

async function waitItems(page, n, what) {
  try {
    await page.waitForFunction((k) => document.querySelectorAll('#events li').length >= k, n, { timeout: ms(20000) });
  } catch (e) {
    throw new Error(`${what}: ${n} events in the DOM not reached; status "${await statusOf(page)}", ` +
      `items ${JSON.stringify(await items(page))}: ${e.message}`);
  }
}

/** The common flow: snapshot events before, live events after, exact DOM contents. */
async function snapshotThenLive(b, u, page) {
  const exp = [];
  const add = async (event, data) => { exp.push(`${event}|${await insert(b, u.jwt, event, data)}|${JSON.stringify(data)}`); };
  await waitItems(page, 2, 'snapshot');
  await add('greeting', { text: 'live héllo 🎉' });
  await add('count', { n: 2 });
  await waitItems(page, 4, 'live');
  return exp;
}

describe('a real browser (headless Chromium), cross-origin page, native EventSource with a ticket', () => {
  it('--origin=<page origin>, --heartbeat=1: snapshot and live events reach the DOM, heartbeats dispatch nothing; a page from another origin is refused by CORS', async () => {
    const site = await pageServer();
    const stranger = await pageServer(); // same page, but an origin the broker does not allow
    try {
      await withBroker({ args: [`--origin=${site.origin}`, '--heartbeat=1'] }, async (b) => {
        const u = await newUser(b, 'browser');
        const names = ['greeting', 'count'];
        const s1 = await insert(b, u.jwt, 'count', { n: 1 });
        const s2 = await insert(b, u.jwt, 'greeting', { text: 'snapshot' });
        await withChromium(async (context) => {
          const { page, problems } = await openPage(context, site.origin, b, u, names);
          await waitItems(page, 2, 'snapshot');
          await sleep(2500); // heartbeats on an idle stream
          const live = await snapshotThenLive(b, u, page);
          await sleep(2500);
          assert.deepEqual(await items(page), [`count|${s1}|{"n":1}`, `greeting|${s2}|{"text":"snapshot"}`, ...live]);
          assert.equal(await page.evaluate(() => window.unnamed), 0, 'no "message" event from a heartbeat');
          assert.ok((await scrape(b)).count('broker_heartbeats_total') >= 2, 'heartbeats were sent');
          assert.equal(await statusOf(page), 'open');
          assert.deepEqual(problems, []);

          const other = await openPage(context, stranger.origin, b, u, names);
          await other.page.waitForFunction(() => document.getElementById('status').textContent.startsWith('failed'),
            null, { timeout: ms(15000) }).catch(() => {});
          const st = await statusOf(other.page);
          assert.match(st, /^failed/, `the browser refuses a cross-origin login from ${stranger.origin} (status "${st}")`);
          assert.deepEqual(await items(other.page), [], 'no events for the refused origin');
        });
      });
    } finally {
      await site.close();
      await stranger.close();
    }
  });

  it('--origin=*: snapshot and live reach the DOM, and the browser reconnects by itself after a restart with no gap', async () => {
    const site = await pageServer();
    try {
      await withBroker({ args: ['--origin=*'] }, async (b) => {
        const u = await newUser(b, 'browser2');
        const names = ['greeting', 'count'];
        const s1 = await insert(b, u.jwt, 'greeting', { text: 'snapshot' });
        const s2 = await insert(b, u.jwt, 'count', { n: 1 });
        await withChromium(async (context) => {
          const { page, problems } = await openPage(context, site.origin, b, u, names);
          const live = await snapshotThenLive(b, u, page);
          const want = [`greeting|${s1}|{"text":"snapshot"}`, `count|${s2}|{"n":1}`, ...live];
          assert.deepEqual(await items(page), want);

          await b.stop({ cleanup: false });
          await b.start(); // same --db, port and secret: the ticket is still valid
          for (let n = 3; n <= 4; n++) want.push(`count|${await insert(b, u.jwt, 'count', { n })}|{"n":${n}}`);
          try {
            await page.waitForFunction(() => window.opens >= 2, null, { timeout: ms(20000) });
          } catch (e) {
            throw new Error(`the native EventSource did not reconnect (status "${await statusOf(page)}"): ${e.message}`);
          }
          want.push(`greeting|${await insert(b, u.jwt, 'greeting', { text: 'after' })}|{"text":"after"}`);
          await waitItems(page, want.length, 'after the restart');
          assert.deepEqual(await items(page), want, 'no gap, no duplicate across the reconnection');
          assert.deepEqual(problems, []);
        });
      });
    } finally {
      await site.close();
    }
  });
});
