// src/token.js: reads the claims of a login token (sub, username, exp, roles) without verifying it:
// the server verifies; the client only needs to know who it is and when the token runs out.

/** Base64url → UTF-8 text (atob exists in browsers and in Node 16+). */
function b64urlText(s) {
  const b64 = s.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(s.length / 4) * 4, '=');
  const bin = atob(b64);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

/**
 * The payload of a JWT, or null when `jwt` is not one.
 * @param {string|null|undefined} jwt
 */
export function claimsOf(jwt) {
  if (typeof jwt !== 'string') return null;
  const parts = jwt.split('.');
  if (parts.length !== 3) return null;
  try {
    const c = JSON.parse(b64urlText(parts[1]));
    return c && typeof c === 'object' ? c : null;
  } catch {
    return null;
  }
}

/** The user a login token names: { id, username, roles, exp }, or null. */
export function userOf(jwt) {
  const c = claimsOf(jwt);
  if (!c || typeof c.sub !== 'string') return null;
  return Object.freeze({
    id: c.sub,
    username: typeof c.username === 'string' ? c.username : '',
    roles: Object.freeze(Array.isArray(c.roles) ? [...c.roles] : []),
    exp: typeof c.exp === 'number' ? c.exp : 0,
  });
}
