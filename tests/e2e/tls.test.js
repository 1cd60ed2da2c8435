// §1 --secure=true: HTTPS with --key_path / --cert_path.
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import tls from 'node:tls';
import { withBroker, tmpDir } from './lib/broker.js';
import { request, insert, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { exchange } from './lib/raw.js';
import { makeCert } from './lib/tls.js';
import { ms } from './lib/config.js';
import { sleep } from './lib/util.js';

it('HTTPS: users, login, insert and sse over TLS; plain HTTP on the TLS port gets no 200', async () => {
  const dir = tmpDir('broker-tls-');
  try {
    const cert = makeCert(dir);
    await withBroker({ tls: cert }, async (b) => {
      assert.ok(b.url.startsWith('https://'));
      // The certificate we configured is the one served (verified against it as the CA).
      const peer = await new Promise((resolve, reject) => {
        const s = tls.connect({ host: b.host, port: b.port, ca: b.ca, servername: 'localhost' }, () => {
          resolve({ cn: s.getPeerCertificate().subject.CN, protocol: s.getProtocol(), authorized: s.authorized });
          s.end();
        });
        s.on('error', reject);
      });
      assert.deepEqual({ cn: peer.cn, authorized: peer.authorized }, { cn: 'localhost', authorized: true });
      assert.ok(['TLSv1.2', 'TLSv1.3'].includes(peer.protocol), `protocol ${peer.protocol}`);

      const health = await request(b, 'GET', '/healthz');
      assert.equal(health.status, 200);
      const u = await newUser(b, 'tls'); // POST /users + POST /login over HTTPS
      const before = await insert(b, u.jwt, 'secure', { snap: true });
      const sub = await openSSE(b, { token: u.jwt });
      try {
        assert.equal(sub.status, 200);
        assert.match(sub.headers['content-type'], /^text\/event-stream/);
        await sub.waitId(before, ms(10000));
        const live = await insert(b, u.jwt, 'secure', { live: true });
        await sub.waitId(live, ms(10000));
        assert.deepEqual(sub.frames.map((f) => [f.idNum, f.event, f.data]),
          [[before, 'secure', '{"snap":true}'], [live, 'secure', '{"live":true}']]);
        for (const f of sub.frames) assert.ok(f.exact, f.raw);
      } finally { sub.close(); }

      const plain = await exchange(b, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', { plain: true, timeoutMs: ms(3000) });
      assert.ok(!/^HTTP\/1\.[01] 2\d\d/.test(plain.text), `plain HTTP to the TLS port must not succeed: ${JSON.stringify(plain.text.slice(0, 100))}`);
      b.assertAlive();
      assert.equal((await request(b, 'GET', '/healthz')).status, 200, 'still serving TLS afterwards');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

it('TLS: a subscriber that stops reading while large events flow gets every byte once it reads again; pipelined inserts; a silent handshake is cut', async () => {
  const dir = tmpDir('broker-tls-');
  try {
    const cert = makeCert(dir);
    await withBroker({ tls: cert, args: ['--header_timeout=1', '--max_backlog=67108864'] }, async (b) => {
      const u = await newUser(b, 'tlsslow');
      const sub = await openSSE(b, { token: u.jwt, path: '/sse?events=big' });
      try {
        assert.equal(sub.status, 200);
        sub.res.pause(); // the socket fills up: the server's SSL_write must wait and retry the same bytes
        // 8 MB, far more than the kernel buffers of a connection that is not read.
        const big = 'x'.repeat(100000);
        const ids = [];
        for (let i = 0; i < 80; i++) ids.push(await insert(b, u.jwt, 'big', { i, big }));
        await sleep(300);
        sub.res.resume();
        await sub.waitCount(80, ms(30000), '80 large events after resuming');
        assert.deepEqual(sub.frames.map((f) => f.idNum), ids);
        sub.frames.forEach((f, i) => assert.equal(f.data, JSON.stringify({ i, big })));
      } finally { sub.close(); }

      // Pipelined inserts over TLS, answered in order.
      const body = (n) => JSON.stringify({ event: 'tlspipe', data: n });
      const reqs = [1, 2, 3, 4, 5].map((n) => `POST /insert HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${u.jwt}\r\n`
        + `Content-Length: ${body(n).length}\r\n\r\n${body(n)}`).join('');
      const r = await exchange(b, reqs, { until: (t) => (t.match(/HTTP\/1\.1 200/g) ?? []).length === 5 });
      const got = [...r.text.matchAll(/"id":(\d+)/g)].map((m) => Number(m[1]));
      assert.equal(got.length, 5, r.text);
      assert.ok(got.every((id, i) => i === 0 || id > got[i - 1]), `in order: ${got}`);

      // A TCP connection that never starts its handshake is closed after --header_timeout.
      const silent = await exchange(b, [], { plain: true, timeoutMs: ms(8000) });
      assert.ok(silent.closedByServer, 'closed by the server');
      assert.equal(silent.text, '');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
