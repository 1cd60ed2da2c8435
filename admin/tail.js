// admin/tail.js: the console's live tail of events. The admin token opens no stream (SPEC §5: it
// is for /admin/* only, and a stream is always some user's view under --rules), so the tail logs in
// as a user the operator names (POST /login) and reads GET /sse with that user's token in the
// Authorization header. It uses fetch rather than EventSource: EventSource cannot send the header
// (it would need a ticket in the URL) and dispatches only the event names it was told in advance,
// while a tail shows every name. The user's token lives in this object only; the password is used
// once and dropped.
//
// Control frames (reset, token_expiring, revoked) are shown too; revoked ends the tail, and a
// stream that ends otherwise (a restart, a slow-consumer drop) is resumed with Last-Event-ID.

const RETRY_MS = [1000, 2000, 5000, 10000];
const CONTROL = new Set(['reset', 'token_expiring', 'revoked']);

/**
 * An incremental text/event-stream parser (the WHATWG rules broker's frames follow): feed it
 * decoded text in any pieces; onFrame({ id, event, data }) runs once per dispatched frame. id is
 * the frame's own id: line (undefined for frames without one), not the stream's last id.
 */
export function sseParser(onFrame) {
  let buf = '';
  let frame = { data: [] };
  return (chunk) => {
    buf += chunk;
    for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
      let line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line === '') {
        if (frame.data.length) onFrame({ id: frame.id, event: frame.event || 'message', data: frame.data.join('\n') });
        frame = { data: [] };
        continue;
      }
      if (line.startsWith(':')) continue; // a comment: broker's heartbeat
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'data') frame.data.push(value);
      else if (field === 'event') frame.event = value;
      else if (field === 'id' && !value.includes('\0')) frame.id = value;
      // retry: and unknown fields are ignored
    }
  };
}

async function errorOf(res) {
  try {
    const j = await res.json();
    if (j && typeof j.error === 'string') return j.error;
  } catch { /* not JSON */ }
  return `HTTP ${res.status}`;
}

export class Tail {
  /** hooks: status(text), event({ id, event, data, control }), idle(bool) */
  constructor(hooks) {
    this.hooks = hooks;
    this.run = null; // the current run: { jwt, abort, ... }; null when stopped
  }

  stop(why) {
    if (this.run) {
      this.run.abort.abort();
      clearTimeout(this.run.timer);
      this.run = null;
    }
    this.hooks.status(why);
    this.hooks.idle(true);
  }

  async start({ username, password, totp, events }) {
    this.stop('logging in…');
    this.hooks.idle(false);
    const run = { username, events, abort: new AbortController(), lastId: null, failures: 0, timer: null };
    this.run = run;
    const body = { username, password };
    if (totp) body.totp = totp;
    let res;
    try {
      res = await fetch('login', {
        method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
        cache: 'no-store', credentials: 'omit', signal: run.abort.signal,
      });
    } catch {
      if (this.run === run) this.stop('stopped: cannot reach the server');
      return;
    }
    if (this.run !== run) return;
    if (!res.ok) {
      this.stop(`stopped: log-in as ${username} failed: ${await errorOf(res)}`);
      return;
    }
    run.jwt = (await res.json()).jwt;
    this.connect(run);
  }

  async connect(run) {
    if (this.run !== run) return;
    const q = run.events.length ? `?events=${encodeURIComponent(run.events.join(','))}` : '';
    const headers = { Authorization: `Bearer ${run.jwt}`, Accept: 'text/event-stream' };
    if (run.lastId !== null) headers['Last-Event-ID'] = run.lastId;
    let res;
    try {
      res = await fetch(`sse${q}`, { headers, cache: 'no-store', credentials: 'omit', signal: run.abort.signal });
    } catch {
      this.retry(run, 'cannot reach the server');
      return;
    }
    if (this.run !== run) return;
    if (res.status !== 200) {
      // 401 (revoked, expired), 400 (a bad ?events): retrying the same request cannot help.
      this.stop(`stopped: GET /sse answered ${res.status}: ${await errorOf(res)}`);
      return;
    }
    run.failures = 0;
    this.hooks.status(`streaming as ${run.username}${run.events.length ? ` (${run.events.join(', ')})` : ''}`);
    let ended = null;
    const parse = sseParser((f) => {
      if (this.run !== run || ended) return;
      const control = CONTROL.has(f.event);
      this.hooks.event({ ...f, control });
      if (f.id !== undefined) run.lastId = f.id;
      if (f.event === 'revoked') ended = `stopped: ${run.username}'s stream was closed (${reasonOf(f.data)})`;
      else if (f.event === 'token_expiring') this.hooks.status(`streaming as ${run.username}; the token expires soon: log in again to continue`);
    });
    try {
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done || this.run !== run) break;
        parse(value);
        if (ended) {
          reader.cancel().catch(() => {});
          break;
        }
      }
    } catch {
      /* aborted by stop(), or the connection broke: handled below */
    }
    if (this.run !== run) return;
    if (ended) this.stop(ended);
    else this.retry(run, 'the stream ended');
  }

  retry(run, why) {
    if (this.run !== run) return;
    const wait = RETRY_MS[Math.min(run.failures, RETRY_MS.length - 1)];
    run.failures += 1;
    this.hooks.status(`${why}; reconnecting in ${wait / 1000} s…`);
    run.timer = setTimeout(() => this.connect(run), wait);
  }
}

function reasonOf(data) {
  try {
    const r = JSON.parse(data).reason;
    if (typeof r === 'string') return r;
  } catch { /* not the documented shape */ }
  return data;
}
