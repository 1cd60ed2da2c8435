// src/store.js: the state store: the latest data of every event name, fed by a subscription's
// snapshot and live events, with change listeners. all() is an immutable snapshot object that is
// replaced (never mutated) on change, so React's useSyncExternalStore can compare it by identity.

const EMPTY = Object.freeze({});

/**
 * @param {{onError?: (error: unknown) => void}} [options]  where a listener's exception goes
 *   (default: rethrown from a microtask, so it surfaces as an uncaught error without stopping the others)
 * @returns {import('../index.js').Store}
 */
export function createStore({ onError } = {}) {
  const report = onError ?? ((e) => queueMicrotask(() => { throw e; }));
  const entries = new Map(); // name -> frozen { id, data }
  const listeners = new Set();
  let version = 0;
  let snapshot = EMPTY;
  let dirty = false; // all() rebuilds lazily: a snapshot of n names costs O(n) once, not per event

  function changed(change) {
    version += 1;
    dirty = true;
    for (const listener of [...listeners]) {
      try {
        listener(change);
      } catch (e) {
        // One broken listener must not keep the others from hearing about the change.
        report(e);
      }
    }
  }

  return {
    get(name) { return entries.get(name)?.data; },
    entry(name) { return entries.get(name); },
    has(name) { return entries.has(name); },
    all() {
      if (dirty) {
        snapshot = Object.freeze(Object.fromEntries([...entries].map(([k, v]) => [k, v.data])));
        dirty = false;
      }
      return snapshot;
    },
    get version() { return version; },
    get size() { return entries.size; },
    subscribe(listener) {
      if (typeof listener !== 'function') throw new TypeError('store.subscribe(listener): listener must be a function');
      listeners.add(listener);
      return () => { listeners.delete(listener); };
    },
    /**
     * Record an event. An id at or below the one already held for that name is ignored (a replay
     * of something applied), so applying is idempotent. Returns whether the state changed.
     */
    apply({ name, id, data }) {
      const cur = entries.get(name);
      if (cur && cur.id >= id) return false;
      entries.set(name, Object.freeze({ id, data }));
      changed({ type: 'event', name, id, data });
      return true;
    },
    /** Forget everything (a reset: the server's log is not the one this state came from). */
    clear() {
      if (entries.size === 0) return false;
      entries.clear();
      changed({ type: 'clear' });
      return true;
    },
  };
}
