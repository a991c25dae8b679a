// Highlight patterns, run off the page's thread. They come from the user or from
// a link (`h=(a+)+b`), and a JS regex cannot be stopped once it runs: so none runs
// here. Each pattern has a worker of its own (highlight-worker.js); rows are shown
// with the hub's hits at once and get their highlights when the workers answer. One
// batch of lines is out at a time; a worker that has not answered within
// HL_BUDGET_MS is terminated and its pattern left out (said next to its field)
// until its text changes. Owns the workers and the lines waiting for them.

import { Queue } from "./state.js";
import { paintText } from "./text.js";

export const HL_COLOURS = 8;
const HL_MAX_CHARS = 10000; // a highlight pattern sees the start of longer lines only
const HL_BATCH = 200; // lines per message to the highlight workers
const HL_QUEUE_MAX = 2000; // lines waiting for highlights (the oldest go unmarked)

// What one pattern may take for one batch: a normal one needs a few ms, one that
// backtracks without end is stopped here (its worker terminated).
const HL_BUDGET_MS = 2000;

export const TOO_SLOW = "stopped: too slow on a line shown (nested repetition like (a+)+ backtracks without end)";

// Highlight patterns come from the user or from a link (`h=(a+)+b`), and a JS regex
// cannot be stopped once it runs: so none runs on this thread. Each pattern has a
// worker of its own (highlight-worker.js); rows are shown with the hub's hits at
// once and get their highlights when the workers answer. One batch of lines is out
// at a time; a worker that has not answered within HL_BUDGET_MS is terminated and
// its pattern left out (said next to its field) until its text changes.
const hl = {
  patterns: [], // [{source, flags, idx, row, worker}] running now
  key: "", // the patterns' sources and flags, to restart only on a change
  queue: new Queue(), // requests {el, text, spans} waiting for a batch
  batch: null, // {id, reqs, answers: Map pattern → ranges, timer}
  nextBatch: 1,
  tooSlow: new Set(), // `${flags}/${source}` of patterns that overran
  sendPending: false,
};

export function setHighlightPatterns(patterns) {
  const key = JSON.stringify(patterns.map((p) => [p.source, p.flags, p.idx]));
  if (key === hl.key) {
    // Same patterns: only their fields may have moved.
    patterns.forEach((p, i) => (hl.patterns[i].row = p.row));
    return;
  }
  hl.key = key;
  for (const p of hl.patterns) p.worker.terminate();
  endBatch();
  hl.queue.clear();
  hl.patterns = patterns;
  for (const p of patterns) {
    p.worker = new Worker("highlight-worker.js");
    p.worker.onmessage = (ev) => onHighlightAnswer(p, ev.data);
    p.worker.onerror = () => dropPattern(p, "this pattern failed");
    p.worker.postMessage({ pattern: p.source, flags: p.flags });
  }
}

/** Whether this pattern was stopped for overrunning (it stays off until edited). */
export function wasTooSlow(source, flags) {
  return hl.tooSlow.has(`${flags}/${source}`);
}

/** Asks for the highlights of `text`, shown in `el` (when there are patterns). */
export function requestHighlights(el, text, spans) {
  if (!hl.patterns.length) return;
  const req = { el, text, spans };
  el._hlReq = req;
  hl.queue.push(req);
  if (hl.queue.length > HL_QUEUE_MAX) hl.queue.shift();
  // Rows made in the same frame go out together.
  if (!hl.sendPending && !hl.batch) {
    hl.sendPending = true;
    queueMicrotask(sendBatch);
  }
}

function sendBatch() {
  hl.sendPending = false;
  if (hl.batch || !hl.patterns.length) return;
  const reqs = [];
  while (reqs.length < HL_BATCH && hl.queue.length) {
    const req = hl.queue.shift();
    if (req.el._hlReq === req) reqs.push(req); // else re-rendered since
  }
  if (!reqs.length) return;
  const id = hl.nextBatch++;
  const texts = reqs.map((r) => (r.text.length > HL_MAX_CHARS ? r.text.slice(0, HL_MAX_CHARS) : r.text));
  hl.batch = { id, reqs, answers: new Map(), timer: setTimeout(() => overran(id), HL_BUDGET_MS) };
  for (const p of hl.patterns) p.worker.postMessage({ batch: id, texts });
}

function onHighlightAnswer(p, m) {
  if (!hl.patterns.includes(p)) return;
  if (m.error !== undefined) {
    dropPattern(p, m.error);
    return;
  }
  const batch = hl.batch;
  if (!batch || m.batch !== batch.id) return;
  batch.answers.set(p, m.ranges);
  if (batch.answers.size >= hl.patterns.length) finishBatch();
}

/** The budget ran out: the patterns that have not answered are stopped. */
function overran(id) {
  if (!hl.batch || hl.batch.id !== id) return;
  for (const p of hl.patterns.filter((p) => !hl.batch.answers.has(p))) {
    if (hl.tooSlow.size > 100) hl.tooSlow.clear();
    hl.tooSlow.add(`${p.flags}/${p.source}`);
    dropPattern(p, TOO_SLOW);
  }
}

/** Stops one pattern and says why next to its field; the others go on. */
function dropPattern(p, message) {
  if (!hl.patterns.includes(p)) return;
  p.worker.terminate();
  hl.patterns = hl.patterns.filter((q) => q !== p);
  hl.key = JSON.stringify(hl.patterns.map((q) => [q.source, q.flags, q.idx]));
  const input = p.row.querySelector("input");
  if (input && input.value === p.source) {
    input.classList.add("invalid");
    p.row.querySelector(".field-error").textContent = message;
  }
  if (hl.batch && hl.batch.answers.size >= hl.patterns.length) finishBatch();
}

function finishBatch() {
  const batch = hl.batch;
  endBatch();
  batch.reqs.forEach((req, i) => {
    if (req.el._hlReq !== req) return; // re-rendered meanwhile
    req.el._hlReq = null;
    const marks = [];
    for (const [p, ranges] of batch.answers) {
      if (!hl.patterns.includes(p)) continue;
      const r = ranges[i] || [];
      for (let k = 0; k + 1 < r.length; k += 2) marks.push({ s: r[k], e: r[k + 1], hl: p.idx });
    }
    if (marks.length) paintText(req.el, req.text, req.spans, marks);
  });
  sendBatch();
}

function endBatch() {
  if (hl.batch) clearTimeout(hl.batch.timer);
  hl.batch = null;
}
