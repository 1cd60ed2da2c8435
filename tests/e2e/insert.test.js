// §2 POST /insert (seed): data shapes, validation, authentication.
import * as nodeTest from 'node:test';
import assert from 'node:assert/strict';
import { sharedBroker, withBroker } from './lib/broker.js';
import { request, nodeRequest, insert, insertRaw, assertJsonError, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { signJwt, decodeJwt, hs256, b64u, nowSec } from './lib/jwt.js';
import { SECRET, ms } from './lib/config.js';
import { isCompactJson, sleep } from './lib/util.js';
import { exchange, hasCompleteResponse } from './lib/raw.js';

const { describe } = nodeTest;
const srv = sharedBroker(nodeTest);
const test = srv.test;

let user; // { id, username, password, jwt }
const stored = new Set(); // event names that were accepted

async function jwt(b) {
  if (!user) user = await newUser(b, 'ins');
  return user.jwt;
}

const DATA = [
  ['object', { a: 1, b: 'x' }],
  ['array', [1, 'two', 3.5, null, true, false]],
  ['string', 'plain string'],
  ['empty string', ''],
  ['integer', 42],
  ['zero', 0],
  ['negative', -17],
  ['fraction', 3.14159],
  ['big exponent', 1.5e300],
  ['2^53-1', 9007199254740991],
  ['true', true],
  ['false', false],
  ['null', null],
  ['empty object', {}],
  ['empty array', []],
  ['nested', { l1: { l2: { l3: [{ l4: [1, [2, [3, { deep: 'yes' }]]] }] } } }],
  ['deep array (40 levels)', JSON.parse('['.repeat(40) + '"bottom"' + ']'.repeat(40))],
  ['unicode', 'héllo wörld ✓ 中文 🎉 👍🏽'],
  ['unicode keys', { 'ключ': 'значение', '🔑': ['🌍', 'ü'] }],
  ['newlines', 'line1\nline2\r\nline3'],
  ['blank line inside', 'a\n\nb\n\n'],
  ['frame keywords', 'id:1\nevent:x\ndata:y\n\nretry:5\n'],
  ['frame keywords in keys', { 'id:': 'event:', 'data:': 'data:\n\nid:9', 'event:': ['id:', 'data:'] }],
  ['escapes', 'quote " backslash \\ slash / tab \t ctl \u0001\u001f'],
  ['NUL inside a string', 'a\u0000b\u0000'],
  ['large string (100 KB)', 'x'.repeat(100 * 1024)],
];

describe('POST /insert accepts any JSON data and delivers it compact', () => {
  test('all data shapes round-trip through /sse; ids are increasing JSON numbers', async (b) => {
    const token = await jwt(b);
    const sub = await openSSE(b, { token });
    assert.equal(sub.status, 200, sub.body);
    try {
      const sent = [];
      for (const [i, [what, data]] of DATA.entries()) {
        const event = `shape-${i}`;
        const id = await insert(b, token, event, data);
        stored.add(event);
        sent.push({ id, event, data, what });
      }
      // The same data sent pretty-printed with extra whitespace.
      const pretty = await insertRaw(b, token,
        '{\n  "event" : "shape-pretty" ,\n  "data" : { "k" : [ 1 , 2 , { "x" : "y z" } ] , "t" : true }\n}\n');
      assert.equal(pretty.status, 200, pretty.text);
      stored.add('shape-pretty');
      sent.push({ id: pretty.json.id, event: 'shape-pretty', data: { k: [1, 2, { x: 'y z' }], t: true }, what: 'pretty' });

      // JSON escapes in the request: surrogate pair, \u00e9, escaped slash, escaped NUL.
      const esc = await insertRaw(b, token, '{"event":"shape-escapes","data":["\\ud83c\\udf89","\\u00e9\\/","a\\u0000b"]}');
      assert.equal(esc.status, 200, esc.text);
      stored.add('shape-escapes');
      sent.push({ id: esc.json.id, event: 'shape-escapes', data: ['🎉', 'é/', 'a\u0000b'], what: 'escapes in the request' });

      for (let i = 1; i < sent.length; i++) {
        assert.ok(sent[i].id > sent[i - 1].id, `ids strictly increase: ${sent[i - 1].id} then ${sent[i].id}`);
      }
      const last = sent[sent.length - 1].id;
      await sub.waitFor((s) => s.frames.some((f) => f.idNum === last), ms(15000), `event ${last}`);
      const byId = new Map(sub.frames.map((f) => [f.idNum, f]));
      for (const s of sent) {
        const f = byId.get(s.id);
        assert.ok(f, `frame for id ${s.id} (${s.what}) received`);
        assert.ok(f.exact, `frame shape for ${s.what}: ${JSON.stringify(f.raw.slice(0, 300))}`);
        assert.equal(f.event, s.event);
        assert.ok(isCompactJson(f.data), `${s.what}: data is compact JSON: ${f.data.slice(0, 200)}`);
        assert.deepEqual(JSON.parse(f.data), s.data, `${s.what}: data round-trips`);
      }
      assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(sub.rawChunks)),
        'the event stream is valid UTF-8');
    } finally {
      sub.close();
    }
  });

  test('numbers and strings at the edges: 400, or stored and delivered as valid JSON', async (b) => {
    const token = await jwt(b);
    const sub = await openSSE(b, { token });
    try {
      const accepted = [];
      for (const d of ['1e999', '-1e999', '123456789012345678901234567890', '-0', '0.1', '1E2', '1.0',
        '"\\ud800"', '"\\udc00x"', '"\\ud800\\u0041"']) {
        const r = await insertRaw(b, token, `{"event":"edge","data":${d}}`);
        if (r.status === 200) accepted.push({ id: r.json.id, d });
        else assertJsonError(r, 400, `data ${d}`);
      }
      if (accepted.length) stored.add('edge');
      const marker = await insert(b, token, 'edge-marker', 0);
      stored.add('edge-marker');
      await sub.waitId(marker, ms(10000));
      assert.doesNotThrow(() => new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(sub.rawChunks)),
        'the event stream is valid UTF-8');
      for (const a of accepted) {
        const f = sub.frames.find((x) => x.idNum === a.id);
        assert.ok(f?.exact, `frame for ${a.d}`);
        assert.doesNotThrow(() => JSON.parse(f.data), `data ${a.d} delivered as valid JSON: ${f.data}`);
        assert.ok(isCompactJson(f.data));
        // === on purpose: -0 and 0 are the same JSON number here
        if (!a.d.startsWith('"')) assert.ok(JSON.parse(f.data) === JSON.parse(a.d), `number ${a.d} -> ${f.data}`);
      }
    } finally {
      sub.close();
    }
  });

  test('event names: 255 bytes, multi-byte UTF-8, spaces and colons are fine', async (b) => {
    const token = await jwt(b);
    const names = ['e'.repeat(255), 'é'.repeat(127) + 'x', 'événement 🎉', 'with space', 'colon:in:name', 'data:x'];
    for (const event of names) {
      assert.ok(Buffer.byteLength(event) <= 255);
      const r = await request(b, 'POST', '/insert', { json: { event, data: 1 }, token });
      assert.equal(r.status, 200, `event ${JSON.stringify(event)}: ${r.text}`);
      assert.equal(r.json.event, event);
      stored.add(event);
    }
  });

  test('data: null is present (200); only a missing data is an error', async (b) => {
    const r = await request(b, 'POST', '/insert', { json: { event: 'null-data', data: null }, token: await jwt(b) });
    assert.equal(r.status, 200, r.text);
    stored.add('null-data');
  });
});

