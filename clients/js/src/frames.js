// src/frames.js: what the client makes of the stream: checks the event names a subscription
// listens for, builds the /sse URL (ticket, filter, resume point), and turns one EventSource
// message into an event or one of the server's control frames (reset, token_expiring, revoked).

// The server's frames without an id line. They share the namespace of event names, so an app may
// not subscribe to events with these names (the EventSource could not tell them apart).
export const CONTROL_FRAMES = Object.freeze(['reset', 'token_expiring', 'revoked']);
// EventSource's own event types: a server frame with one of these names would be mistaken for them.
const ES_TYPES = ['open', 'error'];
const RESERVED = new Set([...CONTROL_FRAMES, ...ES_TYPES]);

// What the server accepts as an event name (SPEC §2 /insert): 1-255 bytes of UTF-8, no control
// characters, no leading space. A comma would split the ?events= list.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

/**
 * Validates the names a subscription listens for; returns them, de-duplicated, in order.
 * A native EventSource dispatches a named frame only to the listeners of that name, which is why
 * the list is required: the client cannot learn names it does not listen for.
 * @param {unknown} events
 * @returns {string[]}
 */
export function checkEventNames(events) {
  if (!Array.isArray(events) || events.length === 0) {
    throw new TypeError('subscribe({events}): events must be a non-empty array of event names ' +
      '(a native EventSource only delivers the names it listens for)');
  }
  if (events.length > 64) throw new TypeError('subscribe({events}): at most 64 names (the server\'s ?events limit)');
  const out = [];
  for (const name of events) {
    if (typeof name !== 'string' || name.length === 0) throw new TypeError('subscribe({events}): every name must be a non-empty string');
    if (new TextEncoder().encode(name).length > 255) throw new TypeError(`event name over 255 bytes: ${name.slice(0, 40)}...`);
    if (CONTROL_CHARS.test(name) || name.startsWith(' ') || name.includes(',')) {
      throw new TypeError(`event name ${JSON.stringify(name)}: no control characters, commas or leading space`);
    }
    if (RESERVED.has(name)) throw new TypeError(`event name ${JSON.stringify(name)} is reserved by the stream`);
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/**
 * /sse?ticket=...&events=a,b[&lastEventId=N]. The ?lastEventId is the resume point of a freshly
 * opened EventSource; when that EventSource later reconnects by itself it sends the Last-Event-ID
 * header, which the server prefers, so a stale query value never rewinds it.
 * @param {string} base
 * @param {{ticket: string, events: string[], lastEventId?: number|null}} opts
 */
export function streamUrl(base, { ticket, events, lastEventId }) {
  let q = `ticket=${encodeURIComponent(ticket)}`;
  q += `&events=${events.map(encodeURIComponent).join(',')}`;
  if (lastEventId !== null && lastEventId !== undefined) q += `&lastEventId=${lastEventId}`;
  return `${base}/sse?${q}`;
}

/**
 * One message of the EventSource, dispatched under `type`.
 * @param {string} type  the event name (what the listener was added for)
 * @param {{data: string, lastEventId?: string}} message
 * @returns {{kind: 'event', name: string, id: number, data: unknown}
 *          | {kind: 'reset', reason: string}
 *          | {kind: 'token_expiring', exp: number}
 *          | {kind: 'revoked', reason: string}
 *          | {kind: 'invalid', why: string}}
 */
export function parseFrame(type, message) {
  let data;
  try {
    data = JSON.parse(message.data);
  } catch {
    return { kind: 'invalid', why: `${type}: data is not JSON` };
  }
  switch (type) {
    case 'reset':
      return { kind: 'reset', reason: String(data?.reason ?? '') };
    case 'token_expiring':
      return { kind: 'token_expiring', exp: Number(data?.exp) || 0 };
    case 'revoked':
      return { kind: 'revoked', reason: String(data?.reason ?? 'revoked') };
    default: {
      // Every event frame carries id:<decimal>; browsers report it as lastEventId.
      const raw = message.lastEventId ?? '';
      const id = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isSafeInteger(id)) return { kind: 'invalid', why: `${type}: no usable id (${JSON.stringify(raw)})` };
      return { kind: 'event', name: type, id, data };
    }
  }
}
