// The view of lines, built to stay responsive and flat in memory at thousands of
// matches per second:
//   - incoming lines are queued and shown at most once per animation frame (at most
//     every 100 ms when they come fast);
//   - the view keeps at most `cap` lines, in chunks that have DOM rows only near the
//     viewport; rows that leave are reused for new lines;
//   - while paused (or scrolled up, or reading a line's context) nothing on screen
//     moves: new lines are held up to the cap, and counted beyond it.
// Owns the chunks, rows and their pool, the counters, scrolling and pause.
// Also the count of new lines in the title while the tab is hidden.

import { $, filterKey, held, state, view } from "./state.js";
import { basename, formatTime } from "./format.js";
import { renderText } from "./text.js";
import { closeContext } from "./context.js";
import { countForGraph, sampleClock } from "./graph.js";
import { updateEmpty } from "./picker.js";

const POOL_MAX = 500; // rows kept for reuse

export function onLines(lines) {
  if (state.inflight.some((r) => r.fresh)) return; // the old filter's last lines
  let fresh = 0;
  const last = state.lastSeq;
  for (const line of lines) {
    const stream = `${line.host}:${line.path}`;
    const seen = last.get(stream);
    if (seen !== undefined && line.seq <= seen) continue;
    last.set(stream, line.seq);
    line.stream = stream;
    countForGraph(line.ts);
    state.pending.push(line);
    fresh++;
  }
  if (!fresh) return;
  if (lines.length) sampleClock(lines[lines.length - 1].ts);
  if (held()) state.held += fresh;
  if (document.hidden) {
    state.hiddenNew += fresh;
    scheduleTitle();
  }
  trimPending();
  schedule();
}

export function enqueue(item) {
  state.pending.push(item);
  trimPending();
  schedule();
}

/** Never hold more than the cap. While the view is held, what falls out is counted
 *  as skipped; otherwise it is what the cap would have let go anyway (a hidden tab
 *  renders nothing until it is shown again). */
export function trimPending() {
  const over = state.pending.length - view.cap;
  if (over > 0) {
    const lines = state.pending.dropFront(over);
    if (held()) {
      state.skipped += lines;
      state.held = Math.max(0, state.held - lines);
      countersDirty = true;
    }
  }
}

export function onDropped(count) {
  state.dropped += count;
  countForGraph(null, count);
  // One note for a run of them, not one per message.
  const last = state.pending.peekLast();
  if (last && last.kind === "note" && last.dropped) {
    last.dropped += count;
    last.text = dropNote(last.dropped);
    schedule();
  } else enqueue({ kind: "note", dropped: count, text: dropNote(count) });
}

function dropNote(count) {
  return `… ${count} matches dropped by the hub (this tab read too slowly)`;
}

function schedule() {
  if (state.rafPending) return;
  state.rafPending = true;
  requestAnimationFrame(flush);
}

let countersDirty = true;

/** The counters and notices are redone in the next frame. */
export function refresh() {
  countersDirty = true;
  schedule();
}

// The lines kept (up to the cap) live in chunks of CHUNK lines: a chunk is a <div>
// holding its lines as data, and it has rows in the DOM only while it is near the
// viewport ("live"); elsewhere it is an empty block of the same height. So the DOM
// holds a few hundred rows whatever the cap, a line that scrolls by unseen costs no
// layout or paint, and letting the oldest lines go touches only the first chunk.
const CHUNK = 32;

// A few lines are shown in the next frame. When more come at once, the view is
// updated at most every BUSY_FLUSH_MS: nobody reads thousands of lines a second one
// frame at a time, and most of a big batch lands in chunks that never get rows.
const QUIET_LINES = 16;

const BUSY_FLUSH_MS = 100;
let rowHeight = 0; // px: the line height of #lines (set by startView())
let viewHeight = 800; // px: the height of #lines (kept up to date by startView())

