// Start / stop real nats-server processes with JetStream for cluster-mode tests: one server or a
// cluster of three, all on 127.0.0.1, each with its own store directory in one temp directory.
//
//   import { startNats } from './lib/nats.js';
//   const nats = await startNats({ servers: 3 });
//   after(() => nats.stop());              // or try { ... } finally { await nats.stop(); }
//   ... --cluster=${nats.urls} ...
//   await nats.servers[1].kill('SIGKILL'); await nats.servers[1].restart();
//
// The binary: opts.binary, else $NATS_SERVER, else build/nats/nats-server (scripts/nats-server.sh
// puts a 2.10 there). Ports are picked free in [20000, 32000), below the kernel's ephemeral range
// (32768+) so that no outgoing connection takes one between the check and the server's bind.
// Servers start one after the other, and a cluster of three is returned once its meta leader is
// elected (startNats's `healthy`). Every wait is bounded; every process is stopped by its pid, also
// when the test process exits.
//
// Run this file directly (node tests/e2e/lib/nats.js) for a self-check of the harness.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { REPO, ms } from './config.js';
import { sleep, guardSleep } from './util.js';

export const NATS_SERVER = process.env.NATS_SERVER || path.join(REPO, 'build', 'nats', 'nats-server');

const LOG_CAP = 4 * 1024 * 1024; // bytes of each server's output kept in memory
const live = new Set(); // every child process still running

// Never leave a server behind, whatever happens to the test process.
process.on('exit', () => {
  for (const proc of live) {
    try { process.kill(proc.pid, 'SIGKILL'); } catch { /* already gone */ }
  }
});

/** Whether 127.0.0.1:port can be bound now. */
function portFree(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '127.0.0.1', exclusive: true }, () => s.close(() => resolve(true)));
  });
}

/** n distinct free ports in [20000, 32000). */
async function freePorts(n) {
  const ports = new Set();
  for (let tries = 0; ports.size < n && tries < 500; tries++) {
    const p = 20000 + Math.floor(Math.random() * 12000);
    if (!ports.has(p) && await portFree(p)) ports.add(p);
  }
  if (ports.size < n) throw new Error(`no ${n} free ports in [20000, 32000)`);
  return [...ports];
}

/** GET path on the monitoring port; resolves with the status code (or 0 on any error). */
function monitorStatus(port, urlPath, timeoutMs = 1000) {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', () => resolve(0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(0));
  });
}

class NatsServer {
  constructor(cluster, index, ports) {
    this.cluster = cluster;
    this.index = index;
    this.name = `n${index}`;
    [this.port, this.clusterPort, this.monitorPort] = ports;
    this.url = `nats://127.0.0.1:${this.port}`;
    this.storeDir = path.join(cluster.dir, this.name);
    this.proc = null;
    this.exit = null; // {code, signal} of the last exit
    this.chunks = [];
    this.bytes = 0;
  }

  get pid() { return this.proc?.pid; }
  get running() { return this.proc !== null && this.exit === null; }
  log() { return Buffer.concat(this.chunks).toString('utf8'); }

  _args() {
    const args = ['-a', '127.0.0.1', '-p', String(this.port), '-n', this.name, '-m', String(this.monitorPort),
      '-js', '-sd', this.storeDir];
    const peers = this.cluster.servers.filter((s) => s !== this);
    if (peers.length > 0) {
      args.push('--cluster', `nats://127.0.0.1:${this.clusterPort}`, '--cluster_name', this.cluster.name,
        '--routes', peers.map((s) => `nats://127.0.0.1:${s.clusterPort}`).join(','));
    }
    return args;
  }

