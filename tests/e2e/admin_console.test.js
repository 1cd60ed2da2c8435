// Issue 13, the admin console at /admin: the files in admin/ compiled into the binary and served
// byte for byte with their Content-Type, a Content-Security-Policy of default-src 'self', nosniff,
// no-cache + ETag (304 on If-None-Match), HEAD, 405 with Allow, JSON 404s, and nothing at all
// without --admin_token. Then in headless Chromium: log in with the admin token (a wrong one first),
// page through the users, revoke a user whose own page (another browser context, another origin)
// holds an open EventSource and must show "revoked", un-revoke, edit roles, create a user, watch the
// live charts move, tail events as a named user, reload (still logged in, assets revalidated), log
// out; with no console error, no page error and no CSP violation on the console page, every request
// same-origin and no secret in any URL or in localStorage. A screenshot of the console is written
// under $BROKER_SCREENSHOTS or the OS temp dir (its path is printed).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { withBroker, freePort } from './lib/broker.js';
import { request, nodeRequest, post, assertJsonError, newUser } from './lib/http.js';
import { scrape } from './lib/metrics.js';
import { REPO, ms } from './lib/config.js';
import { uniq, withTimeout } from './lib/util.js';

const ADMIN = 'admin-token-for-the-console-test-0123456789';
const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TOKEN_KEY = 'broker.admin.token';

// What admin/ holds and where each file is served (scripts/embed.py's rule).
const SOURCE = path.join(REPO, 'admin');
const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.svg': 'image/svg+xml' };
const FILES = fs.readdirSync(SOURCE).sort().map((name) => ({
  name, url: name === 'index.html' ? '/admin' : `/admin/console/${name}`, type: TYPES[path.extname(name)],
  bytes: fs.readFileSync(path.join(SOURCE, name)),
}));

/** GET or HEAD with the body as bytes (request() decodes text). */
async function fetchBytes(b, url, { method = 'GET', headers = {} } = {}) {
  const res = await fetch(b.url + url, { method, headers, signal: AbortSignal.timeout(ms(10000)) });
  const h = {};
  res.headers.forEach((v, k) => { h[k] = v; });
  return { status: res.status, headers: h, bytes: Buffer.from(await res.arrayBuffer()) };
}

function assertSecurityHeaders(h, what) {
  const csp = h['content-security-policy'] ?? '';
  const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v.join(' ')]));
  assert.equal(directives.get('default-src'), "'self'", `${what}: CSP default-src 'self' (${csp})`);
  assert.equal(directives.get('frame-ancestors'), "'none'", `${what}: CSP frame-ancestors 'none' (${csp})`);
  assert.equal(h['x-content-type-options'], 'nosniff', `${what}: nosniff`);
  assert.equal(h['referrer-policy'], 'no-referrer', `${what}: Referrer-Policy`);
}