/** Starts the view: chunks get rows near the viewport, the line height is measured
 *  now and the view's height from now on. */
export function startView() {
  const box = $("lines");
  state.observer = new IntersectionObserver(onChunksSeen, { root: box, rootMargin: "100% 0px" });
  rowHeight = parseFloat(getComputedStyle(box).lineHeight) || 17.4;
  new ResizeObserver((entries) => {
    for (const e of entries) viewHeight = e.contentRect.height || viewHeight;
  }).observe(box);
}

/** Lines wrap, or not, as `view.wrap` says. */
export function rewrap() {
  const box = $("lines");
  box.classList.toggle("wrap", view.wrap);
  // Heights measured with the other setting no longer hold.
  for (const chunk of box.children) {
    if (!chunk._live) {
      chunk._height = 0;
      chunk.style.height = `${estimatedHeight(chunk)}px`;
    }
  }
  if (state.stick) scrollToBottom();
}

function newChunk() {
  const chunk = document.createElement("div");
  chunk.className = "chunk";
  chunk._items = [];
  chunk._live = false;
  chunk._height = 0; // measured when its rows were last let go; 0: estimate
  state.observer.observe(chunk);
  return chunk;
}

function estimatedHeight(chunk) {
  return chunk._height || chunk._items.length * (rowHeight || 17.4);
}

function materialize(chunk) {
  if (chunk._live) return;
  const frag = document.createDocumentFragment();
  for (const item of chunk._items) frag.append(makeRow(item));
  chunk.style.height = "";
  chunk.append(frag);
  chunk._live = true;
}

/** `height`: the chunk's height now, measured before any chunk changed. */
function dematerialize(chunk, height) {
  if (!chunk._live) return;
  for (const row of chunk.children) if (row._ctx) return; // someone reads it
  chunk._height = height;
  for (const row of chunk.children) recycle(row);
  chunk.replaceChildren();
  chunk.style.height = `${chunk._height}px`;
  chunk._live = false;
}

function onChunksSeen(entries) {
  let grew = false;
  // Layout is clean now: measure everything first, then change things.
  const gone = entries
    .filter((e) => !e.isIntersecting && e.target._live && e.target.isConnected)
    .map((e) => [e.target, e.boundingClientRect.height]);
  for (const [chunk, height] of gone) dematerialize(chunk, height);
  for (const e of entries) {
    if (e.isIntersecting && !e.target._live && e.target.isConnected) {
      materialize(e.target);
      grew = true;
    }
  }
  if (grew && state.stick && !held()) scrollToBottom();
}

/** Gives rows to the last chunks, enough to fill the viewport twice over. */
function materializeTail() {
  const box = $("lines");
  let need = Math.max(64, Math.ceil((viewHeight * 2) / (rowHeight || 17.4)));
  for (let c = box.lastElementChild; c && need > 0; c = c.previousElementSibling) {
    materialize(c);
    need -= c._items.length;
  }
}

let lastFlush = 0;

function flush(now) {
  state.rafPending = false;
  const box = $("lines");
  if (!held() && state.pending.length > QUIET_LINES && now - lastFlush < BUSY_FLUSH_MS) {
    schedule();
    return;
  }
  if (!held() && state.pending.length) {
    lastFlush = now;
    let chunk = box.lastElementChild;
    const resized = new Set();
    let n = 0;
    while (state.pending.length) {
      if (!chunk || chunk._items.length >= CHUNK) {
        chunk = newChunk();
        box.append(chunk);
      }
      const item = state.pending.shift();
      chunk._items.push(item);
      if (chunk._live) chunk.append(makeRow(item));
      else resized.add(chunk);
      n++;
    }
    state.rows += n;
    evict();
    if (state.stick) materializeTail();
    for (const c of resized) {
      if (!c._live && c.isConnected) {
        c._height = 0;
        c.style.height = `${estimatedHeight(c)}px`;
      }
    }
    if (state.stick) scrollToBottom();
    countersDirty = true;
  }
  if (!held()) state.held = 0;
  updateCounters();
}

