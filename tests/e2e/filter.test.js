// §2 GET /sse Filter: ?events=a,b limits the snapshot, a resume and live delivery to those names;
// a bad list is a 400 JSON error.
import * as nodeTest from 'node:test';
import assert from 'node:assert/strict';
import { sharedBroker } from './lib/broker.js';
import { insert, insertRaw, newUser } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { assertSameIds } from './lib/streams.js';
import { ms } from './lib/config.js';
import { sleep } from './lib/util.js';

let u;
const srv = sharedBroker(nodeTest, { setup: async (b) => { u = await newUser(b, 'filter'); } });
const test = srv.test;

/** Frames of a stream opened on `path` after `live()` ran and `last` (an id the filter passes) arrived. */
async function collect(b, path, live, opts = {}) {
  const sub = await openSSE(b, { token: u.jwt, path, ...opts });
  assert.equal(sub.status, 200, `GET ${path}: ${sub.status} ${sub.body}`);
  try {
    if (opts.before) await sub.waitCount(opts.before, ms(10000), `${opts.before} frames before the live inserts`);
    const last = await live();
    await sub.waitId(last, ms(10000));
    await sleep(100); // anything the filter should have dropped, or a duplicate, would show up here
    return sub.frames.slice();
  } finally {
    sub.close();
  }
}

function assertExact(frames, what) {
  frames.forEach((f, i) => {
    assert.ok(f.exact || (f.event === 'reset' && f.id === undefined), `${what}: frame shape ${JSON.stringify(f.raw)}`);
    assert.equal(f.retry !== undefined, i === 0, `${what}: retry: in the first frame only (frame ${i}: ${JSON.stringify(f.raw)})`);
  });
}

test('?events=a,b: the snapshot holds only the latest a and b, live only a and b', async (b) => {
  const fa1 = await insert(b, u.jwt, 'fa', { v: 'fa1' });
  const fb1 = await insert(b, u.jwt, 'fb', { v: 'fb1' });
  await insert(b, u.jwt, 'fc', { v: 'fc1' });
  const fa2 = await insert(b, u.jwt, 'fa', { v: 'fa2' });
  await insert(b, u.jwt, 'fd', { v: 'fd1' });
  assert.ok(fa1 < fb1 && fb1 < fa2);
  let live = [];
  const frames = await collect(b, '/sse?events=fa,fb', async () => {
    await insert(b, u.jwt, 'fc', { v: 'fc2' });
    live.push(await insert(b, u.jwt, 'fb', { v: 'fb2' }));
    await insert(b, u.jwt, 'fd', { v: 'fd2' });
    await insert(b, u.jwt, 'fa-x', { v: 'not fa' }); // a prefix is not a match
    await insert(b, u.jwt, 'f', { v: 'not fa either' });
    live.push(await insert(b, u.jwt, 'fa', { v: 'fa3' }));
    await insert(b, u.jwt, 'fc', { v: 'fc3' });
    live.push(await insert(b, u.jwt, 'fa', { v: 'fa4' }));
    return live.at(-1);
  }, { before: 2 });
  assert.deepEqual(frames.map((f) => [f.event, JSON.parse(f.data).v]),
    [['fb', 'fb1'], ['fa', 'fa2'], ['fb', 'fb2'], ['fa', 'fa3'], ['fa', 'fa4']]);
  assertSameIds(frames.map((f) => f.idNum), [fb1, fa2, ...live], 'filtered snapshot + live');
  assertExact(frames, 'filtered stream');
  live = [];
  // One name only, written in a different order, and with an empty item in the list.
  const single = await collect(b, '/sse?events=fb', async () => {
    await insert(b, u.jwt, 'fa', 0);
    live.push(await insert(b, u.jwt, 'fb', { v: 'fb3' }));
    return live.at(-1);
  }, { before: 1 });
  assert.deepEqual(single.map((f) => [f.event, JSON.parse(f.data).v]), [['fb', 'fb2'], ['fb', 'fb3']]);
});

test('a filter that matches nothing in the store: no snapshot frames, then only matching live events', async (b) => {
  await insert(b, u.jwt, 'za', 1);
  const frames = await collect(b, '/sse?events=never-inserted-yet', async () => {
    await insert(b, u.jwt, 'za', 2);
    return insert(b, u.jwt, 'never-inserted-yet', { now: true });
  });
  assert.deepEqual(frames.map((f) => [f.event, f.data]), [['never-inserted-yet', '{"now":true}']]);
  assertExact(frames, 'late match');
});

test('?events with resume (query and header): only those names after the id, then live', async (b) => {
  const ga = [];
  const gc = [];
  for (let i = 0; i < 6; i++) {
    ga.push(await insert(b, u.jwt, 'ga', { i }));
    await insert(b, u.jwt, 'gb', { i });
    gc.push(await insert(b, u.jwt, 'gc', { i }));
  }
  const from = ga[2];
  const want = [...ga, ...gc].filter((id) => id > from).sort((x, y) => x - y);
  for (const [what, opts] of [
    ['query', { path: `/sse?events=ga,gc&lastEventId=${from}` }],
    ['header', { path: '/sse?events=gc,ga', headers: { 'last-event-id': String(from) } }],
  ]) {
    const live = [];
    const frames = await collect(b, opts.path, async () => {
      await insert(b, u.jwt, 'gb', 'live');
      live.push(await insert(b, u.jwt, 'gc', 'live'));
      await insert(b, u.jwt, 'gd', 'live');
      live.push(await insert(b, u.jwt, 'ga', 'live'));
      return live.at(-1);
    }, { headers: opts.headers, before: want.length });
    assertSameIds(frames.map((f) => f.idNum), [...want, ...live], `filtered resume (${what})`);
    assert.ok(frames.every((f) => f.event === 'ga' || f.event === 'gc'), `${what}: only ga and gc`);
    assertExact(frames, `filtered resume (${what})`);
    want.push(...live);
  }
});

