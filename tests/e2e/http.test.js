// The HTTP layer itself (src/http/conn.c): every refusal is JSON with CORS, the deadlines against
// slow senders, the per-address connection cap, and the HTTP/1.1 details real clients rely on
// (keep-alive, pipelining, chunked bodies, Expect: 100-continue, HEAD, HTTP/1.0, half-close).
import * as nodeTest from 'node:test';
import assert from 'node:assert/strict';
import { withBroker, sharedBroker } from './lib/broker.js';
import { request, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { connect, exchange, hasCompleteResponse } from './lib/raw.js';
import { ms } from './lib/config.js';
import { sleep, withTimeout } from './lib/util.js';

const { describe, it } = nodeTest;

/** Splits a byte string holding several HTTP responses (Content-Length bodies) into objects. */
function parseResponses(text) {
  const out = [];
  let rest = text;
  while (rest.length) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.slice(0, end);
    const lines = head.split('\r\n');
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0])?.[1]);
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] ?? 0);
    const noBody = status === 100 || status === 204;
    out.push({ status, headers, body: noBody ? '' : rest.slice(end + 4, end + 4 + len) });
    rest = rest.slice(end + 4 + (noBody ? 0 : len));
  }
  return out;
}

/** A JSON error answer with the CORS header, as SPEC §2 wants for every answer. */
function assertJsonRefusal(res, status, what) {
  assert.equal(res.status, status, `${what}: ${JSON.stringify(res)}`);
  assert.match(res.headers['content-type'] ?? '', /^application\/json/, `${what}: content type`);
  assert.equal(res.headers['access-control-allow-origin'], '*', `${what}: CORS`);
  const body = JSON.parse(res.body);
  assert.equal(typeof body.error, 'string', `${what}: {"error": ...}`);
  assert.ok(body.error.length > 0);
}