describe('the admin console over HTTP', () => {
  it('without --admin_token there is no console: 404 JSON on every console path and method', async () => {
    await withBroker({}, async (b) => {
      for (const [method, p] of [['GET', '/admin'], ['GET', '/admin/console/admin.js'], ['POST', '/admin'],
        ['GET', '/admin/console/nope.js']]) {
        assertJsonError(await request(b, method, p, { json: method === 'POST' ? {} : undefined }), 404, `${method} ${p}`);
      }
      const head = await fetchBytes(b, '/admin', { method: 'HEAD' });
      assert.equal(head.status, 404, 'HEAD /admin');
      assert.equal(head.headers['content-security-policy'], undefined, 'nothing of the console shows');
    });
  });

  it('serves admin/ byte for byte with its type, CSP, nosniff, no-cache and an ETag; HEAD; 304; 405; 404', async () => {
    assert.ok(FILES.some((f) => f.name === 'index.html') && FILES.length >= 4, `admin/ holds the console: ${FILES.map((f) => f.name)}`);
    await withBroker({ args: [`--admin_token=${ADMIN}`], neverLog: [ADMIN] }, async (b) => {
      const etags = new Set();
      for (const f of FILES) {
        assert.ok(f.type, `admin/${f.name} has a known type`);
        const r = await fetchBytes(b, f.url);
        assert.equal(r.status, 200, `GET ${f.url}`);
        assert.equal(r.headers['content-type'], f.type, `GET ${f.url}: Content-Type`);
        assert.ok(r.bytes.equals(f.bytes), `GET ${f.url}: the bytes of admin/${f.name} (rebuild after editing admin/)`);
        assertSecurityHeaders(r.headers, `GET ${f.url}`);
        assert.equal(r.headers['cache-control'], 'no-cache', `GET ${f.url}: Cache-Control`);
        const etag = r.headers.etag;
        assert.match(etag ?? '', /^"[0-9a-f]{32}"$/, `GET ${f.url}: a strong ETag`);
        etags.add(etag);

        const head = await fetchBytes(b, f.url, { method: 'HEAD' });
        assert.equal(head.status, 200, `HEAD ${f.url}`);
        assert.equal(head.bytes.length, 0, `HEAD ${f.url}: no body`);
        assert.equal(Number(head.headers['content-length']), f.bytes.length, `HEAD ${f.url}: the length of the body`);
        assert.equal(head.headers.etag, etag);
        assert.equal(head.headers['content-type'], f.type);

        for (const inm of [etag, `W/${etag}`, `"nope", ${etag}`, '*']) {
          const c = await fetchBytes(b, f.url, { headers: { 'if-none-match': inm } });
          assert.equal(c.status, 304, `GET ${f.url}, If-None-Match: ${inm}`);
          assert.equal(c.bytes.length, 0, `a 304 has no body`);
          assert.equal(c.headers.etag, etag);
        }
        const other = await fetchBytes(b, f.url, { headers: { 'if-none-match': '"0123"' } });
        assert.equal(other.status, 200, `another ETag: the whole ${f.url}`);
        assert.ok(other.bytes.equals(f.bytes));
      }
      assert.equal(etags.size, FILES.length, 'each file its own ETag');
      assert.ok((await scrape(b)).count('broker_http_requests_total', { route: '/admin', status: '304' }) >= FILES.length * 4,
        'revalidations are counted as 304, not as client errors');

      for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
        for (const p of ['/admin', '/admin/console/admin.js', '/admin/console/nope']) {
          const r = await request(b, method, p, { json: {} });
          assertJsonError(r, 405, `${method} ${p}`);
          assert.equal(r.headers.allow, 'GET, HEAD, OPTIONS', `${method} ${p}: Allow`);
          assertSecurityHeaders(r.headers, `${method} ${p}`);
        }
      }
      const pre = await request(b, 'OPTIONS', '/admin');
      assert.equal(pre.status, 204, 'the CORS preflight answers on /admin too');
      assert.equal(pre.headers['access-control-allow-methods'], 'GET, HEAD, OPTIONS', 'with the console\'s methods');

      for (const p of ['/admin/console/', '/admin/console/nope.js', '/admin/console/admin.js/', '/admin/console/ADMIN.JS',
        '/admin/console/index.html', '/admin/console/../console/admin.js']) {
        const r = await nodeRequest(b, 'GET', p); // node:http sends the path as is (fetch would resolve "..")
        assertJsonError(r, 404, `GET ${p}`);
        assert.equal(r.json.error, 'not found');
        assertSecurityHeaders(r.headers, `GET ${p}`);
      }
      // The console takes no path from the admin API, which answers as before.
      assertJsonError(await request(b, 'GET', '/admin/users'), 401, 'GET /admin/users without the admin token');
      assertJsonError(await request(b, 'GET', '/admin/console'), 401, '/admin/console (no slash) is the API\'s: token first');
      const list = await request(b, 'GET', '/admin/users', { token: ADMIN });
      assert.equal(list.status, 200, list.text);
    });
  });

  it('the sources keep to the CSP: no inline script or style, nothing from another origin, no secret storage', () => {
    const text = (name) => FILES.find((f) => f.name === name).bytes.toString('utf8');
    const html = text('index.html');
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    assert.ok(scripts.length >= 1, 'the page loads a script');
    for (const [, attrs, body] of scripts) {
      assert.match(attrs, /\bsrc="admin\/console\/[a-z]+\.js"/, `a script from the console's own files: ${attrs}`);
      assert.match(attrs, /\btype="module"/, 'an ES module');
      assert.equal(body.trim(), '', 'no inline script');
    }
    assert.doesNotMatch(html, /<style\b/i, 'no <style> element');
    assert.doesNotMatch(html, /\sstyle=/i, 'no style attribute');
    assert.doesNotMatch(html, /\son[a-z]+=/i, 'no inline event handler');
    assert.doesNotMatch(html, /(?:src|href|action)="(?:[a-z]+:|\/\/)/i, 'no URL to another origin (or a data: URL)');
    for (const f of FILES.filter((x) => x.name.endsWith('.js'))) {
      const js = f.bytes.toString('utf8');
      for (const bad of [/\blocalStorage\b/, /\.innerHTML\b/, /\.outerHTML\b/, /insertAdjacentHTML/, /\beval\(/,
        /new Function\(/, /document\.write/, /\.style\./, /setAttribute\('style'/, /document\.cookie/, /https?:\/\//]) {
        assert.doesNotMatch(js.replace(/http:\/\/www\.w3\.org\/2000\/svg/g, ''), bad, `admin/${f.name}: ${bad}`);
      }
    }
    assert.doesNotMatch(text('admin.css'), /url\(|@import/, 'the style sheet loads nothing');
  });
});

// ---------------------------------------------------------------------------------------------
// The browser.

// The revoked user's own page, on another loopback origin: logs in, takes a ticket, opens a native
// EventSource, and says "revoked" when the stream's event:revoked frame arrives.
const USER_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>a user's page</title></head>
<body><p id="status">starting</p><ol id="events"></ol>
<script>
(async () => {
  const params = new URLSearchParams(location.hash.slice(1));
  const broker = params.get('broker');
  const set = (s) => { document.getElementById('status').textContent = s; };
  try {
    const l = await fetch(broker + '/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: params.get('u'), password: params.get('p') }) });
    if (l.status !== 200) throw new Error('login answered ' + l.status);
    const { jwt } = await l.json();
    const t = await fetch(broker + '/sse/ticket', { method: 'POST', headers: { Authorization: 'Bearer ' + jwt } });
    if (t.status !== 200) throw new Error('ticket answered ' + t.status);
    const { ticket } = await t.json();
    const es = new EventSource(broker + '/sse?ticket=' + encodeURIComponent(ticket));
    es.onopen = () => set('open');
    es.addEventListener('revoked', (e) => { es.close(); set('revoked: ' + JSON.parse(e.data).reason); });
    es.addEventListener('console.demo', (e) => {
      const li = document.createElement('li');
      li.textContent = e.lastEventId + '|' + e.data;
      document.getElementById('events').appendChild(li);
    });
  } catch (e) {
    set('failed: ' + e.message);
  }
})();
</script></body></html>`;

async function userPageServer() {
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === '/' ? 200 : 404, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
    res.end(req.url === '/' ? USER_PAGE : 'not found');
  });
  const port = await freePort();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}

function screenshotPath() {
  const dir = process.env.BROKER_SCREENSHOTS || os.tmpdir();
  fs.mkdirSync(dir, { recursive: true });
  return path.join(dir, `broker-admin-console-${process.pid}.png`);
}

/** Waits for fn (run in the page) to be truthy; on timeout says what and shows the page's state. */
async function until(page, what, fn, arg) {
  try {
    return await page.waitForFunction(fn, arg, { timeout: ms(10000), polling: 50 });
  } catch (e) {
    const state = await page.evaluate(() => ({
      login: document.getElementById('login-error')?.textContent,
      users: document.getElementById('users-error')?.textContent,
      tail: document.getElementById('tail-status')?.textContent,
      metrics: document.getElementById('metrics-status')?.textContent,
      status: document.getElementById('status')?.textContent,
    })).catch(() => ({}));
    throw new Error(`${what}: not reached (${JSON.stringify(state)}): ${e.message}`);
  }
}

const rowSel = (username) => `#users tbody tr[data-username="${username}"]`;
const chart = (page, id) => page.$eval(`#${id} svg`, (s) => ({ samples: Number(s.dataset.samples), last: Number(s.dataset.last), peak: Number(s.dataset.peak) }));

describe('the admin console in a real browser (headless Chromium)', () => {
  it('log in, page users, revoke a streaming user (their page shows it), roles, create, charts, tail, reload, log out: no console errors or CSP violations', async (t) => {
    assert.ok(fs.existsSync(CHROMIUM), `Chromium is required for this suite and is missing at ${CHROMIUM} ` +
      '(scripts/deps.sh installs it: apt-get install chromium)');
    const site = await userPageServer();
    try {
      await withBroker({ args: [`--admin_token=${ADMIN}`], neverLog: [ADMIN] }, async (b) => {
        const alice = await newUser(b, 'alice');
        const bob = await newUser(b, 'bob');
        // Enough users for two pages of 10.
        const fillers = await Promise.all(Array.from({ length: 10 }, async () => {
          const r = await post(b, '/admin/users', { username: uniq('filler'), password: `pw-${uniq('f')}` }, { token: ADMIN });
          assert.equal(r.status, 200, r.text);
          return r.json;
        }));
        assert.equal(fillers.length, 10);

        const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: ms(30000) });
        try {
          const consoleCtx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
          const page = await consoleCtx.newPage();
          const messages = [];
          const requests = [];
          page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') messages.push(`${m.type()}: ${m.text()}`); });
          page.on('pageerror', (e) => messages.push(`page error: ${e.message}`));
          page.on('request', (r) => requests.push(r.url()));
          // Runs before the page's own scripts, outside its CSP (injected by the debugger protocol).
          await page.addInitScript(() => {
            window.cspViolations = [];
            document.addEventListener('securitypolicyviolation', (e) => {
              window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
            });
          });
          await page.goto(`${b.url}/admin`, { timeout: ms(15000) });
          assert.equal(await page.title(), 'broker admin');

          // A wrong token: refused, said so, nothing stored.
          await page.fill('#token', 'not-the-admin-token');
          await page.click('#login-form button[type=submit]');
          await until(page, 'the wrong token is refused', () => /wrong admin token/.test(document.getElementById('login-error').textContent));
          assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), null);
          const refused = messages.splice(0); // the browser reports the 401 of that probe, as it should
          assert.ok(refused.every((m) => /status of 401/.test(m)), `only the expected 401: ${refused}`);

          await page.fill('#token', ADMIN);
          await page.click('#login-form button[type=submit]');
          await until(page, 'the console opens', () => !document.getElementById('console-view').hidden);
          await until(page, 'the users are listed', () => document.querySelectorAll('#users tbody tr').length === 12);
          for (const u of [alice, bob, ...fillers]) assert.ok(await page.$(rowSel(u.username)), `${u.username} is listed`);
          assert.equal(await page.textContent(`${rowSel(alice.username)} td.status`), 'active');
          assert.equal(await page.inputValue('#token'), '', 'the token field is cleared');

          // Paging: 10 per page → 10, then 2, then back.
          await page.selectOption('#page-size', '10');
          await until(page, 'a page of 10', () => document.querySelectorAll('#users tbody tr').length === 10 &&
            !document.getElementById('users-next').disabled && document.getElementById('users-prev').disabled);
          const first = await page.$$eval('#users tbody tr', (rows) => rows.map((r) => r.dataset.id));
          await page.click('#users-next');
          await until(page, 'the second page', () => document.querySelectorAll('#users tbody tr').length === 2 &&
            document.getElementById('users-next').disabled);
          const second = await page.$$eval('#users tbody tr', (rows) => rows.map((r) => r.dataset.id));
          assert.deepEqual([...first, ...second], [...first, ...second].sort(), 'id order across pages');
          await page.click('#users-prev');
          await until(page, 'back to the first page', () => document.querySelectorAll('#users tbody tr').length === 10);
          assert.deepEqual(await page.$$eval('#users tbody tr', (rows) => rows.map((r) => r.dataset.id)), first);
          await page.selectOption('#page-size', '50');
          await until(page, 'all users again', () => document.querySelectorAll('#users tbody tr').length === 12);

          // Alice's own page, in another context (her own storage), on another origin.
          const userCtx = await browser.newContext();
          const alicePage = await userCtx.newPage();
          const hash = new URLSearchParams({ broker: b.url, u: alice.username, p: alice.password });
          await alicePage.goto(`${site.origin}/#${hash}`, { timeout: ms(15000) });
          await until(alicePage, "alice's stream opens", () => document.getElementById('status').textContent === 'open');

          // Charts: her stream is counted, inserts and deliveries show as rates.
          await until(page, 'the subscribers chart shows her stream', () => Number(document.querySelector('#chart-subscribers svg')?.dataset.last) >= 1);
          const before = await chart(page, 'chart-inserts');
          for (let i = 0; i < 5; i++) {
            const r = await post(b, '/insert', { event: 'console.demo', data: { i } }, { token: bob.jwt });
            assert.equal(r.status, 200, r.text);
          }
          await until(page, 'inserts/s and deliveries/s move', () =>
            Number(document.querySelector('#chart-inserts svg').dataset.peak) > 0 &&
            Number(document.querySelector('#chart-deliveries svg').dataset.peak) > 0);
          const after = await chart(page, 'chart-inserts');
          assert.ok(after.samples > before.samples, `the chart keeps drawing: ${JSON.stringify([before, after])}`);
          assert.match(await page.getAttribute('#chart-inserts svg polyline', 'points'), /^[\d.]+,[\d.]+( [\d.]+,[\d.]+)+$/);
          await until(alicePage, 'her page got the events', () => document.querySelectorAll('#events li').length === 5);
          assert.notEqual(await page.textContent('#stat-last-id'), '–');

          // Revoke her: the console says so, and so does her page, whose stream the server closed.
          await page.click(`${rowSel(alice.username)} button.revoke`);
          await until(page, 'the row says revoked', (s) => document.querySelector(`${s} td.status`)?.textContent === 'revoked', rowSel(alice.username));
          await until(alicePage, 'her page shows "revoked"', () => document.getElementById('status').textContent.startsWith('revoked'));
          assert.equal(await alicePage.textContent('#status'), 'revoked: user revoked');
          assert.equal((await post(b, '/login', { username: alice.username, password: alice.password })).status, 403, 'she cannot log in');
          await until(page, 'streams revoked shows 1', () => document.getElementById('stat-revoked').textContent === '1');

          await page.click(`${rowSel(alice.username)} button.unrevoke`);
          await until(page, 'the row says active', (s) => document.querySelector(`${s} td.status`)?.textContent === 'active', rowSel(alice.username));
          assert.equal((await post(b, '/login', { username: alice.username, password: alice.password })).status, 200, 'she can log in again');

          // Roles: typed as a list, stored sorted.
          await page.fill(`${rowSel(alice.username)} input.roles`, 'staff, ops');
          await page.click(`${rowSel(alice.username)} button.save-roles`);
          await until(page, 'the roles are saved', (s) => document.querySelector(`${s} input.roles`)?.value === 'ops, staff', rowSel(alice.username));
          const stored = await request(b, 'GET', `/admin/users/${alice.id}`, { token: ADMIN });
          assert.deepEqual(stored.json.roles, ['ops', 'staff']);

          // Create a user from the console.
          const carol = uniq('carol');
          const carolPassword = `pw-${uniq('c')}`;
          b.opts.neverLog.push(carolPassword);
          await page.click('#create summary');
          await page.fill('#create-username', carol);
          await page.fill('#create-password', carolPassword);
          await page.fill('#create-roles', 'auditor');
          await page.click('#create-form button[type=submit]');
          await until(page, 'carol is created and listed', (s) => !!document.querySelector(s), rowSel(carol));
          assert.equal(await page.inputValue(`${rowSel(carol)} input.roles`), 'auditor');
          assert.equal(await page.inputValue('#create-password'), '', 'the password field is cleared');

          // The tail, as bob: the snapshot, then a new event.
          await page.fill('#tail-username', bob.username);
          await page.fill('#tail-password', bob.password);
          await page.click('#tail-start');
          await until(page, 'the tail streams', () => document.getElementById('tail-status').textContent.startsWith('streaming as'));
          await until(page, 'the tail shows the snapshot', () => !!document.querySelector('#tail li[data-event="console.demo"]'));
          const id = (await post(b, '/insert', { event: 'console.tail', data: { hello: 'tail ✓' } }, { token: bob.jwt })).json.id;
          await until(page, 'the tail shows the new event', (n) => !!document.querySelector(`#tail li[data-id="${n}"]`), id);
          const line = await page.textContent(`#tail li[data-id="${id}"]`);
          assert.ok(line.includes('console.tail') && line.includes('{"hello":"tail ✓"}'), line);
          assert.equal(await page.inputValue('#tail-password'), '', "bob's password is not kept in the form");
          await until(page, 'the tail is counted as a subscriber', () => Number(document.querySelector('#chart-subscribers svg').dataset.last) >= 1);

          const shot = screenshotPath();
          await page.screenshot({ path: shot, fullPage: true });
          t.diagnostic(`admin console screenshot: ${shot}`);

          // Where secrets are, and are not.
          const stored1 = await page.evaluate(() => ({ local: localStorage.length, keys: Object.keys(sessionStorage), cookie: document.cookie }));
          assert.deepEqual(stored1, { local: 0, keys: [TOKEN_KEY], cookie: '' }, "only the admin token, in this tab's session storage");
          assert.equal(await page.evaluate((k) => sessionStorage.getItem(k), TOKEN_KEY), ADMIN);

          // A reload keeps the session and revalidates the files (304 by ETag).
          const revalidated = (await scrape(b)).count('broker_http_requests_total', { route: '/admin', status: '304' });
          await page.reload({ timeout: ms(15000) });
          await until(page, 'still logged in after a reload', () => !document.getElementById('console-view').hidden &&
            document.querySelectorAll('#users tbody tr').length === 13);
          assert.ok((await scrape(b)).count('broker_http_requests_total', { route: '/admin', status: '304' }) > revalidated,
            'the browser revalidated the console and got 304s');

          await page.click('#logout');
          await until(page, 'logged out', () => !document.getElementById('login-view').hidden && document.getElementById('console-view').hidden);
          assert.deepEqual(await page.evaluate(() => Object.keys(sessionStorage)), [], 'the token is forgotten');

          assert.deepEqual(messages, [], 'no console error or warning, no page error');
          assert.deepEqual(await page.evaluate(() => window.cspViolations), [], 'no CSP violation');
          const foreign = requests.filter((u) => !u.startsWith(`${b.url}/`));
          assert.deepEqual(foreign, [], 'every request of the console is same-origin');
          for (const s of [ADMIN, bob.password, encodeURIComponent(ADMIN)]) {
            assert.ok(!requests.some((u) => u.includes(s)), 'no secret in any URL');
          }
          await userCtx.close();
          await consoleCtx.close();
        } finally {
          await withTimeout(browser.close(), ms(15000), 'closing Chromium').catch(() => {});
        }
      });
    } finally {
      await site.close();
    }
  });
});
