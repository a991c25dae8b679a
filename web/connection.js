// The WebSocket to the hub and protocol v1 (see README): connecting with the
// token and backoff, the `main` subscription carrying this tab's filters, and
// dispatching what the hub sends. Owns `state.ws`, `state.connected`,
// `state.inflight` and the subscription's timer.

import { $, SUB_ID, filterKey, state, view } from "./state.js";
import { clearHubErrors, showGeneralError, showPatternError } from "./fields.js";
import { clearView, enqueue, onDropped, onLines, setHeldReason } from "./render.js";
import { onContext, showContextNote } from "./context.js";
import { onMarker, resetGraph } from "./graph.js";
import { pollStreams, renderPicker, setStreams } from "./picker.js";

const FRESH_BACKLOG = 500; // recent history shown at once for a new filter
const RESUBSCRIBE_DEBOUNCE_MS = 300;

export function scheduleSubscribe() {
  clearTimeout(state.subTimer);
  state.subTimer = setTimeout(subscribe, RESUBSCRIBE_DEBOUNCE_MS);
}

export function subscribe() {
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

export function connect() {
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
