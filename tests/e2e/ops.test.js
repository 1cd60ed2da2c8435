// §2 Operations and routing: /healthz, unknown routes, wrong methods; default settings.
import * as nodeTest from 'node:test';
import assert from 'node:assert/strict';
import { sharedBroker } from './lib/broker.js';
import { request, assertJsonError, newUser } from './lib/http.js';
import { decodeJwt } from './lib/jwt.js';

const srv = sharedBroker(nodeTest);
const test = srv.test;

test('GET /healthz -> 200 {"status":"ok"} as JSON', async (b) => {
  const r = await request(b, 'GET', '/healthz');
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/i);
  assert.deepEqual(r.json, { status: 'ok' });
  const q = await request(b, 'GET', '/healthz?probe=1');
  assert.equal(q.status, 200, 'a query string does not change the route');
});

test('unknown routes -> 404 JSON error', async (b) => {
  for (const [m, p] of [['GET', '/'], ['GET', '/nope'], ['POST', '/nope'], ['GET', '/users/1'], ['GET', '/sse/extra'],
    ['GET', '/healthzz'], ['GET', '/%00'], ['GET', '/../../etc/passwd']]) {
    assertJsonError(await request(b, m, p, { viaNode: true }), 404, `${m} ${p}`);
  }
});

test('wrong method on a known route -> 405 or 404 JSON error', async (b) => {
  for (const [m, p, body] of [['GET', '/insert'], ['GET', '/users'], ['GET', '/login'], ['POST', '/healthz', '{}'],
    ['POST', '/sse', '{}'], ['PUT', '/insert', '{}'], ['DELETE', '/users'], ['PATCH', '/login', '{}']]) {
    const r = await request(b, m, p, { body, headers: body ? { 'content-type': 'application/json' } : {} });
    assertJsonError(r, [404, 405], `${m} ${p}`);
  }
});

test('default --jwt_expiry is 86400 s', async (b) => {
  const u = await newUser(b, 'ops');
  const { payload } = decodeJwt(u.jwt);
  assert.equal(payload.exp - payload.iat, 86400, JSON.stringify(payload));
});
