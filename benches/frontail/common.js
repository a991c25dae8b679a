'use strict';
// Shared by the driver, the writer and the clients of benches/frontail.sh.

const fs = require('fs');
const path = require('path');

/**
 * Real log lines: the Loghub samples of `dir/loghub` (or `dir`), sorted by file name,
 * interleaved line by line, `\r` stripped, blank lines left out (as benches/fanout.rs).
 */
function loadCorpus(dir) {
  const loghub = path.join(dir, 'loghub');
  const d = fs.existsSync(loghub) ? loghub : dir;
  const files = fs
    .readdirSync(d)
    .filter((f) => f.endsWith('.log'))
    .sort();
  if (files.length === 0) throw new Error(`no *.log files in ${d}`);
  const perFile = files.map((f) =>
    fs
      .readFileSync(path.join(d, f), 'utf8')
      .split('\n')
      .map((l) => l.replace(/\r+$/, ''))
      .filter((l) => l.trim() !== '')
  );
  const longest = Math.max(...perFile.map((l) => l.length));
  const lines = [];
  for (let i = 0; i < longest; i++) {
    for (const f of perFile) if (i < f.length) lines.push(f[i]);
  }
  return { lines, files };
}

/** Nanoseconds of CLOCK_MONOTONIC (system-wide, so every process of the bench shares it). */
function nowNs() {
  return Number(process.hrtime.bigint());
}

/** ` sgk=<k> sgt=<ns>` at the end of a line -> [k, ns], or null. */
function parseTag(text) {
  const i = text.lastIndexOf(' sgk=');
  if (i < 0) return null;
  const j = text.indexOf(' sgt=', i + 5);
  if (j < 0) return null;
  const k = Number(text.slice(i + 5, j));
  const t = Number(text.slice(j + 5));
  if (!Number.isFinite(k) || !Number.isFinite(t)) return null;
  return [k, t];
}

// Latency histogram in microseconds: 1 µs buckets below 10 ms, 100 µs up to 10 s, 1 ms
// up to 20 min.
const FINE = 10000;
const MID = 99900; // (10 s - 10 ms) / 100 µs
const COARSE = 1190000; // (1200 s - 10 s) / 1 ms
class Histogram {
  constructor() {
    this.b = new Float64Array(FINE + MID + COARSE + 1);
    this.n = 0;
    this.max = 0;
  }
  static index(us) {
    if (us < 0) us = 0;
    if (us < FINE) return Math.floor(us);
    if (us < 1e7) return FINE + Math.floor((us - FINE) / 100);
    return Math.min(FINE + MID + Math.floor((us - 1e7) / 1000), FINE + MID + COARSE);
  }
  static value(i) {
    if (i < FINE) return i + 0.5;
    if (i < FINE + MID) return FINE + (i - FINE) * 100 + 50;
    return 1e7 + (i - FINE - MID) * 1000 + 500;
  }
  add(us) {
    this.b[Histogram.index(us)]++;
    this.n++;
    if (us > this.max) this.max = us;
  }
  merge(o) {
    for (let i = 0; i < o.b.length; i++) this.b[i] += o.b[i];
    this.n += o.n;
    this.max = Math.max(this.max, o.max);
  }
  /** q in [0, 1] -> microseconds. */
  quantile(q) {
    if (this.n === 0) return NaN;
    const want = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < this.b.length; i++) {
      seen += this.b[i];
      if (seen >= want) return Math.min(Histogram.value(i), this.max);
    }
    return this.max;
  }
  summary() {
    return {
      n: this.n,
      p50: this.quantile(0.5) / 1000,
      p99: this.quantile(0.99) / 1000,
      p999: this.quantile(0.999) / 1000,
      max: this.max / 1000,
    };
  }
}

/** A growable bit set over line numbers. */
class BitSet {
  constructor() {
    this.a = new Uint8Array(1 << 16);
  }
  /** Sets bit k; returns whether it was set already. */
  testAndSet(k) {
    const byte = k >>> 3;
    if (byte >= this.a.length) {
      let n = this.a.length;
      while (n <= byte) n *= 2;
      const b = new Uint8Array(n);
      b.set(this.a);
      this.a = b;
    }
    const m = 1 << (k & 7);
    const was = (this.a[byte] & m) !== 0;
    this.a[byte] |= m;
    return was;
  }
}

/** How many of the first `written` lines match `filter` (a RegExp source; '' = all). */
function expectedCount(lines, filter, written) {
  if (!filter) return written;
  const re = new RegExp(filter);
  const n = lines.length;
  const per = lines.map((l) => re.test(l));
  const perCycle = per.filter(Boolean).length;
  let e = Math.floor(written / n) * perCycle;
  for (let j = 0; j < written % n; j++) if (per[j]) e++;
  return e;
}

module.exports = { loadCorpus, nowNs, parseTag, expectedCount, Histogram, BitSet };
