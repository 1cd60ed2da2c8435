// docs/openapi.yaml: a valid OpenAPI 3.1 document (checked by a real validator, which must also
// refuse broken copies of it), that describes exactly the routes of src/api/ (router.c's table plus
// the paths and methods of the /admin and /users/me families), that a running broker answers every
// documented operation (no 404 "not found", no 405) and refuses every undocumented method with 405
// and the documented Allow list, that the 200 bodies the broker sends have the documented shape,
// and that every status docs/API.md gives for a route is in the document for that route.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { parseDocument } from 'yaml';
import { Validator } from '@seriousme/openapi-schema-validator';
import { REPO, ms } from './lib/config.js';
import { withBroker } from './lib/broker.js';
import { request, post, get } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { uniq } from './lib/util.js';

const SPEC_PATH = path.join(REPO, 'docs', 'openapi.yaml');
const API_MD = path.join(REPO, 'docs', 'API.md');
const ADMIN = 'admin-token-for-the-openapi-test-0123456789';
const MADE_UP_ID = '0123456789abcdef0123456789abcdef'; // no user has it
const OPERATION_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];
const PROBE_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'];
const CONTROL_EVENTS = new Set(['reset', 'token_expiring', 'revoked']);
// The admin console (src/api/admin_console.c): under /admin, but public pages, not the admin API.
const isConsole = (p) => p === '/admin' || p.startsWith('/admin/console/');
const CONSOLE_ASSET = 'admin.js'; // a file admin/ holds, for the {asset} of the probes

const readRepo = (rel) => fs.readFileSync(path.join(REPO, rel), 'utf8');

/** docs/openapi.yaml as a plain object; any YAML error or warning (duplicate key, ...) fails. */
function loadSpec() {
  const d = parseDocument(fs.readFileSync(SPEC_PATH, 'utf8'), { prettyErrors: true, uniqueKeys: true });
  assert.deepEqual([...d.errors, ...d.warnings].map(String), [], 'docs/openapi.yaml parses as YAML cleanly');
  return d.toJS({ maxAliasCount: 0 });
}

async function validate(spec) {
  const v = new Validator();
  const res = await v.validate(structuredClone(spec));
  return { ...res, version: v.version };
}

/** The object a local $ref ("#/a/b") points at. */
function pointer(spec, ref) {
  assert.ok(ref.startsWith('#/'), `only local $refs: ${ref}`);
  let o = spec;
  for (const part of ref.slice(2).split('/')) {
    const key = part.replace(/~1/g, '/').replace(/~0/g, '~');
    assert.ok(o && typeof o === 'object' && key in o, `$ref ${ref} resolves`);
    o = o[key];
  }
  return o;
}

/** o with its $ref chain followed (a Reference Object's own summary/description win). */
function deref(spec, o) {
  for (let i = 0; o && typeof o === 'object' && typeof o.$ref === 'string'; i++) {
    assert.ok(i < 32, 'no $ref loop');
    const { $ref, ...own } = o;
    o = { ...pointer(spec, $ref), ...own };
  }
  return o;
}

/** [{ path, method (upper case), op }] for every operation of the document. */
function operations(spec) {
  const out = [];
  for (const [p, item] of Object.entries(spec.paths ?? {})) {
    for (const m of OPERATION_METHODS) if (item[m]) out.push({ path: p, method: m.toUpperCase(), op: item[m], item });
  }
  return out;
}

const key = (method, p) => `${method} ${p}`;

/**
 * A small structural check of value against a (3.1 / JSON Schema 2020-12) schema: type, required,
 * properties (closed: a member the schema does not list is an error, so an undocumented field fails),
 * items, enum, const, pattern, minLength, minimum, maximum, maxItems, oneOf, anyOf, $ref.
 */
