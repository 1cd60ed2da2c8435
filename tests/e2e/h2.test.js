// §6 HTTP/2: prior knowledge on plain HTTP and ALPN h2 with TLS (curl and node:http2); every
// documented route answers exactly as over HTTP/1.1; many event streams and inserts share one
// connection; resets, the stream limit and flow control (a shut window is a slow consumer); each
// abuse case (rapid reset, PING / SETTINGS / CONTINUATION / empty DATA floods, an HPACK bomb) is
// answered with GOAWAY(ENHANCE_YOUR_CALM) and disturbs nobody else; deadlines; GOAWAY on shutdown.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import http2 from 'node:http2';
import tls from 'node:tls';
import { execFile } from 'node:child_process';
import { parseDocument } from 'yaml';
import { withBroker, tmpDir } from './lib/broker.js';
import { request, insert, newUser } from './lib/http.js';
import { makeCert } from './lib/tls.js';
import { openSSE } from './lib/sse.js';
import { scrape } from './lib/metrics.js';
import { ms, REPO } from './lib/config.js';
import { sleep } from './lib/util.js';
import { until } from './lib/streams.js';
import {
  h2connect, h2request, H2Stream, RawH2, frame, FRAME, FLAG, hpack, hpackIndexed, hpackRef, requestHeaders,
  ENHANCE_YOUR_CALM, NO_ERROR,
} from './lib/h2.js';

const ADMIN = 'h2-admin-token-0123456789abcdef';
const PROBE_METHODS = ['GET', 'HEAD', 'POST', 'PATCH', 'DELETE', 'OPTIONS'];
const MADE_UP_ID = '00000000000000000000000000000000';

function curl(args, timeoutMs = ms(15000)) {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '--max-time', String(Math.ceil(timeoutMs / 1000)), ...args], { timeout: timeoutMs + 2000 },
      (err, stdout, stderr) => (err && err.code !== 28 ? reject(new Error(`curl ${args.join(' ')}: ${err.message} ${stderr}`)) : resolve(stdout)));
  });
}

/** The fields of an answer that must not depend on the protocol. */
function shape(r) {
  const h = r.headers;
  return {
    status: r.status,
    type: (h['content-type'] ?? '').split(';')[0],
    error: r.json?.error,
    keys: r.json && typeof r.json === 'object' ? Object.keys(r.json).sort() : undefined,
    allow: h.allow,
    origin: h['access-control-allow-origin'],
    methods: h['access-control-allow-methods'],
    retryAfter: h['retry-after'] !== undefined,
    auth: h['www-authenticate'],
  };
}

