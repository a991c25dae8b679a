// The stream picker: the streams the hub has (from `hello`, `streams` and
// polling /api/streams), by log set, host and file, with lines/s each; the
// selection is `view.streams` (set names and `host:path` globs), and what an empty
// view waits for. Owns `state.streams`, the rates and the glob cache.

import { $, filterKey, state, view, writeUrl } from "./state.js";
import { basename, formatRate } from "./format.js";
import { apiUrl, askToken, scheduleSubscribe } from "./connection.js";

const STREAMS_POLL_MS = 3000;

export function setStreams(list) {
  state.streams = new Map(list.map((s) => [s.id, s]));
  renderPicker();
}

/** `host:path` ids are globs on the hub: escape glob characters in them. */
function globEscape(s) {
  return s.replace(/[*?[\]{}]/g, (c) => `[${c}]`);
}

export function renderPicker() {
  const streams = [...state.streams.values()].sort((a, b) => a.id.localeCompare(b.id));
  const sets = new Map();
  const hosts = new Map();
  for (const s of streams) {
    if (!sets.has(s.set)) sets.set(s.set, []);
    sets.get(s.set).push(s.id);
    if (!hosts.has(s.host)) hosts.set(s.host, []);
    hosts.get(s.host).push(s);
  }
  const selected = new Set(view.streams);
  const known = new Set();

  const item = (value, label, title, ids, covered) => {
    known.add(value);
    const li = document.createElement("li");
    const lab = document.createElement("label");
    lab.title = title;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.value = value;
    box.checked = selected.has(value);
    box.dataset.sel = value;
    if (covered && !box.checked) {
      lab.classList.add("covered");
      box.indeterminate = true;
    }
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = label;
    const rate = document.createElement("span");
    rate.className = "rate";
    rate.dataset.ids = JSON.stringify(ids);
    lab.append(box, name, rate);
    li.append(lab);
    return li;
  };

  const setList = [];
  for (const [name, ids] of [...sets].sort((a, b) => a[0].localeCompare(b[0]))) {
    setList.push(item(name, name, `log set ${name}`, ids, false));
  }
  $("picker-sets").replaceChildren(...setList);

  const hostList = [];
  const fileList = [];
  for (const [host, ss] of [...hosts].sort((a, b) => a[0].localeCompare(b[0]))) {
    const hostSel = `${globEscape(host)}:*`;
    hostList.push(item(hostSel, host, `every file of ${host}`, ss.map((s) => s.id), false));
    const group = document.createElement("li");
    group.className = "host-group";
    const title = document.createElement("span");
    title.textContent = host;
    const ul = document.createElement("ul");
    for (const s of ss) {
      const own = globEscape(s.id);
      const covered = view.streams.some((sel) => sel !== own && selects(sel, s));
      ul.append(item(own, basename(s.path), `${s.id} (set ${s.set})`, [s.id], covered));
    }
    group.append(title, ul);
    fileList.push(group);
  }
  // Sets whose globs match no file yet say so (else the headings stand empty).
  for (const set of state.logSets) {
    if (sets.has(set.name)) continue;
    for (const glob of set.paths) fileList.push(pickerNote(`no file matches ${glob} yet`));
  }
  if (!hostList.length) hostList.push(pickerNote("none yet"));
  if (!setList.length) $("picker-sets").replaceChildren(pickerNote("none yet"));
  $("picker-hosts").replaceChildren(...hostList);
  $("picker-files").replaceChildren(...fileList);

  // Selectors that are none of the items above: globs (from a link, say) that
  // take the streams they match, and names of nothing present now.
  const globs = [];
  const others = [];
  for (const v of view.streams.filter((v) => !known.has(v))) {
    const ids = streams.filter((s) => selects(v, s)).map((s) => s.id);
    if (ids.length) globs.push(item(v, v, `${v}: ${ids.join(", ")}`, ids, false));
    else others.push(item(v, v, v, [], false));
  }
  $("picker-globs-box").hidden = globs.length === 0;
  $("picker-globs").replaceChildren(...globs);
  $("picker-other-box").hidden = others.length === 0;
  $("picker-other").replaceChildren(...others);

  $("picker-summary").textContent = view.streams.length
    ? `showing ${view.streams.join(", ")}`
    : `every stream (${streams.length})`;
  updateRates();
}

