// The shared-form demo (examples/forms, `make demo`) in headless Chromium: the real broker with the
// example's rules file and --origin set to the page's server (examples/forms/serve.mjs), two users
// in two browser contexts. Each sees the other's shared edits within a second, neither sees the
// other's private draft (not in the page, and the broker refuses it to a direct client too), and a
// second tab of the same user shows the shared state and its own draft. Screenshots go to
// $BROKER_SCREENSHOTS or a fresh directory under the OS temp dir (printed), never into the tree.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { EventSource } from 'eventsource';
import { startServer } from '../../examples/forms/serve.mjs';
import { createBroker } from '../../clients/js/index.js';
import { withBroker, freePort } from './lib/broker.js';
import { withChromium, newPage } from './lib/chromium.js';
import { REPO, ms } from './lib/config.js';
import { sleep, uniq } from './lib/util.js';

const RULES = path.join(REPO, 'examples', 'forms', 'rules');

function screenshotDir() {
  const dir = process.env.BROKER_SCREENSHOTS;
  if (dir) {
    fs.mkdirSync(dir, { recursive: true });
    return dir;
  }
  return fs.mkdtempSync(path.join(os.tmpdir(), 'broker-demo-screenshots-'));
}

/** A new browser context (its own user) with the demo open and signed in. */
async function signIn(browser, url, who) {
  const context = await browser.newContext({ viewport: { width: 900, height: 900 } });
  const tab = await openTab(context, url, who);
  return { context, ...tab };
}

async function openTab(context, url, who) {
  const { page, problems } = await newPage(context);
  await page.goto(url, { timeout: ms(15000) });
  await page.fill('#username', who.username);
  await page.fill('#password', who.password);
  await page.click('#join');
  try {
    await page.waitForSelector('#status[data-status="live"]', { timeout: ms(15000) });
  } catch (e) {
    throw new Error(`${who.username} not live: status "${await page.textContent('#status')}", ` +
      `sign-in error "${await page.textContent('#signin-error')}": ${e.message}`);
  }
  return { page, problems };
}

/** Waits until the field shows `value`; returns how long that took. */
async function seen(page, id, value, timeoutMs, what) {
  const t0 = Date.now();
  try {
    await page.waitForFunction(([i, v]) => document.getElementById(i)?.value === v, [id, value], { timeout: timeoutMs, polling: 20 });
  } catch (e) {
    const got = await page.evaluate((i) => document.getElementById(i)?.value, id);
    throw new Error(`${what}: #${id} is ${JSON.stringify(got)}, want ${JSON.stringify(value)} within ${timeoutMs} ms`);
  }
  return Date.now() - t0;
}

const values = (page) => page.$$eval('input, textarea, select', (els) => els.map((e) => e.value));