describe('refusals are JSON with CORS', () => {
  let user;
  const srv = sharedBroker(nodeTest, {
    args: ['--max_body=4096', '--max_header=2048'],
    setup: async (b) => { user = await newUser(b, 'refuse'); },
  });

  srv.test('a Content-Length over --max_body: 413 before the body is sent, then close', async (b) => {
    const r = await exchange(b, [
      'POST /insert HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n',
      `Authorization: Bearer ${user.jwt}\r\nContent-Length: 5000\r\n\r\n`,
    ], { timeoutMs: ms(5000) });
    const [res] = parseResponses(r.text);
    assertJsonRefusal(res, 413, 'Content-Length 5000');
    assert.equal(res.headers.connection, 'close');
    assert.ok(r.closedByServer, 'the server closes after a 413');
  });

  srv.test('a chunked body over --max_body: 413', async (b) => {
    const chunk = 'x'.repeat(3000);
    const r = await exchange(b, [
      'POST /insert HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n',
      `Authorization: Bearer ${user.jwt}\r\n\r\n`,
      `${chunk.length.toString(16)}\r\n${chunk}\r\n`, `${chunk.length.toString(16)}\r\n${chunk}\r\n`,
    ]);
    assertJsonRefusal(parseResponses(r.text)[0], 413, 'chunked 6000 bytes');
  });

  srv.test('a head over --max_header: 431', async (b) => {
    const r = await exchange(b, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ${'p'.repeat(3000)}\r\n\r\n`);
    assertJsonRefusal(parseResponses(r.text)[0], 431, 'a 3 KB header');
  });

  srv.test('garbage instead of a request: 400 (505 for another HTTP version)', async (b) => {
    for (const [junk, status] of [['\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n', 400], ['HELLO\r\n\r\n', 400],
      ['GET / HTTP/9.9\r\n\r\n', 505], ['GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', 400],
      ['GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400]]) {
      const r = await exchange(b, junk);
      assertJsonRefusal(parseResponses(r.text)[0], status, JSON.stringify(junk));
      assert.ok(r.closedByServer, `closed after ${JSON.stringify(junk)}`);
    }
  });

  srv.test('a folded header line (obsolete line folding): 400', async (b) => {
    const r = await exchange(b, 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n');
    assertJsonRefusal(parseResponses(r.text)[0], 400, 'obs-fold');
  });

  srv.test('the server goes on serving after all of it', async (b) => {
    const r = await request(b, 'GET', '/healthz');
    assert.equal(r.status, 200);
  });
});

describe('deadlines against slow senders', () => {
  /** Sends head, then one more byte every 200 ms until the server closes (at most 20 s). */
  async function trickle(b, head, byte) {
    const sock = await connect(b);
    let got = '';
    let closed = false;
    sock.on('data', (c) => { got += c.toString('latin1'); });
    sock.on('close', () => { closed = true; });
    sock.on('error', () => {});
    sock.write(head);
    for (let i = 0; i < 100 && !closed; i++) {
      sock.write(byte);
      await sleep(200);
    }
    return { got, closed };
  }

  it('a head trickling in past --header_timeout gets 408 and the close', async () => {
    await withBroker({ args: ['--header_timeout=1'] }, async (b) => {
      // One header byte every 200 ms: never idle long, never done (slowloris).
      const { got, closed } = await trickle(b, 'GET /healthz HTTP/1.1\r\nHost: x\r\n', 'X');
      assert.ok(closed, 'the server closed the slow connection');
      assertJsonRefusal(parseResponses(got)[0], 408, 'slow head');
      const r = await request(b, 'GET', '/healthz');
      assert.equal(r.status, 200);
    });
  });

  it('a body trickling in past --request_timeout gets 408', async () => {
    await withBroker({ args: ['--request_timeout=2', '--header_timeout=1'] }, async (b) => {
      const { got, closed } = await trickle(b,
        'POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{', ' ');
      assert.ok(closed, 'the server closed the slow connection');
      assertJsonRefusal(parseResponses(got)[0], 408, 'slow body');
    });
  });

  it('an idle kept-alive connection is closed after --idle_timeout, quietly', async () => {
    await withBroker({ args: ['--idle_timeout=1'] }, async (b) => {
      const r = await exchange(b, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: ms(10000) });
      assert.ok(r.closedByServer, 'closed by the server');
      const res = parseResponses(r.text);
      assert.equal(res.length, 1, `one answer, then nothing: ${r.text}`);
      assert.equal(res[0].status, 200);
    });
  });
});

describe('--max_connections_per_address', () => {
  it('with --cap_loopback: the connection over the cap gets 429 JSON; a freed slot (stream or not) is reusable', async () => {
    await withBroker({ args: ['--max_connections_per_address=3', '--cap_loopback=true'] }, async (b) => {
      const user = await newUser(b, 'cap');
      const streams = [];
      try {
        streams.push(await openSSE(b, { token: user.jwt }));
        streams.push(await openSSE(b, { token: user.jwt }));
        const idle = await connect(b);
        const over = await exchange(b, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
        assertJsonRefusal(parseResponses(over.text)[0], 429, 'fourth connection');
        assert.ok(over.closedByServer);
        // A stream that ends gives its slot back (the hub owns it by then).
        streams.shift().close();
        idle.destroy();
        let ok;
        for (let i = 0; i < 50; i++) {
          const r = await exchange(b, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
          ok = r.status;
          if (ok === 200) break;
          await sleep(100);
        }
        assert.equal(ok, 200, 'a slot is free again');
        const m = await request(b, 'GET', '/metrics');
        assert.match(m.text, /connections_refused\S* [1-9]/);
      } finally {
        for (const s of streams) s.close();
      }
    });
  });

  it('loopback is not capped by default (a local reverse proxy connects from there)', async () => {
    await withBroker({ args: ['--max_connections_per_address=2'] }, async (b) => {
      const socks = [];
      try {
        for (let i = 0; i < 10; i++) socks.push(await connect(b));
        const r = await request(b, 'GET', '/healthz');
        assert.equal(r.status, 200);
      } finally {
        for (const s of socks) s.destroy();
      }
    });
  });
});

describe('HTTP/1.1 as clients use it', () => {
  let user;
  const srv = sharedBroker(nodeTest, { setup: async (b) => { user = await newUser(b, 'h11'); } });

  srv.test('pipelined requests are answered in order on one connection', async (b) => {
    const body = (n) => JSON.stringify({ event: 'pipe', data: { n } });
    const reqs = [1, 2, 3].map((n) => `POST /insert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.jwt}\r\n`
      + `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body(n))}\r\n\r\n${body(n)}`);
    const r = await exchange(b, reqs.join('') + 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const res = parseResponses(r.text);
    assert.deepEqual(res.map((x) => x.status), [200, 200, 200, 200], r.text);
    const ids = res.slice(0, 3).map((x) => JSON.parse(x.body).id);
    assert.ok(ids[0] < ids[1] && ids[1] < ids[2], `ids in order: ${ids}`);
    assert.equal(res[3].headers.connection, 'close');
    assert.ok(r.closedByServer);
  });

  // http_parser makes no value callback for an empty value: the next header's name must not be glued
  // onto it (that lost the Authorization header after "X-Empty:").
  srv.test('a header with an empty value does not swallow the next header', async (b) => {
    const body = JSON.stringify({ event: 'emptyhdr', data: 1 });
    for (const empty of ['X-Empty:', 'X-Empty: ', 'Idempotency-Key:']) {
      const r = await exchange(b, `POST /insert HTTP/1.1\r\nHost: x\r\n${empty}\r\nAuthorization: Bearer ${user.jwt}\r\n`
        + `Content-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`);
      const [res] = parseResponses(r.text);
      const want = empty.startsWith('Idempotency-Key') ? 400 : 200; // an empty key is refused, after auth
      assert.equal(res?.status, want, `${JSON.stringify(empty)}: ${r.text}`);
    }
  });

  srv.test('pipelined inserts, then GET /sse on the same connection: answers in order, then the stream', async (b) => {
    const body = (n) => JSON.stringify({ event: 'pipesse', data: { n } });
    const reqs = [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `POST /insert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.jwt}\r\n`
      + `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body(n))}\r\n\r\n${body(n)}`);
    const r = await exchange(b, reqs.join('') + `GET /sse?events=pipesse HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.jwt}\r\n\r\n`,
      { until: (t) => /data:\{"n":8\}/.test(t) });
    const head = r.text.split('HTTP/1.1 ').slice(1).map((x) => Number(x.slice(0, 3)));
    assert.deepEqual(head, [200, 200, 200, 200, 200, 200, 200, 200, 200], r.text.slice(0, 2000));
    assert.match(r.text, /text\/event-stream/);
    assert.match(r.text, /event:pipesse\n(?:retry:\d+\n)?data:\{"n":8\}/, 'the snapshot holds the last insert');
  });

  srv.test('a long pipeline (far more than the input buffer and the 32 in flight): every answer, in order', async (b) => {
    const n = 300;
    const body = (i) => JSON.stringify({ event: 'longpipe', data: { i, pad: 'p'.repeat(i % 50) } });
    const reqs = Array.from({ length: n }, (_, i) => (i % 7 === 3
      ? 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' // a GET now and then: it waits for the POSTs before it
      : `POST /insert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.jwt}\r\n`
        + `Content-Length: ${Buffer.byteLength(body(i))}\r\n\r\n${body(i)}`)).join('');
    assert.ok(reqs.length > 64 * 1024, `the pipeline is ${reqs.length} bytes`);
    const r = await exchange(b, reqs, { until: (t) => parseResponses(t).length >= n, timeoutMs: ms(20000) });
    const res = parseResponses(r.text);
    assert.equal(res.length, n, `answers: ${res.length}`);
    let last = 0;
    res.forEach((x, i) => {
      assert.equal(x.status, 200, `answer ${i}: ${x.status} ${x.body}`);
      if (i % 7 === 3) {
        assert.deepEqual(JSON.parse(x.body), { status: 'ok' });
      } else {
        const { id } = JSON.parse(x.body);
        assert.ok(id > last, `answer ${i}: id ${id} after ${last}`);
        last = id;
      }
    });
  });

  srv.test('a chunked body is joined and stored exactly', async (b) => {
    const whole = JSON.stringify({ event: 'chunky', data: { s: 'a'.repeat(100), n: [1, 2, 3] } });
    const parts = [whole.slice(0, 7), whole.slice(7, 50), whole.slice(50)];
    const chunked = parts.map((p) => `${Buffer.byteLength(p).toString(16)}\r\n${p}\r\n`).join('') + '0\r\n\r\n';
    const r = await exchange(b, [
      `POST /insert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.jwt}\r\nTransfer-Encoding: chunked\r\n`
        + 'Connection: close\r\n\r\n', chunked]);
    const [res] = parseResponses(r.text);
    assert.equal(res.status, 200, r.text);
    const sub = await openSSE(b, { token: user.jwt });
    try {
      await sub.waitFor((x) => x.frames.some((f) => f.event === 'chunky'));
      const ev = sub.frames.find((f) => f.event === 'chunky');
      assert.equal(ev.data, JSON.stringify(JSON.parse(whole).data));
    } finally {
      sub.close();
    }
  });

  srv.test('Expect: 100-continue gets "100 Continue" and then the answer', async (b) => {
    const body = JSON.stringify({ event: 'expect', data: 'x'.repeat(2000) });
    const sock = await connect(b);
    try {
      let got = '';
      sock.on('data', (c) => { got += c.toString('latin1'); });
      sock.write(`POST /insert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.jwt}\r\n`
        + `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`);
      await withTimeout((async () => { while (!got.includes('\r\n\r\n')) await sleep(10); })(), ms(5000), '100 Continue');
      assert.match(got, /^HTTP\/1\.1 100 Continue\r\n\r\n/);
      sock.write(body);
      await withTimeout((async () => { while (parseResponses(got).length < 2 || !hasCompleteResponse(got.slice(25))) await sleep(10); })(),
        ms(5000), 'the answer');
      assert.equal(parseResponses(got)[1].status, 200);
    } finally {
      sock.destroy();
    }
  });

  srv.test('HEAD has no body, and the connection goes on', async (b) => {
    const r = await exchange(b, 'HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    const head = r.text.slice(0, r.text.indexOf('\r\n\r\n'));
    assert.match(head, /^HTTP\/1\.1 405 /);
    const len = Number(/content-length: (\d+)/i.exec(head)[1]);
    assert.ok(len > 0);
    const rest = r.text.slice(head.length + 4);
    assert.match(rest, /^HTTP\/1\.1 200 /, 'the next answer follows the head at once');
  });

  srv.test('HTTP/1.0: one answer, then close; with keep-alive, the connection stays', async (b) => {
    const r = await exchange(b, 'GET /healthz HTTP/1.0\r\n\r\n');
    assert.equal(r.status, 200);
    assert.ok(r.closedByServer);
    const k = await exchange(b, 'GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n', { timeoutMs: ms(500) });
    assert.equal(k.status, 200);
    assert.match(k.text, /connection: keep-alive/i);
    assert.ok(!k.closedByServer, 'kept alive');
  });

  srv.test('a request followed by a half-close is still answered', async (b) => {
    const body = JSON.stringify({ event: 'half', data: 1 });
    const r = await exchange(b, `POST /insert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.jwt}\r\n`
      + `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`, { half: true });
    assert.equal(r.status, 200, r.text);
    assert.ok(r.closedByServer);
  });

  srv.test('keep-alive: many requests on one connection', async (b) => {
    const n = 50;
    const reqs = Array.from({ length: n }, () => 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n').join('');
    const r = await exchange(b, reqs, { until: (t) => parseResponses(t).length >= n });
    assert.equal(parseResponses(r.text).filter((x) => x.status === 200).length, n);
  });

  srv.test('the query string never reaches the log (it may hold a ticket)', async (b) => {
    await request(b, 'GET', '/nowhere?ticket=SECRET-TICKET-VALUE');
    await sleep(100);
    assert.ok(!b.log().includes('SECRET-TICKET-VALUE'), 'no query in the log');
  });

  srv.test('an insert via keep-alive works after an error on the same connection', async (b) => {
    const good = JSON.stringify({ event: 'after', data: 2 });
    const r = await exchange(b, 'POST /insert HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}'
      + `POST /insert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${user.jwt}\r\nContent-Length: ${good.length}\r\nConnection: close\r\n\r\n${good}`);
    assert.deepEqual(parseResponses(r.text).map((x) => x.status), [401, 200]);
  });
});
