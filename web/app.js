// supergrep web UI: one WebSocket to the hub (protocol v1, see README), one
// subscription ("main") carrying this tab's filters (the hub does the filtering),
// and a view built to stay responsive and flat in memory at thousands of matches
// per second:
//   - incoming lines are queued in JS and shown at most once per animation frame
//     (at most every 100 ms when they come fast);
//   - the view keeps at most `cap` lines, in chunks that have DOM rows only near the
//     viewport; rows that leave are reused for new lines;
//   - while paused (or scrolled up, or reading a line's context) nothing on screen
//     moves: new lines are held up to the cap, and counted beyond it.
// Log text only ever reaches the DOM as text nodes (textContent, createTextNode).
// Plain modern JavaScript, no build step, nothing loaded from elsewhere.

import { $, SUB_ID, TOKEN_KEY, clampCap, filterKey, held, readUrl, state, view, writeUrl } from "./state.js";
import { basename, formatTime } from "./format.js";
import { HL_COLOURS, TOO_SLOW, setHighlightPatterns, wasTooSlow } from "./highlight.js";
import { renderText } from "./text.js";
import { closeContext, closeLastContext, onContext, onLinesClick, showContextNote } from "./context.js";
import { countForGraph, drawGraph, onMarker, resetGraph, sampleClock, themeChanged } from "./graph.js";
import { onPickerChange, pollStreams, renderPicker, setStreams, updateEmpty } from "./picker.js";

const FRESH_BACKLOG = 500; // recent history shown at once for a new filter
const RESUBSCRIBE_DEBOUNCE_MS = 300;
const POOL_MAX = 500; // rows kept for reuse

const KINDS = {
  include: { box: "includes", placeholder: "error|fatal (empty: all)" },
  exclude: { box: "excludes", placeholder: "healthcheck" },
  highlight: { box: "highlights", placeholder: "user=\\w+ (JS regex)" },
};

function buildFields() {
  for (const kind of Object.keys(KINDS)) {
    const box = $(KINDS[kind].box);
    box.replaceChildren();
    const values = view[kind].length ? view[kind] : [""];
    values.forEach((v) => addField(kind, v, false));
  }
  renumberFields();
}

function addField(kind, value, focus) {
  const box = $(KINDS[kind].box);
  const row = document.createElement("div");
  row.className = "field";
  row.dataset.kind = kind;
  const input = document.createElement("input");
  input.type = "text";
  input.className = "pattern";
  input.dataset.kind = kind;
  input.spellcheck = false;
  input.autocomplete = "off";
  input.placeholder = KINDS[kind].placeholder;
  input.value = value;
  input.addEventListener("input", onFilterInput);
  input.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") input.blur();
    if (ev.key === "Enter" && state.subTimer) subscribe(); // now, not in 300 ms
  });
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "remove";
  remove.textContent = "×";
  remove.title = "Remove this pattern";
  remove.setAttribute("aria-label", "remove this pattern");
  remove.addEventListener("click", () => {
    if (box.children.length > 1) row.remove();
    else input.value = "";
    renumberFields();
    onFilterInput();
  });
  const error = document.createElement("span");
  error.className = "field-error";
  error.setAttribute("role", "alert");
  if (kind === "highlight") {
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    row.append(swatch);
  }
  row.append(input, remove, error);
  box.append(row);
  if (focus) input.focus();
  return input;
}

/** Stable ids for the first field of each kind (#include, #exclude, #highlight),
 *  its error element (#include-error, …), and highlight colours by position. */
function renumberFields() {
  for (const kind of Object.keys(KINDS)) {
    const rows = [...$(KINDS[kind].box).children];
    rows.forEach((row, i) => {
      const input = row.querySelector("input");
      const error = row.querySelector(".field-error");
      input.id = i === 0 ? kind : "";
      error.id = i === 0 ? `${kind}-error` : "";
      input.setAttribute("aria-label", `${kind} pattern ${i + 1}`);
      row.querySelector(".remove").hidden = rows.length === 1 && !input.value;
      const swatch = row.querySelector(".swatch");
      if (swatch) swatch.className = `swatch hl${i % HL_COLOURS}`;
    });
  }
}