describe('POST /insert 400 on bad input', () => {
  const bad = [
    ['missing event', { data: 1 }],
    ['empty event', { event: '', data: 1 }],
    ['event of 256 bytes', { event: 'e'.repeat(256), data: 1 }],
    ['event of 256 bytes in 128 two-byte characters', { event: 'é'.repeat(128), data: 1 }],
    ['event with \\u0001', { event: 'bad\u0001', data: 1 }],
    ['event with a newline', { event: 'bad\nevent', data: 1 }],
    ['event with a carriage return', { event: 'bad\revent', data: 1 }],
    ['event with "\\n\\n"', { event: 'bad\n\nid:999', data: 1 }],
    ['event with a tab', { event: 'bad\tevent', data: 1 }],
    ['event with a leading space (an SSE parser strips it)', { event: ' lead', data: 1 }],
    ['event with NUL', { event: 'bad\u0000event', data: 1 }],
    ['event with DEL (U+007F)', { event: 'bad\u007fevent', data: 1 }],
    ['event with C1 control U+0085', { event: 'bad\u0085event', data: 1 }],
    ['event is a number', { event: 5, data: 1 }],
    ['event is null', { event: null, data: 1 }],
    ['event is an object', { event: { n: 'x' }, data: 1 }],
    ['event is an array', { event: ['x'], data: 1 }],
    ['event is a boolean', { event: true, data: 1 }],
    ['missing data', { event: 'nodata' }],
  ];
  for (const [what, body] of bad) {
    test(what, async (b) => {
      const r = await request(b, 'POST', '/insert', { json: body, token: await jwt(b) });
      assertJsonError(r, 400, what);
    });
  }

  const rawBad = [
    ['malformed JSON', '{"event": "mal", "data": '],
    ['not JSON', 'event=x&data=1'],
    ['empty body', ''],
    ['trailing garbage', '{"event":"tg","data":1} {"event":"tg2","data":2}'],
    ['body is an array', '[{"event":"arr","data":1}]'],
    ['body is null', 'null'],
    ['invalid UTF-8 in event', Buffer.concat([Buffer.from('{"event":"bad'), Buffer.from([0xff, 0xfe]),
      Buffer.from('","data":1}')])],
    ['invalid UTF-8 (surrogate) in event', Buffer.concat([Buffer.from('{"event":"bad'), Buffer.from([0xed, 0xa0, 0x80]),
      Buffer.from('","data":1}')])],
    ['invalid UTF-8 inside data', Buffer.concat([Buffer.from('{"event":"baddata","data":"x'), Buffer.from([0xc3]),
      Buffer.from('"}')])],
  ];
  for (const [what, body] of rawBad) {
    test(what, async (b) => {
      assertJsonError(await insertRaw(b, await jwt(b), body), 400, what);
    });
  }
});

