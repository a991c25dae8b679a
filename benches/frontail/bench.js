'use strict';
// Driver of benches/frontail.sh: frontail against `supergrep serve`, each following
// one file that a writer appends tagged Loghub lines to, read by 10 browser-less
// clients. Prints a Markdown report on stdout (progress on stderr).
//
// Environment (benches/frontail.sh sets the first three):
//   SUPERGREP_CORPUS   directory with loghub/*.log
//   SUPERGREP_BIN      the supergrep binary
//   FRONTAIL_JS        frontail's index.js (in a node_modules installed for the run)
//   FT_RUNS            runs, in order (default: all seven):
//                      frontail, supergrep-all, supergrep-filter, supergrep-all-ring1k,
//                      frontail-flat, supergrep-flat-all, supergrep-flat-filter
//                      (`-ring1k`: `supergrep serve --backlog 1000` instead of the
//                      default ring of 100,000 lines, to show what the ring costs)
//   FT_CLIENTS (10)    clients per server
//   FT_RATE (10000)    lines/s of the paced runs; FT_SECS (15) their length
//   FT_FILTER ([Ee]xception, ~1% of the corpus) the realistic filter
//   FT_TICK_MS (1)     the paced writer appends a batch this often
//   FT_FLAT_SECS (10)  length of the flat-out runs; FT_FLAT_BATCH (1000) lines per write
//   FT_DRAIN (10)      seconds the clients get after a paced run to receive the rest
//   FT_FLAT_DRAIN (30) the same after a flat-out run
//   FT_QUIET_WAIT (60) seconds to wait for the machine to be quiet before each run
//   FT_RSS_CAP_MIB (4096) a server past this RSS is stopped (the run is marked)
//   FT_JSON            also write the raw results here
//   FT_REPORT_FROM     print the tables of such a file instead of running

const { spawn, fork, execSync } = require('child_process');
const fs = require('fs');
const http = require('http');
const net = require('net');
const os = require('os');
const path = require('path');
const { nowNs, loadCorpus, expectedCount } = require('./common');

