// §2 GET /sse Browser auth: POST /sse/ticket mints a read-only, /sse-only credential used as
// /sse?ticket=...; scope, expiry, refusal of login tokens in URLs, and a native-style EventSource
// reconnecting with the same URL after a restart.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { withBroker } from './lib/broker.js';
import { insert, newUser, request, assertJsonError } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { decodeJwt, signJwt, verifyHs256, nowSec } from './lib/jwt.js';
import { recordingEventSource, assertSameIds, until } from './lib/streams.js';
import { ms, SECRET } from './lib/config.js';
import { sleep } from './lib/util.js';

async function takeTicket(b, jwt) {
  const r = await request(b, 'POST', '/sse/ticket', { token: jwt });
  assert.equal(r.status, 200, `POST /sse/ticket: ${r.status} ${r.text}`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/i);
  assert.equal(typeof r.json?.ticket, 'string', `{"ticket": string}: ${r.text}`);
  assert.ok(Number.isInteger(r.json.expires_in), `{"expires_in": integer}: ${r.text}`);
  return r.json;
}

const ticketPath = (t) => `/sse?ticket=${encodeURIComponent(t)}`;

function assert401(sub, what) {
  assert.equal(sub.status, 401, `${what}: ${sub.status} ${sub.body ?? ''}`);
  assert.match(sub.headers['content-type'] ?? '', /^application\/json/i, `${what}: a JSON error, no stream`);
  assert.equal(typeof sub.json?.error, 'string', `${what}: {"error"}: ${sub.body}`);
}

describe('tickets', () => {
  it('happy path: a scoped HS256 ticket opens /sse?ticket= without headers (snapshot + live), reusably', async () => {
    await withBroker({}, async (b) => {
      const u = await newUser(b, 'tk');
      const s1 = await insert(b, u.jwt, 'snap', { v: 1 });
      const t0 = nowSec();
      const { ticket, expires_in: expiresIn } = await takeTicket(b, u.jwt);
      const login = decodeJwt(u.jwt).payload;
      const { header, payload } = decodeJwt(ticket);
      assert.equal(header.alg, 'HS256');
      assert.ok(verifyHs256(ticket, SECRET), 'signed with the server secret');
      assert.equal(payload.scope, 'sse', `scope claim: ${JSON.stringify(payload)}`);
      assert.equal(payload.sub, login.sub, 'same subject as the login token');
      assert.ok(expiresIn > 0 && expiresIn <= 3600, `expires_in ${expiresIn} within --ticket_ttl (default 3600)`);
      assert.ok(Math.abs(payload.exp - (t0 + expiresIn)) <= 2, `exp ${payload.exp} ~ now + expires_in (${t0} + ${expiresIn})`);
      assert.notEqual(ticket, u.jwt);

      const sub = await openSSE(b, { path: ticketPath(ticket) }); // no Authorization header at all
      const again = await openSSE(b, { path: ticketPath(ticket) }); // reusable
      try {
        for (const s of [sub, again]) {
          assert.equal(s.status, 200, `GET /sse?ticket=: ${s.status} ${s.body}`);
          assert.match(s.headers['content-type'], /^text\/event-stream/i);
          await s.waitId(s1, ms(10000));
        }
        const l = await insert(b, u.jwt, 'live', { v: 2 });
        await sub.waitId(l, ms(10000));
        await again.waitId(l, ms(10000));
        await sleep(50);
        assertSameIds(sub.ids, [s1, l], 'ticket stream');
        assert.deepEqual(sub.frames.map((f) => f.data), ['{"v":1}', '{"v":2}']);
      } finally { sub.close(); again.close(); }
    });
  });

  it('the sse scope is refused by /insert and /sse/ticket (401), and nothing is inserted', async () => {
    await withBroker({}, async (b) => {
      const u = await newUser(b, 'tkscope');
      const { ticket } = await takeTicket(b, u.jwt);
      const ins = await request(b, 'POST', '/insert', { token: ticket, json: { event: 'by-ticket', data: 1 } });
      assertJsonError(ins, 401, 'POST /insert with a ticket');
      const again = await request(b, 'POST', '/sse/ticket', { token: ticket });
      assertJsonError(again, 401, 'POST /sse/ticket with a ticket');
      // nothing was stored: the snapshot has only the marker
      const sub = await openSSE(b, { token: u.jwt });
      try {
        const m = await insert(b, u.jwt, 'marker', 1);
        await sub.waitId(m, ms(10000));
        assert.deepEqual(sub.frames.map((f) => f.event), ['marker']);
      } finally { sub.close(); }
      // POST /sse/ticket needs a credential at all
      assertJsonError(await request(b, 'POST', '/sse/ticket'), 401, 'POST /sse/ticket without a token');
      assertJsonError(await request(b, 'POST', '/sse/ticket', { token: 'garbage' }), 401, 'POST /sse/ticket with garbage');
    });
  });

  it('401 for garbage, forged, tampered, expired tickets and for a login JWT in the URL', async () => {
    await withBroker({}, async (b) => {
      const u = await newUser(b, 'tkbad');
      const { ticket } = await takeTicket(b, u.jwt);
      const { payload } = decodeJwt(ticket);
      const other = 'another-secret-0123456789abcdef-0123456789';
      const [h, p, s] = ticket.split('.');
      const flip = (x) => (x[0] === 'A' ? 'B' : 'A') + x.slice(1);
      const cases = {
        garbage: 'garbage',
        'three dots': '..',
        'login JWT in the URL': u.jwt,
        'login-shaped token (no scope) forged with the right secret': signJwt({ ...payload, scope: undefined }, SECRET),
        'another scope': signJwt({ ...payload, scope: 'admin' }, SECRET),
        'signed with another secret': signJwt(payload, other),
        'alg none': signJwt(payload, '', { alg: 'none' }),
        'HS512': signJwt(payload, SECRET, { alg: 'HS512' }),
        'tampered payload': `${h}.${Buffer.from(JSON.stringify({ ...payload, sub: 'someone-else' })).toString('base64url')}.${s}`,
        'tampered signature': `${h}.${p}.${flip(s)}`,
        expired: signJwt({ ...payload, iat: nowSec() - 100, exp: nowSec() - 10 }, SECRET),
      };
      for (const [what, t] of Object.entries(cases)) {
        const sub = await openSSE(b, { path: ticketPath(t) });
        try { assert401(sub, what); } finally { sub.close(); }
      }
      const empty = await openSSE(b, { path: '/sse?ticket=' });
      try { assert401(empty, 'empty ticket'); } finally { empty.close(); }
      // positive control: the real ticket still works
      const ok = await openSSE(b, { path: ticketPath(ticket) });
      try { assert.equal(ok.status, 200, ok.body); } finally { ok.close(); }
    });
  });

  it('expires_in never exceeds what is left of the login token (and exp equals its exp)', async () => {
    await withBroker({ args: ['--jwt_expiry=100'] }, async (b) => {
      const u = await newUser(b, 'tklife');
      const login = decodeJwt(u.jwt).payload;
      await sleep(1100); // the login token has now lost at least a second
      const t0 = nowSec();
      const { ticket, expires_in: expiresIn } = await takeTicket(b, u.jwt);
      const t1 = nowSec();
      assert.ok(expiresIn <= login.exp - t0, `expires_in ${expiresIn} <= what is left of the login token (${login.exp - t0} s)`);
      assert.ok(expiresIn >= login.exp - t1 - 1, `expires_in ${expiresIn} is the login token's remaining life (${login.exp - t1})`);
      assert.equal(decodeJwt(ticket).payload.exp, login.exp, 'the ticket expires with the login token');
    });
  });

  it('--ticket_ttl=2: the stream opened with it gets token_expiring then ends; the ticket is then refused', async () => {
    await withBroker({ args: ['--ticket_ttl=2'] }, async (b) => {
      const u = await newUser(b, 'tkttl');
      const s1 = await insert(b, u.jwt, 'snap', 1);
      const { ticket, expires_in: expiresIn } = await takeTicket(b, u.jwt);
      assert.ok(expiresIn >= 1 && expiresIn <= 2, `expires_in ${expiresIn} <= --ticket_ttl=2`);
      const { exp } = decodeJwt(ticket).payload;
      const sub = await openSSE(b, { path: ticketPath(ticket) });
      try {
        assert.equal(sub.status, 200, sub.body);
        await sub.waitId(s1, ms(10000));
        await sub.waitFor((s) => s.ended, ms(8000), 'the stream to end when the ticket expires');
        assert.ok(Date.now() >= exp * 1000 - 1000, `ended at ${Date.now() / 1000}, not (much) before exp ${exp}`);
        const warn = sub.frames.find((f) => f.event === 'token_expiring');
        assert.ok(warn, `token_expiring before the end: ${JSON.stringify(sub.raw)}`);
        assert.equal(warn.id, undefined, 'token_expiring has no id');
        assert.deepEqual(JSON.parse(warn.data), { exp }, 'token_expiring data {"exp": <ticket exp>}');
        assert.equal(sub.frames.at(-1), warn, 'nothing after the warning but the end');
      } finally { sub.close(); }
      await sleep(1100); // safely past exp whatever the rounding
      const late = await openSSE(b, { path: ticketPath(ticket) });
      try { assert401(late, 'expired ticket'); } finally { late.close(); }
      // the login token can mint a fresh one
      const fresh = await takeTicket(b, u.jwt);
      const s2 = await openSSE(b, { path: ticketPath(fresh.ticket) });
      try { assert.equal(s2.status, 200, s2.body); } finally { s2.close(); }
    });
  });
});