describe('POST /insert 401 for every authentication failure', () => {
  test('positive control: a token we sign ourselves with the right secret is accepted', async (b) => {
    const { payload } = decodeJwt(await jwt(b));
    const own = signJwt({ ...payload, iat: nowSec(), exp: nowSec() + 600 }, SECRET);
    const r = await request(b, 'POST', '/insert', { json: { event: 'forged-ok', data: 1 }, token: own });
    assert.equal(r.status, 200, `self-signed HS256 token with real claims: ${r.text}`);
    stored.add('forged-ok');
  });

  const cases = () => {
    const real = decodeJwt(user.jwt);
    const p = real.payload;
    const [h64, , sig] = user.jwt.split('.');
    const now = nowSec();
    return [
      ['no Authorization header', undefined],
      ['garbage header', 'garbage'],
      ['"Bearer" with nothing', 'Bearer'],
      ['"Bearer " with a space and nothing', 'Bearer '],
      ['Basic scheme', 'Basic dXNlcjpwYXNzd29yZA=='],
      ['Bearer garbage', 'Bearer garbage'],
      ['Bearer a.b.c', 'Bearer a.b.c'],
      ['token without the "Bearer" scheme', user.jwt],
      ['signature with one extra character', `Bearer ${user.jwt}x`],
      ['signature truncated', `Bearer ${user.jwt.slice(0, -2)}`],
      ['signed with another secret', `Bearer ${signJwt(p, 'another-secret-0123456789abcdef0123456789')}`],
      ['alg none, empty signature', `Bearer ${signJwt(p, SECRET, { alg: 'none' })}`],
      ['alg none, with an HS256 signature over it', (() => {
        const hp = `${b64u({ alg: 'none', typ: 'JWT' })}.${b64u(p)}`;
        return `Bearer ${hp}.${hs256(hp, SECRET)}`;
      })()],
      ['alg None (capitalised), empty signature', `Bearer ${signJwt(p, SECRET, { header: { alg: 'None', typ: 'JWT' }, alg: 'none' })}`],
      ['HS512 with the right secret', `Bearer ${signJwt(p, SECRET, { alg: 'HS512' })}`],
      ['HS384 with the right secret', `Bearer ${signJwt(p, SECRET, { alg: 'HS384' })}`],
      ['tampered payload: other sub, old signature', `Bearer ${h64}.${b64u({ ...p, sub: `${p.sub}0` })}.${sig}`],
      ['tampered payload: later exp, old signature', `Bearer ${h64}.${b64u({ ...p, exp: p.exp + 86400 * 365 })}.${sig}`],
      ['tampered payload: other username, old signature', `Bearer ${h64}.${b64u({ ...p, username: 'root' })}.${sig}`],
      ['expired (exp in the past, right secret)', `Bearer ${signJwt({ ...p, iat: now - 7200, exp: now - 3600 }, SECRET)}`],
      ['expired a few seconds ago', `Bearer ${signJwt({ ...p, iat: now - 100, exp: now - 5 }, SECRET)}`],
      ['no exp claim (right secret)', `Bearer ${signJwt((({ exp, ...rest }) => rest)(p), SECRET)}`],
      ['exp is not a number (right secret)', `Bearer ${signJwt({ ...p, exp: 'tomorrow' }, SECRET)}`],
    ];
  };

  test('every rejection is 401 JSON and stores nothing', async (b) => {
    await jwt(b);
    const failures = [];
    for (const [what, auth] of cases()) {
      const headers = { 'content-type': 'application/json' };
      if (auth !== undefined) headers.authorization = auth;
      const event = `unauth-${what.replace(/[^a-z0-9]+/gi, '-')}`;
      // node:http so that headers go out byte for byte (fetch would trim "Bearer ").
      const r = await nodeRequest(b, 'POST', '/insert', { headers, body: JSON.stringify({ event, data: 1 }) });
      try {
        assertJsonError(r, 401, what);
      } catch (e) {
        failures.push(`${what}: got ${r.status} ${r.text.slice(0, 200)}`);
      }
    }
    assert.deepEqual(failures, [], `requests that were not rejected with a 401 JSON error:\n${failures.join('\n')}`);
  });

  test('nothing from rejected requests was stored (snapshot names)', async (b) => {
    const sub = await openSSE(b, { token: await jwt(b) });
    try {
      assert.equal(sub.status, 200);
      // Insert a marker and wait for it: the snapshot is complete once the marker arrives.
      const marker = await insert(b, user.jwt, 'marker', 'end');
      stored.add('marker');
      await sub.waitId(marker, ms(10000));
      const names = sub.frames.map((f) => f.event);
      const unexpected = names.filter((n) => !stored.has(n));
      assert.deepEqual(unexpected, [], `events that should have been rejected were stored: ${JSON.stringify(unexpected)}`);
      for (const n of stored) assert.ok(names.includes(n), `accepted event ${JSON.stringify(n)} is in the snapshot`);
    } finally {
      sub.close();
    }
  });
});