const env = (k, d) => (process.env[k] === undefined || process.env[k] === '' ? d : process.env[k]);
const CFG = {
  corpus: env('SUPERGREP_CORPUS'),
  sg: env('SUPERGREP_BIN'),
  frontail: env('FRONTAIL_JS'),
  runs: env(
    'FT_RUNS',
    'frontail,supergrep-all,supergrep-filter,supergrep-all-ring1k,frontail-flat,supergrep-flat-all,supergrep-flat-filter'
  )
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean),
  clients: Number(env('FT_CLIENTS', 10)),
  rate: Number(env('FT_RATE', 10000)),
  secs: Number(env('FT_SECS', 15)),
  filter: env('FT_FILTER', '[Ee]xception'),
  flatSecs: Number(env('FT_FLAT_SECS', 10)),
  flatBatch: Number(env('FT_FLAT_BATCH', 1000)),
  tickMs: Number(env('FT_TICK_MS', 1)),
  drain: Number(env('FT_DRAIN', 10)),
  flatDrain: Number(env('FT_FLAT_DRAIN', 30)),
  quietWait: Number(env('FT_QUIET_WAIT', 60)),
  rssCapMiB: Number(env('FT_RSS_CAP_MIB', 4096)),
  json: env('FT_JSON', ''),
};
for (const k of process.env.FT_REPORT_FROM ? [] : ['corpus', 'sg', 'frontail']) {
  if (!CFG[k]) throw new Error(`missing setting ${k} (see the top of bench.js)`);
}
const T0 = nowNs();
process.env.BENCH_T0 = String(T0);
const TICK = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
const log = (...a) => console.error(...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------
// /proc

function cpuSecs(pid) {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / TICK; // utime, stime
  } catch {
    return 0;
  }
}
function statusKiB(pid, field) {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(new RegExp(`^${field}:\\s+(\\d+)`, 'm'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
/** Busy CPU seconds of the whole machine (user nice system irq softirq steal). */
function machineBusy() {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / TICK;
}
function childrenOf(pid) {
  const out = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const s = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
      if (Number(f[1]) === pid) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Waits (at most quietWait s) until the rest of the machine used < 25% of a core for 2 s. */
async function waitQuiet() {
  const start = Date.now();
  for (;;) {
    const b0 = machineBusy();
    const s0 = cpuSecs(process.pid);
    await sleep(2000);
    const others = ((machineBusy() - b0 - (cpuSecs(process.pid) - s0)) / 2) * 100;
    if (others < 25 || Date.now() - start > CFG.quietWait * 1000) {
      if (others >= 25) log(`  (machine busy: others use ${others.toFixed(0)}% of a core; going ahead)`);
      return others;
    }
  }
}

// ---------------------------------------------------------------------------------
// processes

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}
function httpGet(port, p) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, timeout: 2000 }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
  });
}
async function waitHttp(port, p, proc) {
  const until = Date.now() + 30000;
  while (Date.now() < until) {
    if (proc.exitCode !== null) throw new Error(`server exited with ${proc.exitCode}`);
    try {
      const r = await httpGet(port, p);
      if (r.status === 200) return;
    } catch {
      /* not yet */
    }
    await sleep(50);
  }
  throw new Error(`server on port ${port} did not answer ${p}`);
}
/** Resolves with the next IPC message of `child` that has `key`. */
function nextMessage(child, key, timeoutMs, whole = false) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${key} from child in ${timeoutMs} ms`)), timeoutMs);
    const on = (m) => {
      if (m.error) {
        clearTimeout(timer);
        child.off('message', on);
        reject(new Error(m.error));
      } else if (key in m) {
        clearTimeout(timer);
        child.off('message', on);
        resolve(whole ? m : m[key]);
      }
    };
    child.on('message', on);
  });
}
async function stop(proc, extra = []) {
  if (proc.exitCode === null) {
    proc.kill('SIGTERM');
    for (let i = 0; i < 40 && proc.exitCode === null; i++) await sleep(50);
    if (proc.exitCode === null) proc.kill('SIGKILL');
  }
  for (const pid of extra) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

/** A few counters of a supergrep hub's /metrics. */
async function sgMetrics(port) {
  try {
    const m = (await httpGet(port, '/metrics')).body;
    const get = (k) => {
      const x = m.match(new RegExp(`^${k}(?:\\{[^}]*\\})? (\\S+)`, 'm'));
      return x ? Number(x[1]) : null;
    };
    return {
      ingested: get('supergrep_lines_ingested_total'),
      // "Matches queued for clients and sinks" (dropped ones included).
      queued: get('supergrep_matches_delivered_total'),
      dropped: get('supergrep_matches_dropped_total'),
      bytesSent: get('supergrep_bytes_sent_total'),
    };
  } catch (e) {
    return { error: String(e) };
  }
}

// ---------------------------------------------------------------------------------
// one run

async function run(name) {
  const side = name.startsWith('frontail') ? 'frontail' : 'supergrep';
  const flat = name.includes('flat');
  const filter = name.includes('filter') ? CFG.filter : '';
  const ring = name.includes('ring1k') ? ['--backlog', '1000'] : [];
  log(`== ${name}`);
  const quietBefore = await waitQuiet();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sg-frontail-'));
  const file = path.join(dir, 'app.log');
  fs.writeFileSync(file, '');
  const port = await freePort();
  const out = fs.openSync(path.join(dir, 'server.log'), 'w');
  let server;
  let ns = '';
  if (side === 'frontail') {
    // -n 1: frontail keeps 1 line to replay to new clients (the file starts empty);
    // usage stats off: no traffic leaves the machine.
    server = spawn(
      process.execPath,
      [CFG.frontail, '-h', '127.0.0.1', '-p', String(port), '-n', '1', '--disable-usage-stats', file],
      { stdio: ['ignore', out, out] }
    );
    ns = require('crypto').createHash('md5').update(file).digest('hex');
    await waitHttp(port, '/', server);
  } else {
    server = spawn(CFG.sg, ['serve', '--listen', `127.0.0.1:${port}`, ...ring, file], { stdio: ['ignore', out, out] });
    await waitHttp(port, '/healthz', server);
  }
  const serverPids = () => [server.pid, ...childrenOf(server.pid)]; // frontail: node + its `tail -F`
  const clients = fork(path.join(__dirname, 'clients.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  clients.send({ cmd: 'start', side, port, ns, clients: CFG.clients, filter, corpus: CFG.corpus });
  await nextMessage(clients, 'ready', 30000);
  await sleep(1000);

  // RSS of the server (frontail: node + tail) every 100 ms.
  const rssNow = () => serverPids().reduce((a, p) => a + statusKiB(p, 'VmRSS'), 0) / 1024;
  const samples = [];
  let capped = false;
  const sampler = setInterval(() => {
    const r = rssNow();
    samples.push([(nowNs() - T0) / 1e9, r]);
    if (r > CFG.rssCapMiB && !capped) {
      capped = true;
      log(`  server RSS ${r.toFixed(0)} MiB > cap ${CFG.rssCapMiB} MiB: stopping it`);
      server.kill('SIGKILL');
    }
  }, 100);

  const pidsAtStart = serverPids();
  const snapCpu = (writerPid) => ({
    t: nowNs(),
    server: pidsAtStart.reduce((a, p) => a + cpuSecs(p), 0),
    clients: cpuSecs(clients.pid),
    writer: writerPid ? cpuSecs(writerPid) : 0,
    self: cpuSecs(process.pid),
    machine: machineBusy(),
  });
  const rssBefore = rssNow();
  const writer = fork(path.join(__dirname, 'writer.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const c0 = snapCpu(writer.pid);
  writer.send({
    file,
    corpus: CFG.corpus,
    rate: flat ? 0 : CFG.rate,
    secs: flat ? CFG.flatSecs : CFG.secs,
    batch: CFG.flatBatch,
    tickMs: CFG.tickMs,
  });
  const wrote = await nextMessage(writer, 'written', (flat ? CFG.flatSecs : CFG.secs) * 1000 + 60000, true);
  const writerCpu = wrote.cpuSecs; // its own count, sent just before it exits
  const c1 = snapCpu(0);
  c1.writer = writerCpu;
  const rssEndWrite = rssNow();
  const written = wrote.written;
  const metricsEndWrite = side === 'supergrep' && server.exitCode === null ? await sgMetrics(port) : null;
  const snapshot = await nextMessage((clients.send({ cmd: 'snapshot' }), clients), 'snapshot', 60000);
  const snapAt = (nowNs() - T0) / 1e9;
  const drainMs = (flat ? CFG.flatDrain : CFG.drain) * 1000;
  clients.send({ cmd: 'final', written, drainMs });
  const result = await nextMessage(clients, 'result', drainMs + 120000);
  const c2 = snapCpu(0);
  c2.writer = writerCpu;
  clearInterval(sampler);
  const rssAfter = rssNow();
  const vmData = pidsAtStart.reduce((a, p) => a + statusKiB(p, 'VmData'), 0) / 1024;
  const hwm = pidsAtStart.reduce((a, p) => a + statusKiB(p, 'VmHWM'), 0) / 1024;
  const metrics = side === 'supergrep' && server.exitCode === null ? await sgMetrics(port) : null;
  await stop(server, pidsAtStart.slice(1));
  for (let i = 0; i < 40 && clients.exitCode === null; i++) await sleep(50);
  if (clients.exitCode === null) clients.kill('SIGKILL');
  const fileBytes = fs.statSync(file).size;
  fs.rmSync(dir, { recursive: true, force: true });

  const win = (a, b) => {
    const secs = (b.t - a.t) / 1e9;
    const server = b.server - a.server;
    const bench = b.clients - a.clients + (b.writer - a.writer) + (b.self - a.self);
    const others = b.machine - a.machine - server - bench;
    return {
      secs,
      serverPct: (server / secs) * 100,
      clientsPct: ((b.clients - a.clients) / secs) * 100,
      writerPct: ((b.writer - a.writer) / secs) * 100,
      benchPct: (bench / secs) * 100,
      othersPct: (Math.max(0, others) / secs) * 100,
    };
  };
  const peak = samples.reduce((a, s) => Math.max(a, s[1]), rssBefore);
  const r = {
    name,
    side,
    flat,
    filter: filter || null,
    ring1k: ring.length > 0,
    written,
    writeSecs: wrote.secs,
    fileBytes,
    quietBefore,
    cpuWrite: win(c0, c1),
    cpuAll: win(c0, c2),
    cpuDrain: win(c1, c2),
    rss: { before: rssBefore, endWrite: rssEndWrite, after: rssAfter, peak, hwm, vmData, capped },
    rssSeries: samples.filter((_, i) => i % 10 === 0).map(([t, m]) => [Number(t.toFixed(1)), Number(m.toFixed(1))]),
    atEndOfWriting: { at: snapAt, clients: snapshot, metrics: metricsEndWrite },
    result,
    metrics,
  };
  log(`  ${summaryLine(r)}`);
  return r;
}

// ---------------------------------------------------------------------------------
// report

const f0 = (x) => (Number.isFinite(x) ? x.toFixed(0) : '–');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : '–');
const ms = (x) => (!Number.isFinite(x) ? '–' : x < 10 ? x.toFixed(2) : x < 100 ? x.toFixed(1) : x.toFixed(0));
const int = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '–');
const range = (xs) => {
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  return lo === hi ? int(lo) : `${int(lo)}–${int(hi)}`;
};
let corpusCache;
function corpusLines() {
  if (!corpusCache) corpusCache = loadCorpus(CFG.corpus).lines;
  return corpusCache;
}
function who(r) {
  if (r.side === 'frontail') return 'frontail 4.9.2';
  return r.ring1k ? 'supergrep serve --backlog 1000' : 'supergrep serve';
}
function what(r) {
  if (r.side === 'frontail') return 'every line (filtering is client-side)';
  return r.filter ? `\`${r.filter}\` (${((r.result.expected / r.written) * 100).toFixed(2)}% of lines)` : 'every line (`include: []`)';
}
function delivery(r) {
  const cs = r.result.clients;
  const e = r.result.expected;
  const missing = cs.map((c) => e - c.unique);
  const dropped = cs.map((c) => c.dropped);
  const bad = cs.filter((c) => c.dup || c.outOfOrder || c.unexpected).length;
  const counted = cs.every((c) => e - c.unique === c.dropped);
  const closed = cs.filter((c) => c.closed).length;
  return { missing, dropped, bad, counted, closed, totalMissing: missing.reduce((a, b) => a + b, 0) };
}
function drained(r) {
  if (!r.result.complete) return `not in ${f0(r.result.drainSecs)} s`;
  return r.result.drainSecs < 0.1 ? 'at once' : `${f1(r.result.drainSecs)} s`;
}
function summaryLine(r) {
  const d = delivery(r);
  const l = r.result.latency;
  return (
    `written ${r.written} in ${r.writeSecs.toFixed(1)} s; expected ${r.result.expected}/client; ` +
    `missing ${d.totalMissing} (dropped told ${d.dropped.reduce((a, b) => a + b, 0)}); ` +
    `lat p50/p99/max ${ms(l.p50)}/${ms(l.p99)}/${ms(l.max)} ms; server CPU ${f1(r.cpuWrite.serverPct)}%, ` +
    `bench ${f1(r.cpuWrite.benchPct)}%, others ${f1(r.cpuWrite.othersPct)}%; RSS ${f1(r.rss.before)} -> ${f1(r.rss.endWrite)} (peak ${f1(r.rss.peak)}) MiB`
  );
}

