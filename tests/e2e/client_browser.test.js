// The clients in a real browser (headless Chromium, pages served from another loopback origin than
// the broker's, modules straight from clients/ and React's UMD builds from node_modules): the unit
// suite of clients/js in the page; @broker/client on the native EventSource across ticket renewals
// and a broker restart, nothing lost; @broker/react's useBroker in StrictMode, subscribing after a
// login, rendering snapshot and live state, inserting from a click, and closing its stream on unmount.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { EventSource } from 'eventsource';
import { createBroker } from '../../clients/js/index.js';
import { tests as unitTests } from '../../clients/js/test/unit.js';
import { withBroker } from './lib/broker.js';
import { insert, newUser } from './lib/http.js';
import { serveStatic } from './lib/static.js';
import { withChromium, newPage } from './lib/chromium.js';
import { scrape } from './lib/metrics.js';
import { assertSameIds } from './lib/streams.js';
import { REPO, ms, SLOW } from './lib/config.js';
import { sleep } from './lib/util.js';

const E2E = path.join(REPO, 'tests', 'e2e');
let site;
before(async () => {
  site = await serveStatic({
    dirs: {
      '/clients/': path.join(REPO, 'clients'),
      '/pages/': path.join(E2E, 'pages'),
      '/vendor/react/': path.join(E2E, 'node_modules', 'react', 'umd'),
      '/vendor/react-dom/': path.join(E2E, 'node_modules', 'react-dom', 'umd'),
    },
  });
});
after(() => site?.close());

const hashOf = (params) => `#${new URLSearchParams(params)}`;

async function waitFor(page, fn, arg, what) {
  try {
    await page.waitForFunction(fn, arg, { timeout: ms(15000) });
  } catch (e) {
    const status = await page.textContent('#status').catch(() => '?');
    throw new Error(`${what} (status "${status}"): ${e.message}`);
  }
}

