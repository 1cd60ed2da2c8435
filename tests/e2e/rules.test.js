// SPEC §5 rules (--rules=FILE): publish 403 for a name the caller may not publish; a subscriber
// never receives an event it may not read — not in the snapshot, not on resume, not live — for
// "self" ({user_id}, {username}, names with dots and non-ASCII), role lists and "none"; ?events
// narrows further; SIGHUP reloads a good file (open streams follow it from the next event) and
// keeps the old rules for a bad one; a bad file stops start-up with its line.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { startBroker, runBroker, freePort, tmpDir } from './lib/broker.js';
import { request, post, assertJsonError, login } from './lib/http.js';
import { openSSE } from './lib/sse.js';
import { scrape } from './lib/metrics.js';
import { until } from './lib/streams.js';
import { ms, SECRET } from './lib/config.js';
import { uniq, sleep } from './lib/util.js';

const ADMIN = 'rules-admin-token-0123456789abcdef0123';

const RULES = {
  rules: [
    { events: 'user.{user_id}.*', publish: 'self', subscribe: 'self' },
    { events: 'inbox.{username}', publish: 'any', subscribe: 'self' },
    { events: 'staff.*', publish: ['staff'], subscribe: ['staff', 'auditor'] },
    { events: 'secret*', publish: 'none', subscribe: 'none' },
    { events: 'announce', publish: ['admin'], subscribe: 'any' },
    { events: '*', publish: 'any', subscribe: 'any' },
  ],
};

function writeRules(file, rules) {
  fs.writeFileSync(file, typeof rules === 'string' ? rules : JSON.stringify(rules, null, 2));
}

describe('--rules', () => {
  let b;
  let file;
  const users = {}; // name -> { id, username, jwt }
  const inserted = []; // { id, event, data, by }

  async function user(name, username, roles) {
    const password = `pw-${uniq('p')}`;
    (b.opts.neverLog ??= []).push(password);
    const r = await post(b, '/admin/users', { username, password, roles }, { headers: { authorization: `Bearer ${ADMIN}` } });
    assert.equal(r.status, 200, r.text);
    const l = await login(b, username, password);
    assert.equal(l.status, 200, l.text);
    users[name] = { id: r.json.id, username, jwt: l.json.jwt };
  }
  async function ins(by, event, data, want = 200) {
    const r = await post(b, '/insert', { event, data }, { token: users[by].jwt });
    assert.equal(r.status, want, `${by} inserts ${event}: ${r.status} ${r.text}`);
    if (want === 200) inserted.push({ id: r.json.id, event, data, by });
    else assertJsonError(r, want, `${by} inserts ${event}`);
    return r;
  }

  before(async () => {
    const dir = tmpDir('broker-rules-');
    file = path.join(dir, 'rules.json');
    writeRules(file, RULES);
    b = await startBroker({ args: [`--rules=${file}`, `--admin_token=${ADMIN}`], neverLog: [ADMIN] });
    await user('alice', uniq('alice'), []);
    await user('bob', `zoë.${uniq('bob')}`, ['staff']); // a username with a dot and non-ASCII
    await user('carol', uniq('carol'), ['auditor']);
    await user('root', uniq('root'), ['admin']);
  });
  after(async () => { await b?.stop(); });

  /** What user `name` may read of `events`, by the rules above. */
  function visible(name, events = inserted) {
    const u = users[name];
    return events.filter((e) => {
      if (e.event.startsWith('user.')) return e.event.startsWith(`user.${u.id}.`);
      if (e.event.startsWith('inbox.')) return e.event === `inbox.${u.username}`;
      if (e.event.startsWith('staff.')) return name === 'bob' || name === 'carol';
      if (e.event.startsWith('secret')) return false;
      return true;
    });
  }
  const latestPerName = (events) => {
    const m = new Map();
    for (const e of events) m.set(e.event, e);
    return [...m.values()].sort((x, y) => x.id - y.id);
  };

  it('publishing: self, any, roles and none decide; 403 JSON otherwise', async () => {
    const { alice, bob } = users;
    await ins('alice', `user.${alice.id}.profile`, { name: 'Alice' });
    await ins('alice', `user.${alice.id}.chat.é.ü`, { text: 'dots and non-ASCII in the tail' });
    await ins('bob', `user.${alice.id}.profile`, { hijack: true }, 403);
    await ins('bob', `user.${bob.id}.profile`, { name: 'Bob' });
    await ins('alice', `inbox.${bob.username}`, { from: 'alice' }); // anyone may write to an inbox
    await ins('bob', `inbox.${alice.username}`, { from: 'bob' });
    await ins('bob', 'staff.roster', ['alice', 'bob']);
    await ins('alice', 'staff.roster', [], 403);
    await ins('carol', 'staff.roster', [], 403); // auditors may read, not write
    await ins('root', 'secret', 1, 403);
    await ins('alice', 'secretive', 1, 403);
    await ins('alice', 'announce', 'hello', 403);
    await ins('root', 'announce', 'welcome');
    await ins('alice', 'chat', { text: 'public' });
    const m = await scrape(b);
    assert.equal(m.value('broker_rules_denied_total'), 6, 'every refusal counted');
  });

  it('the snapshot, a resume and live events hold exactly what each user may read', async () => {
    const subs = {};
    try {
      for (const name of Object.keys(users)) {
        subs[name] = {
          snap: await openSSE(b, { token: users[name].jwt }),
          resume: await openSSE(b, { token: users[name].jwt, headers: { 'last-event-id': '0' } }),
        };
      }
      // Live: one more event of each kind, inserted while everyone listens.
      const before = inserted.length;
      await ins('alice', `user.${users.alice.id}.profile`, { name: 'Alice 2' });
      await ins('bob', `user.${users.bob.id}.profile`, { name: 'Bob 2' });
      await ins('carol', `inbox.${users.bob.username}`, { from: 'carol' });
      await ins('bob', 'staff.roster', ['bob']);
      await ins('alice', 'chat', { text: 'public 2' });
      const last = inserted.at(-1).id; // public: everyone waits for it
      const live = inserted.slice(before);
      for (const [name, s] of Object.entries(subs)) {
        await s.snap.waitId(last, ms(10000));
        await s.resume.waitId(last, ms(10000));
        await sleep(100);
        const snapshotPart = latestPerName(visible(name, inserted.slice(0, before)));
        const want = [...snapshotPart, ...visible(name, live)].map((e) => e.id);
        assert.deepEqual(s.snap.ids, want, `${name}: snapshot (latest of each readable name) then live`);
        assert.deepEqual(s.resume.ids, visible(name).map((e) => e.id), `${name}: resume from 0 then live`);
        for (const f of [...s.snap.frames, ...s.resume.frames]) {
          const e = inserted.find((x) => x.id === f.idNum);
          assert.equal(f.event, e.event);
          assert.equal(f.data, JSON.stringify(e.data));
        }
      }
      // Role holders see staff events; others never do.
      assert.ok(subs.carol.resume.frames.some((f) => f.event === 'staff.roster'));
      assert.ok(!subs.alice.resume.frames.some((f) => f.event.startsWith('staff.') || f.event.startsWith('secret')));
    } finally {
      Object.values(subs).forEach((s) => { s.snap.close(); s.resume.close(); });
    }
  });

  it('?events narrows further, never widens', async () => {
    const { alice } = users;
    const names = [`user.${alice.id}.profile`, 'staff.roster', 'chat'];
    const s = await openSSE(b, { token: alice.jwt, path: `/sse?events=${names.map(encodeURIComponent).join(',')}&lastEventId=0` });
    try {
      await ins('alice', 'chat', { text: 'marker' });
      await s.waitId(inserted.at(-1).id, ms(10000));
      await sleep(100);
      const want = inserted.filter((e) => e.event === names[0] || e.event === 'chat').map((e) => e.id);
      assert.deepEqual(s.ids, want, 'only the asked names the rules allow');
    } finally {
      s.close();
    }
  });

  it('SIGHUP reloads the file: open streams follow the new rules from the next event; a bad file keeps the old rules', async () => {
    const { alice } = users;
    const s = await openSSE(b, { token: alice.jwt });
    try {
      assert.equal(s.status, 200);
      const widened = { rules: [{ events: 'staff.*', publish: ['staff'], subscribe: 'any' }, ...RULES.rules] };
      writeRules(file, widened);
      b.proc.kill('SIGHUP');
      await until(async () => (await scrape(b)).value('broker_rules_reloads_total') === 1, ms(5000), 'the reload');
      await ins('bob', 'staff.memo', { to: 'everyone now' });
      const id = inserted.at(-1).id;
      await s.waitId(id, ms(5000));
      // A file that does not parse: logged, counted, the widened rules stay.
      writeRules(file, '{"rules": [\n  {"events": "x", "publish": "any"}\n]}');
      b.proc.kill('SIGHUP');
      await until(async () => (await scrape(b)).value('broker_rules_reload_failures_total') === 1, ms(5000), 'the refusal');
      assert.match(b.log(), /SIGHUP: --rules .*line 2: .*keeping the rules loaded before/, 'the log says why');
      await ins('bob', 'staff.memo', { still: 'widened' });
      await s.waitId(inserted.at(-1).id, ms(5000));
      await ins('alice', 'x', 1); // "x" matches "*" under the kept rules
    } finally {
      s.close();
      writeRules(file, RULES);
    }
  });
});

