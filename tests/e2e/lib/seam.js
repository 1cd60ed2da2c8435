// The exact snapshot/live seam check, shared by the seam and load tests.
//
// A subscriber that subscribed when the store's last committed id was W must receive exactly
//   sorted(latest id of each event name among ids <= W)  ++  every id > W, in order.
// We do not know W from outside, but we know every event in the store (all inserts were acknowledged
// and the store started empty), and a lower bound for W: the largest id acknowledged before the
// subscriber's request was sent. So the stream is correct iff it equals expected(W) for some W >= lb.

/** all: [{ id, event }] for every event in the store, any order. */
export function makeSeamChecker(all) {
  const sorted = [...all].sort((x, y) => x.id - y.id);
  const ids = sorted.map((e) => e.id);

  function expected(W) {
    const latest = new Map();
    for (const e of sorted) {
      if (e.id > W) break;
      latest.set(e.event, e.id);
    }
    const snap = [...latest.values()].sort((x, y) => x - y);
    return snap.concat(ids.filter((id) => id > W));
  }

  /** Returns null when `received` (array of ids) is a correct stream; otherwise a description. */
  return function check(received, lb) {
    for (let i = 1; i < received.length; i++) {
      if (!(received[i] > received[i - 1])) {
        return `ids not strictly increasing at position ${i}: ${received[i - 1]} then ${received[i]}`;
      }
    }
    const candidates = [0, ...ids].filter((w) => w >= lb);
    const key = received.join(',');
    for (const W of candidates) {
      if (expected(W).join(',') === key) return null;
    }
    // Explain against the most plausible watermark: the largest W whose snapshot part is a prefix.
    const exp = expected(lb);
    const missing = exp.filter((id) => !received.includes(id));
    const extra = received.filter((id) => !exp.includes(id));
    return `stream matches no watermark W >= ${lb}. Against W=${lb}: missing ${JSON.stringify(missing.slice(0, 30))}` +
      ` (${missing.length}), unexpected ${JSON.stringify(extra.slice(0, 30))} (${extra.length});` +
      ` received (first 40) ${JSON.stringify(received.slice(0, 40))}`;
  };
}

/** Small seeded PRNG (mulberry32) so a failing run can be repeated with BROKER_E2E_SEED. */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
