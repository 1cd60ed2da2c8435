// §2 CORS (seed): --origin=* by default, an exact list of origins, OPTIONS preflight.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { withBroker } from './lib/broker.js';
import { nodeRequest, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';

const tokens = (v) => (v ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean);

function assertPreflight(r, what) {
  assert.equal(r.status, 204, `${what}: preflight status ${r.status} ${r.text}`);
  const methods = tokens(r.headers['access-control-allow-methods']);
  for (const m of ['get', 'post', 'options']) {
    assert.ok(methods.includes(m), `${what}: Allow-Methods has ${m}: ${r.headers['access-control-allow-methods']}`);
  }
  const hdrs = tokens(r.headers['access-control-allow-headers']);
  for (const h of ['authorization', 'content-type', 'last-event-id', 'idempotency-key']) {
    assert.ok(hdrs.includes(h), `${what}: Allow-Headers has ${h}: ${r.headers['access-control-allow-headers']}`);
  }
}

const preflight = (b, path, origin, method = 'POST') => nodeRequest(b, 'OPTIONS', path, {
  headers: {
    origin,
    'access-control-request-method': method,
    'access-control-request-headers': 'authorization, content-type, last-event-id',
  },
});

describe('default --origin=*', () => {
  it('every kind of response carries Access-Control-Allow-Origin: * (200, 400, 401, 404, stream)', async () => {
    await withBroker({}, async (b) => {
      const o = { origin: 'https://app.example' };
      const u = await newUser(b, 'cors');
      const responses = {
        'GET /healthz 200': await nodeRequest(b, 'GET', '/healthz', { headers: o }),
        'GET /healthz 200 (no Origin)': await nodeRequest(b, 'GET', '/healthz'),
        'POST /login 200': await nodeRequest(b, 'POST', '/login', { headers: o, json: { username: u.username, password: u.password } }),
        'POST /insert 200': await nodeRequest(b, 'POST', '/insert', { headers: o, token: u.jwt, json: { event: 'c', data: 1 } }),
        'POST /users 400': await nodeRequest(b, 'POST', '/users', { headers: o, body: '{' }),
        'POST /login 401': await nodeRequest(b, 'POST', '/login', { headers: o, json: { username: 'nobody-x', password: 'whatever1' } }),
        'POST /insert 401': await nodeRequest(b, 'POST', '/insert', { headers: o, json: { event: 'c', data: 1 } }),
        'GET /sse 401': await nodeRequest(b, 'GET', '/sse', { headers: o }),
        'GET /nope 404': await nodeRequest(b, 'GET', '/nope', { headers: o }),
      };
      for (const [what, r] of Object.entries(responses)) {
        const want = Number(what.match(/ (\d{3})/)[1]);
        assert.equal(r.status, want, `${what}: ${r.status} ${r.text}`);
        assert.equal(r.headers['access-control-allow-origin'], '*', `${what}: ACAO ${r.headers['access-control-allow-origin']}`);
        const exposed = tokens(r.headers['access-control-expose-headers']);
        assert.ok(exposed.includes('retry-after') && exposed.includes('idempotent-replayed'),
          `${what}: a page may read Retry-After and Idempotent-Replayed: ${r.headers['access-control-expose-headers']}`);
      }
      const sub = await openSSE(b, { token: u.jwt, headers: o });
      try {
        assert.equal(sub.status, 200);
        assert.equal(sub.headers['access-control-allow-origin'], '*', 'the event stream carries ACAO too');
      } finally { sub.close(); }
    });
  });

  it('OPTIONS preflight answers 204 on every route (no auth needed)', async () => {
    await withBroker({}, async (b) => {
      for (const [path, method] of [['/users', 'POST'], ['/login', 'POST'], ['/insert', 'POST'], ['/sse', 'GET'],
        ['/healthz', 'GET'], ['/anything', 'GET']]) {
        const r = await preflight(b, path, 'https://app.example', method);
        assertPreflight(r, `OPTIONS ${path}`);
        assert.equal(r.headers['access-control-allow-origin'], '*', `OPTIONS ${path}: ACAO`);
      }
    });
  });
});

describe('--origin with a list of exact origins', () => {
  const A = 'https://a.example';
  const B = 'https://b.example';
  it('echoes a matching Origin with Vary: Origin, never a non-matching one', async () => {
    await withBroker({ args: [`--origin=${A},${B}`] }, async (b) => {
      const u = await newUser(b, 'corsl');
      for (const origin of [A, B]) {
        for (const [what, r] of [
          ['GET /healthz', await nodeRequest(b, 'GET', '/healthz', { headers: { origin } })],
          ['POST /insert 401', await nodeRequest(b, 'POST', '/insert', { headers: { origin }, json: { event: 'x', data: 1 } })],
          ['POST /insert 200', await nodeRequest(b, 'POST', '/insert', { headers: { origin }, token: u.jwt, json: { event: 'x', data: 1 } })],
          ['GET /nope 404', await nodeRequest(b, 'GET', '/nope', { headers: { origin } })],
        ]) {
          assert.equal(r.headers['access-control-allow-origin'], origin, `${what} from ${origin}: ACAO`);
          assert.ok(tokens(r.headers.vary).includes('origin'), `${what} from ${origin}: Vary: Origin (got ${r.headers.vary})`);
        }
        const pf = await preflight(b, '/insert', origin);
        assertPreflight(pf, `preflight from ${origin}`);
        assert.equal(pf.headers['access-control-allow-origin'], origin);
        assert.ok(tokens(pf.headers.vary).includes('origin'), `preflight Vary: Origin (got ${pf.headers.vary})`);
        const sub = await openSSE(b, { token: u.jwt, headers: { origin } });
        assert.equal(sub.headers['access-control-allow-origin'], origin, 'stream ACAO');
        sub.close();
      }
      for (const origin of ['https://c.example', `${A}.evil.example`, 'https://a.exampl', 'http://a.example', 'null']) {
        for (const [what, r] of [
          ['GET /healthz', await nodeRequest(b, 'GET', '/healthz', { headers: { origin } })],
          ['preflight /insert', await preflight(b, '/insert', origin)],
        ]) {
          const acao = r.headers['access-control-allow-origin'];
          assert.notEqual(acao, origin, `${what}: must not echo the non-matching origin ${origin}`);
          assert.notEqual(acao, '*', `${what}: must not answer * to ${origin} when a list is configured`);
        }
      }
    });
  });
});
