// index.js: useBroker(), the React binding of @broker/client. It owns one subscription per
// (client, event names, logged in or not) for as long as the component is mounted, and hands its
// state and status to React through useSyncExternalStore, so every render sees one consistent
// snapshot (the store's immutable object) and nothing tears under concurrent rendering.
//
// It imports only React (a peer dependency) and takes the client as an argument, so it works with
// any object that has @broker/client's subscribe() / insert().
import { useCallback, useEffect, useMemo, useSyncExternalStore } from 'react';

const EMPTY = Object.freeze({});
const IDLE = Object.freeze({ status: 'stopped', lastError: null });
const CONNECTING = Object.freeze({ status: 'connecting', lastError: null });

/** A value with listeners, for the subscription's status (the state has the client's store). */
function createCell(value) {
  const listeners = new Set();
  return {
    get: () => value,
    set(v) {
      if (v === value) return;
      value = v;
      for (const l of [...listeners]) l();
    },
    subscribe(l) {
      listeners.add(l);
      return () => { listeners.delete(l); };
    },
  };
}

const noSubscribe = () => () => {};
const getEmpty = () => EMPTY;

/**
 * @param {import('@broker/client').Broker | null | undefined} client
 * @param {{events: string[]}} options
 * @returns {{state: object, status: string, lastError: Error|null, insert: Function}}
 */
export function useBroker(client, { events } = {}) {
  // The names as one string, so a new array with the same names (every render) is the same key.
  const key = Array.isArray(events) ? events.join('\n') : '';
  // Subscribing needs a token: subscribe again when the app logs in (or out) on this client.
  const loggedIn = !!client?.token;

  // Per key: the status cell, and a cell holding the subscription's store (the store comes from
  // the client's subscribe(), so this package never imports the client module itself).
  const source = useMemo(() => ({
    status: createCell(client && loggedIn ? CONNECTING : IDLE),
    storeCell: createCell(null),
  }), [client, key, loggedIn]);

  useEffect(() => {
    if (!client || !loggedIn) return undefined;
    const sub = client.subscribe({
      events: key === '' ? undefined : key.split('\n'), // none: subscribe() says what is missing
      // StrictMode runs an effect twice: the second subscription keeps the first one's state.
      store: source.storeCell.get() ?? undefined,
      onStatus: (s) => source.status.set(s),
    });
    source.storeCell.set(sub.store);
    return () => sub.stop();
  }, [client, key, loggedIn, source]);

  const store = useSyncExternalStore(source.storeCell.subscribe, source.storeCell.get, source.storeCell.get);
  const state = useSyncExternalStore(store ? store.subscribe : noSubscribe, store ? store.all : getEmpty, store ? store.all : getEmpty);
  const status = useSyncExternalStore(source.status.subscribe, source.status.get, source.status.get);
  const insert = useCallback((event, data, opts) => {
    if (!client) return Promise.reject(new Error('useBroker: no client'));
    return client.insert(event, data, opts);
  }, [client]);

  return { state, status: status.status, lastError: status.lastError, insert };
}