describe('clients in headless Chromium', () => {
  it('the unit suite of clients/js passes in the page', async () => {
    await withChromium(async (browser) => {
      const { page, problems } = await newPage(await browser.newContext());
      await page.goto(`${site.origin}/pages/unit.html`, { timeout: ms(15000) });
      await page.waitForFunction(() => window.unitResults, null, { timeout: ms(30000) });
      const results = await page.evaluate(() => window.unitResults);
      const failed = results.filter((r) => !r.ok);
      assert.deepEqual(failed, [], 'every unit test passes in Chromium');
      assert.deepEqual(results.map((r) => r.name), unitTests.map((t) => t.name), 'the whole suite ran');
      assert.deepEqual(problems, []);
    });
  });

  it('@broker/client on the native EventSource: snapshot, live, two ticket renewals and a restart, nothing lost or repeated', async () => {
    const ttl = 2 * SLOW;
    await withBroker({ args: [`--origin=${site.origin}`, `--ticket_ttl=${ttl}`] }, async (b) => {
      const u = await newUser(b, 'page');
      const want = [await insert(b, u.jwt, 'ev', { n: 0 }), await insert(b, u.jwt, 'other', 'x')];
      await withChromium(async (browser) => {
        const { page, problems } = await newPage(await browser.newContext());
        await page.goto(`${site.origin}/pages/client.html${hashOf({ broker: b.url, u: u.username, p: u.password, events: 'ev,other' })}`,
          { timeout: ms(15000) });
        await waitFor(page, () => document.getElementById('status').textContent === 'live', null, 'live');
        await waitFor(page, (n) => window.events.length >= n, 2, 'the snapshot');
        // Inserts over three ticket lifetimes: the client swaps to a fresh ticket before each ends.
        const until = Date.now() + ttl * 2500;
        for (let n = 1; Date.now() < until; n++) {
          want.push(await insert(b, u.jwt, 'ev', { n }));
          await sleep(200);
        }
        await waitFor(page, (id) => window.events.some((e) => e.id === id), want.at(-1), 'events across ticket renewals');
        const tickets = await page.evaluate(() => window.tickets);
        assert.ok(tickets >= 3, `a fresh ticket before each one ran out (${tickets} taken)`);

        await b.stop({ cleanup: false });
        await b.start();
        want.push(await insert(b, u.jwt, 'ev', { n: 'after restart' }));
        want.push(await insert(b, u.jwt, 'other', 'y'));
        await waitFor(page, (id) => window.events.some((e) => e.id === id), want.at(-1), 'events after the restart');
        await sleep(100);
        const got = await page.evaluate(() => window.events);
        assertSameIds(got.map((e) => e.id), want, 'every event once, in order');
        assert.deepEqual(JSON.parse(await page.textContent('#state')), { ev: { n: 'after restart' }, other: 'y' }, 'the state rendered');
        const statuses = await page.evaluate(() => window.statuses);
        assert.ok(statuses.includes('reconnecting') && statuses.at(-1) === 'live' && !statuses.includes('stopped'),
          `statuses: ${statuses}`);
        assert.deepEqual(problems, []);
      });
    });
  });

  it('@broker/react useBroker: stopped before login, then snapshot, live, an insert from a click, and the stream closed on unmount', async () => {
    await withBroker({ args: [`--origin=${site.origin}`] }, async (b) => {
      const u = await newUser(b, 'react');
      await insert(b, u.jwt, 'count', { n: 4 });
      await insert(b, u.jwt, 'note', 'snapshot');
      await insert(b, u.jwt, 'unrelated', 1);
      // A Node client follows the same names, to see what the page inserts.
      const watcher = createBroker({ url: b.url, EventSource });
      watcher.setToken(u.jwt);
      const seen = [];
      const sub = watcher.subscribe({ events: ['count'], onEvent: (e) => seen.push(e.data.n) });
      try {
        await withChromium(async (browser) => {
          const { page, problems } = await newPage(await browser.newContext());
          await page.goto(`${site.origin}/pages/react.html${hashOf({ broker: b.url, u: u.username, p: u.password })}`,
            { timeout: ms(15000) });
          await waitFor(page, () => document.getElementById('status')?.textContent === 'stopped', null, 'rendered, not logged in');
          assert.equal(await page.textContent('#count'), '0');
          await page.evaluate(() => window.login());
          await waitFor(page, () => document.getElementById('status').textContent === 'live', null, 'live after login');
          await waitFor(page, () => document.getElementById('count').textContent === '4', null, 'the snapshot rendered');
          assert.equal(await page.textContent('#note'), 'snapshot');

          await insert(b, u.jwt, 'note', 'live héllo 🎉');
          await waitFor(page, () => document.getElementById('note').textContent === 'live héllo 🎉', null, 'a live event rendered');
          await page.click('#inc');
          await waitFor(page, () => document.getElementById('count').textContent === '5', null, 'the click inserted, the stream brought it back');
          await page.click('#inc');
          await waitFor(page, () => document.getElementById('count').textContent === '6', null, 'again');
          const deadline = Date.now() + ms(10000);
          while (!seen.includes(6) && Date.now() < deadline) await sleep(20);
          assert.deepEqual(seen, [4, 5, 6], 'the page\'s inserts reached another subscriber');
          assert.equal(await page.evaluate(() => window.insertError), undefined);

          // StrictMode opened and closed one subscription, so one stream of the page's plus the watcher's.
          assert.equal((await scrape(b)).value('broker_subscribers'), 2, 'one stream for the mounted hook');
          await page.evaluate(() => window.unmount());
          const until = Date.now() + ms(5000);
          let subs;
          while ((subs = (await scrape(b)).value('broker_subscribers')) !== 1 && Date.now() < until) await sleep(50);
          assert.equal(subs, 1, 'unmounting closed the page\'s stream');
          assert.ok(await page.evaluate(() => window.renders) < 40, 'renders stay bounded');
          assert.deepEqual(problems, []);
        });
      } finally {
        sub.stop();
      }
    });
  });
});
