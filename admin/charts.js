// admin/charts.js: the console's live numbers. Polls GET /metrics (public, Prometheus text) once a
// second, shows the gauges (open streams, event names, last id, streams revoked) and draws the last
// minute of open streams, inserts/s and deliveries/s as small SVG line charts. Rates are the
// differences of the counters broker_events_inserted_total and broker_events_delivered_total
// between two polls, divided by the time between them.
//
// The SVG is built with createElementNS and geometry attributes only: no style attributes, which
// the page's Content-Security-Policy (default-src 'self') would refuse.

const SVG = 'http://www.w3.org/2000/svg';
const PERIOD_MS = 1000;
const SAMPLES = 60;
const W = 300;
const H = 80;
const TOP = 14; // room for the labels above the line

/** Prometheus text → { name: value } for the samples without labels (all the console needs). */
export function parseMetrics(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)\s+(\S+)/.exec(line);
    if (m) out[m[1]] = Number(m[2]);
  }
  return out;
}

/** A rounded-up axis maximum (1, 2, 5 × 10^n), so the scale does not jitter with every sample. */
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

const fmt = (v) => (v >= 100 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1));

function svgEl(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  return e;
}

class Chart {
  constructor(figure) {
    this.samples = [];
    this.svg = svgEl('svg', { viewBox: `0 0 ${W} ${H}`, class: 'spark', role: 'img' });
    this.area = svgEl('polygon', { class: 'area', points: '' });
    this.line = svgEl('polyline', { class: 'line', points: '' });
    this.now = svgEl('text', { class: 'now', x: 4, y: 11 });
    this.max = svgEl('text', { class: 'max', x: W - 4, y: 11 }); // anchored at its end by admin.css
    this.svg.append(svgEl('line', { class: 'base', x1: 0, y1: H - 0.5, x2: W, y2: H - 0.5 }),
      this.area, this.line, this.now, this.max);
    figure.append(this.svg);
  }

  push(v) {
    this.samples.push(v);
    if (this.samples.length > SAMPLES) this.samples.shift();
    const top = niceMax(Math.max(...this.samples));
    const step = W / (SAMPLES - 1);
    const x0 = W - step * (this.samples.length - 1); // the newest sample at the right edge
    const pts = this.samples.map((s, i) =>
      `${(x0 + i * step).toFixed(1)},${(H - 1 - (s / top) * (H - 1 - TOP)).toFixed(1)}`);
    this.line.setAttribute('points', pts.join(' '));
    this.area.setAttribute('points', `${x0.toFixed(1)},${H} ${pts.join(' ')} ${W},${H}`);
    this.now.textContent = fmt(v);
    this.max.textContent = `peak ${fmt(Math.max(...this.samples))}`;
    // For people reading the DOM (and the e2e test): what is drawn, as numbers.
    this.svg.dataset.samples = String(this.samples.length);
    this.svg.dataset.last = String(v);
    this.svg.dataset.peak = String(Math.max(...this.samples));
    this.svg.setAttribute('aria-label', `${fmt(v)} now, peak ${fmt(Math.max(...this.samples))} in the last minute`);
  }
}

/**
 * Starts polling; `status` is an element for a line about the polling itself. Returns a function
 * that stops it (and removes the charts).
 */
export function startMetrics(status) {
  const figures = ['chart-subscribers', 'chart-inserts', 'chart-deliveries'].map((id) => document.getElementById(id));
  for (const f of figures) f.querySelector('svg')?.remove();
  const [subscribers, inserts, deliveries] = figures.map((f) => new Chart(f));
  const stat = (id, v) => { document.getElementById(id).textContent = v === undefined ? '–' : String(v); };
  let previous = null;
  let timer = null;
  let stopped = false;

  async function poll() {
    timer = null;
    try {
      const res = await fetch('metrics', { cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' });
      if (!res.ok) throw new Error(`GET /metrics answered ${res.status}`);
      const m = parseMetrics(await res.text());
      if (stopped) return;
      const at = performance.now();
      stat('stat-subscribers', m.broker_subscribers);
      stat('stat-names', m.broker_event_names);
      stat('stat-last-id', m.broker_last_event_id);
      stat('stat-revoked', m.broker_streams_revoked_total);
      subscribers.push(m.broker_subscribers ?? 0);
      if (previous) {
        const dt = (at - previous.at) / 1000;
        // A counter that went down is a restarted server: no rate for that interval.
        const rate = (k) => (m[k] >= previous.m[k] && dt > 0 ? (m[k] - previous.m[k]) / dt : 0);
        inserts.push(rate('broker_events_inserted_total'));
        deliveries.push(rate('broker_events_delivered_total'));
      }
      previous = { m, at };
      status.textContent = `updated ${new Date().toTimeString().slice(0, 8)}`;
    } catch (e) {
      if (stopped) return;
      previous = null; // a gap: do not draw a rate across it
      status.textContent = `metrics unavailable: ${e.message}`;
    }
    if (!stopped) timer = setTimeout(poll, PERIOD_MS);
  }

  poll();
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    for (const f of figures) f.querySelector('svg')?.remove();
  };
}