export function evict() {
  const box = $("lines");
  while (state.rows > view.cap) {
    const chunk = box.firstElementChild;
    if (!chunk) break;
    const over = state.rows - view.cap;
    const len = chunk._items.length;
    if (len <= over) {
      // The whole chunk goes at once.
      state.observer.unobserve(chunk);
      chunk.remove();
      if (chunk._live) for (const row of chunk.children) recycle(row);
      chunk.replaceChildren();
      chunk._items = [];
      state.rows -= len;
    } else {
      chunk._items.splice(0, over);
      if (chunk._live) {
        for (let i = 0; i < over; i++) {
          const row = chunk.firstElementChild;
          row.remove();
          recycle(row);
        }
      } else {
        chunk._height = 0;
        chunk.style.height = `${estimatedHeight(chunk)}px`;
      }
      state.rows -= over;
    }
  }
}

/** Every line kept (shown or not), oldest first. */
export function* allItems() {
  for (const chunk of $("lines").children) yield* chunk._items;
}

/** The rows in the DOM now. */
function* liveRows() {
  for (const chunk of $("lines").children) if (chunk._live) yield* chunk.children;
}

function recycle(row) {
  if (row._ctx) closeContext(row);
  row._item = null;
  if (state.pool.length < POOL_MAX) state.pool.push(row);
}

let lastCounters = "";

export function updateCounters() {
  const h = held();
  const key = `${state.rows}|${state.held}|${state.skipped}|${state.dropped}|${h}|${state.paused}`;
  if (key === lastCounters && !countersDirty) return;
  lastCounters = key;
  countersDirty = false;
  $("count").textContent = `${state.rows} line${state.rows === 1 ? "" : "s"}`;
  const nc = $("new-count");
  const pendingLines = state.held;
  nc.hidden = !(h && pendingLines > 0);
  nc.textContent = `${pendingLines} new`;
  // Room below the last line for the notices, so that they cover nothing.
  const sk = $("skipped");
  sk.hidden = state.skipped === 0;
  sk.textContent = `${state.skipped} skipped`;
  const dr = $("dropped");
  dr.hidden = state.dropped === 0;
  dr.textContent = `${state.dropped} dropped by the hub`;
  $("lines").classList.toggle("noticed", !(nc.hidden && sk.hidden && dr.hidden));
  updateEmpty();
  const pause = $("pause");
  pause.textContent = state.paused ? "Resume" : "Pause";
  pause.setAttribute("aria-pressed", String(state.paused));
  setHeldReason();
}

export function setHeldReason() {
  let text = "";
  if (state.paused) text = "paused";
  else if (!state.stick) text = "holding: scrolled up (scroll to the bottom or press space to follow)";
  else if (state.reading.size) text = "holding while a context is open (close it, or space to follow)";
  const idle = state.inflight.length === 0 && !state.subTimer && state.connected;
  if (idle && state.shownKey !== filterKey()) {
    text = text ? `${text} · ` : "";
    text += state.shownKey === null ? "no filter applied yet (fix the pattern)" : "filter not applied (fix the pattern): showing the previous one";
  }
  const el = $("held-reason");
  if (el.textContent !== text) el.textContent = text;
}

// Stable colour per host: a hue from the name's hash, in a class of its own.
const hostSheet = new CSSStyleSheet();

document.adoptedStyleSheets = [...document.adoptedStyleSheets, hostSheet];
const hostClasses = new Map();

function hostClass(host) {
  let cls = hostClasses.get(host);
  if (cls) return cls;
  let h = 2166136261;
  for (let i = 0; i < host.length; i++) {
    h ^= host.charCodeAt(i);
    h = Math.imul(h, 16777619);
  }
  const hue = (h >>> 0) % 360;
  cls = `hc${hostClasses.size}`;
  if (hostClasses.size < 5000) {
    hostClasses.set(host, cls);
    hostSheet.insertRule(`.${cls} { --h: ${hue}; }`, hostSheet.cssRules.length);
  } else cls = "";
  return cls;
}