function pickerNote(text) {
  const li = document.createElement("li");
  li.className = "none";
  li.textContent = text;
  return li;
}

/** A stream selector's glob (`host:path`) as a program for a little automaton, as
 *  the hub's globset reads it: `*` and `?` cross `/`, `[…]`, `[!…]` and `{a,b}` too.
 *  null: not a glob. Not a JS RegExp: a selector comes from links too, and
 *  `*?*?*?…!` would backtrack for ever; this runs in time ids × glob. */
const globCache = new Map();

function compileGlob(glob) {
  if (globCache.has(glob)) return globCache.get(glob);
  const prog = []; // {op: "char" | "any" | "set" | "split" | "jmp" | "match", …}
  const alts = []; // open `{`: {split: pc of its last split, jmps: [pc]}
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") {
      while (glob[i + 1] === "*") i++;
      const at = prog.length;
      prog.push({ op: "split", x: at + 1, y: at + 3 }, { op: "any" }, { op: "jmp", x: at });
    } else if (c === "?") prog.push({ op: "any" });
    else if (c === "[" && glob.indexOf("]", i + 2) > 0) {
      const end = glob.indexOf("]", i + 2);
      let body = glob.slice(i + 1, end);
      const neg = body[0] === "!";
      if (neg) body = body.slice(1);
      const ranges = [];
      for (let k = 0; k < body.length; k++) {
        if (body[k + 1] === "-" && k + 2 < body.length) {
          ranges.push([body[k], body[k + 2]]);
          k += 2;
        } else ranges.push([body[k], body[k]]);
      }
      prog.push({ op: "set", neg, ranges });
      i = end;
    } else if (c === "{") {
      alts.push({ split: prog.length, jmps: [] });
      prog.push({ op: "split", x: prog.length + 1, y: prog.length + 1 });
    } else if (c === "," && alts.length) {
      const alt = alts[alts.length - 1];
      alt.jmps.push(prog.length);
      prog.push({ op: "jmp", x: -1 });
      prog[alt.split].y = prog.length;
      alt.split = prog.length;
      prog.push({ op: "split", x: prog.length + 1, y: prog.length + 1 });
    } else if (c === "}" && alts.length) {
      for (const j of alts.pop().jmps) prog[j].x = prog.length;
    } else prog.push({ op: "char", c });
  }
  prog.push({ op: "match" });
  const result = alts.length ? null : prog; // an unclosed `{`: not a glob
  if (globCache.size > 1000) globCache.clear();
  globCache.set(glob, result);
  return result;
}

/** Whether `prog` matches all of `text` (a breadth-first walk: each state once per
 *  character). */
function runGlob(prog, text) {
  const seen = new Int32Array(prog.length);
  let gen = 0;
  const close = (start) => {
    // The states reachable from `start` without reading, each once.
    const out = [];
    const todo = [...start];
    gen++;
    while (todo.length) {
      const pc = todo.pop();
      if (seen[pc] === gen) continue;
      seen[pc] = gen;
      const ins = prog[pc];
      if (ins.op === "split") todo.push(ins.y, ins.x);
      else if (ins.op === "jmp") todo.push(ins.x);
      else out.push(pc);
    }
    return out;
  };
  let states = close([0]);
  for (let i = 0; i < text.length && states.length; i++) {
    const ch = text[i];
    const next = [];
    for (const pc of states) {
      const ins = prog[pc];
      const ok =
        ins.op === "any" ||
        (ins.op === "char" && ins.c === ch) ||
        (ins.op === "set" && ins.neg !== ins.ranges.some(([lo, hi]) => lo <= ch && ch <= hi));
      if (ok) next.push(pc + 1);
    }
    states = close(next);
  }
  return states.some((pc) => prog[pc].op === "match");
}

