'use strict';
// The writer of benches/frontail.sh, a process of its own (forked by bench.js).
//
// Appends corpus lines tagged ` sgk=<k> sgt=<ns>` to a file: `k` numbers the lines
// from 0, `sgt` is CLOCK_MONOTONIC (minus the driver's BENCH_T0) just before the
// `write` call that carries the line. Paced: a batch every `tickMs` (1) ms so that `rate`
// lines per second go out for `secs` seconds. Flat out (rate 0): batches of `batch`
// lines, one `write` each, as fast as this process can, for `secs` seconds.
// When done it sends {written, secs, biggestBatch, cpuSecs} to the driver and exits.

const fs = require('fs');
const { loadCorpus, nowNs } = require('./common');

const T0 = Number(process.env.BENCH_T0);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms) {
  if (ms > 0) Atomics.wait(sleeper, 0, 0, ms);
}

process.once('message', (opts) => {
  const { lines } = loadCorpus(opts.corpus);
  const n = lines.length;
  const fd = fs.openSync(opts.file, 'a');
  const start = nowNs();
  const endAt = start + opts.secs * 1e9;
  let k = 0;
  let biggestBatch = 0;
  if (opts.rate > 0) {
    const total = Math.round(opts.rate * opts.secs);
    let next = start;
    while (k < total) {
      const due = Math.min(total, Math.max(k, Math.floor(((nowNs() - start) / 1e9) * opts.rate)));
      if (due > k) {
        const t = nowNs() - T0;
        let s = '';
        for (let kk = k; kk < due; kk++) s += `${lines[kk % n]} sgk=${kk} sgt=${t}\n`;
        fs.writeSync(fd, s);
        biggestBatch = Math.max(biggestBatch, due - k);
        k = due;
      }
      next += opts.tickMs * 1e6;
      const now = nowNs();
      if (next > now) sleepMs((next - now) / 1e6);
      else if (now - next > 20e6) next = now;
    }
  } else {
    const batch = opts.batch;
    while (nowNs() < endAt) {
      const t = nowNs() - T0;
      let s = '';
      for (let kk = k; kk < k + batch; kk++) s += `${lines[kk % n]} sgk=${kk} sgt=${t}\n`;
      fs.writeSync(fd, s);
      k += batch;
    }
    biggestBatch = batch;
  }
  fs.closeSync(fd);
  const cpu = process.cpuUsage();
  process.send({ written: k, secs: (nowNs() - start) / 1e9, biggestBatch, cpuSecs: (cpu.user + cpu.system) / 1e6 }, () =>
    process.exit(0)
  );
});
