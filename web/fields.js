// The pattern fields (match, not, mark): building them from the view, reading
// them back into it, and the errors shown next to them (the hub's for match and
// not, the browser's for mark).

import { $, filterKey, state, view, writeUrl } from "./state.js";
import { scheduleSubscribe, subscribe } from "./connection.js";
import { HL_COLOURS, TOO_SLOW, setHighlightPatterns, wasTooSlow } from "./highlight.js";
import { setHeldReason } from "./render.js";

const KINDS = {
  include: { box: "includes", placeholder: "error|fatal (empty: all)" },
  exclude: { box: "excludes", placeholder: "healthcheck" },
  highlight: { box: "highlights", placeholder: "user=\\w+ (JS regex)" },
};

export function buildFields() {
  for (const kind of Object.keys(KINDS)) {
    const box = $(KINDS[kind].box);
    box.replaceChildren();
    const values = view[kind].length ? view[kind] : [""];
    values.forEach((v) => addField(kind, v, false));
  }
  renumberFields();
}

export function addField(kind, value, focus) {
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
export function renumberFields() {
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

export function onFilterInput() {
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

/** Highlight patterns at once: each is a worker (a thread) of its own, and a link
 *  may carry any number of `h=`. */
const MAX_HIGHLIGHTS = 16;
const TOO_MANY_HIGHLIGHTS = `at most ${MAX_HIGHLIGHTS} highlight patterns at once`;

/** Highlight patterns: JS RegExp, each its own colour. Only their syntax is checked
 *  here; they run in workers (highlight.js). */
export function compileHighlights() {
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
    else if (patterns.length >= MAX_HIGHLIGHTS) message = TOO_MANY_HIGHLIGHTS;
    else {
      patterns.push({ source: input.value, flags: ok, idx: i % HL_COLOURS, row });
      return;
    }
    input.classList.add("invalid");
    error.textContent = message;
  });
  setHighlightPatterns(patterns);
}

export function clearHubErrors() {
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
export function showPatternError(message, pattern) {
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

export function showGeneralError(text) {
  const el = $("general-error");
  el.textContent = text;
  el.hidden = !text;
}