function fieldValues(kind) {
  return [...$(KINDS[kind].box).querySelectorAll("input.pattern")].map((i) => i.value);
}

function onFilterInput() {
  const before = filterKey();
  view.include = fieldValues("include");
  view.exclude = fieldValues("exclude");
  view.highlight = fieldValues("highlight");
  view.icase = $("icase").checked;
  renumberFields();
  compileHighlights();
  writeUrl();
  if (filterKey() !== before) scheduleSubscribe();
}

/** Highlight patterns: JS RegExp, each its own colour. Only their syntax is checked
 *  here; they run in workers (see "highlighting" below). */
function compileHighlights() {
  const patterns = [];
  const rows = [...$("highlights").children];
  rows.forEach((row, i) => {
    const input = row.querySelector("input");
    const error = row.querySelector(".field-error");
    input.classList.remove("invalid");
    error.textContent = "";
    if (!input.value) return;
    const flags = `g${view.icase ? "i" : ""}`;
    let ok = null;
    let message = "";
    for (const f of [`${flags}u`, flags]) {
      try {
        new RegExp(input.value, f); // compiling runs nothing: safe here
        ok = f;
        break;
      } catch (e) {
        message = e.message;
      }
    }
    if (ok === null) message = message || "invalid pattern";
    else if (wasTooSlow(input.value, ok)) message = TOO_SLOW;
    else {
      patterns.push({ source: input.value, flags: ok, idx: i % HL_COLOURS, row });
      return;
    }
    input.classList.add("invalid");
    error.textContent = message;
  });
  setHighlightPatterns(patterns);
}

export function scheduleSubscribe() {
  clearTimeout(state.subTimer);
  state.subTimer = setTimeout(subscribe, RESUBSCRIBE_DEBOUNCE_MS);
}

function subscribe() {
  clearTimeout(state.subTimer);
  state.subTimer = 0;
  const ws = state.ws;
  if (!ws || ws.readyState !== WebSocket.OPEN || !state.connected) return;
  const key = filterKey();
  const fresh = key !== state.shownKey;
  const msg = {
    type: "subscribe",
    id: SUB_ID,
    include: view.include.filter(Boolean),
    exclude: view.exclude.filter(Boolean),
    ignore_case: view.icase,
    // Same filter after a reconnect: ask for enough to fill the gap; lines already
    // shown are recognised by their seq and left out.
    backlog: fresh ? FRESH_BACKLOG : Math.min(view.cap, 5000),
  };
  if (view.streams.length) msg.streams = [...view.streams];
  state.inflight.push({ key, fresh });
  ws.send(JSON.stringify(msg));
}

function onSubscribed() {
  const req = state.inflight.shift();
  clearHubErrors();
  if (!req) return;
  if (req.fresh || req.key !== state.shownKey) {
    // From here on every `lines` of this id is the new filter (the hub sends the
    // backlog right after `subscribed`).
    clearView();
    state.lastSeq.clear();
    resetGraph();
    state.shownKey = req.key;
  }
  setHeldReason();
}

function onError(m) {
  if (m.id === SUB_ID) state.inflight.shift();
  if (m.id && m.id.startsWith("c") && state.contexts.has(m.id)) {
    const row = state.contexts.get(m.id);
    state.contexts.delete(m.id);
    if (row._ctx && row._ctxId === m.id) showContextNote(row._ctx, m.message);
    return;
  }
  if (m.code === "invalid_regex" && m.id === SUB_ID) {
    showPatternError(m.message, m.pattern);
    return;
  }
  if (m.code === "unauthorized") {
    askToken();
    return;
  }
  showGeneralError(m.message);
}

function clearHubErrors() {
  for (const kind of ["include", "exclude"]) {
    for (const row of $(KINDS[kind].box).children) {
      row.querySelector("input").classList.remove("invalid");
      row.querySelector(".field-error").textContent = "";
    }
  }
  showGeneralError("");
}

/** Puts the hub's message next to the field(s) holding the pattern it names
 *  (`invalid pattern "a(" at character 2: unclosed group`). */
