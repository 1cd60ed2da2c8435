// sender.js: turns field edits into inserts, one in flight per event name. Every change is sent,
// but while one insert is on its way, later edits of that field collapse into the newest value,
// sent as soon as the first one is stored: typing fast never queues a backlog, and the last value
// always wins.
//
// It also tells the page when the stream may write into a field again (`settled`): not while a
// local edit is unsent or on its way (the stream would bring back an older value and move the
// caret), and not before the stream has caught up with our own last insert (`ackedId`).

export function createSender(broker, { onError, onIdle } = {}) {
  const inFlight = new Set();
  const pending = new Map(); // event name -> the newest data not sent yet
  const acked = new Map(); // event name -> id of our last stored insert

  async function pump(name) {
    while (pending.has(name)) {
      const data = pending.get(name);
      pending.delete(name);
      inFlight.add(name);
      try {
        const { id } = await broker.insert(name, data);
        acked.set(name, id);
      } catch (e) {
        onError?.(e);
      } finally {
        inFlight.delete(name);
      }
    }
    onIdle?.(name);
  }

  return {
    send(name, data) {
      pending.set(name, data);
      if (!inFlight.has(name)) pump(name);
    },
    /** May the stream's value of `name`, stored under `id`, replace what the field shows? */
    settled(name, id) {
      return !inFlight.has(name) && !pending.has(name) && id >= (acked.get(name) ?? 0);
    },
  };
}
