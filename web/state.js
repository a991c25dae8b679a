// The view's settings (mirrored in the URL) and the runtime state every part
// reads: the connection, the subscription in flight, the lines not yet shown, what
// holds the view. Owns `view`, `state`, the URL and the token; other modules own
// their own state (graph, highlights, globs, rows' cache) and change these two only
// through the fields named here.

export const $ = (id) => document.getElementById(id);
export const SUB_ID = "main";
const DEFAULT_CAP = 5000;
const MIN_CAP = 100;
const MAX_CAP = 100000;
export const TOKEN_KEY = "supergrep.token";

export const view = {
  streams: [], // selector strings: set names, `host:*`, `host:path`
  include: [],
  exclude: [],
  highlight: [],
  icase: true,
  wrap: true,
  cap: DEFAULT_CAP,
};

export function readUrl() {
  const p = new URLSearchParams(location.search);
  const token = p.get("token");
  if (token !== null) {
    // Keep it for this tab only, and out of the address bar, history and links.
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token);
      state.token = token;
    }
    p.delete("token");
  }
  view.streams = p.getAll("s").filter(Boolean);
  view.include = p.getAll("q");
  view.exclude = p.getAll("x");
  view.highlight = p.getAll("h");
  if (p.has("i")) view.icase = p.get("i") !== "0";
  if (p.has("wrap")) view.wrap = p.get("wrap") !== "0";
  if (p.has("cap")) view.cap = clampCap(Number(p.get("cap")));
  if (token !== null) writeUrl();
}

function urlQuery() {
  const p = new URLSearchParams();
  for (const s of view.streams) p.append("s", s);
  for (const q of view.include) if (q) p.append("q", q);
  for (const x of view.exclude) if (x) p.append("x", x);
  for (const h of view.highlight) if (h) p.append("h", h);
  p.set("i", view.icase ? "1" : "0");
  if (!view.wrap) p.set("wrap", "0");
  if (view.cap !== DEFAULT_CAP) p.set("cap", String(view.cap));
  return p.toString();
}

export function writeUrl() {
  const q = urlQuery();
  const url = location.pathname + (q ? `?${q}` : "") + location.hash;
  if (url !== location.pathname + location.search + location.hash) {
    history.replaceState(null, "", url);
  }
}

export function clampCap(n) {
  if (!Number.isFinite(n)) return DEFAULT_CAP;
  return Math.min(MAX_CAP, Math.max(MIN_CAP, Math.round(n)));
}

export class Queue {
  constructor() { this.items = []; this.head = 0; }
  get length() { return this.items.length - this.head; }
  push(x) { this.items.push(x); }
  peekLast() { return this.length ? this.items[this.items.length - 1] : undefined; }
  shift() {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head];
    this.items[this.head++] = undefined;
    this.compact();
    return x;
  }
  /** Removes the n oldest; returns how many of them were log lines. */
  dropFront(n) {
    let lines = 0;
    const end = Math.min(this.items.length, this.head + n);
    for (let i = this.head; i < end; i++) {
      if (this.items[i].kind === undefined) lines++;
      this.items[i] = undefined;
    }
    this.head = end;
    this.compact();
    return lines;
  }
  compact() {
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
  clear() { this.items = []; this.head = 0; }
}

export const state = {
  ws: null,
  boot: null, // `boot` of the hub the lines on screen came from
  connected: false,
  connections: 0, // greetings received so far
  attempt: 0, // reconnect attempts since the last good connection
  reconnectTimer: 0,
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  sourceUrl: null,
  streams: new Map(), // id → {id, host, path, set}
  logSets: [], // [{name, paths: [glob]}] the hub follows (from /api/ui)
  rates: new Map(), // id → lines/s
  lastCounts: null, // {at, counts: Map id → lines}
  // Subscriptions sent and not yet answered, oldest first: {key, fresh}.
  inflight: [],
  shownKey: null, // the filter whose lines are on screen
  lastSeq: new Map(), // stream id → highest seq shown (dedupe across reconnects)
  pending: new Queue(), // received, not yet rendered (line objects, or {kind,…})
  paused: false,
  stick: true, // follow the bottom; false once the user scrolls up
  held: 0, // lines arrived while held (paused / scrolled up)
  skipped: 0,
  dropped: 0,
  rows: 0, // rows in #lines
  pool: [],
  rafPending: false,
  hiddenNew: 0,
  reading: new Set(), // rows whose context is open: the view holds still meanwhile
  observer: null, // IntersectionObserver giving chunks near the viewport their rows
  contexts: new Map(), // context request id → row
  nextContext: 1,
  subTimer: 0,
};

export const held = () => state.paused || !state.stick || state.reading.size > 0;

/** What the hub filters on: a change means the lines shown no longer fit. */
export function filterKey() {
  return JSON.stringify([
    view.include.filter(Boolean),
    view.exclude.filter(Boolean),
    view.icase,
    [...view.streams].sort(),
  ]);
}