it('make demo\'s page: two users see each other\'s shared edits within a second and never each other\'s private draft', async (t) => {
  const pagePort = await freePort();
  const pageOrigin = `http://127.0.0.1:${pagePort}`;
  await withBroker({ args: [`--origin=${pageOrigin}`, `--rules=${RULES}`] }, async (b) => {
    const site = await startServer({ host: '127.0.0.1', port: pagePort, broker: b.url });
    const shots = screenshotDir();
    t.diagnostic(`screenshots: ${shots}`);
    console.log(`demo screenshots: ${shots}`);
    const alice = { username: uniq('alice'), password: `pw-${uniq('a')}` };
    const bob = { username: uniq('bob'), password: `pw-${uniq('b')}` };
    (b.opts.neverLog ??= []).push(alice.password, bob.password);
    try {
      await withChromium(async (browser) => {
        const a = await signIn(browser, `${site.url}/`, alice);
        const bb = await signIn(browser, `${site.url}/`, bob);

        // Shared: typed key by key (an insert per key), seen by the other within a second.
        await a.page.locator('#f-title').pressSequentially('Quarterly plan ✓', { delay: 15 });
        const took1 = await seen(bb.page, 'f-title', 'Quarterly plan ✓', ms(1000), 'bob sees alice\'s title');
        assert.match(await bb.page.textContent('#by-title'), new RegExp(`edited by ${alice.username}`));
        await bb.page.locator('#f-notes').pressSequentially('Bring the numbers', { delay: 15 });
        const took2 = await seen(a.page, 'f-notes', 'Bring the numbers', ms(1000), 'alice sees bob\'s notes');
        await bb.page.selectOption('#f-status', 'doing');
        await seen(a.page, 'f-status', 'doing', ms(1000), 'alice sees bob\'s status');
        await a.page.fill('#f-due', '2026-12-24');
        await seen(bb.page, 'f-due', '2026-12-24', ms(1000), 'bob sees alice\'s date');
        t.diagnostic(`shared edits seen after ${took1} ms and ${took2} ms`);
        assert.equal(await a.page.inputValue('#f-title'), 'Quarterly plan ✓', 'the writer\'s own field kept every key');

        // Private: each writes a draft; the other's page never shows it.
        const secretA = `alice's secret ${uniq('s')}`;
        const secretB = `bob's secret ${uniq('s')}`;
        await a.page.locator('#f-draft').pressSequentially(secretA, { delay: 5 });
        await bb.page.locator('#f-draft').pressSequentially(secretB, { delay: 5 });
        // The writer's own store catches up with its drafts (the "settled" echo)...
        const tab2 = await openTab(a.context, `${site.url}/`, alice);
        await seen(tab2.page, 'f-draft', secretA, ms(5000), 'alice\'s second tab shows her draft');
        await seen(tab2.page, 'f-title', 'Quarterly plan ✓', ms(5000), 'and the shared title');
        await seen(tab2.page, 'f-notes', 'Bring the numbers', ms(5000), 'and the shared notes');
        await sleep(500); // ...while anything of alice's that could leak to bob would have arrived
        assert.equal(await bb.page.inputValue('#f-draft'), secretB, 'bob\'s draft is his own');
        assert.ok(!(await values(bb.page)).some((v) => v.includes(secretA)), 'alice\'s draft is nowhere in bob\'s page');
        assert.ok(!(await bb.page.textContent('body')).includes(secretA));
        assert.ok(!(await values(a.page)).some((v) => v.includes(secretB)), 'bob\'s draft is nowhere in alice\'s page');

        // Live in every tab: bob's next shared edit reaches both of alice's tabs.
        await bb.page.fill('#f-owner', 'Bob');
        await seen(a.page, 'f-owner', 'Bob', ms(1000), 'alice\'s first tab');
        await seen(tab2.page, 'f-owner', 'Bob', ms(1000), 'alice\'s second tab');

        // The rules, not just the page, keep the draft private: bob asking for it directly gets nothing.
        const direct = createBroker({ url: b.url, EventSource });
        await direct.login(bob.username, bob.password);
        const aliceDraft = await a.page.locator('#f-draft').getAttribute('data-event');
        assert.match(aliceDraft, /^draft\.[0-9a-f]{32}\.draft$/);
        const got = [];
        const sub = direct.subscribe({ events: [aliceDraft, 'form.title'], onEvent: (e) => got.push(e.name) });
        try {
          const deadline = Date.now() + ms(10000);
          while (!got.includes('form.title') && Date.now() < deadline) await sleep(20);
          await sleep(200);
          assert.deepEqual(got, ['form.title'], 'the snapshot holds the shared title, not alice\'s draft');
          await assert.rejects(direct.insert(aliceDraft, { value: 'forged', by: bob.username }), (e) => e.status === 403);
        } finally {
          sub.stop();
        }

        await a.page.screenshot({ path: path.join(shots, 'demo-alice.png'), fullPage: true });
        await tab2.page.screenshot({ path: path.join(shots, 'demo-alice-second-tab.png'), fullPage: true });
        await bb.page.screenshot({ path: path.join(shots, 'demo-bob.png'), fullPage: true });
        assert.deepEqual([...a.problems, ...bb.problems, ...tab2.problems], [], 'no page errors');
        assert.equal(await a.page.textContent('#error'), '', 'no error shown to alice');
        assert.equal(await bb.page.textContent('#error'), '', 'no error shown to bob');
      });
    } finally {
      await site.close();
    }
  });
});