function showPatternError(message, pattern) {
  clearHubErrors();
  let shown = false;
  for (const kind of ["include", "exclude"]) {
    for (const row of $(KINDS[kind].box).children) {
      const input = row.querySelector("input");
      // The hub names the failing pattern (older hubs only in the message).
      const failed = pattern !== undefined ? input.value === pattern : message.includes(JSON.stringify(input.value));
      if (input.value && failed) {
        input.classList.add("invalid");
        row.querySelector(".field-error").textContent = message;
        shown = true;
      }
    }
  }
  if (!shown) {
    const row = $("includes").firstElementChild;
    row.querySelector("input").classList.add("invalid");
    row.querySelector(".field-error").textContent = message;
  }
  setHeldReason();
}

function showGeneralError(text) {
  const el = $("general-error");
  el.textContent = text;
  el.hidden = !text;
}

function wsUrl() {
  const u = new URL("ws", location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  u.search = "";
  if (state.token) u.searchParams.set("token", state.token);
  u.hash = "";
  return u.href;
}

export function apiUrl(path) {
  const u = new URL(path, location.href);
  if (state.token) u.searchParams.set("token", state.token);
  return u.href;
}

function setStatus(s, text, title = text) {
  const el = $("status");
  el.dataset.state = s;
  el.textContent = text;
  el.title = title;
}

function connect() {
  clearTimeout(state.reconnectTimer);
  setStatus("connecting", state.attempt ? "reconnecting…" : "connecting…");
  let ws;
  try {
    ws = new WebSocket(wsUrl());
  } catch (e) {
    setStatus("disconnected", `cannot connect: ${e.message}`);
    return;
  }
  state.ws = ws;
  state.connected = false;
  state.inflight = [];
  let greeted = false;
  ws.onmessage = (ev) => {
    let m;
    try {
      m = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (m.type === "hello") greeted = true;
    onMessage(m);
  };
  ws.onclose = () => {
    if (state.ws !== ws) return;
    state.ws = null;
    state.connected = false;
    if (!greeted) {
      // Refused before it began: find out whether it is the token.
      fetch(apiUrl("api/streams"), { cache: "no-store" })
        .then((r) => {
          if (r.status === 401) askToken();
          else retry();
        })
        .catch(retry);
    } else retry();
  };
}

function retry() {
  if (state.ws) return;
  // Exponential backoff with jitter: 0.5 s, 1 s, 2 s … 30 s, each ±50%.
  const base = Math.min(30000, 500 * 2 ** Math.min(state.attempt, 6));
  const delay = base * (0.5 + Math.random());
  state.attempt++;
  setStatus("disconnected", `disconnected; retrying in ${Math.ceil(delay / 1000)} s`);
  clearTimeout(state.reconnectTimer);
  state.reconnectTimer = setTimeout(connect, delay);
}

export function askToken() {
  setStatus("unauthorized", "this hub wants a token");
  const dialog = $("token-dialog");
  if (!dialog.open) {
    $("token-input").value = "";
    dialog.showModal();
  }
}

function onHello(m) {
  state.connected = true;
  state.connections++;
  state.attempt = 0;
  setStatus("connected", "connected", `connected · ${m.server || "supergrep"}`);
  if (state.boot !== null && m.boot !== state.boot) {
    // The hub restarted: seq numbering starts again. Keep what is on screen.
    state.lastSeq.clear();
    if (state.rows) enqueue({ kind: "note", text: "the hub restarted" });
  }
  state.boot = m.boot || "";
  setStreams(m.streams || []);
  subscribe();
  pollStreams();
}

function onMessage(m) {
  switch (m.type) {
    case "lines":
      if (m.id === SUB_ID) onLines(m.lines);
      break;
    case "hello":
      onHello(m);
      break;
    case "subscribed":
      if (m.id === SUB_ID) onSubscribed();
      break;
    case "dropped":
      if (m.id === SUB_ID) onDropped(m.count);
      break;
    case "streams":
      for (const id of m.removed || []) state.streams.delete(id);
      for (const s of m.added || []) state.streams.set(s.id, s);
      renderPicker();
      break;
    case "marker":
      onMarker(m);
      break;
    case "context":
      onContext(m);
      break;
    case "error":
      onError(m);
      break;
    default:
      break;
  }
}

function onLines(lines) {
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
function trimPending() {
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

function onDropped(count) {
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
let rowHeight = 0; // px: the line height of #lines (set by measureView())
let viewHeight = 800; // px: the height of #lines (kept up to date by measureView())

/** Measures the line height now and the view's height from now on. */
function measureView() {
  rowHeight = parseFloat(getComputedStyle($("lines")).lineHeight) || 17.4;
  new ResizeObserver((entries) => {
    for (const e of entries) viewHeight = e.contentRect.height || viewHeight;
  }).observe($("lines"));
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

function evict() {
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
function* allItems() {
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

function updateCounters() {
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

function setHeldReason() {
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

function clearView() {
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
function rerenderHighlights() {
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
function onScroll() {
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

function setPaused(p) {
  if (!p) {
    follow();
    return;
  }
  state.paused = true;
  countersDirty = true;
  schedule();
}

function follow() {
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

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    state.hiddenNew = 0;
  } else {
    state.hiddenNew = 0;
    document.title = "supergrep";
    refresh();
    drawGraph();
    pollStreams();
  }
});

function download() {
  const out = [];
  for (const it of allItems()) {
    if (it.kind === "marker") out.push(`--- ${it.ts} marker: ${it.text}`);
    else if (it.kind === "note") out.push(`--- ${it.text}`);
    else out.push(`${it.ts} ${it.host}:${it.path}:${it.text}`);
  }
  const blob = new Blob([out.join("\n") + (out.length ? "\n" : "")], { type: "text/plain" });
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  a.download = `supergrep-${stamp}.log`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10000);
}

function clearLines() {
  clearView();
}

function typing(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || target.closest("input, textarea, select, dialog"))
  );
}

function onKey(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (ev.key === "Escape") {
    if (narrow.matches && !$("picker").hidden) showPicker(false);
    else if (!typing(ev.target)) closeLastContext();
    return;
  }
  if (typing(ev.target)) return;
  if (ev.key === "/") {
    ev.preventDefault();
    const input = $("include");
    input.focus();
    input.select();
  } else if (ev.key === " ") {
    if (ev.target instanceof HTMLElement && ev.target.closest("button, a, summary")) return;
    ev.preventDefault();
    if (!state.paused && held()) follow();
    else setPaused(!state.paused);
  } else if (ev.key === "c") {
    ev.preventDefault();
    clearLines();
  } else if (ev.key === "End") {
    ev.preventDefault();
    follow();
  }
}

// Light or dark: the OS setting, unless chosen here (kept in localStorage).
const THEME_KEY = "supergrep.theme";

const osDark = matchMedia("(prefers-color-scheme: dark)");

function chosenTheme() {
  try {
    const t = localStorage.getItem(THEME_KEY);
    return t === "light" || t === "dark" ? t : null;
  } catch {
    return null; // storage refused: the OS setting then
  }
}

function applyTheme() {
  const chosen = chosenTheme();
  const root = document.documentElement;
  if (chosen) root.dataset.theme = chosen;
  else delete root.dataset.theme;
  const dark = chosen ? chosen === "dark" : osDark.matches;
  const btn = $("theme");
  btn.textContent = dark ? "☾" : "☀";
  btn.title = `${dark ? "Dark" : "Light"} (${chosen ? "chosen here" : "as the OS has it"}): switch to ${dark ? "light" : "dark"}`;
  btn.setAttribute("aria-label", `switch to the ${dark ? "light" : "dark"} theme`);
  themeChanged();
}

function toggleTheme() {
  const chosen = chosenTheme();
  const dark = chosen ? chosen === "dark" : osDark.matches;
  try {
    localStorage.setItem(THEME_KEY, dark ? "light" : "dark");
  } catch {
    // not kept: this page only
    document.documentElement.dataset.theme = dark ? "light" : "dark";
  }
  if (chosenTheme()) applyTheme();
}

// Below this width the picker opens over the lines (see style.css).
const narrow = matchMedia("(max-width: 800px)");

function showPicker(open) {
  $("picker").hidden = !open;
  $("picker-toggle").setAttribute("aria-expanded", String(open));
}

function applyToggles() {
  $("icase").checked = view.icase;
  $("wrap").checked = view.wrap;
  $("cap").value = String(view.cap);
  $("lines").classList.toggle("wrap", view.wrap);
}

async function loadUiSettings() {
  try {
    const r = await fetch(apiUrl("api/ui"), { cache: "no-store" });
    if (!r.ok) return;
    const ui = await r.json();
    if (typeof ui.source_url === "string" && ui.source_url) {
      state.sourceUrl = ui.source_url;
      rerenderHighlights();
    }
    if (Array.isArray(ui.log_sets)) {
      state.logSets = ui.log_sets.filter((s) => s && typeof s.name === "string" && Array.isArray(s.paths));
      renderPicker();
    }
  } catch {
    // no links to sources then
  }
}

function start() {
  state.observer = new IntersectionObserver(onChunksSeen, {
    root: $("lines"),
    rootMargin: "100% 0px",
  });
  applyTheme();
  $("theme").addEventListener("click", toggleTheme);
  osDark.addEventListener("change", applyTheme);
  readUrl();
  buildFields();
  applyToggles();
  measureView();
  compileHighlights();

  for (const btn of document.querySelectorAll("button.add")) {
    btn.addEventListener("click", () => {
      addField(btn.dataset.add, "", true);
      renumberFields();
    });
  }
  $("icase").addEventListener("change", () => {
    onFilterInput();
    rerenderHighlights();
  });
  let hlTimer = 0;
  const rerenderSoon = () => {
    clearTimeout(hlTimer);
    hlTimer = setTimeout(rerenderHighlights, 150);
  };
  $("highlights").addEventListener("input", rerenderSoon);
  $("highlights").addEventListener("click", (ev) => {
    if (ev.target.closest(".remove")) rerenderSoon();
  });
  $("wrap").addEventListener("change", () => {
    view.wrap = $("wrap").checked;
    $("lines").classList.toggle("wrap", view.wrap);
    // Heights measured with the other setting no longer hold.
    for (const chunk of $("lines").children) {
      if (!chunk._live) {
        chunk._height = 0;
        chunk.style.height = `${estimatedHeight(chunk)}px`;
      }
    }
    if (state.stick) scrollToBottom();
    writeUrl();
  });
  $("cap").addEventListener("change", () => {
    view.cap = clampCap(Number($("cap").value));
    $("cap").value = String(view.cap);
    trimPending();
    evict();
    refresh();
    writeUrl();
  });
  $("pause").addEventListener("click", () => setPaused(!state.paused));
  $("new-count").addEventListener("click", follow);
  $("clear").addEventListener("click", clearLines);
  $("download").addEventListener("click", download);
  $("picker-toggle").addEventListener("click", () => showPicker($("picker").hidden));
  // Narrow screens: the picker is an overlay, closed until asked for.
  showPicker(!narrow.matches);
  narrow.addEventListener("change", () => showPicker(!narrow.matches));
  $("view").addEventListener("pointerdown", () => {
    if (narrow.matches) showPicker(false);
  });
  $("picker-none").addEventListener("click", () => {
    view.streams = [];
    writeUrl();
    renderPicker();
    scheduleSubscribe();
  });
  $("picker").addEventListener("change", onPickerChange);
  $("lines").addEventListener("scroll", onScroll, { passive: true });
  $("lines").addEventListener("click", onLinesClick);
  document.addEventListener("keydown", onKey);
  $("token-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token-input").value.trim();
    if (!t) return;
    state.token = t;
    sessionStorage.setItem(TOKEN_KEY, t);
    $("token-dialog").close();
    state.attempt = 0;
    connect();
  });

  // For tests and the curious (read-only views, and a way to test reconnects).
  window.__supergrep = Object.freeze({
    ready: () =>
      state.connected && state.inflight.length === 0 && !state.subTimer && state.shownKey === filterKey(),
    stats: () => ({
      rows: state.rows,
      pending: state.pending.length,
      pool: state.pool.length,
      held: state.held,
      skipped: state.skipped,
      dropped: state.dropped,
      boot: state.boot,
      connections: state.connections,
    }),
    disconnect: () => state.ws && state.ws.close(),
  });

  loadUiSettings();
  connect();
  drawGraph();
  updateCounters();
}

start();