describe('token expiry', () => {
  nodeTest.it('--jwt_expiry=1: the login token is refused once expired (insert and sse)', async () => {
    await withBroker({ args: ['--jwt_expiry=1'] }, async (b) => {
      const u = await newUser(b, 'exp');
      const { payload } = decodeJwt(u.jwt);
      assert.equal(payload.exp, payload.iat + 1, JSON.stringify(payload));
      await sleep(2500); // exp = iat + 1 is now at least 1.5 s in the past
      assertJsonError(await request(b, 'POST', '/insert', { json: { event: 'late', data: 1 }, token: u.jwt }),
        401, 'insert with an expired login token');
      const sub = await openSSE(b, { token: u.jwt });
      assert.equal(sub.status, 401, `sse with an expired token: ${sub.status} ${sub.body}`);
    });
  });
});

describe('--max_body', () => {
  nodeTest.it('--max_body=4096: a body over the limit gets a JSON 413, one under it is stored', async () => {
    await withBroker({ args: ['--max_body=4096'] }, async (b) => {
      const u = await newUser(b, 'maxb');
      const body = (n) => {
        const head = '{"event":"sized","data":"';
        const tail = '"}';
        return head + 'z'.repeat(n - head.length - tail.length) + tail;
      };
      const raw = (payload) => [
        'POST /insert HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${u.jwt}`, 'Content-Type: application/json',
        `Content-Length: ${Buffer.byteLength(payload)}`, '', payload,
      ].join('\r\n');
      const over = await exchange(b, raw(body(5000)), { timeoutMs: ms(5000), until: hasCompleteResponse });
      assert.equal(over.status, 413, `5000-byte body with --max_body=4096: ${JSON.stringify(over.text.slice(0, 200))}`);
      assert.match(over.text, /\r\n\r\n\{"error":"[^"]+"\}$/, 'a JSON error body');
      const under = await exchange(b, raw(body(4000)), { timeoutMs: ms(5000), until: hasCompleteResponse });
      assert.equal(under.status, 200, `4000-byte body with --max_body=4096: ${JSON.stringify(under.text.slice(0, 300))}`);
      const big = await exchange(b, raw(body(5000)).replace('/insert', '/users'), { timeoutMs: ms(5000), until: hasCompleteResponse });
      assert.equal(big.status, 413, `/users over the limit: ${big.status}`);
    });
  });
});
