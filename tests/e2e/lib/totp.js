// RFC 6238 TOTP codes for the tests, written here from the RFC (HMAC-SHA-1, 30 s, 6 digits), so
// the server's implementation is checked against an independent one.
import crypto from 'node:crypto';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export function base32Decode(text) {
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of text.replace(/=+$/, '').toUpperCase()) {
    const v = ALPHABET.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${c}`);
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The code of `secret` (base32) for unix time `t` seconds (default now), offset by `steps`. */
export function totpCode(secret, { t = Date.now() / 1000, steps = 0 } = {}) {
  const counter = Math.floor(t / 30) + steps;
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const mac = crypto.createHmac('sha1', base32Decode(secret)).update(msg).digest();
  const off = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[off] & 0x7f) << 24) | (mac[off + 1] << 16) | (mac[off + 2] << 8) | mac[off + 3];
  return String(bin % 1e6).padStart(6, '0');
}

/** Seconds until the next 30 s step begins. */
export const secondsLeftInStep = () => 30 - ((Date.now() / 1000) % 30);
