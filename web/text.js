// One line's text in the DOM: the hub's hits, highlights and links, as text
// nodes and <mark>/<a> only (log text is untrusted). Offsets from the hub count
// characters (code points); JS strings count UTF-16 units, so they are converted.

import { state } from "./state.js";
import { requestHighlights } from "./highlight.js";

// Text with matches, highlights and links. Offsets from the hub count characters
// (code points); JS strings count UTF-16 units, so convert when they differ.
const ASTRAL = /[\uD800-\uDFFF]/;

const URL_RE = /\bhttps?:\/\/[^\s<>"'`]+/g;

const SOURCE_EXT =
  "rs|go|py|js|mjs|cjs|ts|tsx|jsx|java|kt|kts|scala|c|h|cc|cpp|cxx|hpp|hh|cs|rb|php|pl|pm|swift|m|mm|lua|ex|exs|erl|hrl|hs|ml|clj|groovy|sh|bash|sql|vue|svelte|dart|zig|nim|jl|tf|erb|jsp|cshtml|twig|tmpl|proto";

const SOURCE_RE = new RegExp(
  `(?:^|(?<=[\\s("'=\\[]))((?:\\.{0,2}/)?(?:[\\w@~+-][\\w.@~+-]*/)*[\\w@~+-][\\w.@~+-]*\\.(?:${SOURCE_EXT})):(\\d{1,7})\\b`,
  "g",
);

function codePointToUnit(text) {
  // index i (code points) → UTF-16 offset
  const map = [0];
  let u = 0;
  for (const ch of text) {
    u += ch.length;
    map.push(u);
  }
  return map;
}

function findLinks(text) {
  const links = [];
  if (text.includes("://")) {
    URL_RE.lastIndex = 0;
    let m;
    while ((m = URL_RE.exec(text)) && links.length < 50) {
      let url = m[0].replace(/[.,;:!?)\]}]+$/, "");
      if (!url) continue;
      links.push({ s: m.index, e: m.index + url.length, href: url });
    }
  }
  if (state.sourceUrl && text.includes(".")) {
    SOURCE_RE.lastIndex = 0;
    let m;
    while ((m = SOURCE_RE.exec(text)) && links.length < 50) {
      const s = m.index + m[0].indexOf(m[1]);
      const e = s + m[1].length + 1 + m[2].length;
      if (links.some((l) => s < l.e && l.s < e)) continue;
      const href = sourceHref(m[1], m[2]);
      if (href) links.push({ s, e, href });
    }
    links.sort((a, b) => a.s - b.s);
  }
  return links;
}

/** `path` as the segments below the source browser's root: `.` and empty segments
 *  (`//`, a leading `/`) left out, `..` taking one back. null: it climbs above the
 *  root (`../x.rs`, `a/../../x.rs`), which gets no link. */
function sourcePath(path) {
  const out = [];
  for (const seg of path.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") {
      if (!out.length) return null;
      out.pop();
    } else out.push(seg);
  }
  return out.length ? out : null;
}

/** The link for `path:line` under the configured `source_url`; null when there is
 *  none. Each segment is percent-escaped, so nothing in the path can leave the
 *  template's prefix (checked once more on the URL built). */
function sourceHref(path, line) {
  const segs = sourcePath(path);
  if (!segs) return null;
  const template = state.sourceUrl;
  const encoded = segs.map(encodeURIComponent).join("/");
  const href = template.replaceAll("{path}", encoded).replaceAll("{line}", line);
  try {
    const u = new URL(href, location.href);
    if (u.protocol !== "http:" && u.protocol !== "https:") return null;
    const at = template.indexOf("{path}");
    if (at > 0) {
      const prefix = new URL(template.slice(0, at).replaceAll("{line}", line), location.href).href;
      if (!u.href.startsWith(prefix)) return null;
    }
    return u.href;
  } catch {
    return null;
  }
}

/** Shows `text` in `el` with the hub's hits (`spans`) and links at once, and asks
 *  the highlight workers for their marks, painted when they answer. */
export function renderText(el, text, spans, withHits = true) {
  paintText(el, text, withHits ? spans : null, []);
  el._hlReq = null;
  requestHighlights(el, text, withHits ? spans : null);
}

/** `highlights`: [{s, e, hl: colour}] in UTF-16 offsets. */
export function paintText(el, text, spans, highlights) {
  const marks = []; // {s, e, hl: colour, or -1 for a hit}
  if (spans && spans.length) {
    const map = ASTRAL.test(text) ? codePointToUnit(text) : null;
    for (const [a, b] of spans) {
      const s = map ? map[Math.min(a, map.length - 1)] : a;
      const e = map ? map[Math.min(b, map.length - 1)] : b;
      if (e > s) marks.push({ s, e, hl: -1 });
    }
  }
  for (const m of highlights) marks.push(m);
  const links = findLinks(text);
  if (!marks.length && !links.length) {
    el.textContent = text;
    return;
  }
  const cuts = new Set([0, text.length]);
  for (const m of marks) {
    cuts.add(m.s);
    cuts.add(m.e);
  }
  for (const l of links) {
    cuts.add(l.s);
    cuts.add(l.e);
  }
  const points = [...cuts].filter((x) => x >= 0 && x <= text.length).sort((a, b) => a - b);
  const frag = document.createDocumentFragment();
  let anchor = null;
  let anchorLink = null;
  for (let i = 0; i + 1 < points.length; i++) {
    const a = points[i];
    const b = points[i + 1];
    if (a === b) continue;
    let hit = false;
    let colour = -1;
    for (const m of marks) {
      if (m.s <= a && m.e >= b) {
        if (m.hl < 0) hit = true;
        else if (colour < 0) colour = m.hl;
      }
    }
    const piece = text.slice(a, b);
    let node;
    if (hit || colour >= 0) {
      node = document.createElement("mark");
      node.className = (hit ? "hit" : "") + (colour >= 0 ? `${hit ? " " : ""}hl hl${colour}` : "");
      node.textContent = piece;
    } else node = document.createTextNode(piece);
    const link = links.find((l) => l.s <= a && l.e >= b) || null;
    if (link) {
      if (anchorLink !== link) {
        anchor = document.createElement("a");
        anchor.href = link.href;
        anchor.target = "_blank";
        anchor.rel = "noopener noreferrer";
        anchorLink = link;
        frag.append(anchor);
      }
      anchor.append(node);
    } else {
      anchorLink = null;
      frag.append(node);
    }
  }
  el.replaceChildren(frag);
}
