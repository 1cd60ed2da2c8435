// SSE subscriber over node:http(s) that keeps the exact bytes of every frame.
import http from 'node:http';
import https from 'node:https';
import { EventEmitter } from 'node:events';
import { ms } from './config.js';

const NLNL = Buffer.from('\n\n');

// The exact frame shape of the contract; an optional retry: line is allowed between event: and data:.
export const FRAME_RE = /^id:(\d+)\nevent:([^\n]*)\n(?:retry:(\d+)\n)?data:([^\n]*)\n\n$/;

/** Parse one raw frame (text ending in "\n\n"). */
export function parseFrame(raw) {
  const lines = raw.slice(0, -2).split('\n');
  const body = lines.filter((l) => !l.startsWith(':'));
  if (body.length === 0) return { comment: true, raw };
  const f = { raw, lines: body, data: undefined, event: undefined, id: undefined, retry: undefined };
  const data = [];
  for (const line of body) {
    const i = line.indexOf(':');
    const name = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1); // per the SSE spec; the exact-bytes tests use FRAME_RE
    if (name === 'data') data.push(value);
    else if (name === 'event') f.event = value;
    else if (name === 'id') f.id = value;
    else if (name === 'retry') f.retry = value;
  }
  if (data.length) f.data = data.join('\n');
  f.idNum = f.id !== undefined && /^\d+$/.test(f.id) ? Number(f.id) : undefined;
  // Exact-shape check on the frame without leading comment lines.
  const noComments = body.join('\n') + '\n\n';
  f.exact = FRAME_RE.test(noComments);
  f.canonical = noComments.replace(/\nretry:\d+\n/, '\n'); // frame with any retry: line removed
  return f;
}

export class Subscriber extends EventEmitter {
  constructor() {
    super();
    this.setMaxListeners(0);
    this.frames = []; // event frames (comments excluded)
    this.comments = 0;
    this.rawChunks = [];
    this.pending = Buffer.alloc(0);
    this.ended = false;
    this.endReason = null;
  }

  get ids() { return this.frames.map((f) => f.idNum); }
  get raw() { return Buffer.concat(this.rawChunks).toString('utf8'); }

  _onData(chunk) {
    if (this.keepRaw) this.rawChunks.push(chunk);
    this.pending = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    let added = false;
    for (let i = 0; i < 1e6; i++) {
      // A comment line between frames (the heartbeat ":\n", SPEC §2) stands alone, with no blank line.
      if (this.pending.length && this.pending[0] === 0x3a /* ':' */) {
        const eol = this.pending.indexOf(0x0a);
        if (eol < 0) break;
        this.pending = this.pending.subarray(eol + 1);
        this.comments++;
        continue;
      }
      const idx = this.pending.indexOf(NLNL);
      if (idx < 0) break;
      const raw = this.pending.subarray(0, idx + 2).toString('utf8');
      this.pending = this.pending.subarray(idx + 2);
      const f = parseFrame(raw);
      if (f.comment) { this.comments++; continue; }
      f.at = performance.now();
      this.frames.push(f);
      added = true;
    }
    if (added) this.emit('frames');
  }

  _onEnd(reason) {
    if (this.ended) return;
    this.ended = true;
    this.endReason = reason;
    this.emit('frames');
  }

  /** Resolve once pred(this) is true; reject on timeout or if the stream ends first. */
  waitFor(pred, timeoutMs = ms(10000), what = 'frames') {
    return new Promise((resolve, reject) => {
      const check = () => {
        if (pred(this)) { cleanup(); resolve(this); return true; }
        if (this.ended) {
          cleanup();
          reject(new Error(`stream ended (${this.endReason}) before ${what}; got ids ${JSON.stringify(this.ids.slice(-50))}`));
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${this.frames.length} frames, ` +
          `last ids ${JSON.stringify(this.ids.slice(-20))}`));
      }, timeoutMs);
      const cleanup = () => { clearTimeout(timer); this.off('frames', check); };
      if (!check()) this.on('frames', check);
    });
  }

  waitCount(n, timeoutMs, what) {
    return this.waitFor((s) => s.frames.length >= n, timeoutMs, what ?? `${n} frames`);
  }

  waitId(id, timeoutMs) {
    return this.waitFor((s) => s.frames.some((f) => f.idNum === id), timeoutMs, `event id ${id}`);
  }

  close() {
    this.closedByUs = true;
    this.req?.destroy();
    this.res?.destroy();
  }
}

/**
 * Open GET /sse. Resolves when response headers arrive (status may be non-200; then `body`/`json` are
 * filled once the response ends). opts: { token, headers, path, keepRaw, agent, timeoutMs }
 */
export function openSSE(b, opts = {}) {
  const sub = new Subscriber();
  sub.keepRaw = opts.keepRaw ?? true;
  const headers = { accept: 'text/event-stream', ...(opts.headers ?? {}) };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  const mod = b.secure ? https : http;
  sub.requestedAt = performance.now();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy(new Error('no response headers'));
    }, ms(opts.timeoutMs ?? 15000));
    const req = mod.request({
      host: b.host, port: b.port, method: 'GET', path: opts.path ?? '/sse', headers,
      agent: opts.agent ?? false, ca: b.ca, servername: b.secure ? 'localhost' : undefined,
    }, (res) => {
      clearTimeout(timer);
      sub.res = res;
      sub.status = res.statusCode;
      sub.headers = res.headers;
      sub.headersAt = performance.now();
      if (res.statusCode !== 200 || !/^text\/event-stream/i.test(res.headers['content-type'] ?? '')) {
        const chunks = [];
        const bodyTimer = setTimeout(() => {
          res.destroy();
          sub.body = Buffer.concat(chunks).toString('utf8');
          sub.bodyTimedOut = true;
          sub._onEnd('non-200 body never ended');
          resolve(sub);
        }, ms(5000));
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(bodyTimer);
          sub.body = Buffer.concat(chunks).toString('utf8');
          try { sub.json = JSON.parse(sub.body); } catch { /* not JSON */ }
          sub._onEnd('end');
          resolve(sub);
        });
        res.on('error', (e) => { clearTimeout(bodyTimer); sub._onEnd(`error ${e.message}`); resolve(sub); });
        return;
      }
      res.on('data', (c) => sub._onData(c));
      res.on('end', () => sub._onEnd('end'));
      res.on('close', () => sub._onEnd('close'));
      res.on('error', (e) => sub._onEnd(`error ${e.message}`));
      resolve(sub);
    });
    sub.req = req;
    req.on('error', (e) => {
      clearTimeout(timer);
      if (sub.res) { sub._onEnd(`error ${e.message}`); return; }
      if (sub.closedByUs) return;
      reject(e);
    });
    req.end();
  });
}
