// HTTP helpers: fetch (Node 20) for plain HTTP, node:http(s) where fetch cannot (TLS with a custom CA,
// forbidden headers such as Origin), and API shortcuts.
import http from 'node:http';
import https from 'node:https';
import assert from 'node:assert/strict';
import { ms } from './config.js';
import { uniq } from './util.js';

function lowerHeaders(h) {
  const out = {};
  if (typeof h?.forEach === 'function' && !(h instanceof Array) && typeof h.get === 'function') {
    h.forEach((v, k) => { out[k.toLowerCase()] = v; });
    return out;
  }
  for (const [k, v] of Object.entries(h ?? {})) out[k.toLowerCase()] = Array.isArray(v) ? v.join(', ') : v;
  return out;
}

function parseJson(text) {
  try { return JSON.parse(text); } catch { return undefined; }
}

function prepare({ json, body, headers = {}, token }) {
  const h = { ...headers };
  if (token !== undefined) h.authorization = `Bearer ${token}`;
  let b = body;
  if (json !== undefined) {
    b = JSON.stringify(json);
    if (!Object.keys(h).some((k) => k.toLowerCase() === 'content-type')) h['content-type'] = 'application/json';
  }
  return { h, b };
}

/**
 * request(broker, method, path, { json, body (string|Buffer), headers, token, viaNode })
 * -> { status, headers (lower-cased plain object), text, json }
 */
export async function request(b, method, path, opts = {}) {
  if (b.secure || opts.viaNode) return nodeRequest(b, method, path, opts);
  const { h, b: body } = prepare(opts);
  const res = await fetch(b.url + path, {
    method, headers: h, body, signal: AbortSignal.timeout(ms(opts.timeoutMs ?? 30000)),
  });
  const text = await res.text();
  return { status: res.status, headers: lowerHeaders(res.headers), text, json: parseJson(text) };
}

/** Same contract as request() but over node:http / node:https (trusting the broker's test CA). */
export function nodeRequest(b, method, path, opts = {}) {
  const { h, b: body } = prepare(opts);
  const mod = b.secure ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request({
      host: b.host, port: b.port, method, path, headers: h,
      agent: opts.agent ?? false,
      ca: b.ca, servername: b.secure ? 'localhost' : undefined,
      timeout: ms(opts.timeoutMs ?? 30000),
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode, headers: lowerHeaders(res.headers), text, json: parseJson(text) });
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`request timeout ${method} ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

export const post = (b, path, json, opts = {}) => request(b, 'POST', path, { ...opts, json });
export const get = (b, path, opts = {}) => request(b, 'GET', path, opts);

/** Assert a JSON error response: status, application/json, {"error": non-empty string}. */
export function assertJsonError(r, status, what = '') {
  const ctx = `${what} -> ${r.status} ${JSON.stringify(r.text?.slice(0, 300))}`;
  if (Array.isArray(status)) assert.ok(status.includes(r.status), `want status in ${status}: ${ctx}`);
  else assert.equal(r.status, status, `want ${status}: ${ctx}`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json\b/i, `content-type: ${ctx}`);
  assert.equal(typeof r.json, 'object', `JSON body: ${ctx}`);
  assert.ok(r.json !== null && typeof r.json.error === 'string' && r.json.error.length > 0,
    `{"error": "..."}: ${ctx}`);
}

export async function createUser(b, username, password) {
  return post(b, '/users', { username, password });
}

export async function login(b, username, password) {
  return post(b, '/login', { username, password });
}

/** Insert and require 200; returns the id (a number). */
export async function insert(b, token, event, data, opts = {}) {
  const r = await post(b, '/insert', { event, data }, { ...opts, token });
  assert.equal(r.status, 200, `insert ${event}: ${r.status} ${r.text}`);
  assert.match(r.headers['content-type'] ?? '', /^application\/json/i, `insert response content-type`);
  assert.equal(typeof r.json?.id, 'number', `insert id must be a JSON number: ${r.text}`);
  assert.equal(r.json.event, event, `insert echoes the event name: ${r.text}`);
  return r.json.id;
}

/** Insert with a raw body (string/Buffer), returning the response. */
export function insertRaw(b, token, body, headers = { 'content-type': 'application/json' }) {
  return request(b, 'POST', '/insert', { body, headers, token });
}

/** Create a fresh user, log in, return { id, username, password, jwt }. */
export async function newUser(b, prefix = 'user') {
  const username = uniq(prefix);
  const password = `pw-${uniq('p')}`;
  (b.opts.neverLog ??= []).push(password); // checked against the log when the broker stops
  const u = await createUser(b, username, password);
  assert.equal(u.status, 200, `create user: ${u.status} ${u.text}`);
  const l = await login(b, username, password);
  assert.equal(l.status, 200, `login: ${l.status} ${l.text}`);
  assert.equal(typeof l.json?.jwt, 'string', `login returns {"jwt"}: ${l.text}`);
  return { id: u.json.id, username, password, jwt: l.json.jwt };
}
