#!/usr/bin/env node
// serve.mjs: the demo's static server (node:http, no dependency). Serves this directory at /,
// clients/js at /clients/js/ (the page imports the client from there: no bundler, no CDN), and
// /config.json with the broker's URL. Listens on loopback only unless told otherwise.
//
//   node examples/forms/serve.mjs --port=8081 --broker=http://127.0.0.1:8080 [--host=127.0.0.1]
//
// Also a module: startServer({ host, port, broker }) -> { url, close() } (tests/e2e/demo.test.js).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOTS = [
  ['/clients/js/', path.resolve(HERE, '..', '..', 'clients', 'js')],
  ['/', HERE],
];
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
};

/** The file a URL path names under ROOTS, or null (never outside them). */
function resolve(urlPath) {
  let decoded;
  try { decoded = decodeURIComponent(urlPath); } catch { return null; }
  for (const [prefix, root] of ROOTS) {
    if (!decoded.startsWith(prefix)) continue;
    const rel = decoded.slice(prefix.length) || 'index.html';
    const file = path.resolve(root, rel);
    return file.startsWith(root + path.sep) ? file : null;
  }
  return null;
}

export function startServer({ host = '127.0.0.1', port = 8081, broker }) {
  if (!broker) throw new Error('startServer: the broker URL is required');
  const config = JSON.stringify({ broker });
  const server = http.createServer((req, res) => {
    const send = (status, type, body) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'text/plain', 'method not allowed\n');
    const { pathname } = new URL(req.url, 'http://x');
    if (pathname === '/config.json') return send(200, TYPES['.json'], config);
    const file = resolve(pathname);
    if (!file) return send(404, 'text/plain', 'not found\n');
    fs.readFile(file, (err, body) => {
      if (err) send(404, 'text/plain', 'not found\n');
      else send(200, TYPES[path.extname(file)] ?? 'application/octet-stream', body);
    });
  });
  return new Promise((resolvePromise, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      resolvePromise({
        url: `http://${host}:${server.address().port}`,
        close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }),
      });
    });
  });
}

function flag(name, fallback) {
  const a = process.argv.find((x) => x.startsWith(`--${name}=`));
  return a ? a.slice(name.length + 3) : fallback;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const port = Number(flag('port', '8081'));
  const host = flag('host', '127.0.0.1');
  const broker = flag('broker', 'http://127.0.0.1:8080');
  const { url } = await startServer({ host, port, broker });
  console.log(`demo: open ${url}/ in two browsers (or a private window) and sign in as two users`);
  console.log(`demo: broker at ${broker}; Ctrl-C stops both`);
}
