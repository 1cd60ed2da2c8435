// §3 isolation of clients: bad input never crashes the server or disturbs other clients.
import * as nodeTest from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import { sharedBroker } from './lib/broker.js';
import { request, insert, newUser, assertJsonError } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { connect, exchange, hasCompleteResponse } from './lib/raw.js';
import { ms } from './lib/config.js';
import { sleep, guardSleep, withTimeout } from './lib/util.js';

let user;
const srv = sharedBroker(nodeTest, { logLevel: 'info', setup: async (b) => { user = await newUser(b, 'robust'); } });
const test = srv.test;
const accepted = new Set(); // event names legitimately inserted

async function healthy(b, what) {
  b.assertAlive();
  const r = await request(b, 'GET', '/healthz');
  assert.equal(r.status, 200, `server healthy after ${what}: ${r.status} ${r.text}`);
}

const isSuccess = (status) => status !== undefined && status >= 200 && status < 300;


test('malformed JSON on every JSON route', async (b) => {
  for (const path of ['/users', '/login', '/insert']) {
    for (const body of ['{', '{"a":', '}{', '\u0000', '[[[[[[[[[[[[[[[[', '{"event":"x","data":1']) {
      const r = await request(b, 'POST', path, { body, headers: { 'content-type': 'application/json' }, token: user.jwt });
      assertJsonError(r, 400, `${path} ${JSON.stringify(body)}`);
    }
  }
  // deep nesting must not blow the stack
  const deep = `{"event":"deep","data":${'['.repeat(100000)}${']'.repeat(100000)}}`;
  const r = await request(b, 'POST', '/insert', { body: deep, headers: { 'content-type': 'application/json' }, token: user.jwt });
  assert.ok(r.status === 400 || r.status === 200 || r.status === 413, `100000-deep array: ${r.status} ${r.text.slice(0, 200)}`);
  if (r.status === 200) accepted.add('deep');
  await healthy(b, 'malformed JSON');
});

/** Stream a ~50 MB body for /insert on a raw socket; return what the server answered. */
async function hugeUpload(b, { chunked }) {
  const TOTAL = 50 * 1024 * 1024;
  const head = '{"event":"huge","data":"';
  const tail = '"}';
  const fill = Buffer.alloc(64 * 1024, 'x');
  const sock = await connect(b);
  const got = [];
  let closed = false;
  sock.on('data', (c) => got.push(c));
  sock.on('error', () => { closed = true; });
  sock.on('close', () => { closed = true; });
  const responded = () => hasCompleteResponse(Buffer.concat(got).toString('latin1'));
  const headers = [
    'POST /insert HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${user.jwt}`, 'Content-Type: application/json',
    chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${TOTAL}`, '', '',
  ].join('\r\n');
  sock.write(headers);
  const frame = (buf) => (chunked ? Buffer.concat([Buffer.from(`${buf.length.toString(16)}\r\n`), buf, Buffer.from('\r\n')]) : buf);
  let sent = 0;
  const deadline = Date.now() + ms(60000);
  const writeOne = async (buf) => {
    if (!sock.write(frame(buf))) {
      await Promise.race([once(sock, 'drain').catch(() => {}), once(sock, 'close').catch(() => {}), guardSleep(ms(2000))]);
    }
  };
  await writeOne(Buffer.from(head));
  sent += head.length;
  for (let i = 0; i < 1000 && sent < TOTAL - tail.length && !closed && !responded() && Date.now() < deadline; i++) {
    const n = Math.min(fill.length, TOTAL - tail.length - sent);
    await writeOne(fill.subarray(0, n));
    sent += n;
  }
  if (!closed && !responded()) {
    await writeOne(Buffer.from(tail));
    if (chunked) sock.write('0\r\n\r\n');
  }
  // Wait (bounded) for an answer or a close.
  for (let i = 0; i < 200 && !closed && !responded(); i++) await sleep(50);
  sock.destroy();
  const text = Buffer.concat(got).toString('latin1');
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return { status: m ? Number(m[1]) : undefined, closed, sentMB: (sent / 1048576).toFixed(1), text: text.slice(0, 300) };
}

for (const chunked of [false, true]) {
  test(`a 50 MB body (${chunked ? 'chunked' : 'Content-Length'}) is refused with 413, memory stays bounded`, async (b) => {
    const before = b.memory();
    const r = await hugeUpload(b, { chunked });
    assert.ok(!isSuccess(r.status), `50 MB body must never succeed: ${JSON.stringify(r)}`);
    assert.equal(r.status, 413, `want 413: ${JSON.stringify(r).slice(0, 300)}`);
    const after = b.memory();
    const growthMB = (after.hwm - before.hwm) / 1024;
    assert.ok(growthMB < 40, `peak RSS grew by ${growthMB.toFixed(1)} MB for a refused 50 MB body (before ${JSON.stringify(before)}, after ${JSON.stringify(after)})`);
    await healthy(b, '50 MB body');
  });
}

test('Content-Length + Transfer-Encoding together: 400 or close, never processed', async (b) => {
  const json = JSON.stringify({ event: 'smuggle', data: 1 });
  const chunkedBody = `${Buffer.byteLength(json).toString(16)}\r\n${json}\r\n0\r\n\r\n`;
  const req = [
    'POST /insert HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${user.jwt}`, 'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(chunkedBody)}`, 'Transfer-Encoding: chunked', '', chunkedBody,
  ].join('\r\n');
  const r = await exchange(b, req, { timeoutMs: ms(3000), until: hasCompleteResponse });
  assert.ok(!isSuccess(r.status), `must not be processed: ${r.text.slice(0, 300)}`);
  assert.ok(r.status === 400 || (r.status === undefined && r.closedByServer),
    `want 400 or a closed connection, got status ${r.status} closed=${r.closedByServer}: ${JSON.stringify(r.text.slice(0, 300))}`);
  await healthy(b, 'CL+TE');
});