describe('native-style EventSource with a ticket URL', () => {
  it('eventsource@4 without a custom fetch reconnects after a restart with the same URL and resumes with no gap', async () => {
    await withBroker({}, async (b) => {
      const u = await newUser(b, 'tknative');
      const inserted = [];
      const ins = async (n) => { inserted.push(await insert(b, u.jwt, 'ev', { n })); };
      await ins(0);
      const { ticket } = await takeTicket(b, u.jwt);
      const rec = recordingEventSource(`${b.url}${ticketPath(ticket)}`, { native: true, names: ['ev', 'reset'] });
      try {
        await until(() => rec.events.length >= 1, ms(10000), 'the snapshot event');
        for (let n = 1; n <= 4; n++) await ins(n);
        await until(() => rec.ids().includes(inserted.at(-1)), ms(10000), 'live events');
        await b.stop({ cleanup: false });
        await b.start();
        for (let n = 5; n <= 8; n++) await ins(n); // only a resume (Last-Event-ID) can deliver these
        await until(() => rec.opens >= 2, ms(20000), 'the EventSource reconnecting by itself');
        for (let n = 9; n <= 12; n++) await ins(n);
        await until(() => rec.ids().includes(inserted.at(-1)), ms(10000), 'events after the reconnection');
        await sleep(100);
        assertSameIds(rec.ids(), inserted, 'native EventSource across a restart');
        assert.deepEqual(rec.events.map((e) => JSON.parse(e.data).n), inserted.map((_, n) => n));
        assert.equal(rec.events.filter((e) => e.type === 'reset').length, 0, 'no reset');
      } finally {
        rec.close();
      }
    });
  });
});
