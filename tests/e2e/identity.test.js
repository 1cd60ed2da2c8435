// SPEC §5 identity: the admin API behind --admin_token (404 without it, 401 for a missing or wrong
// token), --registration=admin, roles in the token, revocation that refuses every older token and
// ticket at once and closes the user's streams (plain and TLS, filtered or not) with event:revoked,
// 403 "user revoked" at login, un-revoking without reviving old tokens, password changes (admin and
// self-service) that end older sessions, GET /users/me, and all of it surviving a restart.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startBroker, withBroker, tmpDir } from './lib/broker.js';
import { request, post, get, assertJsonError, createUser, login, insert, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { decodeJwt } from './lib/jwt.js';
import { scrape } from './lib/metrics.js';
import { makeCert } from './lib/tls.js';
import { ms } from './lib/config.js';
import { uniq, sleep } from './lib/util.js';

const ADMIN = 'admin-token-for-the-e2e-tests-0123456789';
const admin = (extra = {}) => ({ headers: { authorization: `Bearer ${ADMIN}` }, ...extra });

async function adminCreate(b, username, password, roles) {
  const r = await post(b, '/admin/users', roles === undefined ? { username, password } : { username, password, roles },
    admin());
  assert.equal(r.status, 200, `POST /admin/users ${username}: ${r.status} ${r.text}`);
  return r.json;
}

/** Waits until sub ended after an event:revoked frame; returns how long after `t0` it ended. */
async function revokedWithin(sub, t0, what) {
  await sub.waitFor((s) => s.ended, ms(3000), `${what}: the stream ends`).catch(() => {});
  assert.ok(sub.ended, `${what}: the stream ended`);
  const took = performance.now() - t0;
  const last = sub.frames.at(-1);
  assert.equal(last?.event, 'revoked', `${what}: the last frame is event:revoked: ${JSON.stringify(sub.raw.slice(-300))}`);
  assert.equal(last.id, undefined, `${what}: event:revoked carries no id: line`);
  assert.equal(typeof JSON.parse(last.data).reason, 'string', `${what}: data {"reason": ...}`);
  return took;
}

describe('the admin API is off without --admin_token', () => {
  it('every /admin route answers 404 JSON, whatever the method or token', async () => {
    await withBroker({}, async (b) => {
      for (const [method, path] of [['GET', '/admin/users'], ['POST', '/admin/users'], ['GET', '/admin/users/x'],
        ['PATCH', '/admin/users/x'], ['GET', '/admin'], ['DELETE', '/admin/anything']]) {
        const r = await request(b, method, path, { ...admin(), json: method === 'GET' ? undefined : {} });
        assertJsonError(r, 404, `${method} ${path} without --admin_token`);
      }
      // Registration stays open by default (the seed's behaviour).
      assert.equal((await createUser(b, uniq('open'), 'open-password-1')).status, 200);
    });
  });
});

describe('admin API and revocation', () => {
  let b;
  before(async () => {
    b = await startBroker({ args: [`--admin_token=${ADMIN}`, '--registration=admin'], neverLog: [ADMIN] });
  });
  after(async () => { await b?.stop(); });

  it('--registration=admin: POST /users is 403; the admin creates users (with roles), who log in with them', async () => {
    assertJsonError(await createUser(b, uniq('closed'), 'closed-password-1'), 403, 'POST /users with --registration=admin');
    const username = uniq('adm');
    const u = await adminCreate(b, username, 'roles-password-1', ['staff', 'ops', 'staff']);
    assert.deepEqual(Object.keys(u).sort(), ['created_at', 'id', 'revoked', 'roles', 'totp', 'username']);
    assert.deepEqual(u.roles, ['ops', 'staff'], 'roles sorted, duplicates dropped');
    assert.equal(u.revoked, false);
    assert.equal(u.totp, false);
    assert.ok(Math.abs(u.created_at - Date.now() / 1000) < 60, `created_at is unix seconds: ${u.created_at}`);
    const l = await login(b, username, 'roles-password-1');
    assert.equal(l.status, 200, l.text);
    const claims = decodeJwt(l.json.jwt).payload;
    assert.deepEqual(claims.roles, ['ops', 'staff'], 'the token carries the roles');
    assert.equal(claims.ver, 0, 'and the token version');
    const me = await get(b, '/users/me', { token: l.json.jwt });
    assert.equal(me.status, 200, me.text);
    assert.deepEqual(me.json, { id: u.id, username, roles: ['ops', 'staff'], totp: false });
    assertJsonError(await post(b, '/admin/users', { username, password: 'another-password' }, admin()), 409, 'a taken name');
  });

  it('401 for a missing token, a wrong one of the same length, a login JWT; 400 for bad input; 404 for an unknown user', async () => {
    const wrong = ADMIN.slice(0, -1) + (ADMIN.endsWith('x') ? 'y' : 'x');
    const user = await adminCreate(b, uniq('t'), 'some-password-1');
    const l = await login(b, user.username, 'some-password-1');
    for (const [label, headers] of [['no token', {}], ['same length, wrong', { authorization: `Bearer ${wrong}` }],
      ['a login JWT', { authorization: `Bearer ${l.json.jwt}` }], ['not Bearer', { authorization: ADMIN }]]) {
      assertJsonError(await get(b, '/admin/users', { headers }), 401, `GET /admin/users, ${label}`);
      assertJsonError(await request(b, 'PATCH', `/admin/users/${user.id}`, { headers, json: { revoked: true } }), 401,
        `PATCH, ${label}`);
    }
    assertJsonError(await get(b, '/admin/users/00000000000000000000000000000000', admin()), 404, 'unknown id');
    assertJsonError(await request(b, 'PATCH', '/admin/users/00000000000000000000000000000000', admin({ json: { revoked: true } })),
      404, 'PATCH of an unknown id');
    const bad = [
      [{ username: uniq('r'), password: 'pw-ok-12345', roles: ['has space'] }, 'a role with a space'],
      [{ username: uniq('r'), password: 'pw-ok-12345', roles: 'staff' }, 'roles not an array'],
      [{ username: uniq('r'), password: 'pw-ok-12345', roles: Array.from({ length: 33 }, (_, i) => `r${i}`) }, '33 roles'],
      [{ username: uniq('r'), password: 'pw-ok-12345', roles: ['x'.repeat(65)] }, 'a 65-byte role'],
      [{ username: uniq('r'), password: 'short' }, 'a short password'],
    ];
    for (const [body, what] of bad) assertJsonError(await post(b, '/admin/users', body, admin()), 400, what);
    for (const [body, what] of [[{}, 'nothing to change'], [{ revoked: 'yes' }, 'revoked not a boolean'],
      [{ password: 'short' }, 'a short password'], [{ roles: [1] }, 'a role that is not a string']]) {
      assertJsonError(await request(b, 'PATCH', `/admin/users/${user.id}`, admin({ json: body })), 400, what);
    }
    assertJsonError(await request(b, 'DELETE', `/admin/users/${user.id}`, admin()), 405, 'DELETE a user');
  });

  it('GET /admin/users pages through every user in id order', async () => {
    for (let i = 0; i < 5; i++) await adminCreate(b, uniq('page'), 'page-password-1');
    const all = [];
    let after = null;
    for (let page = 0; page < 100; page++) {
      const r = await get(b, `/admin/users?limit=2${after ? `&after=${after}` : ''}`, admin());
      assert.equal(r.status, 200, r.text);
      assert.ok(r.json.users.length <= 2);
      all.push(...r.json.users);
      after = r.json.next;
      if (after === null) break;
      assert.equal(after, r.json.users.at(-1).id, 'next is the last id of the page');
    }
    assert.equal(after, null, 'the pages end');
    const ids = all.map((u) => u.id);
    assert.deepEqual(ids, [...ids].sort(), 'in id order');
    assert.equal(new Set(ids).size, ids.length, 'no user twice');
    const full = await get(b, '/admin/users?limit=1000', admin());
    assert.deepEqual(full.json.users.map((u) => u.id), ids, 'the same users as one page of 1000');
    assertJsonError(await get(b, '/admin/users?limit=0', admin()), 400, 'limit=0');
    assertJsonError(await get(b, '/admin/users?limit=1001', admin()), 400, 'limit=1001');
  });

  it('revoking closes every stream of the user within a second (event:revoked), refuses its tokens and tickets, and login says 403', async () => {
    const password = 'revoke-password-1';
    const victim = await adminCreate(b, uniq('victim'), password);
    const other = await adminCreate(b, uniq('other'), password);
    const jwt = (await login(b, victim.username, password)).json.jwt;
    const otherJwt = (await login(b, other.username, password)).json.jwt;
    const ticket = (await post(b, '/sse/ticket', {}, { token: jwt })).json.ticket;
    await insert(b, jwt, 'before', { n: 1 });
    const streams = [
      await openSSE(b, { token: jwt }),
      await openSSE(b, { token: jwt, path: '/sse?events=before,nothing' }),
      await openSSE(b, { path: `/sse?ticket=${encodeURIComponent(ticket)}` }),
    ];
    const bystander = await openSSE(b, { token: otherJwt });
    try {
      for (const s of [...streams, bystander]) {
        assert.equal(s.status, 200, s.body);
        await s.waitFor((x) => x.frames.some((f) => f.event === 'before'), ms(5000), 'the snapshot');
      }
      const t0 = performance.now();
      const r = await request(b, 'PATCH', `/admin/users/${victim.id}`, admin({ json: { revoked: true } }));
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json.revoked, true);
      // Refused at once, with no window: the answer came after the version was recorded.
      assertJsonError(await post(b, '/insert', { event: 'after', data: 1 }, { token: jwt }), 401, 'insert with the old token');
      assertJsonError(await post(b, '/sse/ticket', {}, { token: jwt }), 401, 'a ticket with the old token');
      const again = await openSSE(b, { path: `/sse?ticket=${encodeURIComponent(ticket)}` });
      assert.equal(again.status, 401, `the old ticket opens no stream: ${again.status}`);
      const sse = await openSSE(b, { token: jwt });
      assert.equal(sse.status, 401, `the old token opens no stream: ${sse.status}`);
      for (const [i, s] of streams.entries()) {
        const took = await revokedWithin(s, t0, `stream ${i}`);
        assert.ok(took < ms(1500), `stream ${i} closed ${Math.round(took)} ms after the revocation (want within a second)`);
      }
      assert.ok(!bystander.ended, "another user's stream stays open");
      await insert(b, otherJwt, 'after', { still: 'here' });
      await bystander.waitFor((x) => x.frames.some((f) => f.event === 'after'), ms(5000), 'the bystander goes on');
      // Login: 403 after the right password only.
      assertJsonError(await login(b, victim.username, password), 403, 'login of a revoked user');
      assert.equal((await login(b, victim.username, password)).json.error, 'user revoked');
      assertJsonError(await login(b, victim.username, 'wrong-password-1'), 401, 'a wrong password still reads 401');
      // Un-revoke: logins work again, the old token stays dead.
      const un = await request(b, 'PATCH', `/admin/users/${victim.id}`, admin({ json: { revoked: false } }));
      assert.equal(un.status, 200, un.text);
      assertJsonError(await post(b, '/insert', { event: 'after', data: 2 }, { token: jwt }), 401, 'the old token after un-revoking');
      const fresh = await login(b, victim.username, password);
      assert.equal(fresh.status, 200, fresh.text);
      await insert(b, fresh.json.jwt, 'after', { back: true });
      const m = await scrape(b);
      assert.ok(m.value('broker_streams_revoked_total') >= 3, 'streams_revoked counted');
      assert.ok(m.value('broker_admin_actions_total') >= 2, 'admin actions counted');
      assert.match(b.log(), new RegExp(`admin: changed user ${victim.id}`), 'the admin action is in the log');
    } finally {
      [...streams, bystander].forEach((s) => s.close());
    }
  });

  it('changing roles or the password (admin) ends older tokens; the new token carries the new roles', async () => {
    const u = await adminCreate(b, uniq('chg'), 'change-password-1', ['a']);
    const jwt = (await login(b, u.username, 'change-password-1')).json.jwt;
    const s = await openSSE(b, { token: jwt });
    try {
      assert.equal(s.status, 200);
      const t0 = performance.now();
      const r = await request(b, 'PATCH', `/admin/users/${u.id}`, admin({ json: { roles: ['b', 'c'] } }));
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json.roles, ['b', 'c']);
      await revokedWithin(s, t0, 'stream after a roles change');
      assertJsonError(await get(b, '/users/me', { token: jwt }), 401, 'the token from before the roles change');
      const l = await login(b, u.username, 'change-password-1');
      assert.deepEqual(decodeJwt(l.json.jwt).payload.roles, ['b', 'c']);
      const p = await request(b, 'PATCH', `/admin/users/${u.id}`, admin({ json: { password: 'brand-new-password' } }));
      assert.equal(p.status, 200, p.text);
      assertJsonError(await get(b, '/users/me', { token: l.json.jwt }), 401, 'the token from before the password change');
      assertJsonError(await login(b, u.username, 'change-password-1'), 401, 'the old password');
      assert.equal((await login(b, u.username, 'brand-new-password')).status, 200, 'the new password');
    } finally {
      s.close();
    }
  });
});

