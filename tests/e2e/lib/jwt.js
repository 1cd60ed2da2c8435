// Minimal JWT helpers (node:crypto only) used to forge and inspect tokens.
import { createHmac, timingSafeEqual } from 'node:crypto';

const HASH = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };
export const b64u = (v) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** Sign `payload` with `secret`. `alg` none -> empty signature. `header` overrides the header object. */
export function signJwt(payload, secret, { alg = 'HS256', header } = {}) {
  const h = header ?? { alg, typ: 'JWT' };
  const signingInput = `${b64u(h)}.${b64u(payload)}`;
  const hash = HASH[alg];
  const sig = hash ? createHmac(hash, secret).update(signingInput).digest('base64url') : '';
  return `${signingInput}.${sig}`;
}

/** HS256 signature of an arbitrary "header.payload" string. */
export function hs256(signingInput, secret) {
  return createHmac('sha256', secret).update(signingInput).digest('base64url');
}

export function decodeJwt(token) {
  const parts = token.split('.');
  if (parts.length !== 3) throw new Error(`not a JWT (${parts.length} parts): ${token}`);
  return {
    header: JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8')),
    signature: parts[2],
    signingInput: `${parts[0]}.${parts[1]}`,
  };
}

export function verifyHs256(token, secret) {
  const { signingInput, signature } = decodeJwt(token);
  const want = Buffer.from(hs256(signingInput, secret));
  const got = Buffer.from(signature);
  return want.length === got.length && timingSafeEqual(want, got);
}

export const nowSec = () => Math.floor(Date.now() / 1000);
