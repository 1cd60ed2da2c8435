// test/assert.js: the few assertions the unit suite needs, with no dependency, so the same suite
// runs in Node.js and in a browser page.

function show(v) {
  try { return JSON.stringify(v); } catch { return String(v); }
}

/** Structural equality of JSON-like values (plain objects, arrays, primitives). */
function same(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  return ka.length === kb.length && ka.every((k) => Object.prototype.hasOwnProperty.call(b, k) && same(a[k], b[k]));
}

export function ok(v, what = 'expected a truthy value') {
  if (!v) throw new Error(what);
}

export function equal(got, want, what = '') {
  if (!Object.is(got, want)) throw new Error(`${what}: got ${show(got)}, want ${show(want)}`);
}

export function deepEqual(got, want, what = '') {
  if (!same(got, want)) throw new Error(`${what}: got ${show(got)}, want ${show(want)}`);
}

export function throws(fn, pattern, what = '') {
  try {
    fn();
  } catch (e) {
    if (pattern && !pattern.test(String(e?.message ?? e))) throw new Error(`${what}: threw ${show(String(e?.message))}, want ${pattern}`);
    return e;
  }
  throw new Error(`${what}: did not throw`);
}
