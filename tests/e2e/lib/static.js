// A static file server on a free loopback port for the browser suites: URL prefixes mapped to
// directories (the clients' sources, React's UMD builds from node_modules) plus in-memory files,
// so a page loads real modules from this repository and nothing from the network.
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { freePort } from './broker.js';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json',
};

/**
 * serveStatic({ dirs: { '/prefix/': '/abs/dir' }, files: { '/path': { type, body } } })
 * -> { origin, close() }
 */
export async function serveStatic({ dirs = {}, files = {} } = {}) {
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, 'http://x');
    const send = (status, type, body) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (req.method !== 'GET') return send(405, 'text/plain', 'method not allowed');
    const mem = files[url.pathname];
    if (mem) return send(200, mem.type ?? TYPES[path.extname(url.pathname)] ?? 'text/html; charset=utf-8', mem.body);
    for (const [prefix, dir] of Object.entries(dirs)) {
      if (!url.pathname.startsWith(prefix)) continue;
      const root = path.resolve(dir);
      const file = path.resolve(root, decodeURIComponent(url.pathname.slice(prefix.length)));
      if (!file.startsWith(root + path.sep)) return send(403, 'text/plain', 'outside the served directory');
      let body;
      try { body = fs.readFileSync(file); } catch { return send(404, 'text/plain', 'not found'); }
      return send(200, TYPES[path.extname(file)] ?? 'application/octet-stream', body);
    }
    return send(404, 'text/plain', 'not found');
  });
  const port = await freePort();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    origin: `http://127.0.0.1:${port}`,
    close: () => new Promise((resolve) => { server.closeAllConnections?.(); server.close(() => resolve()); }),
  };
}
