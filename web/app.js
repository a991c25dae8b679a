// supergrep web UI, the entry module: starts the parts and wires the page's
// controls, keys, theme and title to them. One WebSocket to the hub (protocol v1,
// see README; connection.js), one subscription carrying this tab's filters (the hub
// does the filtering), and a view that stays responsive and flat in memory at
// thousands of matches per second (render.js). Log text only ever reaches the DOM
// as text nodes (textContent, createTextNode). Plain modern JavaScript as ES modules
// (each says what it owns), no build step, nothing loaded from elsewhere. Owns the
// theme choice and the start.

import { $, TOKEN_KEY, clampCap, filterKey, held, readUrl, state, view, writeUrl } from "./state.js";
import { apiUrl, connect, scheduleSubscribe } from "./connection.js";
import { addField, buildFields, compileHighlights, onFilterInput, renumberFields } from "./fields.js";
import { allItems, clearView, evict, follow, onScroll, refresh, rerenderHighlights, rewrap, setPaused, startView, trimPending, updateCounters } from "./render.js";
import { closeLastContext, onLinesClick } from "./context.js";
import { drawGraph, themeChanged } from "./graph.js";
import { onPickerChange, pollStreams, renderPicker } from "./picker.js";

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
  applyTheme();
  $("theme").addEventListener("click", toggleTheme);
  osDark.addEventListener("change", applyTheme);
  readUrl();
  buildFields();
  applyToggles();
  startView();
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
    rewrap();
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
