// Helpers for the stream-lifecycle suites (resume, filter, tickets, lifetime, slow consumers):
// bulk inserts, an eventsource@4 client that records what it sends and receives (and can stop
// reading on demand), and a raw subscriber socket that does not read until told to.
import http from 'node:http';
import net from 'node:net';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { nodeRequest } from './http.js';
import { Subscriber } from './sse.js';
import { ms } from './config.js';
import { guardSleep } from './util.js';

/**
 * Insert `items` ([{ event, data }]) over `concurrency` keep-alive connections; every insert must
 * answer 200. Returns [{ id, event, data }] sorted by id.
 */
export async function insertMany(b, token, items, { concurrency = 32 } = {}) {
  const agent = b.secure ? undefined : new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const out = [];
  let next = 0;
  try {
    const worker = async () => {
      for (let k = 0; k < items.length && next < items.length; k++) {
        const { event, data } = items[next++];
        const r = await nodeRequest(b, 'POST', '/insert', { agent, token, json: { event, data } });
        assert.equal(r.status, 200, `insert ${event}: ${r.status} ${r.text}`);
        assert.equal(typeof r.json?.id, 'number', `insert id: ${r.text}`);
        out.push({ id: r.json.id, event, data });
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
  } finally {
    agent?.destroy();
  }
  out.sort((x, y) => x.id - y.id);
  assert.equal(new Set(out.map((e) => e.id)).size, out.length, 'every insert got its own id');
  return out;
}

/** Throws a descriptive error unless `got` equals `want` exactly (arrays of ids). */
export function assertSameIds(got, want, what) {
  if (got.length === want.length && got.every((id, i) => id === want[i])) return;
  const seen = new Set();
  const dups = got.filter((id) => (seen.has(id) ? true : (seen.add(id), false)));
  const wantSet = new Set(want);
  const gotSet = new Set(got);
  const missing = want.filter((id) => !gotSet.has(id));
  const extra = got.filter((id) => !wantSet.has(id));
  const firstBad = got.findIndex((id, i) => id !== want[i]);
  assert.fail(`${what}: got ${got.length} ids, want ${want.length}; missing ${JSON.stringify(missing.slice(0, 20))}` +
    ` (${missing.length}), unexpected ${JSON.stringify(extra.slice(0, 20))} (${extra.length}),` +
    ` duplicates ${JSON.stringify(dups.slice(0, 20))} (${dups.length}), first difference at index ${firstBad}` +
    ` (got ${got[firstBad]}, want ${want[firstBad]}); got around there` +
    ` ${JSON.stringify(got.slice(Math.max(0, firstBad - 3), firstBad + 5))}`);
}

/**
 * eventsource@4 with a recording fetch. opts:
 *  - names: event names to listen for (EventSource dispatches named events only to their listeners)
 *  - token | getToken(): Bearer credential added to every (re)connection; neither = no custom
 *    header at all (but still a recording fetch, unless native: true)
 *  - native: true = no custom fetch at all (what a browser does), nothing recorded per request
 *  - pausable: the body is handed to the client only while not paused, so pause() makes it stop
 *    reading the socket (a slow consumer) until resume()
 * Returns { es, events: [{type, id, data}], requests: [{url, lastEventId, status}], errors, opens,
 *           pause(), resume(), close() }.
 */
export function recordingEventSource(url, opts = {}) {
  const rec = { events: [], requests: [], errors: [], opens: 0 };
  let gate = null;
  let release = null;
  rec.pause = () => { if (!gate) gate = new Promise((r) => { release = r; }); };
  rec.resume = () => {
    if (!release) return;
    const r = release;
    gate = null;
    release = null;
    r();
  };
  const recordingFetch = async (u, init) => {
    const headers = { ...(init?.headers ?? {}) };
    const tok = opts.getToken ? await opts.getToken() : opts.token;
    if (tok) headers.Authorization = `Bearer ${tok}`;
    const entry = { url: String(u), lastEventId: headers['Last-Event-ID'] ?? null, at: Date.now() };
    rec.requests.push(entry);
    const res = await fetch(u, { ...init, headers });
    entry.status = res.status;
    if (!opts.pausable || !res.body) return res;
    const reader = res.body.getReader();
    const body = new ReadableStream({
      async pull(ctrl) {
        for (let i = 0; gate && i < 1000; i++) await gate;
        const { done, value } = await reader.read();
        if (done) ctrl.close();
        else ctrl.enqueue(value);
      },
      cancel(reason) { return reader.cancel(reason); },
    }, { highWaterMark: 0 });
    return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
  const es = new EventSource(url, opts.native ? undefined : { fetch: recordingFetch });
  rec.es = es;
  es.addEventListener('open', () => { rec.opens++; });
  es.addEventListener('error', (e) => { rec.errors.push(e.message ?? String(e)); });
  for (const name of opts.names ?? []) {
    es.addEventListener(name, (e) => { rec.events.push({ type: e.type, id: e.lastEventId, data: e.data }); });
  }
  rec.ids = () => rec.events.filter((e) => e.id !== '').map((e) => Number(e.id));
  rec.close = () => { rec.resume(); es.close(); };
  return rec;
}

/**
 * A GET /sse on a plain socket that does not read a byte until startReading() (then the body is
 * parsed with the suite's Subscriber). The kernel buffers fill up and the server's own queue grows:
 * a slow consumer. Only for plain-HTTP brokers (the stream is close-delimited, not chunked).
 * Resolves once connected and the request is written.
 */
export function stalledSubscriber(b, { token, path = '/sse', headers = {} } = {}) {
  const sub = new Subscriber();
  sub.keepRaw = false;
  const sock = net.connect({ host: b.host, port: b.port });
  sock.pause(); // before the connection completes, so Node never starts reading on its own
  sub.sock = sock;
  sub.close = () => { sub.closedByUs = true; sock.destroy(); };
  let head = Buffer.alloc(0);
  let inBody = false;
  // startReading({ bytesPerSec }) reads no faster than that (a slow link); stopReading() stops for good.
  let stopped = false;
  sub.stopReading = () => { stopped = true; sock.pause(); };
  sub.startReading = ({ bytesPerSec } = {}) => {
    sock.on('data', (c) => {
      if (bytesPerSec) {
        sock.pause();
        setTimeout(() => { if (!stopped && !sock.destroyed) sock.resume(); }, (c.length / bytesPerSec) * 1000).unref();
      }
      if (inBody) { sub._onData(c); return; }
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const text = head.subarray(0, end).toString('latin1');
      sub.status = Number((/^HTTP\/1\.[01] (\d{3})/.exec(text) ?? [])[1]);
      sub.headText = text;
      inBody = true;
      const rest = head.subarray(end + 4);
      if (rest.length) sub._onData(rest);
    });
    sock.resume();
  };
  sock.on('end', () => sub._onEnd('end'));
  sock.on('close', () => sub._onEnd('close'));
  sock.on('error', (e) => sub._onEnd(`error ${e.message}`));
  const lines = [`GET ${path} HTTP/1.1`, `Host: ${b.host}:${b.port}`, 'Accept: text/event-stream'];
  if (token) lines.push(`Authorization: Bearer ${token}`);
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { sock.destroy(); reject(new Error('connect timeout')); }, ms(10000));
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.write(`${lines.join('\r\n')}\r\n\r\n`);
      resolve(sub);
    });
    sock.once('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

/** Bounded wait for `pred()` with a failure guard; returns as soon as it holds. */
export async function until(pred, timeoutMs, what, stepMs = 20) {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; i < 1e6; i++) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await guardSleep(stepMs);
  }
  throw new Error(`gave up waiting for ${what}`);
}