test('?events with a reset (unservable id): reset frame, the filtered snapshot, then filtered live', async (b) => {
  await insert(b, u.jwt, 'ha', 1);
  const ha2 = await insert(b, u.jwt, 'ha', 2);
  await insert(b, u.jwt, 'hb', 1);
  const frames = await collect(b, '/sse?events=ha&lastEventId=not-a-number', async () => {
    await insert(b, u.jwt, 'hb', 2);
    return insert(b, u.jwt, 'ha', 3);
  }, { before: 2 });
  assert.equal(frames[0].event, 'reset', `first frame ${JSON.stringify(frames[0].raw)}`);
  assert.equal(frames[0].id, undefined, 'the reset frame has no id');
  assert.deepEqual(frames.slice(1).map((f) => [f.event, f.data]), [['ha', '2'], ['ha', '3']]);
  assert.equal(frames[1].idNum, ha2);
  assertExact(frames, 'filtered reset');
});

test('percent-encoded names (UTF-8, space) and a 255-byte name are matched exactly', async (b) => {
  const long = 'n'.repeat(255);
  const cafe = await insert(b, u.jwt, 'café', { n: 1 });
  const space = await insert(b, u.jwt, 'x y', { n: 2 });
  await insert(b, u.jwt, 'cafe', { n: 3 });
  const path = `/sse?events=${encodeURIComponent('café')},${encodeURIComponent('x y')},${long}`;
  const frames = await collect(b, path, () => insert(b, u.jwt, long, { n: 4 }), { before: 2 });
  assert.deepEqual(frames.map((f) => [f.event, f.data]),
    [['café', '{"n":1}'], ['x y', '{"n":2}'], [long, '{"n":4}']]);
  assert.deepEqual(frames.slice(0, 2).map((f) => f.idNum), [cafe, space]);
});

test('64 names are accepted', async (b) => {
  const names = Array.from({ length: 64 }, (_, i) => `m${i}`);
  const frames = await collect(b, `/sse?events=${names.join(',')}`, () => insert(b, u.jwt, 'm63', 'last'));
  assert.deepEqual(frames.map((f) => f.event), ['m63']);
});

test('a bad list is 400 JSON and no stream: empty, only commas, 65 names, control character, bad UTF-8, 256 bytes', async (b) => {
  const cases = {
    'empty list': '/sse?events=',
    'only a comma': '/sse?events=,',
    'only commas': '/sse?events=,,,',
    '65 names': `/sse?events=${Array.from({ length: 65 }, (_, i) => `m${i}`).join(',')}`,
    'control character': '/sse?events=a,b%01c',
    'newline': '/sse?events=a%0Ab',
    'DEL': '/sse?events=a%7Fb',
    'NUL alone': '/sse?events=%00',
    'invalid UTF-8': '/sse?events=a,%FF%FE',
    '256-byte name': `/sse?events=${'n'.repeat(256)}`,
    'bad name with a resume': '/sse?events=%01&lastEventId=1',
  };
  for (const [what, path] of Object.entries(cases)) {
    const sub = await openSSE(b, { token: u.jwt, path });
    try {
      assert.equal(sub.status, 400, `${what}: ${path.slice(0, 80)} -> ${sub.status} ${sub.body ?? ''}`);
      assert.match(sub.headers['content-type'] ?? '', /^application\/json/i, `${what}: a JSON error, not a stream`);
      assert.equal(typeof sub.json?.error, 'string', `${what}: {"error"} body: ${sub.body}`);
      assert.ok(sub.json.error.length > 0, `${what}: a reason`);
    } finally { sub.close(); }
  }
  // Authentication comes first: a bad list without a token is still a 401.
  const anon = await openSSE(b, { path: '/sse?events=' });
  assert.equal(anon.status, 401, `no token + bad list: ${anon.status} ${anon.body}`);
});

test('a NUL byte inside a name is a bad name (400), not a cut-off name', async (b) => {
  // /insert refuses "a\u0000b" (control character); the filter must not quietly turn it into "a".
  const r = await insertRaw(b, u.jwt, '{"event":"a\\u0000b","data":1}');
  assert.equal(r.status, 400, `insert of "a\\u0000b": ${r.status} ${r.text}`);
  await insert(b, u.jwt, 'a', { plain: 'a' });
  const sub = await openSSE(b, { token: u.jwt, path: '/sse?events=a%00b' });
  try {
    await sleep(200);
    assert.equal(sub.status, 400, `GET /sse?events=a%00b -> ${sub.status}; stream so far ${JSON.stringify(sub.raw ?? sub.body)}`);
    assert.equal(typeof sub.json?.error, 'string', `JSON error: ${sub.body}`);
  } finally { sub.close(); }
});