function newRow() {
  const row = document.createElement("div");
  const ts = document.createElement("span");
  ts.className = "ts";
  const host = document.createElement("span");
  const file = document.createElement("span");
  file.className = "file";
  const text = document.createElement("span");
  text.className = "text";
  row.append(ts, host, file, text);
  row._ctx = null;
  return row;
}

function makeRow(item) {
  const row = state.pool.pop() || newRow();
  row._item = item;
  const [ts, host, file, text] = row.children;
  if (item.kind === "marker") {
    row.className = "line marker";
    ts.textContent = formatTime(item.ts);
    ts.title = item.ts;
    host.textContent = "";
    file.textContent = "";
    text.textContent = item.text;
  } else if (item.kind === "note") {
    row.className = "line note";
    ts.textContent = "";
    ts.title = "";
    host.textContent = "";
    file.textContent = "";
    text.textContent = item.text;
  } else {
    row.className = "line";
    ts.textContent = formatTime(item.ts);
    ts.title = item.ts;
    host.className = `host ${hostClass(item.host)}`;
    host.textContent = item.host;
    const name = basename(item.path);
    file.textContent = name;
    file.title = item.path;
    // The prefix's width in characters, for the hanging indent of wrapped lines.
    row.style.setProperty("--pre", ts.textContent.length + item.host.length + name.length + 1);
    renderText(text, item.text, item.spans);
  }
  return row;
}

export function clearView() {
  const box = $("lines");
  for (const chunk of box.children) {
    state.observer.unobserve(chunk);
    if (chunk._live) for (const row of chunk.children) recycle(row);
    chunk.replaceChildren();
    chunk._items = [];
  }
  box.replaceChildren();
  state.rows = 0;
  state.pending.clear();
  state.held = 0;
  state.skipped = 0;
  state.dropped = 0;
  state.contexts.clear();
  state.reading.clear();
  countersDirty = true;
  schedule();
}

/** Re-renders the text of the lines shown (after highlight patterns change). */
export function rerenderHighlights() {
  for (const row of liveRows()) {
    const item = row._item;
    if (item && item.kind === undefined) renderText(row.children[3], item.text, item.spans);
  }
}

let autoTop = 0; // where the view last scrolled itself to

function scrollToBottom() {
  const box = $("lines");
  box.scrollTop = box.scrollHeight;
  autoTop = box.scrollTop;
}

/** Following stops when the user scrolls up, and starts again at the bottom. Only
 *  a move up from where the view put itself counts: rows rendered late (and growing
 *  below) must not stop it. */
export function onScroll() {
  const box = $("lines");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 24;
  let stick = state.stick;
  if (atBottom) stick = true;
  else if (box.scrollTop < autoTop - 4 || !state.stick) stick = false;
  autoTop = Math.min(autoTop, box.scrollTop);
  if (stick !== state.stick) {
    state.stick = stick;
    box.classList.toggle("stuck", stick);
    if (stick && !state.paused) state.held = 0;
    countersDirty = true;
    schedule();
  }
}

export function setPaused(p) {
  if (!p) {
    follow();
    return;
  }
  state.paused = true;
  countersDirty = true;
  schedule();
}

export function follow() {
  for (const row of [...state.reading]) closeContext(row);
  state.paused = false;
  state.stick = true;
  state.held = 0;
  $("lines").classList.add("stuck");
  scrollToBottom();
  countersDirty = true;
  schedule();
}

let titleTimer = 0;

function scheduleTitle() {
  if (titleTimer) return;
  titleTimer = setTimeout(() => {
    titleTimer = 0;
    document.title = document.hidden && state.hiddenNew ? `(${state.hiddenNew}) supergrep` : "supergrep";
  }, 500);
}
