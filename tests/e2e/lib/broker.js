// Start / stop the real broker binary for a test.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import http from 'node:http';
import https from 'node:https';
import { BIN, WRAPPER, SECRET, ms } from './config.js';
import { sleep, guardSleep } from './util.js';

const LOG_CAP = 8 * 1024 * 1024; // keep at most this many bytes of server output in memory
const running = new Set();

// Never leave a broker behind, whatever happens to the test process.
process.on('exit', () => {
  for (const b of running) {
    try { b.proc.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/** Ask the OS for a free loopback port (listen on 0, read it, close). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function tmpDir(prefix = 'broker-e2e-') {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** spawn() the binary, under BROKER_WRAPPER when set (the wrapper must pass the exit code through). */
function spawnBin(args, opts) {
  if (WRAPPER.length === 0) return spawn(BIN, args, opts);
  return spawn(WRAPPER[0], [...WRAPPER.slice(1), BIN, ...args], opts);
}

/** Environment for the child: ours, minus any BROKER_* that could leak in, plus `extra`. */
function childEnv(extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('BROKER_')) env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * Run the binary to completion (CLI tests). Never waits more than `timeoutMs`; if it is still
 * running by then it is killed and `timedOut` is true.
 */
export function runBroker(args, { env = {}, timeoutMs = ms(10000), cwd } = {}) {
  const dir = cwd ?? tmpDir('broker-cli-');
  return new Promise((resolve, reject) => {
    const proc = spawnBin(args, { env: childEnv(env), cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    proc.stdout.on('data', (d) => { if (stdout.length < LOG_CAP) stdout += d; });
    proc.stderr.on('data', (d) => { if (stderr.length < LOG_CAP) stderr += d; });
    const timer = setTimeout(() => { timedOut = true; proc.kill('SIGKILL'); }, timeoutMs);
    proc.on('error', (e) => { clearTimeout(timer); reject(e); });
    proc.on('close', (code, signal) => {
      clearTimeout(timer);
      if (!cwd) fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

/** One GET /healthz; resolves with the status code or rejects. */
function probe(b, timeoutMs = 1000) {
  return new Promise((resolve, reject) => {
    const mod = b.secure ? https : http;
    const req = mod.request({
      host: b.host, port: b.port, path: '/healthz', method: 'GET', agent: false,
      timeout: timeoutMs, rejectUnauthorized: false,
    }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); res.on('error', reject); });
    req.on('timeout', () => req.destroy(new Error('probe timeout')));
    req.on('error', reject);
    req.end();
  });
}

export class Broker {
  constructor(opts) {
    this.opts = opts;
    this.host = '127.0.0.1';
    this.secure = !!opts.tls;
    this.ca = opts.tls?.cert ? fs.readFileSync(opts.tls.cert) : undefined;
    this.logChunks = [];
    this.logBytes = 0;
    this.exit = null; // {code, signal} once exited
    this.expectExit = false;
  }

  get url() { return `${this.secure ? 'https' : 'http'}://${this.host}:${this.port}`; }
  get pid() { return this.proc.pid; }
  log() { return Buffer.concat(this.logChunks).toString('utf8'); }

  tail(lines = 150) {
    const all = this.log().split('\n');
    return all.slice(Math.max(0, all.length - lines)).join('\n');
  }

  /** Print the server log (tail) to our stderr; used when a test fails. */
  dump(label = '') {
    process.stderr.write(`\n----- broker stderr ${label} (pid ${this.proc?.pid}, port ${this.port}` +
      `${this.exit ? `, exited code=${this.exit.code} signal=${this.exit.signal}` : ''}) -----\n` +
      `${this.tail()}\n----- end broker stderr -----\n`);
  }

  _spawn() {
    const o = this.opts;
    let args;
    if (o.exactArgs) {
      args = [...o.exactArgs]; // the caller gives the whole argv (CLI tests)
    } else {
      args = [`--db=${this.db}`, `--port=${this.port}`, `--host=${this.host}`];
      if (o.secret !== null) args.push(`--jwt_secret=${o.secret ?? SECRET}`);
      args.push(`--log_level=${o.logLevel ?? 'debug'}`);
      if (o.tls) args.push('--secure=true', `--key_path=${o.tls.key}`, `--cert_path=${o.tls.cert}`);
      args.push(...(o.args ?? []));
    }
    this.args = args;
    this.logChunks = [];
    this.logBytes = 0;
    this.exit = null;
    this.expectExit = false;
    const proc = spawnBin(args, { env: childEnv(o.env), cwd: this.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const collect = (d) => {
      if (this.logBytes > LOG_CAP) return;
      this.logChunks.push(d);
      this.logBytes += d.length;
    };
    proc.stdout.on('data', collect);
    proc.stderr.on('data', collect);
    this.exited = new Promise((resolve) => {
      proc.on('close', (code, signal) => {
        this.exit = { code, signal };
        running.delete(this);
        resolve(this.exit);
      });
      proc.on('error', (e) => {
        this.exit = { code: null, signal: null, error: e };
        running.delete(this);
        resolve(this.exit);
      });
    });
    running.add(this);
  }

  async _waitReady() {
    const deadline = Date.now() + ms(this.opts.readyTimeoutMs ?? 10000);
    let lastErr;
    for (let i = 0; i < 10000; i++) {
      if (this.exit) {
        throw new Error(`broker exited during start-up (code=${this.exit.code} signal=${this.exit.signal}` +
          `${this.exit.error ? ` error=${this.exit.error.message}` : ''})\nargs: ${this.args.join(' ')}\n${this.tail(40)}`);
      }
      try {
        const status = await probe(this);
        if (status === 200) return;
        lastErr = new Error(`/healthz answered ${status}`);
      } catch (e) { lastErr = e; }
      if (Date.now() > deadline) break;
      await sleep(50);
    }
    throw new Error(`broker not ready within the guard timeout: ${lastErr?.message}\n${this.tail(40)}`);
  }

  /** (Re)start the process on the same db dir and port. */
  async start() {
    for (let attempt = 0; ; attempt++) {
      this._spawn();
      try {
        await this._waitReady();
        return this;
      } catch (e) {
        const inUse = /in use|EADDRINUSE/i.test(this.log());
        if (!this.opts.port && inUse && attempt < 3 && this.exit) {
          this.port = await freePort(); // someone grabbed the port between probe and bind
          continue;
        }
        if (!this.exit) { this.proc.kill('SIGKILL'); await this.exited; }
        throw e;
      }
    }
  }

  /** Throws if the process has died (unexpectedly). */
  assertAlive() {
    if (this.exit) {
      throw new Error(`broker died: code=${this.exit.code} signal=${this.exit.signal}\n${this.tail(60)}`);
    }
  }

  /** Resident set size and its high-water mark, in KiB, from /proc. */
  memory() {
    const s = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kb = (k) => Number((s.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm')) ?? [])[1]);
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  }

  /**
   * SIGTERM and require exit status 0 within the guard (5 s). If it does not exit, SIGKILL and throw.
   * Also checks that no configured secret ever appeared in the log.
   */
  async stop({ cleanup = true, signal = 'SIGTERM' } = {}) {
    try {
      if (this.exit) {
        throw new Error(`broker had already exited before stop(): code=${this.exit.code} ` +
          `signal=${this.exit.signal}\n${this.tail(60)}`);
      }
      this.expectExit = true;
      this.proc.kill(signal);
      const guard = ms(5000);
      const res = await Promise.race([this.exited, guardSleep(guard).then(() => null)]);
      if (!res) {
        this.proc.kill('SIGKILL');
        await this.exited;
        throw new Error(`broker did not exit within ${guard} ms of ${signal} (killed)\n${this.tail(60)}`);
      }
      if (res.code !== 0) {
        throw new Error(`broker exited with code=${res.code} signal=${res.signal} after ${signal} (want 0)\n` +
          `${this.tail(60)}`);
      }
      this.assertNoSecretsInLog();
    } finally {
      if (cleanup) this.cleanup();
    }
  }

  /** SIGKILL (crash simulation); waits until the process is gone. */
  async kill9() {
    this.expectExit = true;
    this.proc.kill('SIGKILL');
    await this.exited;
  }

  assertNoSecretsInLog() {
    const log = this.log();
    const secrets = [...(this.opts.secret === null ? [] : [this.opts.secret ?? SECRET]), ...(this.opts.neverLog ?? [])];
    for (const s of secrets) {
      if (s && s.length >= 6 && log.includes(s)) {
        throw new Error(`a secret/password appeared in the broker log: ${JSON.stringify(s.slice(0, 12))}...`);
      }
    }
  }

  cleanup() {
    if (!this.exit) { try { this.proc.kill('SIGKILL'); } catch { /* gone */ } }
    if (this.ownDb && !this.opts.keepDb) fs.rmSync(this.db, { recursive: true, force: true });
    fs.rmSync(this.cwd, { recursive: true, force: true });
  }
}

/**
 * Start a broker on a free loopback port with a fresh temp --db (unless opts.db is given).
 * opts: { args: [], env: {}, secret (null = no --jwt_secret), tls: {key, cert}, logLevel, db, port,
 *         keepDb, neverLog: [strings that must never appear in the log],
 *         exactArgs: [the whole argv; then port/db must also be given so we know where to probe] }
 */
export async function startBroker(opts = {}) {
  const b = new Broker(opts);
  b.ownDb = !opts.db;
  b.db = opts.db ?? tmpDir('broker-db-');
  b.cwd = tmpDir('broker-cwd-');
  b.port = opts.port ?? await freePort();
  try {
    await b.start();
  } catch (e) {
    b.cleanup();
    throw e;
  }
  return b;
}

/**
 * Run `fn(broker)` against a fresh broker; on failure print the broker log; always stop it
 * (and, when the test itself passed, require a clean exit 0 on SIGTERM).
 */
export async function withBroker(opts, fn) {
  const b = await startBroker(opts);
  let failed = false;
  try {
    return await fn(b);
  } catch (e) {
    failed = true;
    b.dump();
    throw e;
  } finally {
    if (failed) {
      b.cleanup();
    } else {
      try { await b.stop(); } catch (e) { b.dump('(stop)'); throw e; }
    }
  }
}

/**
 * describe()-level helper: one broker for a whole file/suite; opts.setup(broker) runs once after start.
 * Returns { get b(), test(name, fn) } where test() prints the broker log on failure.
 */
export function sharedBroker(nodeTest, opts = {}) {
  const ctx = { b: null };
  nodeTest.before(async () => {
    ctx.b = await startBroker(opts);
    if (opts.setup) {
      try { await opts.setup(ctx.b); } catch (e) { ctx.b.dump('(setup)'); throw e; }
    }
  });
  nodeTest.after(async () => {
    if (!ctx.b) return;
    try { await ctx.b.stop(); } catch (e) { ctx.b.dump('(stop)'); throw e; }
  });
  ctx.test = (name, fn, testOpts = {}) => nodeTest.it(name, testOpts, async (t) => {
    try {
      await fn(ctx.b, t);
    } catch (e) {
      ctx.b?.dump(`(test: ${name})`);
      throw e;
    }
  });
  return ctx;
}