describe('HTTP/2', () => {
  it('every documented route and method answers the same over h2 (prior knowledge) as over HTTP/1.1', async () => {
    const spec = parseDocument(fs.readFileSync(path.join(REPO, 'docs', 'openapi.yaml'), 'utf8')).toJS({ maxAliasCount: 0 });
    await withBroker({ args: [`--admin_token=${ADMIN}`], neverLog: [ADMIN] }, async (b) => {
      const s = await h2connect(b);
      try {
        assert.equal(s.remoteSettings.maxConcurrentStreams, 100, 'SETTINGS_MAX_CONCURRENT_STREAMS is --h2_max_streams (100)');
        let compared = 0;
        for (const p of Object.keys(spec.paths)) {
          const concrete = p.replace('{id}', MADE_UP_ID);
          for (const method of PROBE_METHODS) {
            const headers = { origin: 'http://page.example' };
            if (p.startsWith('/admin')) headers.authorization = `Bearer ${ADMIN}`;
            if (method === 'OPTIONS') headers['access-control-request-method'] = 'POST';
            const json = ['GET', 'HEAD', 'OPTIONS'].includes(method) ? undefined : {};
            const one = await request(b, method, concrete, { headers, json, viaNode: true });
            const two = await h2request(s, method, concrete, { headers, json });
            assert.deepEqual(shape(two), shape(one), `${method} ${concrete}: h2 ${two.status} ${two.text.slice(0, 120)} vs h1 ${one.status} ${one.text.slice(0, 120)}`);
            compared++;
          }
        }
        assert.ok(compared >= 60, `compared ${compared} requests`);
        // The seed flow over h2 alone.
        const name = `h2u${Date.now()}`;
        assert.equal((await h2request(s, 'POST', '/users', { json: { username: name, password: 'pw-h2-secret' } })).status, 200);
        const l = await h2request(s, 'POST', '/login', { json: { username: name, password: 'pw-h2-secret' } });
        assert.equal(l.status, 200);
        const ins = await h2request(s, 'POST', '/insert', { token: l.json.jwt, json: { event: 'h2', data: { ok: true } } });
        assert.equal(ins.status, 200, ins.text);
        assert.deepEqual(Object.keys(ins.json).sort(), ['event', 'id']);
        const health = await h2request(s, 'GET', '/healthz');
        assert.equal(Number(health.headers['content-length']), Buffer.byteLength(health.text));
        const m = await scrape(b);
        assert.ok(m.count('broker_h2_connections_total') >= 1);
        assert.ok(m.count('broker_h2_streams_total') >= compared);
      } finally {
        s.close();
      }
    });
  });

  it('curl: --http2 over TLS negotiates h2 by ALPN, --http2-prior-knowledge works on plain, HTTP/1.1 clients are unchanged', async () => {
    const dir = tmpDir('broker-h2-tls-');
    const cert = makeCert(dir);
    try {
      await withBroker({ tls: cert }, async (b) => {
        const socket = tls.connect({ host: '127.0.0.1', port: b.port, ca: b.ca, servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'] });
        await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
        assert.equal(socket.alpnProtocol, 'h2', 'ALPN picks h2');
        socket.destroy();
        const old = tls.connect({ host: '127.0.0.1', port: b.port, ca: b.ca, servername: 'localhost', ALPNProtocols: ['http/1.1'] });
        await new Promise((resolve, reject) => { old.once('secureConnect', resolve); old.once('error', reject); });
        assert.equal(old.alpnProtocol, 'http/1.1');
        old.destroy();

        const base = `https://127.0.0.1:${b.port}`;
        const ver = (args) => curl(['--cacert', cert.cert, '-o', '/dev/null', '-w', '%{http_version} %{http_code}', ...args]);
        assert.equal(await ver(['--http2', `${base}/healthz`]), '2 200');
        assert.equal(await ver(['--http1.1', `${base}/healthz`]), '1.1 200');
        const user = `c${Date.now()}`;
        const body = JSON.stringify({ username: user, password: 'pw-curl-h2' });
        assert.equal(await ver(['--http2', '-H', 'content-type: application/json', '-d', body, `${base}/users`]), '2 200');
        const jwt = JSON.parse(await curl(['--cacert', cert.cert, '--http2', '-H', 'content-type: application/json', '-d', body, `${base}/login`])).jwt;
        assert.equal(typeof jwt, 'string');
        const inserted = JSON.parse(await curl(['--cacert', cert.cert, '--http2', '-H', `authorization: Bearer ${jwt}`, '-d', '{"event":"tls-h2","data":7}', `${base}/insert`]));
        // An event stream over h2 with TLS: the snapshot holds the event just inserted.
        const stream = await curl(['--cacert', cert.cert, '--http2', '-N', '-H', `authorization: Bearer ${jwt}`, `${base}/sse`], ms(2000));
        assert.match(stream, new RegExp(`id:${inserted.id}\nevent:tls-h2\n(retry:\\d+\n)?data:7\n\n`), stream);
      });
      await withBroker({}, async (b) => {
        const base = `http://127.0.0.1:${b.port}`;
        assert.equal(await curl(['--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${base}/healthz`]), '2 200');
        // curl --http2 on plain HTTP asks for an Upgrade: h2c, which is not offered; it stays on 1.1.
        assert.equal(await curl(['--http2', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', `${base}/healthz`]), '1.1 200');
        // A beginning of the preface and then the end of the input is HTTP/1.1's to refuse: the
        // connection closes (it used to wait for the rest forever).
        for (const start of ['P', 'PRI * HTTP/2.0\r\n']) {
          const cut = new RawH2(b);
          await cut.ready;
          cut.sock.end(start);
          assert.ok(await cut.closed(ms(3000)), `"${start.trim()}" then EOF: the server closes`);
        }
        // A preface cut in two reads is still recognised.
        const raw = new RawH2(b);
        await raw.ready;
        raw.send(Buffer.from('PRI * HTTP/2.0\r\n'));
        await sleep(100);
        raw.send(Buffer.concat([Buffer.from('\r\nSM\r\n\r\n'), frame(FRAME.SETTINGS, 0, 0)]));
        await raw.waitFor((f) => f.type === FRAME.SETTINGS, 'server SETTINGS');
        raw.destroy();
      });
      await withBroker({ args: ['--h2_max_streams=0'] }, async (b) => {
        // HTTP/2 off: the preface is just a malformed HTTP/1.1 request, refused as such.
        const out = await curl(['--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_version}', `http://127.0.0.1:${b.port}/healthz`]).catch(() => 'failed');
        assert.notEqual(out, '2');
        assert.equal((await request(b, 'GET', '/healthz')).status, 200);
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('200 event streams on one connection each get every event in order, inserted over the same connection; a reset ends only its stream', async () => {
    await withBroker({ args: ['--h2_max_streams=256'] }, async (b) => {
      const u = await newUser(b, 'h2many');
      const s = await h2connect(b);
      try {
        const streams = [];
        for (let i = 0; i < 200; i++) streams.push(new H2Stream(s, '/sse', { token: u.jwt }));
        await until(() => streams.every((st) => st.status === 200), ms(15000), '200 streams answered');
        await until(async () => (await scrape(b)).value('broker_subscribers') === 200, ms(10000), '200 subscribers');
        const ids = [];
        for (let i = 0; i < 40; i += 4) {
          const batch = await Promise.all([0, 1, 2, 3].map((k) => h2request(s, 'POST', '/insert', { token: u.jwt, json: { event: `e${(i + k) % 3}`, data: { n: i + k } } })));
          for (const r of batch) { assert.equal(r.status, 200, r.text); ids.push(r.json.id); }
        }
        ids.sort((x, y) => x - y);
        await until(() => streams.every((st) => st.frames.length >= 40), ms(20000), 'every stream got 40 events');
        for (const st of streams) assert.deepEqual(st.frames.map((f) => f.id), ids, 'every event once, in order');

        // Reset one stream mid-flight; the others go on.
        const [gone, ...rest] = streams;
        gone.close();
        await until(async () => (await scrape(b)).value('broker_subscribers') === 199, ms(10000), 'the reset stream left');
        const last = (await h2request(s, 'POST', '/insert', { token: u.jwt, json: { event: 'after', data: 1 } })).json.id;
        await until(() => rest.every((st) => st.frames.at(-1)?.id === last), ms(10000), 'the others got the next event');
        assert.equal(gone.frames.length, 40);
        for (const st of rest) st.close();
      } finally {
        s.close();
      }
    });
  });

  it('a snapshot and a resume larger than one window arrive whole, in order, over h2', async () => {
    await withBroker({}, async (b) => {
      const u = await newUser(b, 'h2snap');
      const big = 'y'.repeat(1000);
      const ids = [];
      for (let i = 0; i < 300; i += 20) {
        ids.push(...await Promise.all(Array.from({ length: 20 }, (_, k) => insert(b, u.jwt, `name${i + k}`, { big }))));
      }
      ids.sort((x, y) => x - y);
      const s = await h2connect(b);
      try {
        const snap = new H2Stream(s, '/sse', { token: u.jwt });
        const resume = new H2Stream(s, '/sse', { token: u.jwt, headers: { 'last-event-id': String(ids[49]) } });
        await until(() => snap.frames.length >= 300 && resume.frames.length >= 250, ms(20000), 'snapshot and resume');
        assert.deepEqual(snap.frames.map((f) => f.id), ids, 'the snapshot: one frame per name, by id');
        assert.deepEqual(resume.frames.map((f) => f.id), ids.slice(50), 'the resume: everything after Last-Event-ID');
        const live = await insert(b, u.jwt, 'name0', { big });
        await until(() => snap.frames.at(-1).id === live && resume.frames.at(-1).id === live, ms(10000), 'then live');
        snap.close();
        resume.close();
      } finally {
        s.close();
      }
    });
  });

  it('the stream limit is enforced, and a stream whose window stays shut is a slow consumer while its neighbours go on', async () => {
    await withBroker({ args: ['--h2_max_streams=4', '--max_backlog=131072'] }, async (b) => {
      const u = await newUser(b, 'h2slow');
      // Over the limit: a client that ignores SETTINGS_MAX_CONCURRENT_STREAMS is refused (nghttp2
      // makes it a connection error: GOAWAY(PROTOCOL_ERROR); RST_STREAM(REFUSED_STREAM) would do too).
      const raw = new RawH2(b);
      await raw.start();
      const auth = [['authorization', `Bearer ${u.jwt}`]];
      for (let i = 0; i < 5; i++) raw.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 2 * i + 1, requestHeaders('/sse', { extra: auth })));
      const refused = await raw.waitFor((f) => (f.type === FRAME.RST_STREAM && f.stream === 9) || f.type === FRAME.GOAWAY,
        'RST_STREAM of the 5th stream or GOAWAY');
      const code = refused.payload.readUInt32BE(refused.type === FRAME.GOAWAY ? 4 : 0);
      assert.ok([1, 7].includes(code), `PROTOCOL_ERROR or REFUSED_STREAM, got ${code}`);
      raw.destroy();

      // A 16 KiB window per stream: the stream that never reads is reset once --max_backlog more is
      // waiting behind its shut window; the one beside it on the same connection gets everything.
      const s = await h2connect(b, { settings: { initialWindowSize: 16384 } });
      s.setLocalWindowSize(8 << 20); // the connection's window is not what this is about
      try {
        const stuck = new H2Stream(s, '/sse', { token: u.jwt });
        const fine = new H2Stream(s, '/sse', { token: u.jwt });
        await until(() => stuck.status === 200 && fine.status === 200, ms(10000), 'both streams answered');
        stuck.pause();
        const big = 'x'.repeat(1000);
        const ids = [];
        for (let i = 0; i < 300; i += 10) {
          ids.push(...await Promise.all(Array.from({ length: 10 }, (_, k) => insert(b, u.jwt, 'big', { i: i + k, big }))));
        }
        ids.sort((x, y) => x - y);
        await until(() => fine.frames.length >= 300, ms(20000), 'the reading stream got all 300').catch((e) => { throw new Error(`${e.message}: fine ${fine.frames.length} closed ${fine.closed} ${fine.rstCode}, stuck ${stuck.frames.length} ${stuck.closed}`); });
        assert.deepEqual(fine.frames.map((f) => f.id), ids);
        await until(() => stuck.closed, ms(10000), 'the stuck stream was reset');
        assert.equal(stuck.rstCode, http2.constants.NGHTTP2_CANCEL);
        assert.ok((await scrape(b)).count('broker_slow_consumer_disconnects_total') >= 1);
        fine.close();
      } finally {
        s.close();
      }
    });
  });

  it('abuse ends that connection with GOAWAY(ENHANCE_YOUR_CALM) and disturbs no other client', async () => {
    await withBroker({}, async (b) => {
      const u = await newUser(b, 'h2abuse');
      const h1 = await openSSE(b, { token: u.jwt });
      const s = await h2connect(b);
      const h2s = new H2Stream(s, '/sse', { token: u.jwt });
      await until(() => h2s.status === 200, ms(10000), 'the bystander h2 stream');
      const cases = {
        'rapid reset': (r) => {
          const parts = [];
          for (let i = 0; i < 600; i++) {
            parts.push(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 2 * i + 1, requestHeaders('/healthz')));
            parts.push(frame(FRAME.RST_STREAM, 0, 2 * i + 1, Buffer.from([0, 0, 0, 8])));
          }
          r.send(Buffer.concat(parts));
        },
        'PING flood': (r) => r.send(Buffer.concat(Array.from({ length: 200 }, (_, i) => frame(FRAME.PING, 0, 0, Buffer.alloc(8, i))))),
        'SETTINGS flood': (r) => r.send(Buffer.concat(Array.from({ length: 200 }, () => frame(FRAME.SETTINGS, 0, 0)))),
        'CONTINUATION flood': (r) => {
          const parts = [frame(FRAME.HEADERS, 0, 1, requestHeaders('/healthz'))];
          for (let i = 0; i < 200; i++) parts.push(frame(FRAME.CONTINUATION, 0, 1, hpack([[`x-c${i}`, 'v']])));
          r.send(Buffer.concat(parts));
        },
        'CONTINUATION flood of empty frames': (r) => {
          const parts = [frame(FRAME.HEADERS, 0, 1, requestHeaders('/healthz'))];
          for (let i = 0; i < 200; i++) parts.push(frame(FRAME.CONTINUATION, 0, 1));
          r.send(Buffer.concat(parts));
        },
        'HPACK bomb': (r) => {
          // One 4000-byte header enters the dynamic table, then 40 one-byte references to it:
          // 160 KB of headers from 4 KB on the wire.
          const block = Buffer.concat([requestHeaders('/healthz'), hpackIndexed('x-bomb', 'b'.repeat(4000)),
            ...Array.from({ length: 40 }, () => hpackRef(62))]);
          r.send(frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 1, block));
        },
        'empty DATA flood': (r) => {
          const parts = [frame(FRAME.HEADERS, FLAG.END_HEADERS, 1, requestHeaders('/insert', { method: 'POST', extra: [['authorization', `Bearer ${u.jwt}`]] }))];
          for (let i = 0; i < 300; i++) parts.push(frame(FRAME.DATA, 0, 1));
          r.send(Buffer.concat(parts));
        },
      };
      let n = 0;
      for (const [what, attack] of Object.entries(cases)) {
        const r = new RawH2(b);
        await r.start();
        attack(r);
        const g = await r.goaway();
        assert.ok(g, `${what}: a GOAWAY before the close`);
        assert.equal(g.code, ENHANCE_YOUR_CALM, `${what}: GOAWAY(ENHANCE_YOUR_CALM), got ${g.code}`);
        assert.ok(await r.closed(), `${what}: the connection is closed`);
        n++;
        // Everyone else is still served.
        const id = await insert(b, u.jwt, 'after', { what });
        await until(() => h1.frames.some((f) => f.idNum === id) && h2s.frames.some((f) => f.id === id), ms(10000), `${what}: bystanders got event ${id}`);
        assert.equal((await h2request(s, 'GET', '/healthz')).status, 200);
      }
      assert.equal((await scrape(b)).count('broker_h2_abuse_goaways_total'), n);
      assert.match(b.log(), /h2: a stream reset flood \(rapid reset\) from 127\.0\.0\.1/);
      h1.close();
      h2s.close();
      s.close();
    });
  });

  it('deadlines: an idle connection gets GOAWAY, a request that stops arriving gets 408, a body over --max_body 413', async () => {
    await withBroker({ args: ['--idle_timeout=1', '--request_timeout=2', '--max_body=1024'] }, async (b) => {
      const s = await h2connect(b);
      const slow = s.request({ ':method': 'POST', ':path': '/insert', 'content-type': 'application/json' });
      slow.write('{"event":');
      const answer = await new Promise((resolve) => slow.on('response', (h) => resolve(h[':status'])));
      assert.equal(answer, 408);
      const big = await h2request(s, 'POST', '/insert', { body: 'x'.repeat(2000), headers: { 'content-type': 'application/json' } });
      assert.equal(big.status, 413);
      assert.equal(big.json?.error, 'request body is too large');
      const goaway = await new Promise((resolve) => {
        const t = setTimeout(() => resolve(null), ms(5000));
        s.once('goaway', (code) => { clearTimeout(t); resolve(code); });
      });
      assert.equal(goaway, NO_ERROR, 'idle: GOAWAY(NO_ERROR)');
      s.close();
    });
  });

  it('a graceful shutdown sends GOAWAY and ends open event streams cleanly', async () => {
    await withBroker({}, async (b) => {
      const u = await newUser(b, 'h2stop');
      const s = await h2connect(b);
      const st = new H2Stream(s, '/sse', { token: u.jwt });
      await until(() => st.status === 200, ms(10000), 'the stream');
      const id = await insert(b, u.jwt, 'last', 1);
      await until(() => st.frames.some((f) => f.id === id), ms(10000), 'the event');
      let goaway = null;
      s.on('goaway', (code) => { goaway = code; });
      let ended = false;
      st.req.on('end', () => { ended = true; });
      await b.stop({ cleanup: false }); // SIGTERM, exit 0 required
      await until(() => st.closed, ms(5000), 'the stream closed');
      assert.equal(goaway, NO_ERROR, 'GOAWAY(NO_ERROR)');
      assert.ok(ended, 'the stream ended with END_STREAM, not a reset');
      assert.equal(st.rstCode, http2.constants.NGHTTP2_NO_ERROR);
      await b.start(); // withBroker stops it again
    });
  });
});

// Ten native EventSources of one page (more than the six HTTP/1.1 connections a browser opens per
// origin) over TLS: all on one h2 connection, each getting the snapshot and the live events.
const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>h2</title></head><body><script>
(async () => {
  const p = new URLSearchParams(location.hash.slice(1));
  const broker = p.get('broker');
  window.got = [];
  window.opened = 0;
  try {
    const l = await fetch(broker + '/login', { method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username: p.get('u'), password: p.get('p') }) });
    const { jwt } = await l.json();
    for (let i = 0; i < 10; i++) {
      const t = await fetch(broker + '/sse/ticket', { method: 'POST', headers: { Authorization: 'Bearer ' + jwt } });
      const { ticket } = await t.json();
      const es = new EventSource(broker + '/sse?ticket=' + encodeURIComponent(ticket));
      window.got[i] = [];
      es.onopen = () => { window.opened++; };
      es.addEventListener('tick', (e) => { window.got[i].push(Number(e.lastEventId)); });
    }
  } catch (e) { window.failed = String(e); }
})();
</script></body></html>`;

describe('HTTP/2 in a real browser', () => {
  it('Chromium: native EventSource over h2 with TLS (nextHopProtocol "h2"), ten streams on one connection', async () => {
    const { chromium } = await import('playwright-core');
    const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
    assert.ok(fs.existsSync(CHROMIUM), `Chromium is required (scripts/deps.sh installs it): ${CHROMIUM}`);
    const dir = tmpDir('broker-h2-browser-');
    const cert = makeCert(dir);
    const http = await import('node:http');
    const site = http.createServer((req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end(PAGE); });
    await new Promise((resolve) => site.listen(0, '127.0.0.1', resolve));
    let context;
    try {
      await withBroker({ tls: cert, args: ['--origin=*'] }, async (b) => {
        const u = await newUser(b, 'h2browser');
        const first = await insert(b, u.jwt, 'tick', 0);
        context = await chromium.launchPersistentContext(path.join(dir, 'profile'), {
          executablePath: CHROMIUM, headless: true, timeout: ms(30000),
          args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--ignore-certificate-errors',
            '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        });
        const page = await context.newPage();
        const cdp = await context.newCDPSession(page);
        await cdp.send('Network.enable');
        const protocols = [];
        cdp.on('Network.responseReceived', (e) => { if (e.response.url.startsWith(b.url)) protocols.push(e.response.protocol); });
        const hash = new URLSearchParams({ broker: `https://127.0.0.1:${b.port}`, u: u.username, p: u.password });
        await page.goto(`http://127.0.0.1:${site.address().port}/#${hash}`, { timeout: ms(15000) });
        await page.waitForFunction(() => window.opened === 10 || window.failed, null, { timeout: ms(20000) });
        assert.equal(await page.evaluate(() => window.failed), undefined);
        const live = [];
        for (let i = 1; i <= 3; i++) live.push(await insert(b, u.jwt, 'tick', i));
        await page.waitForFunction((n) => window.got.every((g) => g.length >= n), 4, { timeout: ms(20000) });
        const got = await page.evaluate(() => window.got);
        for (const g of got) assert.deepEqual(g, [first, ...live], 'snapshot then live, on every EventSource');
        assert.ok(protocols.length >= 21 && protocols.every((p) => p === 'h2'), `DevTools protocol of every response: ${protocols}`);
        const m = await scrape(b);
        assert.equal(m.value('broker_subscribers'), 10);
        assert.equal(m.count('broker_h2_connections_total'), 1, 'one connection carried all of it');

        // nextHopProtocol is only exposed to the same origin (Resource Timing): a page of the broker's
        // own origin opens an EventSource and reads it.
        const own = await context.newPage();
        await own.goto(`https://127.0.0.1:${b.port}/healthz`, { timeout: ms(15000) });
        const hop = await own.evaluate(async ({ username, password }) => {
          const l = await fetch('/login', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }) });
          const { jwt } = await l.json();
          const { ticket } = await (await fetch('/sse/ticket', { method: 'POST', headers: { Authorization: 'Bearer ' + jwt } })).json();
          const first = await new Promise((resolve, reject) => {
            const es = new EventSource('/sse?ticket=' + encodeURIComponent(ticket));
            es.addEventListener('tick', (e) => { es.close(); resolve(e.lastEventId); });
            es.onerror = () => reject(new Error('EventSource error'));
          });
          const entries = performance.getEntriesByType('resource').map((e) => e.nextHopProtocol);
          return { first, nav: performance.getEntriesByType('navigation')[0].nextHopProtocol, entries };
        }, { username: u.username, password: u.password });
        assert.equal(hop.nav, 'h2', 'the page itself came over h2');
        assert.ok(hop.entries.length >= 2 && hop.entries.every((p) => p === 'h2'), `nextHopProtocol: ${hop.entries}`);
        assert.equal(Number(hop.first), live.at(-1), 'the same-origin EventSource got the snapshot');
      });
    } finally {
      if (context) await context.close().catch(() => {});
      site.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