test('slow partial requests do not stall other clients', async (b) => {
  const partial = [];
  // 10 connections stuck in the request line / headers, 10 stuck in the body.
  for (let i = 0; i < 10; i++) {
    const s = await connect(b);
    s.on('error', () => {});
    s.write('POST /users HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Len');
    partial.push(s);
  }
  for (let i = 0; i < 10; i++) {
    const s = await connect(b);
    s.on('error', () => {});
    s.write(`POST /insert HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${user.jwt}\r\n` +
      'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"event":"slow","da');
    partial.push(s);
  }
  try {
    await sleep(200);
    for (let i = 0; i < 10; i++) await healthy(b, 'partial requests pending');
    const sub = await openSSE(b, { token: user.jwt });
    try {
      assert.equal(sub.status, 200);
      const u2 = await newUser(b, 'meanwhile');
      const id = await insert(b, u2.jwt, 'meanwhile', { ok: true });
      accepted.add('meanwhile');
      await sub.waitId(id, ms(10000));
    } finally { sub.close(); }
  } finally {
    for (const s of partial) s.destroy();
  }
  await healthy(b, 'partial requests closed');
});

test('garbage bytes on raw sockets', async (b) => {
  const payloads = [
    randomBytes(4096),
    Buffer.concat([randomBytes(512), Buffer.from('\r\n\r\n')]),
    Buffer.from('\r\n\r\n\r\n\r\n'),
    Buffer.from('GET / HTTP/9.9\r\n\r\n'),
    Buffer.from('POST /insert HTTP/1.1\r\nContent-Length: -5\r\n\r\n'),
    Buffer.from('POST /insert HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n'),
    Buffer.from('POST /insert HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'),
    Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), // a TLS ClientHello start
  ];
  for (const p of payloads) {
    const r = await exchange(b, p, { timeoutMs: ms(2000), until: hasCompleteResponse });
    assert.ok(!isSuccess(r.status), `garbage ${JSON.stringify(p.toString('latin1').slice(0, 40))} got ${r.status}`);
  }
  // Odd but parseable: any answer is fine, as long as the server survives.
  for (const p of [
    Buffer.from('GET /healthz HTTP/1.1\r\n\u0000\u0001: \u00ff\r\n\r\n', 'latin1'),
    Buffer.from('GET /healthz HTTP/1.0\r\n\r\n'),
    Buffer.from(`GET /healthz?${'q'.repeat(8000)} HTTP/1.1\r\nHost: x\r\n\r\n`),
  ]) {
    await exchange(b, p, { timeoutMs: ms(2000), until: hasCompleteResponse });
    b.assertAlive();
  }
  // 50 pipelined requests on one connection get 50 answers, in order (HTTP/1.1).
  const piped = await exchange(b, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(50), {
    timeoutMs: ms(5000), until: (t) => (t.match(/HTTP\/1\.1 200/g) ?? []).length >= 50,
  });
  assert.equal((piped.text.match(/HTTP\/1\.1 200/g) ?? []).length, 50, 'pipelined /healthz answers');
  // Connections dropped abruptly mid-request.
  for (let i = 0; i < 30; i++) {
    const s = await connect(b);
    s.on('error', () => {});
    s.write(`POST /insert HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\nAuthorization: Bearer ${user.jwt}\r\n\r\n{"ev`);
    s.resetAndDestroy ? s.resetAndDestroy() : s.destroy();
  }
  await healthy(b, 'garbage');
});

