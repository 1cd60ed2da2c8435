// §2 POST /users and POST /login (seed), JWT claims.
import * as nodeTest from 'node:test';
import assert from 'node:assert/strict';
import { sharedBroker, startBroker } from './lib/broker.js';
import { request, createUser, login, assertJsonError, newUser } from './lib/http.js';
import { decodeJwt, verifyHs256, nowSec } from './lib/jwt.js';
import { SECRET, ms } from './lib/config.js';
import { uniq, sleep } from './lib/util.js';

const { describe } = nodeTest;
const EXPIRY = 3600;
const srv = sharedBroker(nodeTest, { args: [`--jwt_expiry=${EXPIRY}`] });
const test = srv.test;

const PW = 'correct horse battery staple';
const name = (p) => uniq(p);
const rawPost = (b, path, body) => request(b, 'POST', path, { body, headers: { 'content-type': 'application/json' } });

describe('POST /users', () => {
  test('creates a user: 200 {"id": string, "username"}', async (b) => {
    (b.opts.neverLog ??= []).push(PW);
    const username = name('alice');
    const r = await createUser(b, username, PW);
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers['content-type'] ?? '', /^application\/json/i);
    assert.equal(typeof r.json.id, 'string', `id is a string: ${r.text}`);
    assert.ok(r.json.id.length > 0);
    assert.equal(r.json.username, username);
    const l = await login(b, username, PW);
    assert.equal(l.status, 200, l.text);
    assert.match(l.headers['content-type'] ?? '', /^application\/json/i);
    assert.equal(typeof l.json.jwt, 'string');
    assert.equal(l.json.jwt.split('.').length, 3);
  });

  test('409 when the username is taken (even with another password)', async (b) => {
    const username = name('dup');
    assert.equal((await createUser(b, username, PW)).status, 200);
    assertJsonError(await createUser(b, username, `${PW}-other`), 409, 'duplicate');
    assertJsonError(await createUser(b, username, PW), 409, 'duplicate, same password');
  });

  test('concurrent creation of one username: exactly one 200, the rest 409', async (b) => {
    const username = name('race');
    const rs = await Promise.all(Array.from({ length: 8 }, (_, i) => createUser(b, username, `${PW}-${i}`)));
    const statuses = rs.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 409, 409, 409, 409, 409, 409, 409], rs.map((r) => `${r.status} ${r.text}`).join('\n'));
  });

  test('usernames are compared byte for byte (case differs -> different user)', async (b) => {
    const base = name('Case');
    assert.equal((await createUser(b, base, PW)).status, 200);
    const lower = await createUser(b, base.toLowerCase(), PW);
    assert.equal(lower.status, 200, `lower-case twin is a different user: ${lower.text}`);
    assert.equal((await login(b, base.toUpperCase(), PW)).status, 401, 'upper-case twin does not exist');
  });

  test('accepts the boundaries: 128-byte username, 8- and 1024-byte passwords, bytes not characters', async (b) => {
    const u128 = (name('b') + 'x'.repeat(128)).slice(0, 128);
    let r = await createUser(b, u128, PW);
    assert.equal(r.status, 200, `128-byte username: ${r.text}`);
    const e64 = 'é'.repeat(64); // 64 characters, 128 bytes (fresh store: cannot be taken)
    assert.equal(Buffer.byteLength(e64), 128);
    r = await createUser(b, e64, PW);
    assert.equal(r.status, 200, `128-byte username of 64 two-byte characters: ${r.text}`);
    r = await createUser(b, name('pw8'), '12345678');
    assert.equal(r.status, 200, `8-byte password: ${r.text}`);
    r = await createUser(b, name('pw1024'), 'p'.repeat(1024));
    assert.equal(r.status, 200, `1024-byte password: ${r.text}`);
    r = await createUser(b, name('pw4e'), 'éééé'); // 4 characters, 8 bytes
    assert.equal(r.status, 200, `password of 8 bytes (4 two-byte characters): ${r.text}`);
  });

  describe('400 on bad input', () => {
    const bad = [
      ['malformed JSON', '{"username": "x", "password": '],
      ['not JSON at all', 'hello'],
      ['empty body', ''],
      ['trailing garbage after the object', JSON.stringify({ username: 'tg', password: PW }) + ' x'],
      ['missing password', JSON.stringify({ username: 'nopw' })],
      ['missing username', JSON.stringify({ password: PW })],
      ['empty object', '{}'],
      ['body is an array', '[]'],
      ['body is a string', '"user"'],
      ['body is null', 'null'],
      ['username is a number', JSON.stringify({ username: 123, password: PW })],
      ['username is null', JSON.stringify({ username: null, password: PW })],
      ['username is an array', JSON.stringify({ username: ['a'], password: PW })],
      ['password is a number', JSON.stringify({ username: 'numpw', password: 12345678 })],
      ['password is an object', JSON.stringify({ username: 'objpw', password: { p: PW } })],
      ['empty username', JSON.stringify({ username: '', password: PW })],
      ['username of 129 bytes', JSON.stringify({ username: 'a'.repeat(129), password: PW })],
      ['username of 129 bytes in 65 characters', JSON.stringify({ username: 'é'.repeat(64) + 'a', password: PW })],
      ['username with \\u0001', JSON.stringify({ username: 'a\u0001b', password: PW })],
      ['username with a newline', JSON.stringify({ username: 'a\nb', password: PW })],
      ['username with a tab', JSON.stringify({ username: 'a\tb', password: PW })],
      ['username with NUL', JSON.stringify({ username: 'a\u0000b', password: PW })],
      ['username with DEL (U+007F)', JSON.stringify({ username: 'a\u007fb', password: PW })],
      ['username with C1 control U+0085', JSON.stringify({ username: 'a\u0085b', password: PW })],
      ['password of 7 bytes', JSON.stringify({ username: 'short', password: '1234567' })],
      ['password of 7 bytes (3 two-byte characters + 1)', JSON.stringify({ username: 'short2', password: 'ééé1' })],
      ['password of 1025 bytes', JSON.stringify({ username: 'long', password: 'p'.repeat(1025) })],
      ['empty password', JSON.stringify({ username: 'emptypw', password: '' })],
    ];
    for (const [what, body] of bad) {
      test(what, async (b) => { assertJsonError(await rawPost(b, '/users', body), 400, what); });
    }

    const utf8 = [
      ['0xFF 0xFE', [0xff, 0xfe]],
      ['overlong "/" (0xC0 0xAF)', [0xc0, 0xaf]],
      ['UTF-16 surrogate encoded in UTF-8 (0xED 0xA0 0x80)', [0xed, 0xa0, 0x80]],
      ['truncated 3-byte sequence (0xE2 0x82)', [0xe2, 0x82]],
      ['lone continuation byte (0x80)', [0x80]],
    ];
    for (const [what, bytes] of utf8) {
      test(`username with invalid UTF-8: ${what}`, async (b) => {
        const body = Buffer.concat([Buffer.from('{"username":"ab'), Buffer.from(bytes),
          Buffer.from(`cd","password":"${PW}"}`)]);
        assertJsonError(await rawPost(b, '/users', body), 400, what);
      });
    }
  });
});