function conforms(spec, schema, value, where = '$') {
  const s = deref(spec, schema ?? {});
  const errors = [];
  const typeOf = (v) => (v === null ? 'null' : Array.isArray(v) ? 'array'
    : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v);
  if (s.type !== undefined) {
    const types = [].concat(s.type);
    const t = typeOf(value);
    if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) {
      return [`${where}: ${JSON.stringify(value)?.slice(0, 80)} is ${t}, want ${types.join('|')}`];
    }
  }
  if (s.const !== undefined && value !== s.const) errors.push(`${where}: want const ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.includes(value)) errors.push(`${where}: ${JSON.stringify(value)} not in ${JSON.stringify(s.enum)}`);
  if (typeof value === 'string') {
    if (s.pattern && !new RegExp(s.pattern, 'u').test(value)) errors.push(`${where}: ${JSON.stringify(value)} !~ /${s.pattern}/`);
    if (s.minLength !== undefined && [...value].length < s.minLength) errors.push(`${where}: shorter than ${s.minLength}`);
  }
  if (typeof value === 'number') {
    if (s.minimum !== undefined && value < s.minimum) errors.push(`${where}: ${value} < ${s.minimum}`);
    if (s.maximum !== undefined && value > s.maximum) errors.push(`${where}: ${value} > ${s.maximum}`);
  }
  if (Array.isArray(value)) {
    if (s.maxItems !== undefined && value.length > s.maxItems) errors.push(`${where}: more than ${s.maxItems} items`);
    if (s.items) value.forEach((v, i) => errors.push(...conforms(spec, s.items, v, `${where}[${i}]`)));
  }
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const r of s.required ?? []) if (!(r in value)) errors.push(`${where}: required member ${r} is missing`);
    if (s.properties) {
      for (const [k, v] of Object.entries(value)) {
        if (!(k in s.properties)) errors.push(`${where}: member ${k} is not documented`);
        else errors.push(...conforms(spec, s.properties[k], v, `${where}.${k}`));
      }
    }
  }
  for (const [kw, need] of [['oneOf', 1], ['anyOf', 0]]) {
    if (!s[kw]) continue;
    const ok = s[kw].filter((sub) => conforms(spec, sub, value, where).length === 0).length;
    if (kw === 'oneOf' ? ok !== need : ok === 0) errors.push(`${where}: ${ok} of the ${kw} alternatives match`);
  }
  return errors;
}

/** Splits a text/event-stream body into frames and heartbeats; throws on anything else. */
function parseStream(text, { complete = true } = {}) {
  const items = [];
  let rest = text;
  while (rest.length) {
    if (rest.startsWith(':\n')) { items.push({ heartbeat: true }); rest = rest.slice(2); continue; }
    const m = /^(?:id:(\d+)\n)?event:([^\n]+)\n(?:retry:(\d+)\n)?data:([^\n]*)\n\n/.exec(rest);
    if (!m) {
      if (!complete) break;
      throw new Error(`not a frame at ${JSON.stringify(rest.slice(0, 80))}`);
    }
    const [, id, event, retry, data] = m;
    JSON.parse(data); // data is one line of JSON
    items.push({ id, event, retry, data });
    rest = rest.slice(m[0].length);
  }
  for (const f of items) {
    if (f.heartbeat) continue;
    if (CONTROL_EVENTS.has(f.event)) assert.equal(f.id, undefined, `a ${f.event} frame has no id: line`);
    else assert.match(f.id ?? '', /^\d+$/, `an event frame (${f.event}) has an id: line`);
  }
  return items;
}

// ---------------------------------------------------------------------------------------------
// The routes in the source.

/** src/ C text without comments (string literals here hold no comment markers). */
const stripComments = (c) => c.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/[^\n]*/g, '');

/** router.c's routes[] table: [{ method, path, handler }]. */
function routerTable() {
  const src = readRepo('src/api/router.c');
  const m = /static const struct route routes\[\]\s*=\s*\{([\s\S]*?)\n\};/.exec(src);
  assert.ok(m, 'router.c has a routes[] table');
  const rows = [...m[1].matchAll(/\{\s*"([^"]+)"\s*,\s*HTTP_([A-Z]+)\s*,\s*(\w+)\s*\}/g)]
    .map(([, p, method, handler]) => ({ method, path: p, handler }));
  assert.equal(rows.length, (m[1].match(/\{/g) ?? []).length, 'every row of routes[] was understood');
  assert.ok(rows.length >= 7, `routes[] has the seed routes: ${JSON.stringify(rows)}`);
  return rows;
}

// The families router.c hands whole path prefixes to: their handlers route within the family.
// This list is checked against each file below (path literals, HTTP_* methods, header comment).
const FAMILIES = {
  'src/api/admin.c': {
    handler: 'api_admin',
    prefix: '/admin',
    routes: [['GET', '/admin/users'], ['POST', '/admin/users'], ['GET', '/admin/users/{id}'], ['PATCH', '/admin/users/{id}']],
  },
  'src/api/admin_console.c': {
    handler: 'api_admin_console',
    prefix: '/admin',
    routes: [['GET', '/admin'], ['HEAD', '/admin'], ['GET', '/admin/console/{asset}'], ['HEAD', '/admin/console/{asset}']],
  },
  'src/api/me.c': {
    handler: 'api_me',
    prefix: '/users/me',
    routes: [['GET', '/users/me'], ['POST', '/users/me/password'], ['POST', '/users/me/totp'],
      ['DELETE', '/users/me/totp'], ['POST', '/users/me/totp/confirm']],
  },
};

function familyRoutes() {
  const router = stripComments(readRepo('src/api/router.c'));
  const out = [];
  for (const [file, fam] of Object.entries(FAMILIES)) {
    const raw = readRepo(file);
    const code = stripComments(raw);
    assert.ok(router.includes(`"${fam.prefix}`) && router.includes(fam.handler),
      `router.c hands ${fam.prefix}... to ${fam.handler}`);
    // Path literals in the code (a templated path is matched by its prefix, e.g. "/admin/users/").
    const literals = new Set([...code.matchAll(/"(\/[A-Za-z0-9_/-]*)"/g)].map((x) => x[1]));
    const listed = fam.routes.map(([, p]) => p);
    const literalOf = (p) => (p.includes('{') ? p.slice(0, p.indexOf('{')) : p);
    for (const p of listed) assert.ok(literals.has(literalOf(p)), `${file} has the path literal "${literalOf(p)}" (${p})`);
    for (const l of literals) {
      assert.ok(listed.some((p) => literalOf(p) === l), `${file}: the path "${l}" it matches is in the test's list`);
    }
    // Methods compared against in the code.
    const methods = new Set([...code.matchAll(/\bHTTP_([A-Z]+)\b/g)].map((x) => x[1]));
    assert.deepEqual([...methods].sort(), [...new Set(fam.routes.map(([m]) => m))].sort(),
      `${file}: the HTTP_* methods it serves`);
    // The route summary at the top of the file.
    const header = /^\/\*([\s\S]*?)\*\//.exec(raw)?.[1] ?? '';
    const summary = [...header.matchAll(/^\s*\*?\s*(GET|HEAD|POST|PATCH|DELETE|PUT)\s+(\/\S+)/gm)]
      .map(([, m, p]) => key(m, p.replace(/\?.*$/, '').replace(/<(\w+)>/g, '{$1}')));
    assert.deepEqual(summary.sort(), fam.routes.map(([m, p]) => key(m, p)).sort(), `${file}: its header comment's routes`);
    out.push(...fam.routes.map(([method, p]) => ({ method, path: p, file })));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The statuses docs/API.md gives per route.