test('a 100 KB header is rejected', async (b) => {
  const big = 'a'.repeat(100 * 1024);
  const r = await exchange(b, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ${big}\r\n\r\n`,
    { timeoutMs: ms(3000), until: hasCompleteResponse });
  assert.ok(!isSuccess(r.status), `100 KB header must be rejected, got ${r.status}: ${r.text.slice(0, 200)}`);
  assert.ok(r.status === undefined ? r.closedByServer : r.status >= 400,
    `rejected with a 4xx or a close: status ${r.status} closed=${r.closedByServer}`);
  // many headers adding up to 100 KB
  const many = Array.from({ length: 1000 }, (_, i) => `X-H${i}: ${'b'.repeat(100)}`).join('\r\n');
  const r2 = await exchange(b, `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n${many}\r\n\r\n`,
    { timeoutMs: ms(3000), until: hasCompleteResponse });
  assert.ok(!isSuccess(r2.status), `1000 headers / 100 KB must be rejected, got ${r2.status}`);
  await healthy(b, 'big headers');
});

test('subscribers that vanish mid-stream do not hurt the server (no SIGPIPE)', async (b) => {
  const subs = [];
  for (let i = 0; i < 10; i++) subs.push(await openSSE(b, { token: user.jwt, keepRaw: false }));
  const big = 'v'.repeat(8192);
  const inserts = [];
  for (let i = 0; i < 30; i++) {
    inserts.push(insert(b, user.jwt, 'vanish', { i, big }));
    if (i === 5) for (const s of subs) { s.res.socket.resetAndDestroy ? s.res.socket.resetAndDestroy() : s.close(); }
  }
  await Promise.all(inserts);
  accepted.add('vanish');
  await healthy(b, 'vanished subscribers');
});

test('a subscriber that never reads does not stall another one (200 x 64 KB events)', async (b) => {
  const stuck = await connect(b);
  stuck.on('error', () => {});
  stuck.write(`GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${user.jwt}\r\nAccept: text/event-stream\r\n\r\n`);
  // no 'data' listener and paused: once Node's buffer is full it stops reading, the kernel buffers fill up
  stuck.pause();
  const reader = await openSSE(b, { token: user.jwt, keepRaw: false });
  try {
    assert.equal(reader.status, 200);
    const blob = 'L'.repeat(64 * 1024);
    const ids = [];
    for (let i = 0; i < 200; i++) {
      ids.push(await insert(b, user.jwt, 'large', { i, blob }));
    }
    accepted.add('large');
    await withTimeout(reader.waitFor((s) => ids.every((id) => s.frames.some((f) => f.idNum === id)), ms(60000),
      'all 200 large events'), ms(61000), 'reader');
    const got = reader.frames.filter((f) => f.event === 'large');
    assert.deepEqual(got.map((f) => f.idNum).filter((id) => id >= ids[0]), ids);
    assert.equal(JSON.parse(got[got.length - 1].data).blob.length, blob.length);
    await healthy(b, 'stuck subscriber');
  } finally {
    reader.close();
    stuck.destroy();
  }
});

test('nothing from the rejected requests was stored, and the server still serves', async (b) => {
  const sub = await openSSE(b, { token: user.jwt });
  try {
    const marker = await insert(b, user.jwt, 'marker', 1);
    accepted.add('marker');
    await sub.waitId(marker, ms(10000));
    const names = sub.frames.map((f) => f.event);
    const unexpected = names.filter((n) => !accepted.has(n));
    assert.deepEqual(unexpected, [], `events from rejected requests were stored: ${JSON.stringify(unexpected)}`);
  } finally { sub.close(); }
});
