// Small bounded helpers.
import { setTimeout as sleep } from 'node:timers/promises';
export { sleep };
/** A sleep that does not keep the process alive (for Promise.race guards). */
export const guardSleep = (n) => sleep(n, undefined, { ref: false });

let counter = 0;
/** A unique, printable name (ASCII letters/digits/underscore). */
export function uniq(prefix = 'u') {
  counter += 1;
  return `${prefix}_${process.pid}_${counter}_${Math.random().toString(36).slice(2, 8)}`;
}

/** Reject with a descriptive error if `promise` does not settle within `timeoutMs`. */
export function withTimeout(promise, timeoutMs, what) {
  let timer;
  const guard = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms: ${what}`)), timeoutMs);
  });
  return Promise.race([promise, guard]).finally(() => clearTimeout(timer));
}

/**
 * Poll `fn` (sync or async) until it returns a truthy value; bounded by `timeoutMs`.
 * Returns the truthy value, throws on timeout.
 */
export async function pollUntil(fn, { timeoutMs = 10000, stepMs = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (let i = 0; i < 100000; i++) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) break;
    await sleep(stepMs);
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}` +
    (last instanceof Error ? ` (last error: ${last.message})` : ''));
}

/** Strict JSON compactness check: no whitespace outside string literals. */
export function isCompactJson(text) {
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      if (c === '\\') i++;
      else if (c === '"') inStr = false;
    } else if (c === '"') inStr = true;
    else if (c === ' ' || c === '\t' || c === '\n' || c === '\r') return false;
  }
  return !inStr;
}

/** Bytes of a string in UTF-8. */
export const utf8len = (s) => Buffer.byteLength(s, 'utf8');