function report(results) {
  const lines = [];
  const p = (s) => lines.push(s);
  const paced = results.filter((r) => !r.flat);
  const flat = results.filter((r) => r.flat);
  if (paced.length) {
    p(`**At ${int(CFG.rate)} lines/s for ${CFG.secs} s, ${CFG.clients} clients each:**`);
    p('');
    p('| server | clients get | lines written (rate) | lines per client: got / should get | undelivered: counted (`dropped`) / uncounted | latency p50 / p99 / p99.9 / max (ms) | server CPU | bench CPU | others\' CPU | server RSS: before → end of writing (peak) | server VmData at end |');
    p('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of paced) {
      const d = delivery(r);
      const l = r.result.latency;
      const got = r.result.clients.map((c) => c.unique);
      const dropped = d.dropped.reduce((a, b) => a + b, 0);
      const unc = d.totalMissing - dropped;
      p(
        `| ${who(r)} | ${what(r)} | ${int(r.written)} (${int(r.written / r.writeSecs)}/s) | ${range(got)} / ${int(r.result.expected)}` +
          `${d.bad ? ` (${d.bad} clients with duplicates, disorder or unwanted lines)` : ''} | ${r.side === 'frontail' ? '–' : int(dropped)} / ${int(unc)} | ` +
          `${ms(l.p50)} / ${ms(l.p99)} / ${ms(l.p999)} / ${ms(l.max)} | ${f1(r.cpuWrite.serverPct)}% | ${f1(r.cpuWrite.benchPct)}% | ` +
          `${f1(r.cpuWrite.othersPct)}% | ${f1(r.rss.before)} → ${f1(r.rss.endWrite)} (${f1(r.rss.peak)}) MiB | ${f0(r.rss.vmData)} MiB |`
      );
    }
    p('');
  }
  if (flat.length) {
    p(`**Flat out: the writer appends as fast as it can for ${CFG.flatSecs} s (${int(CFG.flatBatch)} lines per \`write\`), ${CFG.clients} clients each, then up to ${CFG.flatDrain} s to drain:**`);
    p('');
    p('| server | clients get | lines written (rate) | server had read, at end of writing | per client at end of writing: got (behind) | age of the newest line a client had then | after the drain: got / should get | undelivered: counted (`dropped`) / not yet read by the server / neither (in flight, or untold) | drained in | server CPU: writing / drain | bench CPU: writing / drain | others\' CPU: writing / drain | server RSS: before → end of writing → peak |');
    p('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const r of flat) {
      const d = delivery(r);
      const e = r.result.expected;
      const snap = r.atEndOfWriting.clients;
      const gotThen = snap.map((c) => c.unique);
      const droppedThen = snap.map((c) => c.dropped);
      const behind = gotThen.map((g, i) => (e - g - droppedThen[i]) / e);
      const ages = snap.map((c) => c.lastLatMs).filter(Number.isFinite);
      const got = r.result.clients.map((c) => c.unique);
      const dropped = d.dropped.reduce((a, b) => a + b, 0);
      // Lines the server had not read from the file yet (supergrep's /metrics, just
      // after the clients reported), as seen by all clients together.
      const ingested = r.metrics && r.metrics.ingested;
      const unread = Number.isFinite(ingested)
        ? r.result.clients.length * (e - expectedCount(corpusLines(), r.filter || '', ingested))
        : NaN;
      const other = d.totalMissing - dropped - (Number.isFinite(unread) ? unread : 0);
      const pct = (x) => `${(x * 100).toFixed(0)}%`;
      const m0 = r.atEndOfWriting.metrics;
      const readThen = m0 && Number.isFinite(m0.ingested) ? `${int(m0.ingested)} (${pct(m0.ingested / r.written)})` : '–';
      // CPU over a drain shorter than a second is mostly clock-tick rounding.
      const dr = (x) => (r.cpuDrain.secs < 1 ? '–' : `${f1(x)}%`);
      const behindTxt =
        pct(Math.min(...behind)) === pct(Math.max(...behind)) ? pct(behind[0]) : `${pct(Math.min(...behind))}–${pct(Math.max(...behind))}`;
      const age = (x) => (x < 1000 ? `${ms(x)} ms` : `${(x / 1000).toFixed(1)} s`);
      p(
        `| ${who(r)} | ${what(r)} | ${int(r.written)} (${int(r.written / r.writeSecs)}/s) | ${readThen} | ${range(gotThen)}` +
          `${r.side === 'supergrep' ? ` + ${range(droppedThen)} dropped` : ''} (${behindTxt} not yet seen) | ` +
          `${ages.length ? `${age(Math.min(...ages))} – ${age(Math.max(...ages))}` : '–'} | ` +
          `${range(got)} / ${int(e)}${d.bad ? ` (${d.bad} clients with duplicates, disorder or unwanted lines)` : ''} | ` +
          `${r.side === 'frontail' ? '–' : int(dropped)} / ${int(unread)} / ${int(other)} | ${drained(r)} | ` +
          `${f1(r.cpuWrite.serverPct)}% / ${dr(r.cpuDrain.serverPct)} | ${f1(r.cpuWrite.benchPct)}% / ${dr(r.cpuDrain.benchPct)} | ` +
          `${f1(r.cpuWrite.othersPct)}% / ${dr(r.cpuDrain.othersPct)} | ` +
          `${f1(r.rss.before)} → ${f1(r.rss.endWrite)} → ${f1(r.rss.peak)} MiB${r.rss.capped ? ' (stopped at the cap)' : ''} |`
      );
    }
    p('');
  }
  return lines.join('\n');
}

(async () => {
  if (process.env.FT_REPORT_FROM) {
    // Only print the tables of an earlier run's FT_JSON.
    const saved = JSON.parse(fs.readFileSync(process.env.FT_REPORT_FROM, 'utf8'));
    Object.assign(CFG, saved.config);
    process.stdout.write(`${report(saved.results)}\n`);
    process.exit(0);
  }
  const results = [];
  try {
    for (const name of CFG.runs) results.push(await run(name));
  } finally {
    if (CFG.json) fs.writeFileSync(CFG.json, JSON.stringify({ config: CFG, results }, null, 1));
  }
  process.stdout.write(`${report(results)}\n`);
  process.exit(0);
})().catch((e) => {
  log(e.stack || String(e));
  process.exit(1);
});
