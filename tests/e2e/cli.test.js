// §1 Running: flags, environment, defaults, secrets.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import net from 'node:net';
import { runBroker, startBroker, freePort, tmpDir } from './lib/broker.js';
import { newUser, insert, request } from './lib/http.js';
import { verifyHs256 } from './lib/jwt.js';
import { makeCert } from './lib/tls.js';

/** Exactly one non-empty line on stderr. */
function assertOneLine(stderr, ctx) {
  const text = stderr.replace(/\n$/, '');
  assert.ok(text.length > 0, `${ctx}: expected a one-line reason on stderr, got nothing`);
  assert.ok(!text.includes('\n'), `${ctx}: expected exactly one line on stderr, got:\n${stderr}`);
}

/** Nothing accepts connections on the port. */
function assertNotListening(port) {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.on('connect', () => { s.destroy(); reject(new Error(`something is listening on ${port}`)); });
    s.on('error', () => resolve());
  });
}

/** Run with `args` (+ a temp --db and a free --port unless given) and expect exit 2 with one line. */
async function expectUsageError(args, env = {}) {
  const db = tmpDir('broker-cli-db-');
  const full = [...args];
  if (!args.some((a) => a.startsWith('--db'))) full.push(`--db=${db}`);
  if (!args.some((a) => a.startsWith('--port')) && !env.BROKER_PORT) full.push(`--port=${await freePort()}`);
  const r = await runBroker(full, { env });
  fs.rmSync(db, { recursive: true, force: true });
  const ctx = `broker ${full.join(' ')} env=${JSON.stringify(env)}`;
  assert.equal(r.timedOut, false, `${ctx}: still running after the guard timeout (should refuse to start)`);
  assert.equal(r.code, 2, `${ctx}: exit code ${r.code} signal ${r.signal}, want 2; stderr: ${r.stderr}`);
  assertOneLine(r.stderr, ctx);
}

/** Start with an exact argv/env; `port` is where we probe. Runs fn(broker) then stops it. */
async function withExact({ args, env = {}, port, db, secret }, fn) {
  const b = await startBroker({ exactArgs: args, env, port, db, secret: null, neverLog: secret ? [secret] : [] });
  try {
    await fn(b);
  } catch (e) {
    b.dump();
    b.cleanup();
    throw e;
  }
  await b.stop();
}

/** Every regular file under dir, as { rel: mode }. */
function listFiles(dir) {
  const out = {};
  const walk = (d) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) out[path.relative(dir, p)] = fs.statSync(p).mode & 0o777;
    }
  };
  walk(dir);
  return out;
}

describe('help and version', () => {
  it('--help exits 0 and describes the flags', async () => {
    const r = await runBroker(['--help']);
    assert.equal(r.timedOut, false, '--help must not start the server');
    assert.equal(r.code, 0, `exit ${r.code}; stderr: ${r.stderr}`);
    const out = r.stdout + r.stderr;
    for (const flag of ['--db', '--port', '--secure', '--origin', '--jwt_expiry', '--jwt_secret']) {
      assert.ok(out.includes(flag), `--help output mentions ${flag}:\n${out}`);
    }
  });

  it('--version exits 0 and prints a version', async () => {
    const r = await runBroker(['--version']);
    assert.equal(r.timedOut, false, '--version must not start the server');
    assert.equal(r.code, 0, `exit ${r.code}; stderr: ${r.stderr}`);
    assert.match(r.stdout + r.stderr, /\d+\.\d+/, 'prints a version number');
  });
});

describe('usage errors exit 2 with a one-line reason', () => {
  const cases = [
    ['unknown flag with a value', ['--bogus=1']],
    ['unknown flag alone', ['--no_such_flag']],
    ['non-numeric port', ['--port=abc']],
    ['port out of range', ['--port=70000']],
    ['secure not a boolean', ['--secure=maybe']],
    ['negative jwt_expiry', ['--jwt_expiry=-1']],
    ['non-numeric jwt_expiry', ['--jwt_expiry=soon']],
    ['non-numeric max_body', ['--max_body=big']],
    ['unknown log level', ['--log_level=loud']],
    ['non-numeric threads', ['--threads=many']],
  ];
  for (const [name, args] of cases) {
    it(`${name}: ${args.join(' ')}`, async () => { await expectUsageError(args); });
  }
  it('invalid value from the environment: BROKER_PORT=abc', async () => {
    await expectUsageError([], { BROKER_PORT: 'abc' });
  });
});