/** { 'METHOD /path': Set(status) } from the route sections' status tables and the route tables. */
function apiMdStatuses() {
  const md = fs.readFileSync(API_MD, 'utf8');
  const out = {};
  const add = (k, code) => { (out[k] ??= new Set()).add(Number(code)); };
  const norm = (p) => p.replace(/\?.*$/, '').replace(/<(\w+)>/g, '{$1}');
  let route = null;
  for (const line of md.split('\n')) {
    const h = /^(#+)\s+(.*)$/.exec(line);
    if (h) {
      const r = /^(GET|POST|PATCH|DELETE|PUT)\s+(\/\S*)$/.exec(h[2].trim());
      route = r ? key(r[1], norm(r[2])) : null;
      continue;
    }
    // "| 400 | ..." under "## POST /users"
    const row = /^\|\s*(\d{3})\s*\|/.exec(line);
    if (row && route) { add(route, row[1]); continue; }
    // "| `GET /admin/users/<id>` | | `200` user, `404 no such user` |"
    const cell = /^\|\s*`(GET|POST|PATCH|DELETE|PUT)\s+(\/[^`\s]*)`\s*\|(.*)$/.exec(line);
    if (cell) for (const c of cell[3].matchAll(/`([1-5]\d\d)\b/g)) add(key(cell[1], norm(cell[2])), c[1]);
  }
  return out;
}

