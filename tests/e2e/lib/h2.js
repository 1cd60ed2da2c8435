// HTTP/2 helpers (SPEC §6): Node's own node:http2 client for requests and event streams, and a raw
// frame writer/reader on a plain socket for the abuse cases no well-behaved client can send.
import http2 from 'node:http2';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { ms } from './config.js';

/** A node:http2 session to the broker (prior knowledge on plain HTTP, ALPN h2 with TLS). */
export function h2connect(b, options = {}) {
  const s = http2.connect(b.url, { ca: b.ca, ...options });
  s.on('error', () => { /* reported through the requests */ });
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('h2 connect timed out')), ms(5000));
    s.once('connect', () => { clearTimeout(t); resolve(s); });
    s.once('error', (e) => { clearTimeout(t); reject(e); });
  });
}

function parseJson(text) {
  try { return JSON.parse(text); } catch { return undefined; }
}

/**
 * One request on session s: { status, headers (lower-case object, no pseudo-headers), text, json }.
 * opts: { json, body, headers, token, timeoutMs }
 */
export function h2request(s, method, path, opts = {}) {
  const headers = { ':method': method, ':path': path, ...(opts.headers ?? {}) };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let body = opts.body;
  if (opts.json !== undefined) {
    body = JSON.stringify(opts.json);
    if (!Object.keys(headers).some((k) => k.toLowerCase() === 'content-type')) headers['content-type'] = 'application/json';
  }
  return new Promise((resolve, reject) => {
    const req = s.request(headers, { endStream: body === undefined });
    const t = setTimeout(() => { req.close(); reject(new Error(`h2 ${method} ${path} timed out`)); }, opts.timeoutMs ?? ms(10000));
    let status = 0;
    let hdrs = {};
    const chunks = [];
    req.on('response', (h) => {
      status = h[':status'];
      hdrs = Object.fromEntries(Object.entries(h).filter(([k]) => !k.startsWith(':')).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)]));
    });
    req.on('data', (d) => chunks.push(d));
    req.on('end', () => {
      clearTimeout(t);
      const text = Buffer.concat(chunks).toString('utf8');
      resolve({ status, headers: hdrs, text, json: parseJson(text) });
    });
    req.on('error', (e) => { clearTimeout(t); reject(e); });
    if (body !== undefined) req.end(body);
  });
}

/**
 * An event stream on session s: emits 'frame' ({id, event, data}) for each event frame and keeps
 * them in .frames; .status and .headers once the response came; .closed / .rstCode at the end.
 */
export class H2Stream extends EventEmitter {
  constructor(s, path, { token, headers = {} } = {}) {
    super();
    this.frames = [];
    this.comments = 0;
    this.buf = '';
    this.closed = false;
    const h = { ':method': 'GET', ':path': path, accept: 'text/event-stream', ...headers };
    if (token) h.authorization = `Bearer ${token}`;
    this.req = s.request(h);
    this.req.setEncoding('utf8');
    this.req.on('response', (hd) => { this.status = hd[':status']; this.headers = hd; this.emit('response', hd); });
    this.req.on('data', (d) => this._feed(d));
    this.req.on('error', () => {});
    this.req.on('close', () => {
      this.closed = true;
      this.rstCode = this.req.rstCode;
      this.emit('close');
    });
  }

  _feed(text) {
    this.buf += text;
    for (;;) {
      const end = this.buf.indexOf('\n\n');
      if (end < 0) break;
      const block = this.buf.slice(0, end);
      this.buf = this.buf.slice(end + 2);
      const f = {};
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) { this.comments++; continue; }
        const i = line.indexOf(':');
        if (i < 0) continue;
        f[line.slice(0, i)] = line.slice(i + 1);
      }
      if (f.event === undefined && f.data === undefined) continue;
      const frame = { id: f.id !== undefined ? Number(f.id) : undefined, event: f.event, data: f.data };
      this.frames.push(frame);
      this.emit('frame', frame);
    }
  }

  pause() { this.req.pause(); }
  close(code = http2.constants.NGHTTP2_CANCEL) { this.req.close(code); }
}

// ---- raw frames ----

export const FRAME = { DATA: 0, HEADERS: 1, PRIORITY: 2, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 };
export const FLAG = { END_STREAM: 1, ACK: 1, END_HEADERS: 4 };
export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export function frame(type, flags, streamId, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([h, payload]);
}