describe('flag forms and environment', () => {
  it('"--flag value" (space-separated) form works', async () => {
    const db = tmpDir('broker-db-');
    const port = await freePort();
    const secret = 'space-form-secret-0123456789abcdef0123456789';
    await withExact({
      args: ['--db', db, '--port', String(port), '--host', '127.0.0.1', '--jwt_secret', secret, '--log_level', 'info'],
      port, secret,
    }, async (b) => {
      const u = await newUser(b, 'space');
      assert.ok(verifyHs256(u.jwt, secret), 'token signed with the secret given as "--jwt_secret value"');
      assert.ok(fs.readdirSync(db).length > 0, 'the database lives in the --db given as "--db DIR"');
    });
    fs.rmSync(db, { recursive: true, force: true });
  });

  it('BROKER_PORT, BROKER_JWT_SECRET, BROKER_DB from the environment', async () => {
    const db = tmpDir('broker-db-');
    const port = await freePort();
    const secret = 'env-secret-0123456789abcdef0123456789abcdef';
    await withExact({
      args: ['--host=127.0.0.1', '--log_level=info'],
      env: { BROKER_PORT: String(port), BROKER_JWT_SECRET: secret, BROKER_DB: db },
      port, secret,
    }, async (b) => {
      const u = await newUser(b, 'env');
      assert.ok(verifyHs256(u.jwt, secret), 'token signed with BROKER_JWT_SECRET');
      assert.ok(fs.readdirSync(db).length > 0, 'the database lives in BROKER_DB');
    });
    fs.rmSync(db, { recursive: true, force: true });
  });

  it('a flag beats the environment (port and jwt_secret)', async () => {
    const db = tmpDir('broker-db-');
    const envPort = await freePort();
    const flagPort = await freePort();
    const envSecret = 'env-loses-0123456789abcdef0123456789abcdef';
    const flagSecret = 'flag-wins-0123456789abcdef0123456789abcdef';
    await withExact({
      args: [`--port=${flagPort}`, `--jwt_secret=${flagSecret}`, `--db=${db}`, '--host=127.0.0.1', '--log_level=info'],
      env: { BROKER_PORT: String(envPort), BROKER_JWT_SECRET: envSecret },
      port: flagPort, secret: flagSecret,
    }, async (b) => {
      await assertNotListening(envPort);
      const u = await newUser(b, 'prec');
      assert.ok(verifyHs256(u.jwt, flagSecret), 'token signed with --jwt_secret, not BROKER_JWT_SECRET');
    });
    fs.rmSync(db, { recursive: true, force: true });
  });

  it('valid values for the other flags are accepted', async () => {
    const b = await startBroker({
      args: ['--threads=1', '--max_body=2048', '--origin=https://x.example', '--jwt_expiry=60', '--secure=false'],
      logLevel: 'error',
    });
    try {
      const u = await newUser(b, 'flags');
      await insert(b, u.jwt, 'flags', { ok: true });
    } catch (e) { b.dump(); b.cleanup(); throw e; }
    await b.stop();
  });

  it('--db defaults to ./broker-data (created if missing)', async () => {
    const port = await freePort();
    // startBroker runs the child in its own temp cwd, so ./broker-data lands there.
    const b = await startBroker({ exactArgs: [`--port=${port}`, '--host=127.0.0.1'], port, secret: null });
    try {
      assert.ok(fs.statSync(path.join(b.cwd, 'broker-data')).isDirectory(), './broker-data was created in the cwd');
    } catch (e) { b.dump(); b.cleanup(); throw e; }
    await b.stop();
  });
});

