'use strict';
// The browser-less clients of benches/frontail.sh, all in this one process (forked by
// bench.js), so that both servers are read by the same kind of program:
//   - frontail: socket.io-client 2.3.0 (frontail 4.9.2 runs a socket.io 2.3.0 server),
//     websocket transport only, as frontail's page does; one socket per client on the
//     namespace frontail derives from its file list (md5), each 'line' event a line;
//   - supergrep: ws 8, one WebSocket per client on /ws, one subscription each
//     (`include: []` = every line, or `[FILTER]`); `lines` frames carry the lines,
//     `dropped` frames count what the hub did not deliver.
// Every received line is checked (sequence number, duplicates, order) and its latency
// (now - sgt, CLOCK_MONOTONIC) goes into one histogram for all clients.
//
// Driver -> here: {cmd:'start', side, port, ns, clients, filter, corpus}
//                 {cmd:'snapshot'}  {cmd:'final', written, drainMs}
// here -> driver: {ready}, {snapshot}, {result}, {error}

const { loadCorpus, nowNs, parseTag, expectedCount, Histogram, BitSet } = require('./common');

const T0 = Number(process.env.BENCH_T0);
const hist = new Histogram();
let clients = [];
let opts;
let corpus;

function newClient(i) {
  return {
    i,
    recv: 0,
    unique: 0,
    dup: 0,
    outOfOrder: 0,
    unexpected: 0,
    untagged: 0,
    dropped: 0,
    droppedFrames: 0,
    frames: 0,
    lastK: -1,
    lastLatMs: NaN,
    seen: new BitSet(),
    closed: false,
    ready: false,
  };
}

function onLine(c, text, filter) {
  const tag = parseTag(text);
  if (tag === null) {
    c.untagged++;
    return;
  }
  const [k, t] = tag;
  const latUs = (nowNs() - T0 - t) / 1000;
  hist.add(latUs);
  c.lastLatMs = latUs / 1000;
  c.recv++;
  if (c.seen.testAndSet(k)) c.dup++;
  else c.unique++;
  if (k <= c.lastK) c.outOfOrder++;
  c.lastK = k;
  if (filter && !filter.test(text)) c.unexpected++;
}

function connectFrontail(c, done, fail) {
  const io = require('socket.io-client');
  const s = io(`http://127.0.0.1:${opts.port}/${opts.ns}`, {
    path: '/socket.io',
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
  });
  s.on('connect', () => {
    c.ready = true;
    done();
  });
  s.on('connect_error', (e) => fail(`frontail connect: ${e}`));
  s.on('line', (line) => {
    c.frames++;
    onLine(c, line, null);
  });
  s.on('disconnect', () => {
    c.closed = true;
  });
  c.sock = s;
}

function connectSupergrep(c, done, fail) {
  const WebSocket = require('ws');
  const filter = opts.filter ? new RegExp(opts.filter) : null;
  const ws = new WebSocket(`ws://127.0.0.1:${opts.port}/ws`, { perMessageDeflate: false });
  ws.on('open', () => {
    ws.send(
      JSON.stringify({
        type: 'subscribe',
        id: 'a',
        include: opts.filter ? [opts.filter] : [],
      })
    );
  });
  ws.on('message', (data) => {
    const m = JSON.parse(data);
    switch (m.type) {
      case 'lines':
        c.frames++;
        for (const l of m.lines) onLine(c, l.text, filter);
        break;
      case 'dropped':
        c.dropped += m.count;
        c.droppedFrames++;
        break;
      case 'subscribed':
        c.ready = true;
        done();
        break;
      case 'error':
        fail(`supergrep error: ${JSON.stringify(m)}`);
        break;
      default:
    }
  });
  ws.on('error', (e) => fail(`supergrep ws: ${e}`));
  ws.on('close', () => {
    c.closed = true;
  });
  c.sock = ws;
}

function start(o) {
  opts = o;
  corpus = loadCorpus(o.corpus);
  clients = Array.from({ length: o.clients }, (_, i) => newClient(i));
  let readyCount = 0;
  const done = () => {
    readyCount++;
    if (readyCount === clients.length) process.send({ ready: true });
  };
  const fail = (e) => process.send({ error: String(e) });
  for (const c of clients) {
    if (o.side === 'frontail') connectFrontail(c, done, fail);
    else connectSupergrep(c, done, fail);
  }
}

function perClient() {
  return clients.map((c) => ({
    recv: c.recv,
    unique: c.unique,
    dup: c.dup,
    outOfOrder: c.outOfOrder,
    unexpected: c.unexpected,
    untagged: c.untagged,
    dropped: c.dropped,
    droppedFrames: c.droppedFrames,
    frames: c.frames,
    lastLatMs: c.lastLatMs,
    closed: c.closed,
  }));
}

function final(written, drainMs) {
  const expected = expectedCount(corpus.lines, opts.filter, written);
  const t0 = Date.now();
  const complete = (c) => c.unique + c.dropped >= expected;
  const check = () => {
    const all = clients.every(complete);
    if (all || Date.now() - t0 >= drainMs || clients.every((c) => c.closed)) {
      const drainSecs = (Date.now() - t0) / 1000;
      process.send({
        result: {
          expected,
          drainSecs,
          complete: all,
          clients: perClient(),
          latency: hist.summary(),
        },
      });
      for (const c of clients) {
        if (opts.side === 'frontail') c.sock.close();
        else c.sock.terminate();
      }
      setTimeout(() => process.exit(0), 100);
    } else {
      setTimeout(check, 20);
    }
  };
  check();
}

process.on('message', (m) => {
  if (m.cmd === 'start') start(m);
  else if (m.cmd === 'snapshot') process.send({ snapshot: perClient() });
  else if (m.cmd === 'final') final(m.written, m.drainMs);
});