/** The statuses of the "## Errors" table of docs/API.md. */
function apiMdErrorTable() {
  const md = fs.readFileSync(API_MD, 'utf8');
  const section = /\n## Errors\n([\s\S]*?)\n## /.exec(md)?.[1] ?? '';
  return [...section.matchAll(/^\|\s*(\d{3})\s*\|/gm)].map((m) => Number(m[1]));
}

// ---------------------------------------------------------------------------------------------

describe('docs/openapi.yaml', () => {
  let spec;
  before(() => { spec = loadSpec(); });

  it('is a valid OpenAPI 3.1.0 document (and the validator refuses broken copies of it)', async () => {
    assert.equal(spec.openapi, '3.1.0');
    const res = await validate(spec);
    assert.equal(res.version, '3.1', 'validated against the 3.1 schema');
    assert.ok(res.valid, `OpenAPI 3.1 validation errors:\n${JSON.stringify(res.errors, null, 2)?.slice(0, 4000)}`);

    // The validator is not a no-op: each of these copies must be refused.
    const broken = {
      'no info': (s) => { delete s.info; },
      'a response without a description': (s) => { delete s.paths['/login'].post.responses['200'].description; },
      'a parameter in an unknown place': (s) => { s.components.parameters.EventsFilter.in = 'body'; },
      'a dangling $ref': (s) => { s.paths['/insert'].post.responses['400'].$ref = '#/components/responses/Nope'; },
      'an unknown member of an operation': (s) => { s.paths['/sse'].get.frames = 'x'; },
    };
    for (const [what, mutate] of Object.entries(broken)) {
      const copy = structuredClone(spec);
      mutate(copy);
      assert.equal((await validate(copy)).valid, false, `the validator refuses the document with ${what}`);
    }

    // Every $ref resolves, and operation ids are unique.
    (function walk(o) {
      if (!o || typeof o !== 'object') return;
      if (typeof o.$ref === 'string') pointer(spec, o.$ref);
      Object.values(o).forEach(walk);
    })(spec);
    const ids = operations(spec).map(({ op }) => op.operationId).filter(Boolean);
    assert.equal(new Set(ids).size, ids.length, `unique operationIds: ${ids}`);
    for (const { path: p, method, op } of operations(spec)) {
      if (method !== 'OPTIONS') assert.ok(op.operationId, `${method} ${p} has an operationId`);
    }
  });

  it('describes exactly the routes of src/api/, with the same methods', () => {
    const source = [...routerTable(), ...familyRoutes()].map((r) => key(r.method, r.path));
    const documented = operations(spec).filter((o) => o.method !== 'OPTIONS').map((o) => key(o.method, o.path));
    for (const k of source) assert.ok(documented.includes(k), `${k} (in src/api/) is documented`);
    for (const k of documented) assert.ok(source.includes(k), `${k} (documented) is a route of src/api/`);
    assert.equal(new Set(documented).size, documented.length);
    // OPTIONS is answered on any path by router.c: documented on every path.
    assert.match(stripComments(readRepo('src/api/router.c')), /req->method == HTTP_OPTIONS/);
    for (const [p, item] of Object.entries(spec.paths)) {
      assert.ok(item.options, `OPTIONS (the CORS preflight) is documented on ${p}`);
      assert.ok(deref(spec, item.options.responses['204']), `OPTIONS ${p} answers 204`);
    }
  });

  it('gives every status docs/API.md gives for a route; errors use the Error schema; every 503 has Retry-After', () => {
    const md = apiMdStatuses();
    const routes = Object.keys(md);
    for (const want of ['POST /users', 'POST /login', 'POST /insert', 'GET /healthz', 'GET /admin/users',
      'GET /admin/users/{id}', 'POST /admin/users', 'PATCH /admin/users/{id}', 'POST /users/me/password',
      'POST /users/me/totp', 'POST /users/me/totp/confirm', 'DELETE /users/me/totp']) {
      assert.ok(routes.includes(want), `docs/API.md gives statuses for ${want} (parsed: ${routes.join(', ')})`);
    }
    const ops = new Map(operations(spec).map((o) => [key(o.method, o.path), o.op]));
    for (const [route, codes] of Object.entries(md)) {
      const op = ops.get(route);
      assert.ok(op, `${route} (in docs/API.md) is in the document`);
      for (const c of codes) assert.ok(String(c) in op.responses, `${route}: status ${c} of docs/API.md is documented`);
    }

    // The general Errors table: each status is described somewhere (405 in components/responses).
    const all = new Set();
    for (const { op } of operations(spec)) for (const c of Object.keys(op.responses)) all.add(Number(c));
    const table = apiMdErrorTable();
    assert.ok(table.length >= 10, `docs/API.md has an Errors table: ${table}`);
    for (const c of table) {
      // 405 belongs to no operation (it is the answer to a method the path does not serve).
      const described = all.has(c) || (c === 405 && 'MethodNotAllowed' in spec.components.responses);
      assert.ok(described, `status ${c} of the Errors table is described`);
    }
    for (const c of [200, 400, 401, 403, 404, 409, 413, 429, 500, 503]) assert.ok(all.has(c), `status ${c} is used`);

    for (const { path: p, method, op } of operations(spec)) {
      for (const [code, ref] of Object.entries(op.responses)) {
        const r = deref(spec, ref);
        const where = `${method} ${p} ${code}`;
        assert.ok(r.description, `${where} has a description`);
        if (Number(code) >= 400) {
          const schema = deref(spec, r.content?.['application/json']?.schema);
          assert.ok(schema, `${where}: an application/json body`);
          assert.ok(schema.required?.includes('error') && deref(spec, schema.properties?.error)?.type === 'string',
            `${where}: the body is {"error": string}`);
        }
        if (code === '503' || code === '429') {
          const h = deref(spec, r.headers?.['Retry-After']);
          assert.ok(h?.required, `${where} carries Retry-After`);
        }
      }
    }
    for (const name of ['BadRequest', 'Unauthorized', 'AdminUnauthorized', 'NotFound', 'MethodNotAllowed',
      'Conflict', 'PayloadTooLarge', 'ServerError', 'Unavailable']) {
      const r = spec.components.responses[name];
      assert.equal(r.content['application/json'].schema.$ref, '#/components/schemas/Error', `${name} uses Error`);
    }
  });

  it('documents the headers, security schemes and the text/event-stream of GET /sse', () => {
    const params = (p, m) => [...(spec.paths[p].parameters ?? []), ...(spec.paths[p][m].parameters ?? [])]
      .map((x) => deref(spec, x)).map((x) => `${x.in}:${x.name}`);
    assert.ok(params('/insert', 'post').includes('header:Idempotency-Key'));
    for (const x of ['header:Last-Event-ID', 'query:lastEventId', 'query:events', 'query:ticket']) {
      assert.ok(params('/sse', 'get').includes(x), `GET /sse: ${x}`);
    }
    assert.ok(params('/admin/users', 'get').includes('query:after') && params('/admin/users', 'get').includes('query:limit'));
    assert.ok(params('/admin/users/{id}', 'get').includes('path:id'));
    assert.ok(deref(spec, spec.paths['/insert'].post.responses['200']).headers['Idempotent-Replayed']);

    const schemes = spec.components.securitySchemes;
    assert.equal(schemes.loginToken.scheme, 'bearer');
    assert.equal(schemes.loginToken.bearerFormat, 'JWT');
    assert.equal(schemes.adminToken.scheme, 'bearer');
    assert.deepEqual([schemes.sseTicketQuery.in, schemes.sseTicketQuery.name], ['query', 'ticket']);
    const schemeNames = (o) => (o.security ?? spec.security ?? []).flatMap((s) => Object.keys(s));
    for (const { path: p, method, op } of operations(spec)) {
      const names = schemeNames(op);
      if (isConsole(p) && method !== 'OPTIONS') assert.deepEqual(names, [], `${method} ${p}: a public page`);
      else if (p.startsWith('/admin') && method !== 'OPTIONS') assert.deepEqual(names, ['adminToken'], `${method} ${p}`);
      if (p.startsWith('/users/me') && method !== 'OPTIONS') assert.deepEqual(names, ['loginToken'], `${method} ${p}`);
      for (const n of names) assert.ok(n in schemes, `${method} ${p}: scheme ${n} is defined`);
    }
    assert.deepEqual(schemeNames(spec.paths['/sse'].get).sort(), ['loginToken', 'sseTicket', 'sseTicketQuery']);

    const sse = spec.paths['/sse'].get;
    const media = sse.responses['200'].content['text/event-stream'];
    assert.ok(media, 'GET /sse 200 is text/event-stream');
    const schema = deref(spec, media.schema);
    assert.equal(schema.type, 'string');
    assert.ok(schema.example, 'the stream schema has an example');
    const examples = [schema.example, ...Object.values(media.examples ?? {}).map((e) => e.value)];
    const seen = new Set();
    for (const ex of examples) for (const f of parseStream(ex)) seen.add(f.heartbeat ? ':' : f.event);
    for (const e of ['reset', 'token_expiring', 'revoked', ':']) assert.ok(seen.has(e), `an example shows ${e}`);
    const text = `${sse.description}\n${schema.description}`;
    for (const s of ['id:<event id>\\nevent:<event name>\\ndata:<compact JSON data>\\n\\n', 'event:reset',
      'event:token_expiring', 'event:revoked', '`:\\n`', 'no `id:`']) {
      assert.ok(text.includes(s), `the stream's description mentions ${s}`);
    }
  });

  it('a running broker answers every documented operation and refuses every other method', async () => {
    const doc = new Map(operations(spec).map((o) => [key(o.method, o.path), o]));
    await withBroker({ args: [`--admin_token=${ADMIN}`], neverLog: [ADMIN] }, async (b) => {
      for (const [p, item] of Object.entries(spec.paths)) {
        const concrete = p.replace('{id}', MADE_UP_ID).replace('{asset}', CONSOLE_ASSET);
        const allowed = PROBE_METHODS.filter((m) => item[m.toLowerCase()]);
        for (const method of PROBE_METHODS) {
          const headers = p.startsWith('/admin') ? { authorization: `Bearer ${ADMIN}` } : {};
          const json = ['GET', 'HEAD', 'OPTIONS'].includes(method) ? undefined : {};
          const r = await request(b, method, concrete, { headers, json });
          const what = `${method} ${concrete} -> ${r.status} ${r.text.slice(0, 200)}`;
          if (!doc.has(key(method, p))) {
            assert.equal(r.status, 405, `undocumented: ${what}`);
            if (method !== 'HEAD') assert.equal(r.json?.error, 'method not allowed', what);
            const allow = (r.headers.allow ?? '').split(/,\s*/).sort();
            assert.deepEqual(allow, allowed.sort(), `Allow of ${p} lists the documented methods: ${what}`);
            continue;
          }
          assert.notEqual(r.status, 405, what);
          assert.ok(!(r.status === 404 && r.json?.error === 'not found'), `the route exists: ${what}`);
          if (p.includes('{id}') && r.status === 404) assert.equal(r.json?.error, 'no such user', what);
          assert.ok(String(r.status) in doc.get(key(method, p)).op.responses, `status ${r.status} is documented: ${what}`);
          if (method === 'OPTIONS') {
            const m = (r.headers['access-control-allow-methods'] ?? '').split(/,\s*/);
            for (const a of allowed) assert.ok(m.includes(a), `the preflight of ${p} allows ${a}: ${m}`);
          }
        }
      }
      // The families answer nothing beyond what is documented.
      for (const p of ['/admin/', '/admin/console/', '/admin/console/nope', '/admin/users/', '/admin/nope', '/users/me/',
        '/users/me/nope', '/users/me/totp/confirm/x', '/sse/', '/users/', '/nope']) {
        const headers = p.startsWith('/admin') ? { authorization: `Bearer ${ADMIN}` } : {};
        const r = await request(b, 'GET', p, { headers });
        assert.equal(r.status, 404, `GET ${p} -> ${r.status} ${r.text}`);
        assert.equal(r.json?.error, 'not found', `GET ${p}`);
      }
    });
  });

  it('the bodies a running broker answers have the documented shapes', async () => {
    const ops = new Map(operations(spec).map((o) => [key(o.method, o.path), o.op]));
    /** Requires status `want`, and checks r against the documented response of METHOD path; returns r. */
    const check = (method, p, r, want = 200) => {
      assert.equal(r.status, want, `${method} ${p}: ${r.text.slice(0, 300)}`);
      const op = ops.get(key(method, p));
      const doc = deref(spec, op.responses[String(r.status)]);
      assert.ok(doc, `${method} ${p}: status ${r.status} is documented (${r.text.slice(0, 200)})`);
      const type = (r.headers['content-type'] ?? '').split(';')[0].trim();
      const mediaKey = Object.keys(doc.content ?? {}).find((k) => k.split(';')[0].trim() === type);
      assert.ok(mediaKey, `${method} ${p} ${r.status}: content-type ${r.headers['content-type']} is documented`);
      if (type === 'application/json') {
        const errs = conforms(spec, doc.content[mediaKey].schema, r.json);
        assert.deepEqual(errs, [], `${method} ${p} ${r.status} ${r.text.slice(0, 300)}`);
      }
      for (const [name, h] of Object.entries(doc.headers ?? {})) {
        if (deref(spec, h).required) assert.ok(r.headers[name.toLowerCase()] !== undefined, `${method} ${p} ${r.status}: ${name}`);
      }
      return r;
    };
    const admin = { headers: { authorization: `Bearer ${ADMIN}` } };
    await withBroker({ args: [`--admin_token=${ADMIN}`], neverLog: [ADMIN] }, async (b) => {
      const username = uniq('oas');
      const password = `pw-${uniq('p')}`;
      b.opts.neverLog.push(password);
      const created = check('POST', '/users', await post(b, '/users', { username, password }));
      check('POST', '/users', await post(b, '/users', { username, password }), 409);
      check('POST', '/users', await post(b, '/users', { username: '' }), 400);
      const jwt = check('POST', '/login', await post(b, '/login', { username, password })).json.jwt;
      check('POST', '/login', await post(b, '/login', { username, password: 'wrong-password' }), 401);

      const idem = { token: jwt, headers: { 'idempotency-key': uniq('key') } };
      const i1 = check('POST', '/insert', await post(b, '/insert', { event: 'chat', data: { text: 'hi' } }, idem));
      const i2 = check('POST', '/insert', await post(b, '/insert', { event: 'chat', data: { text: 'hi' } }, idem));
      assert.equal(i2.json.id, i1.json.id);
      assert.equal(i1.headers['idempotent-replayed'], undefined, 'the first insert is no replay');
      assert.equal(i2.headers['idempotent-replayed'], 'true', 'a replay says so');
      check('POST', '/insert', await post(b, '/insert', { event: ' x', data: 1 }, { token: jwt }), 400);
      check('POST', '/insert', await post(b, '/insert', { event: 'x', data: 1 }), 401);

      const ticket = check('POST', '/sse/ticket', await post(b, '/sse/ticket', undefined, { token: jwt })).json.ticket;
      check('POST', '/sse/ticket', await post(b, '/sse/ticket', undefined, { token: ticket }), 401);
      check('GET', '/sse', await get(b, '/sse?events=', { token: jwt }), 400);
      check('GET', '/sse', await get(b, `/sse?ticket=${jwt}`), 401); // a login token in the URL

      // The stream: its documented headers, and bytes of the documented frame format.
      for (const opts of [{ path: `/sse?ticket=${encodeURIComponent(ticket)}` }, { token: jwt },
        { token: jwt, headers: { 'last-event-id': '999999' } }]) {
        const sub = await openSSE(b, opts);
        try {
          assert.equal(sub.status, 200, sub.body);
          assert.match(sub.headers['content-type'], /^text\/event-stream/);
          const doc = deref(spec, ops.get('GET /sse').responses['200']);
          for (const [name, h] of Object.entries(doc.headers)) {
            assert.equal(sub.headers[name.toLowerCase()], deref(spec, h).schema.const, `GET /sse: ${name}`);
          }
          const reset = !!opts.headers;
          await sub.waitFor((s) => s.frames.length >= (reset ? 2 : 1), ms(5000), 'the first frames');
          const frames = parseStream(sub.raw, { complete: false }).filter((f) => !f.heartbeat);
          assert.ok(frames[0].retry, `the first frame carries retry: ${JSON.stringify(sub.raw)}`);
          if (reset) assert.equal(frames[0].event, 'reset', 'a Last-Event-ID ahead of the store: reset first');
          assert.ok(frames.some((f) => f.id === String(i1.json.id) && f.event === 'chat' && f.data === '{"text":"hi"}'),
            `the snapshot holds the event: ${JSON.stringify(sub.raw)}`);
        } finally {
          sub.close();
        }
      }

      const me = check('GET', '/users/me', await get(b, '/users/me', { token: jwt }));
      assert.equal(me.json.id, created.json.id);
      check('GET', '/users/me', await get(b, '/users/me', { token: ticket }), 401);
      const enrol = check('POST', '/users/me/totp', await post(b, '/users/me/totp', undefined, { token: jwt }));
      assert.match(enrol.json.uri, /^otpauth:\/\/totp\//);
      const me2 = (json) => ({ json, token: jwt });
      check('POST', '/users/me/totp/confirm', await request(b, 'POST', '/users/me/totp/confirm', me2({ code: 'no-code' })), 401);
      check('POST', '/users/me/totp/confirm', await request(b, 'POST', '/users/me/totp/confirm', me2({})), 400);
      check('DELETE', '/users/me/totp', await request(b, 'DELETE', '/users/me/totp', me2({ code: 'no-code' })), 409);

      const page = check('GET', '/admin/users', await get(b, '/admin/users?limit=1', admin));
      assert.equal(page.json.users.length, 1);
      check('GET', '/admin/users', await get(b, '/admin/users?limit=0', admin), 400);
      check('GET', '/admin/users', await get(b, '/admin/users'), 401);
      check('GET', '/admin/users/{id}', await get(b, `/admin/users/${created.json.id}`, admin));
      check('GET', '/admin/users/{id}', await get(b, `/admin/users/${MADE_UP_ID}`, admin), 404);
      const patch = (json) => request(b, 'PATCH', `/admin/users/${created.json.id}`, { ...admin, json });
      assert.deepEqual(check('PATCH', '/admin/users/{id}', await patch({ roles: ['staff'] })).json.roles, ['staff']);
      check('PATCH', '/admin/users/{id}', await patch({}), 400);
      const other = `pw-${uniq('p')}`;
      b.opts.neverLog.push(other);
      check('POST', '/admin/users', await post(b, '/admin/users', { username: uniq('oas'), password: other, roles: ['ops'] }, admin));
      check('POST', '/admin/users', await post(b, '/admin/users', { username, password: other }, admin), 409);

      // The roles change revoked the user's token: log in again, then change the password.
      check('GET', '/users/me', await get(b, '/users/me', { token: jwt }), 401);
      const jwt2 = check('POST', '/login', await post(b, '/login', { username, password })).json.jwt;
      const newPassword = `pw-${uniq('p')}`;
      b.opts.neverLog.push(newPassword);
      const change = (current) => post(b, '/users/me/password', { password: current, new_password: newPassword }, { token: jwt2 });
      check('POST', '/users/me/password', await change('not-the-password'), 401);
      check('POST', '/users/me/password', await change(password));
      check('GET', '/users/me', await get(b, '/users/me', { token: jwt2 }), 401);

      assert.equal(check('GET', '/healthz', await get(b, '/healthz')).json.status, 'ok');
      for (const [p, url] of [['/admin', '/admin'], ['/admin/console/{asset}', `/admin/console/${CONSOLE_ASSET}`]]) {
        const page = check('GET', p, await get(b, url));
        const h = deref(spec, ops.get(key('GET', p)).responses['200']).headers;
        for (const name of ['Content-Security-Policy', 'X-Content-Type-Options', 'Referrer-Policy', 'Cache-Control']) {
          assert.equal(page.headers[name.toLowerCase()], deref(spec, h[name]).schema.const, `GET ${url}: ${name}`);
        }
        assert.deepEqual(conforms(spec, deref(spec, h.ETag).schema, page.headers.etag), [], `GET ${url}: ETag`);
        const again = await get(b, url, { headers: { 'if-none-match': page.headers.etag } });
        assert.equal(again.status, 304, `GET ${url} with its ETag`);
        assert.ok('304' in ops.get(key('GET', p)).responses);
      }
      assert.match(check('GET', '/metrics', await get(b, '/metrics')).text, /broker_subscribers/);
    });
  });
});