// HPACK integer with an n-bit prefix (RFC 7541 §5.1).
function hpackInt(value, n, first = 0) {
  const max = (1 << n) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  value -= max;
  while (value >= 128) { out.push((value % 128) + 128); value = Math.floor(value / 128); }
  out.push(value);
  return out;
}

function hpackString(s) {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from(hpackInt(b.length, 7)), b]);
}

/** A header block of literal fields without indexing (RFC 7541 §6.2.2): no HPACK state involved. */
export function hpack(headers) {
  const parts = [];
  for (const [name, value] of headers) parts.push(Buffer.from([0]), hpackString(name), hpackString(value));
  return Buffer.concat(parts);
}

/** A literal field with incremental indexing: it enters the dynamic table (entry 62 then). */
export function hpackIndexed(name, value) {
  return Buffer.concat([Buffer.from([0x40]), hpackString(name), hpackString(value)]);
}

/** An indexed field (RFC 7541 §6.1), e.g. 62 = the newest dynamic table entry. */
export function hpackRef(index) { return Buffer.from(hpackInt(index, 7, 0x80)); }

export function requestHeaders(path, { method = 'GET', authority = '127.0.0.1', extra = [] } = {}) {
  return hpack([[':method', method], [':scheme', 'http'], [':path', path], [':authority', authority], ...extra]);
}

/**
 * A raw HTTP/2 client on plain TCP (prior knowledge). .send(buf); .frames (parsed {type, flags,
 * stream, payload}); waitFor(pred) resolves with the first frame matching; .goaway() resolves with
 * {lastStreamId, code} or null when the socket closes without one; .ended once the socket closed.
 */
export class RawH2 extends EventEmitter {
  constructor(b) {
    super();
    this.frames = [];
    this.buf = Buffer.alloc(0);
    this.ended = false;
    this.sock = net.connect({ host: b.host, port: b.port });
    this.sock.on('data', (d) => this._feed(d));
    this.sock.on('error', () => {});
    this.sock.on('close', () => { this.ended = true; this.emit('end'); });
    this.ready = new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
  }

  async start(settings = Buffer.alloc(0)) {
    await this.ready;
    this.send(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0, settings)]));
    await this.waitFor((f) => f.type === FRAME.SETTINGS && !(f.flags & FLAG.ACK), 'server SETTINGS');
    this.send(frame(FRAME.SETTINGS, FLAG.ACK, 0));
  }

  send(buf) { if (!this.sock.destroyed) this.sock.write(buf); }

  _feed(d) {
    this.buf = Buffer.concat([this.buf, d]);
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const f = { type: this.buf[3], flags: this.buf[4], stream: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
      this.buf = this.buf.subarray(9 + len);
      this.frames.push(f);
      this.emit('frame', f);
    }
  }

  waitFor(pred, what, timeoutMs = ms(5000)) {
    const hit = this.frames.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { this.off('frame', on); reject(new Error(`timed out waiting for ${what}`)); }, timeoutMs);
      const on = (f) => { if (pred(f)) { clearTimeout(t); this.off('frame', on); resolve(f); } };
      this.on('frame', on);
    });
  }

  /** The GOAWAY the server sends (or null if the connection just closes), within timeoutMs. */
  goaway(timeoutMs = ms(5000)) {
    const parse = (f) => ({ lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, code: f.payload.readUInt32BE(4) });
    const hit = this.frames.find((f) => f.type === FRAME.GOAWAY);
    if (hit) return Promise.resolve(parse(hit));
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => { cleanup(); reject(new Error('no GOAWAY and no close')); }, timeoutMs);
      const on = (f) => { if (f.type === FRAME.GOAWAY) { cleanup(); resolve(parse(f)); } };
      const end = () => { cleanup(); resolve(null); };
      const cleanup = () => { clearTimeout(t); this.off('frame', on); this.off('end', end); };
      this.on('frame', on);
      if (this.ended) end(); else this.once('end', end);
    });
  }

  /** Resolves once the server closed the socket (true), or false after timeoutMs. */
  closed(timeoutMs = ms(5000)) {
    if (this.ended) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), timeoutMs);
      this.once('end', () => { clearTimeout(t); resolve(true); });
    });
  }

  destroy() { this.sock.destroy(); }
}

export const ENHANCE_YOUR_CALM = 0xb;
export const NO_ERROR = 0;