/** Whether the selector `sel` (a set name, or a `host:path` glob) takes `stream`. */
export function selects(sel, stream) {
  if (!sel.includes(":")) return stream.set === sel;
  const prog = compileGlob(sel);
  return prog !== null && runGlob(prog, stream.id);
}

/** The streams the view listens to now. */
function selectedStreams() {
  const all = [...state.streams.values()];
  return view.streams.length ? all.filter((s) => view.streams.some((sel) => selects(sel, s))) : all;
}

export function onPickerChange(ev) {
  const box = ev.target;
  if (!box.matches("input[type=checkbox][data-sel]")) return;
  const value = box.dataset.sel;
  const set = new Set(view.streams);
  if (box.checked) set.add(value);
  else set.delete(value);
  view.streams = [...set];
  writeUrl();
  renderPicker();
  scheduleSubscribe();
}

export async function pollStreams() {
  if (document.hidden && state.lastCounts) return;
  let list;
  try {
    const r = await fetch(apiUrl("api/streams"), { cache: "no-store" });
    if (r.status === 401) {
      askToken();
      return;
    }
    if (!r.ok) return;
    list = await r.json();
  } catch {
    return;
  }
  if (!Array.isArray(list)) return;
  const now = performance.now();
  const counts = new Map(list.map((s) => [s.id, Number(s.lines) || 0]));
  const prev = state.lastCounts;
  if (prev) {
    const dt = (now - prev.at) / 1000;
    if (dt > 0.2) {
      for (const [id, n] of counts) {
        const before = prev.counts.get(id);
        state.rates.set(id, before === undefined ? 0 : Math.max(0, (n - before) / dt));
      }
    }
  }
  state.lastCounts = { at: now, counts };
  // The hub's list is the truth (stream notices can be missed under load).
  const ids = new Set(list.map((s) => s.id));
  const same = ids.size === state.streams.size && [...ids].every((id) => state.streams.has(id));
  if (!same) {
    setStreams(list.map(({ id, host, path, set }) => ({ id, host, path, set })));
  } else updateRates();
}

function updateRates() {
  for (const el of document.querySelectorAll("#picker .rate")) {
    const ids = JSON.parse(el.dataset.ids || "[]");
    if (!state.lastCounts) {
      el.textContent = "";
      continue;
    }
    let sum = 0;
    for (const id of ids) sum += state.rates.get(id) || 0;
    el.textContent = `${formatRate(sum)}/s`;
  }
  updateEmpty();
}

/** What an empty view is waiting for (instead of a blank pane). */
export function updateEmpty() {
  const el = $("empty");
  const show =
    state.connected && state.rows === 0 && state.pending.length === 0 && state.shownKey === filterKey();
  let text = "";
  if (show) {
    const streams = selectedStreams();
    if (!state.streams.size) {
      const globs = state.logSets.flatMap((s) => s.paths);
      text = globs.length ? `no file matches ${globs.join(", ")} yet` : "no streams yet";
    } else if (!streams.length) {
      text = `no stream is ${view.streams.join(", ")} yet`;
    } else {
      const pats = (list) => list.filter(Boolean).map((p) => `/${p}/`).join(" or ");
      const inc = pats(view.include);
      const exc = pats(view.exclude);
      text = inc ? `waiting for lines matching ${inc}` : "waiting for lines";
      if (exc) text += `, not ${exc}`;
      if (state.lastCounts) {
        let rate = 0;
        for (const st of streams) rate += state.rates.get(st.id) || 0;
        text += ` (${formatRate(rate)} lines/s checked)`;
      }
    }
  }
  if (el.textContent !== text) el.textContent = text;
  el.hidden = !text;
}

setInterval(pollStreams, STREAMS_POLL_MS);