describe('POST /login', () => {
  test('401 with the same message for an unknown user and a wrong password', async (b) => {
    const username = name('login');
    assert.equal((await createUser(b, username, PW)).status, 200);
    const unknown = await login(b, name('nobody'), PW);
    assertJsonError(unknown, 401, 'unknown user');
    assert.deepEqual(unknown.json, { error: 'invalid username or password' });
    const wrong = await login(b, username, `${PW}!`);
    assertJsonError(wrong, 401, 'wrong password');
    assert.deepEqual(wrong.json, { error: 'invalid username or password' });
    const ok = await login(b, username, PW);
    assert.equal(ok.status, 200, `the right password still works: ${ok.text}`);
  });

  const bad = [
    ['malformed JSON', '{"username": '],
    ['missing password', JSON.stringify({ username: 'x' })],
    ['missing username', JSON.stringify({ password: PW })],
    ['username is a number', JSON.stringify({ username: 1, password: PW })],
    ['password is null', JSON.stringify({ username: 'x', password: null })],
    ['body is an array', '[]'],
  ];
  for (const [what, body] of bad) {
    test(`400 for ${what}`, async (b) => { assertJsonError(await rawPost(b, '/login', body), 400, what); });
  }

  test('the JWT: HS256 with sub, username, iat, exp = iat + --jwt_expiry', async (b) => {
    const before = nowSec();
    const u = await newUser(b, 'claims');
    const after = nowSec();
    const { header, payload } = decodeJwt(u.jwt);
    assert.equal(header.alg, 'HS256', JSON.stringify(header));
    assert.ok(verifyHs256(u.jwt, SECRET), 'signed with --jwt_secret');
    assert.equal(payload.sub, u.id, `sub is the user id returned by /users: ${JSON.stringify(payload)}`);
    assert.equal(payload.username, u.username);
    assert.ok(Number.isInteger(payload.iat), `iat is an integer: ${payload.iat}`);
    assert.ok(Number.isInteger(payload.exp), `exp is an integer: ${payload.exp}`);
    assert.ok(payload.iat >= before - 60 && payload.iat <= after + 60, `iat ~ now: ${payload.iat} vs ${before}..${after}`);
    assert.equal(payload.exp, payload.iat + EXPIRY, `exp = iat + ${EXPIRY}: ${JSON.stringify(payload)}`);
  });
});

describe('shutdown with password work queued', () => {
  nodeTest.it('SIGTERM with logins queued: they answer 503 at once instead of hashing, and the server exits 0', async () => {
    const b = await startBroker({ args: ['--workers=1'] });
    try {
      const u = await newUser(b, 'queued');
      // One worker, 20 logins of ~50 ms of Argon2id each: most are still queued at the SIGTERM.
      const logins = Array.from({ length: 20 }, () => request(b, 'POST', '/login',
        { json: { username: u.username, password: u.password } }).catch(() => ({ status: 'closed' })));
      await sleep(ms(150)); // the requests are read and queued (longer under sanitizers or valgrind)
      await b.stop({ cleanup: false }); // exit 0 within the guard
      const statuses = (await Promise.all(logins)).map((r) => r.status);
      for (const s of statuses) assert.ok(s === 200 || s === 503, `a login answered ${s}: ${statuses}`);
      const all = await Promise.all(logins);
      for (const r of all.filter((x) => x.status === 503)) {
        assert.match(r.headers['retry-after'] ?? '', /^[1-9]\d*$/, `Retry-After on a shutdown 503: ${JSON.stringify(r.headers)}`);
      }
      assert.ok(statuses.includes(503), `queued logins were cancelled (503), not hashed: ${statuses}`);
    } finally {
      b.cleanup();
    }
  });
});