describe('TLS configuration errors', () => {
  async function expectStartFailure(args, what) {
    const db = tmpDir('broker-cli-db-');
    const port = await freePort();
    const full = [`--db=${db}`, `--port=${port}`, '--host=127.0.0.1', ...args];
    const r = await runBroker(full);
    fs.rmSync(db, { recursive: true, force: true });
    const ctx = `${what}: broker ${full.join(' ')}`;
    assert.equal(r.timedOut, false, `${ctx}: still running after the guard timeout`);
    assert.notEqual(r.code, 0, `${ctx}: must exit non-zero; stderr: ${r.stderr}`);
    assert.equal(r.signal, null, `${ctx}: must exit, not crash (signal ${r.signal}); stderr: ${r.stderr}`);
    assert.ok(r.stderr.trim().length > 0, `${ctx}: a clear message on stderr`);
    assert.doesNotMatch(r.stderr, /listening on/i, `${ctx}: must fail before listening; stderr: ${r.stderr}`);
  }

  it('--secure=true with key/cert paths that do not exist', async () => {
    await expectStartFailure(['--secure=true', '--key_path=/nonexistent/key.pem', '--cert_path=/nonexistent/cert.pem'],
      'missing files');
  });

  it('--secure=true with unparseable key/cert files', async () => {
    const dir = tmpDir('broker-pem-');
    fs.writeFileSync(path.join(dir, 'key.pem'), 'not a key\n');
    fs.writeFileSync(path.join(dir, 'cert.pem'), 'not a cert\n');
    await expectStartFailure(['--secure=true', `--key_path=${dir}/key.pem`, `--cert_path=${dir}/cert.pem`], 'garbage PEM');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('--secure=true with a valid key but a missing certificate', async () => {
    const dir = tmpDir('broker-pem-');
    const { key } = makeCert(dir);
    await expectStartFailure(['--secure=true', `--key_path=${key}`, `--cert_path=${dir}/missing.pem`], 'missing cert');
    fs.rmSync(dir, { recursive: true, force: true });
  });
});

describe('JWT secret', () => {
  it('without --jwt_secret: a 0600 secret is stored in the db dir and tokens survive a restart', async () => {
    // Same start/stop on two dirs, with and without --jwt_secret: the difference is the stored secret.
    const withSecret = await startBroker({ keepDb: true, logLevel: 'info' });
    await withSecret.stop({ cleanup: false });
    const filesWith = listFiles(withSecret.db);
    withSecret.cleanup();
    fs.rmSync(withSecret.db, { recursive: true, force: true });

    const db = tmpDir('broker-db-');
    try {
      const b1 = await startBroker({ db, secret: null, logLevel: 'info' });
      let user;
      try {
        user = await newUser(b1, 'persist');
      } catch (e) { b1.dump(); b1.cleanup(); throw e; }
      await b1.stop();
      const filesWithout = listFiles(db);
      const extra = Object.keys(filesWithout).filter((f) => !(f in filesWith));
      const listing = JSON.stringify(Object.fromEntries(Object.entries(filesWithout)
        .map(([f, m]) => [f, m.toString(8)])));
      if (extra.length > 0) {
        for (const f of extra) {
          assert.equal(filesWithout[f], 0o600, `secret file ${f} must have mode 0600: ${listing}`);
        }
      } else {
        // Stored inside the database files themselves: then those must be 0600.
        for (const [f, m] of Object.entries(filesWithout)) {
          assert.equal(m, 0o600, `no separate secret file, so ${f} holds it and must be 0600: ${listing}`);
        }
      }
      const snapshot = Object.fromEntries(extra.map((f) => [f, fs.readFileSync(path.join(db, f))]));

      const b2 = await startBroker({ db, secret: null, logLevel: 'info' });
      try {
        await insert(b2, user.jwt, 'after-restart', { ok: true }); // the old token still verifies
        const again = await newUser(b2, 'persist2');
        assert.equal(again.jwt.split('.').length, 3);
      } catch (e) { b2.dump(); b2.cleanup(); throw e; }
      await b2.stop();
      for (const f of extra) {
        assert.deepEqual(fs.readFileSync(path.join(db, f)), snapshot[f], `secret file ${f} is reused, not rewritten`);
      }
    } finally {
      fs.rmSync(db, { recursive: true, force: true });
    }
  });

  it('a weak secret (< 32 bytes) is accepted with a warning', async () => {
    const weak = 'weak-secret-9';
    const b = await startBroker({ secret: weak, logLevel: 'info' });
    try {
      const u = await newUser(b, 'weak');
      assert.ok(verifyHs256(u.jwt, weak), 'tokens are signed with the weak secret');
      assert.match(b.log(), /weak|short|warn/i, 'a warning about the weak secret is logged');
      const r = await request(b, 'POST', '/insert', { json: { event: 'w', data: 1 }, token: u.jwt });
      assert.equal(r.status, 200, r.text);
    } catch (e) { b.dump(); b.cleanup(); throw e; }
    await b.stop();
  });
});
