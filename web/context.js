// A line's context, shown inline under it: asking the hub for the lines around
// it, showing them, moving the centre, closing. While a context is open the view
// holds still (`state.reading`). Owns the rows' context blocks and `state.contexts`.

import { $, state } from "./state.js";
import { basename } from "./format.js";
import { renderText } from "./text.js";
import { refresh } from "./render.js";

const CONTEXT_LINES = 20;
const NOTICE_ROOM = 44; // px at the bottom of the view that the notices may cover

export function onLinesClick(ev) {
  if (ev.target.closest("a")) return;
  const sel = getSelection();
  if (sel && sel.type === "Range" && sel.toString()) return; // selecting text
  const block = ev.target.closest(".context");
  if (block) {
    // In a context: close it, or centre it on the line clicked.
    const row = block.parentElement;
    if (ev.target.closest(".ctx-close")) closeContext(row);
    else {
      const line = ev.target.closest(".ctx-line");
      if (line && row._ctxSeq !== Number(line.dataset.seq)) requestContext(row, Number(line.dataset.seq));
    }
    return;
  }
  const row = ev.target.closest(".line");
  if (!row || !row._item || row._item.kind !== undefined) return;
  if (row._ctx) {
    closeContext(row);
    return;
  }
  openContext(row);
}

function openContext(row) {
  const line = row._item;
  const block = document.createElement("div");
  block.className = "context";
  block.dataset.test = "context";
  const head = document.createElement("div");
  head.className = "ctx-head";
  const where = document.createElement("span");
  where.className = "ctx-where";
  const close = document.createElement("button");
  close.type = "button";
  close.className = "ctx-close";
  close.textContent = "×";
  close.title = "Close the context (Esc)";
  close.setAttribute("aria-label", "close the context");
  head.append(where, close);
  const body = document.createElement("div");
  body.className = "ctx-body";
  block.append(head, body);
  row._ctx = block;
  row._ctxStream = line.stream || `${line.host}:${line.path}`;
  row.classList.add("open");
  row.append(block);
  // Reading: the view holds still until the context is closed (or space / End / Esc).
  state.reading.add(row);
  refresh();
  requestContext(row, line.seq);
}

/** Asks the hub for the lines around `seq` of the row's stream, to show in its block. */
function requestContext(row, seq) {
  const id = `c${state.nextContext++}`;
  row._ctxId = id;
  row._ctxSeq = seq;
  const where = row._ctx.querySelector(".ctx-where");
  const { host, path } = row._item;
  where.textContent = `${host}:${basename(path)} · line #${seq}`;
  where.title = `stream ${row._ctxStream}, the hub's line number ${seq} in it`;
  if (!row._ctx.querySelector(".ctx-line")) showContextNote(row._ctx, "loading context…");
  if (state.ws && state.connected) {
    // Kept only for a request that goes out: its answer takes it out again.
    state.contexts.set(id, row);
    state.ws.send(
      JSON.stringify({
        type: "context",
        id,
        stream: row._ctxStream,
        seq,
        before: CONTEXT_LINES,
        after: CONTEXT_LINES,
      }),
    );
  } else showContextNote(row._ctx, "not connected");
}

export function closeContext(row) {
  if (row._ctx) row._ctx.remove();
  row._ctx = null;
  row._ctxId = null;
  row.classList.remove("open");
  state.reading.delete(row);
  refresh();
}

/** Esc: closes the context opened last. */
export function closeLastContext() {
  const rows = [...state.reading];
  if (!rows.length) return false;
  closeContext(rows[rows.length - 1]);
  return true;
}

export function showContextNote(block, text) {
  const note = document.createElement("div");
  note.className = "ctx-note";
  note.textContent = text;
  block.querySelector(".ctx-body").replaceChildren(note);
}

export function onContext(m) {
  const row = state.contexts.get(m.id);
  state.contexts.delete(m.id);
  if (!row || row._ctxId !== m.id || !row._ctx || !row._item) return;
  const self = row._ctxSeq;
  const frag = document.createDocumentFragment();
  for (const line of m.lines || []) {
    const div = document.createElement("div");
    div.className = line.seq === self ? "ctx-line self" : "ctx-line";
    div.dataset.seq = String(line.seq);
    const seq = document.createElement("span");
    seq.className = "seq";
    seq.textContent = String(line.seq);
    const text = document.createElement("span");
    text.className = "text";
    renderText(text, line.text, null, false);
    div.append(seq, text);
    frag.append(div);
  }
  const body = row._ctx.querySelector(".ctx-body");
  if (!m.lines || !m.lines.length) {
    showContextNote(row._ctx, "the hub no longer holds the lines around this one");
  } else body.replaceChildren(frag);
  // The block scrolls on its own, centred on the line asked for; the view scrolls
  // only as far as it takes to show the block, keeping the clicked row in sight.
  const selfLine = body.querySelector(".self");
  if (selfLine) {
    body.scrollTop = selfLine.offsetTop - (body.clientHeight - selfLine.offsetHeight) / 2;
  }
  revealContext(row);
}

function revealContext(row) {
  const box = $("lines");
  const seen = box.getBoundingClientRect();
  const r = row.getBoundingClientRect();
  // Room at the bottom for the "N new" pill.
  const bottom = seen.bottom - NOTICE_ROOM;
  if (r.bottom > bottom) box.scrollTop += Math.min(r.bottom - bottom, r.top - seen.top);
  else if (r.top < seen.top) box.scrollTop -= seen.top - r.top;
}
