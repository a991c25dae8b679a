// One highlight pattern's matcher, off the page's thread. A pattern typed in or
// taken from a link (`h=(a+)+b`) may backtrack for ever on some line, and a regex
// cannot be stopped once it runs; a worker can be: the page terminates this one when
// it overruns its budget (see highlight.js), and so never freezes.
//
// In: {pattern, flags} once, then {batch, texts: [string]}.
// Out: {batch, ranges: [[s, e, s, e, …] per text]} in UTF-16 offsets, or {error}.

const MAX_PER_LINE = 200;

let re = null;

onmessage = (ev) => {
  const m = ev.data;
  if (typeof m.pattern === "string") {
    try {
      re = new RegExp(m.pattern, m.flags);
    } catch (e) {
      postMessage({ error: String(e.message || e) });
    }
    return;
  }
  if (!re || !Array.isArray(m.texts)) return;
  const ranges = m.texts.map((text) => {
    const out = [];
    re.lastIndex = 0;
    let found;
    while (out.length < 2 * MAX_PER_LINE && (found = re.exec(text))) {
      if (found[0].length === 0) {
        re.lastIndex++;
        continue;
      }
      out.push(found.index, found.index + found[0].length);
    }
    return out;
  });
  postMessage({ batch: m.batch, ranges });
};