  _spawn() {
    this.exit = null;
    const proc = spawn(this.cluster.binary, this._args(), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    live.add(proc);
    const collect = (d) => {
      if (this.bytes > LOG_CAP) return;
      this.chunks.push(d);
      this.bytes += d.length;
    };
    proc.stdout.on('data', collect);
    proc.stderr.on('data', collect);
    this.exited = new Promise((resolve) => {
      proc.on('close', (code, signal) => {
        live.delete(proc);
        this.exit = { code, signal };
        resolve(this.exit);
      });
      proc.on('error', (e) => {
        live.delete(proc);
        this.exit = { code: null, signal: null, error: e };
        resolve(this.exit);
      });
    });
  }

  /** Waits until JetStream is enabled on this server (not that the cluster formed). */
  async waitReady(timeoutMs = ms(20000)) {
    const deadline = Date.now() + timeoutMs;
    for (let i = 0; i < 100000; i++) {
      if (this.exit) {
        throw new Error(`nats-server ${this.name} exited at start (code=${this.exit.code} ` +
          `signal=${this.exit.signal}${this.exit.error ? ` ${this.exit.error.message}` : ''})\n${this.log().slice(-3000)}`);
      }
      if (await monitorStatus(this.monitorPort, '/healthz?js-enabled-only=true') === 200) return;
      if (Date.now() > deadline) break;
      await sleep(50);
    }
    throw new Error(`nats-server ${this.name} not ready in ${timeoutMs} ms\n${this.log().slice(-3000)}`);
  }

  /** Signals the process (default SIGKILL: a crash) and waits until it is gone (SIGKILL after 10 s). */
  async kill(signal = 'SIGKILL') {
    if (!this.running) return this.exit;
    try { process.kill(this.proc.pid, signal); } catch { /* already gone */ }
    const res = await Promise.race([this.exited, guardSleep(ms(10000)).then(() => null)]);
    if (res) return res;
    try { process.kill(this.proc.pid, 'SIGKILL'); } catch { /* gone */ }
    return this.exited;
  }

  /** Starts the server again on the same ports and store directory; waits until it is ready. */
  async restart(timeoutMs) {
    if (this.running) await this.kill('SIGTERM');
    this._spawn();
    await this.waitReady(timeoutMs);
    return this;
  }
}

/**
 * Starts `servers` (1 or 3) nats-server processes with JetStream on loopback, one after the other,
 * each once JetStream is enabled on it (GET /healthz?js-enabled-only=true answers 200). With
 * `healthy` (the default for 3), also waits until every server's /healthz is 200, i.e. the meta
 * leader is elected and known to all, restarting a server that does not get there (see
 * waitHealthy). Without it a fresh cluster still elects its meta leader after startNats returns:
 * clients retry (the engine does).
 * Returns { urls, servers: [{name, pid, port, url, kill(signal), restart()}], waitHealthy(), stop(), dump() }.
 */
export async function startNats({ servers = 1, binary = NATS_SERVER, name = 'broker_test', keep = false,
  healthy = servers > 1 } = {}) {
  if (servers !== 1 && servers !== 3) throw new Error('startNats: servers must be 1 or 3');
  if (!fs.existsSync(binary)) {
    throw new Error(`no nats-server at ${binary}: run scripts/nats-server.sh or set NATS_SERVER`);
  }
  for (let attempt = 0; attempt < 3; attempt++) {
    const cluster = {
      binary, name, dir: fs.mkdtempSync(path.join(os.tmpdir(), 'broker-nats-')), servers: [],
    };
    const ports = await freePorts(3 * servers);
    for (let i = 0; i < servers; i++) cluster.servers.push(new NatsServer(cluster, i, ports.slice(3 * i, 3 * i + 3)));
    const handle = makeHandle(cluster, keep);
    try {
      // One after the other: three servers bootstrapping a cluster at the same instant sometimes
      // (about 1 start in 25 here, nats-server 2.10.27) never elect a meta leader at all.
      for (const s of cluster.servers) {
        s._spawn();
        await s.waitReady();
      }
      if (healthy && servers > 1) await handle.waitHealthy({ restartLaggards: true });
      return handle;
    } catch (e) {
      const inUse = cluster.servers.some((s) => /address already in use/i.test(s.log()));
      await handle.stop();
      if (inUse && attempt < 2) continue; // someone took a port between our check and the bind
      throw e;
    }
  }
  throw new Error('startNats: could not start');
}

function makeHandle(cluster, keep) {
  return {
    dir: cluster.dir,
    servers: cluster.servers,
    get urls() { return cluster.servers.map((s) => s.url).join(','); },
    /**
     * Waits until every running server's /healthz is 200 (in a cluster: the meta leader is elected
     * and known). With restartLaggards, a server still unhealthy after 10 s is restarted, once: a
     * fresh 2.10 cluster now and then stays without a meta leader until one of its servers restarts.
     */
    async waitHealthy({ timeoutMs = ms(30000), restartLaggards = false } = {}) {
      const deadline = Date.now() + timeoutMs;
      const restartAt = Date.now() + ms(10000);
      let restarted = !restartLaggards;
      for (let i = 0; i < 100000; i++) {
        const up = cluster.servers.filter((s) => s.running);
        const codes = await Promise.all(up.map((s) => monitorStatus(s.monitorPort, '/healthz')));
        if (codes.every((c) => c === 200)) return;
        if (!restarted && Date.now() > restartAt) {
          restarted = true;
          const laggards = up.filter((s, k) => codes[k] !== 200);
          process.stderr.write(`nats: ${laggards.map((s) => s.name).join(', ')} not healthy after ` +
            `${ms(10000)} ms (/healthz ${codes}): restarting\n`);
          for (const s of laggards) await s.restart();
          continue;
        }
        if (Date.now() > deadline) throw new Error(`nats cluster not healthy in ${timeoutMs} ms: ${codes}`);
        await sleep(100);
      }
    },
    /** Prints every server's log tail to stderr (for a failed test). */
    dump(lines = 60) {
      for (const s of cluster.servers) {
        const tail = s.log().split('\n').slice(-lines).join('\n');
        process.stderr.write(`\n----- nats-server ${s.name} (pid ${s.pid}, port ${s.port}) -----\n${tail}\n`);
      }
    },
    /** Stops every server by pid (SIGTERM, SIGKILL after 10 s) and removes the store directories. */
    async stop() {
      await Promise.all(cluster.servers.map((s) => s.kill('SIGTERM')));
      if (!keep) fs.rmSync(cluster.dir, { recursive: true, force: true });
    },
  };
}

// Self-check: node tests/e2e/lib/nats.js
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const t0 = Date.now();
  const one = await startNats({ servers: 1 });
  try {
    console.log(`1 server ready in ${Date.now() - t0} ms at ${one.urls} (pid ${one.servers[0].pid})`);
  } finally {
    await one.stop();
  }
  const t1 = Date.now();
  const three = await startNats({ servers: 3 });
  try {
    console.log(`3 servers ready in ${Date.now() - t1} ms at ${three.urls}`);
    const t2 = Date.now();
    await three.waitHealthy();
    console.log(`cluster healthy (startNats waited for it; checked again in ${Date.now() - t2} ms)`);
    const victim = three.servers[1];
    const oldPid = victim.pid;
    const res = await victim.kill('SIGKILL');
    console.log(`killed ${victim.name} (pid ${oldPid}): signal ${res.signal}`);
    const t3 = Date.now();
    await victim.restart();
    console.log(`restarted ${victim.name} as pid ${victim.pid} in ${Date.now() - t3} ms`);
    await three.waitHealthy();
    console.log('cluster healthy again');
  } finally {
    await three.stop();
  }
  const leftovers = [...one.servers, ...three.servers].filter((s) => {
    try { process.kill(s.pid, 0); return true; } catch { return false; }
  });
  if (leftovers.length > 0) throw new Error(`still running: ${leftovers.map((s) => s.pid)}`);
  console.log(`every server stopped; temp dirs removed: ${!fs.existsSync(one.dir) && !fs.existsSync(three.dir)}`);
}