describe('self-service: GET /users/me and POST /users/me/password', () => {
  it('the password change needs the old password, ends older tokens and streams, and survives a restart', async () => {
    const db = tmpDir('broker-db-');
    let b = await startBroker({ db, keepDb: true });
    try {
      const u = await newUser(b, 'self');
      const me = await get(b, '/users/me', { token: u.jwt });
      assert.deepEqual(me.json, { id: u.id, username: u.username, roles: [], totp: false });
      const ticket = (await post(b, '/sse/ticket', {}, { token: u.jwt })).json.ticket;
      assertJsonError(await get(b, '/users/me', { token: ticket }), 401, 'a ticket on /users/me');
      assertJsonError(await get(b, '/users/me'), 401, 'no token');
      assertJsonError(await post(b, '/users/me', {}, { token: u.jwt }), 405, 'POST /users/me');
      assertJsonError(await post(b, '/users/me/password', { password: 'wrong-old-pw', new_password: 'a-new-password' },
        { token: u.jwt }), 401, 'a wrong old password');
      assertJsonError(await post(b, '/users/me/password', { password: u.password, new_password: 'short' },
        { token: u.jwt }), 400, 'a short new password');
      assertJsonError(await post(b, '/users/me/password', { password: u.password }, { token: u.jwt }), 400, 'no new_password');
      const s = await openSSE(b, { token: u.jwt });
      assert.equal(s.status, 200);
      const t0 = performance.now();
      const r = await post(b, '/users/me/password', { password: u.password, new_password: 'the-new-password-9' },
        { token: u.jwt });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.json, { id: u.id, username: u.username, roles: [], totp: false });
      await revokedWithin(s, t0, 'own stream after a password change');
      s.close();
      assertJsonError(await get(b, '/users/me', { token: u.jwt }), 401, 'the token from before');
      assertJsonError(await get(b, `/sse?ticket=${encodeURIComponent(ticket)}`), 401, 'the ticket from before');
      assertJsonError(await login(b, u.username, u.password), 401, 'the old password');
      const fresh = await login(b, u.username, 'the-new-password-9');
      assert.equal(fresh.status, 200);
      (b.opts.neverLog ??= []).push('the-new-password-9');
      // A restart keeps every token version: the old token stays refused, the new one works.
      await b.stop({ cleanup: false });
      b = await startBroker({ db, keepDb: true });
      assertJsonError(await get(b, '/users/me', { token: u.jwt }), 401, 'the old token after a restart');
      assert.equal((await get(b, '/users/me', { token: fresh.json.jwt })).status, 200, 'the new token after a restart');
    } finally {
      await b.stop().catch(() => {});
    }
  });
});

describe('revocation over TLS', () => {
  it('a TLS stream is closed with event:revoked within a second', async () => {
    const dir = tmpDir('broker-tls-');
    const tls = makeCert(dir);
    await withBroker({ tls, args: [`--admin_token=${ADMIN}`], neverLog: [ADMIN] }, async (b) => {
      const u = await newUser(b, 'tls');
      await insert(b, u.jwt, 'x', 1);
      const s = await openSSE(b, { token: u.jwt });
      try {
        assert.equal(s.status, 200);
        await s.waitCount(1, ms(5000));
        const t0 = performance.now();
        const r = await request(b, 'PATCH', `/admin/users/${u.id}`, admin({ json: { revoked: true } }));
        assert.equal(r.status, 200, r.text);
        const took = await revokedWithin(s, t0, 'TLS stream');
        assert.ok(took < ms(1500), `closed ${Math.round(took)} ms after the revocation`);
      } finally {
        s.close();
      }
    });
    await sleep(10);
  });
});
