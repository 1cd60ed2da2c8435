// GET /metrics scraping: the Prometheus text format parsed into samples.
import assert from 'node:assert/strict';
import { request } from './http.js';

function parseLabels(s) {
  const labels = {};
  if (!s) return labels;
  const re = /\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?/gy;
  let m;
  let end = 0;
  for (let i = 0; i < 1000 && (m = re.exec(s)); i++) {
    labels[m[1]] = m[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    end = re.lastIndex;
  }
  if (end !== s.length) throw new Error(`malformed label set {${s}}`);
  return labels;
}

/** Parse Prometheus text exposition: { samples: [{name, labels, value}], help: Map, type: Map }. */
export function parseMetrics(text) {
  const samples = [];
  const help = new Map();
  const type = new Map();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    let m = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (m) {
      (m[1] === 'HELP' ? help : type).set(m[2], m[3]);
      continue;
    }
    if (line.startsWith('#')) continue;
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line);
    if (!m) throw new Error(`malformed metrics line: ${JSON.stringify(line)}`);
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`malformed value in ${JSON.stringify(line)}`);
    samples.push({ name: m[1], labels: parseLabels(m[2]), value });
  }
  return { samples, help, type };
}

const sameLabels = (a, b) => {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => a[k] === b[k]);
};

/** Scrape GET /metrics (must be 200 text/plain); returns the parsed text plus accessors. */
export async function scrape(b) {
  const r = await request(b, 'GET', '/metrics');
  assert.equal(r.status, 200, `GET /metrics: ${r.status} ${r.text.slice(0, 300)}`);
  assert.match(r.headers['content-type'] ?? '', /^text\/plain/i, `GET /metrics content-type`);
  const parsed = parseMetrics(r.text);
  return {
    ...parsed,
    text: r.text,
    /** The sample with exactly these labels, or undefined. */
    find(name, labels = {}) {
      return parsed.samples.find((s) => s.name === name && sameLabels(s.labels, labels))?.value;
    },
    /** Like find, but a counter that is not exposed (never incremented) counts as 0. */
    count(name, labels = {}) {
      return this.find(name, labels) ?? 0;
    },
    /** Must be present. */
    value(name, labels = {}) {
      const v = this.find(name, labels);
      assert.notEqual(v, undefined, `metric ${name}${JSON.stringify(labels)} is exposed; got:\n${r.text.slice(0, 3000)}`);
      return v;
    },
  };
}