describe('--rules at start-up', () => {
  it('a file that does not validate stops start-up with its line and reason; a missing file too', async () => {
    const dir = tmpDir('broker-rules-');
    const bad = path.join(dir, 'bad.json');
    writeRules(bad, '{"rules": [\n  {"events": "a", "publish": "any", "subscribe": "any"},\n  {"events": "b", "publish": "self", "subscribe": "any"}\n]}');
    const port = await freePort();
    const args = (f) => [`--rules=${f}`, `--db=${path.join(dir, 'db')}`, `--port=${port}`, `--jwt_secret=${SECRET}`];
    const r = await runBroker([...args(bad)]);
    assert.notEqual(r.code, 0, `a bad rules file must stop start-up: ${r.stderr}`);
    assert.equal(r.signal, null);
    assert.match(r.stderr, /line 3: rule 2: .*self/, `the line and the reason: ${r.stderr}`);
    const missing = await runBroker([...args(path.join(dir, 'nope.json'))]);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /cannot read/, missing.stderr);
  });
});

describe('without --rules', () => {
  it('everything stays allowed and SIGHUP changes nothing', async () => {
    const b = await startBroker({});
    try {
      const r = await post(b, '/users', { username: uniq('free'), password: 'free-password-1' });
      const username = r.json.username;
      const jwt = (await login(b, username, 'free-password-1')).json.jwt;
      for (const event of ['user.someone-else.x', 'secret', 'staff.x']) {
        const ok = await request(b, 'POST', '/insert', { token: jwt, json: { event, data: 1 } });
        assert.equal(ok.status, 200, `${event}: ${ok.text}`);
      }
      b.proc.kill('SIGHUP');
      await until(() => /SIGHUP: no --rules file/.test(b.log()), ms(5000), 'the SIGHUP log line');
      b.assertAlive();
    } finally {
      await b.stop();
    }
  });
});
