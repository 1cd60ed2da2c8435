// SPEC §5 TOTP (RFC 6238, SHA-1, 30 s, 6 digits): enrol (secret, otpauth:// URI, QR code as SVG),
// confirm with a first code, then /login needs "totp" (±1 step, each code once — the confirming code
// counts as used; missing or wrong -> 401, counted by the login throttle), disable with a current
// code. Codes are computed by an independent implementation (lib/totp.js).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { withBroker } from './lib/broker.js';
import { post, get, request, assertJsonError, newUser } from './lib/http.js';
import { totpCode, secondsLeftInStep } from './lib/totp.js';
import { scrape } from './lib/metrics.js';
import { sleep } from './lib/util.js';

const loginWith = (b, u, totp) => post(b, '/login', totp === undefined
  ? { username: u.username, password: u.password } : { username: u.username, password: u.password, totp });

describe('TOTP', () => {
  it('enrol, confirm, login with a code once each, replay refused, disable with a current code', async () => {
    await withBroker({}, async (b) => {
      // Three codes of three consecutive steps are used below; keep them in one window.
      if (secondsLeftInStep() < 8) await sleep((secondsLeftInStep() + 0.5) * 1000);
      const u = await newUser(b, 'totp');
      const auth = { token: u.jwt };
      assertJsonError(await post(b, '/users/me/totp/confirm', { code: '123456' }, auth), 409, 'confirm before enrolling');
      assertJsonError(await request(b, 'DELETE', '/users/me/totp', { ...auth, json: { code: '123456' } }), 409,
        'disable while off');

      const e = await post(b, '/users/me/totp', {}, auth);
      assert.equal(e.status, 200, e.text);
      const { secret, uri, qr_svg: svg } = e.json;
      (b.opts.neverLog ??= []).push(secret);
      assert.match(secret, /^[A-Z2-7]{32}$/, 'a 160-bit base32 secret');
      assert.equal(uri, `otpauth://totp/broker:${encodeURIComponent(u.username)}?secret=${secret}` +
        '&issuer=broker&algorithm=SHA1&digits=6&period=30');
      assert.match(svg, /^<svg[\s\S]*<\/svg>\s*$/, 'the QR code as SVG');
      // Pending: a login needs no code yet.
      assert.equal((await loginWith(b, u)).status, 200, 'login while the enrolment is pending');

      const wrong = totpCode(secret) === '000000' ? '111111' : '000000';
      assertJsonError(await post(b, '/users/me/totp/confirm', { code: wrong }, auth), 401, 'confirm with a wrong code');
      const confirmCode = totpCode(secret, { steps: -1 }); // one step back is still accepted
      const c = await post(b, '/users/me/totp/confirm', { code: confirmCode }, auth);
      assert.equal(c.status, 200, c.text);
      assert.equal(c.json.totp, true);
      assert.equal((await get(b, '/users/me', auth)).json.totp, true);
      assertJsonError(await post(b, '/users/me/totp', {}, auth), 409, 'enrolling again while on');

      assertJsonError(await loginWith(b, u), 401, 'login without a code');
      assertJsonError(await loginWith(b, u, wrong), 401, 'login with a wrong code');
      assertJsonError(await loginWith(b, u, confirmCode), 401, 'login with the confirming code (already used)');
      assertJsonError(await loginWith(b, u, '12345'), 401, 'a 5-digit code');
      assertJsonError(await loginWith(b, u, 123456), 400, 'a code that is not a string');
      const now = totpCode(secret);
      const ok = await loginWith(b, u, now);
      assert.equal(ok.status, 200, `login with the current code: ${ok.text}`);
      assertJsonError(await loginWith(b, u, now), 401, 'the same code again (replay)');
      assertJsonError(await loginWith(b, u, totpCode(secret, { steps: -1 })), 401, 'an older step than the last used');
      assertJsonError(await loginWith(b, u, totpCode(secret, { steps: 3 })), 401, 'three steps ahead');

      assertJsonError(await request(b, 'DELETE', '/users/me/totp', { ...auth, json: { code: now } }), 401,
        'disable with a used code');
      assertJsonError(await request(b, 'DELETE', '/users/me/totp', { ...auth, json: {} }), 400, 'disable without a code');
      const off = await request(b, 'DELETE', '/users/me/totp', { ...auth, json: { code: totpCode(secret, { steps: 1 }) } });
      assert.equal(off.status, 200, off.text);
      assert.equal(off.json.totp, false);
      assert.equal((await loginWith(b, u)).status, 200, 'no code needed once TOTP is off');
      const m = await scrape(b);
      assert.ok(m.value('broker_totp_failures_total') >= 6, 'TOTP failures counted');
    });
  });

  it('failed codes count towards the login throttle', async () => {
    await withBroker({ args: ['--login_max_failures=3'] }, async (b) => {
      const u = await newUser(b, 'throttle');
      const e = await post(b, '/users/me/totp', {}, { token: u.jwt });
      const secret = e.json.secret;
      (b.opts.neverLog ??= []).push(secret);
      assert.equal((await post(b, '/users/me/totp/confirm', { code: totpCode(secret) }, { token: u.jwt })).status, 200);
      for (let i = 0; i < 3; i++) assertJsonError(await loginWith(b, u), 401, `login ${i} without a code`);
      const locked = await loginWith(b, u, totpCode(secret, { steps: 1 }));
      assertJsonError(locked, 429, 'locked out after 3 missing codes, even with a right code');
      assert.match(locked.headers['retry-after'] ?? '', /^\d+$/);
    });
  });
});
