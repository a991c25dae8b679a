// Markers and the rate graph: matches per second of this filter over the last
// GRAPH_SECONDS, on the hub's clock (estimated from the lines' timestamps), with a
// vertical line per marker. Owns the graph's counts, the markers and its colours.

import { $ } from "./state.js";
import { formatRate, tsSeconds } from "./format.js";
import { enqueue } from "./render.js";

const GRAPH_SECONDS = 180;

export function onMarker(m) {
  markers.push(m.ts);
  while (markers.length > 100) markers.shift();
  enqueue({ kind: "marker", ts: m.ts, text: m.text });
  drawGraph();
}

const markers = []; // ts strings of the markers seen, the last 100

const graph = {
  counts: new Float64Array(GRAPH_SECONDS),
  stamps: new Float64Array(GRAPH_SECONDS).fill(-1),
  offset: null, // browser clock − hub clock, seconds (estimated)
  offsetWindow: Infinity,
};

export function resetGraph() {
  graph.counts.fill(0);
  graph.stamps.fill(-1);
  drawGraph();
}

function hubNow() {
  return Math.floor(Date.now() / 1000 - (graph.offset ?? 0));
}

export function countForGraph(ts, n = 1) {
  const sec = ts ? tsSeconds(ts) : hubNow();
  if (!Number.isFinite(sec)) return;
  const i = ((sec % GRAPH_SECONDS) + GRAPH_SECONDS) % GRAPH_SECONDS;
  if (graph.stamps[i] !== sec) {
    graph.stamps[i] = sec;
    graph.counts[i] = 0;
  }
  graph.counts[i] += n;
}

export function sampleClock(ts) {
  const sec = tsSeconds(ts);
  if (!Number.isFinite(sec)) return;
  const off = Date.now() / 1000 - sec;
  if (graph.offset === null || off < graph.offset) graph.offset = off;
  graph.offsetWindow = Math.min(graph.offsetWindow, off);
}

setInterval(() => {
  // Re-estimate the clock offset now and then (clocks drift, backlogs are old).
  if (graph.offsetWindow !== Infinity) graph.offset = graph.offsetWindow;
  graph.offsetWindow = Infinity;
}, 60000);

let graphColours = null; // resolved for the theme shown (null: look again)

/** The theme shown changed: the graph's colours are looked up again. */
export function themeChanged() {
  graphColours = null;
  drawGraph();
}

/** A colour variable of the theme shown, as the canvas takes it (rgb()). */
function cssColour(name) {
  const probe = document.createElement("i");
  probe.style.color = `var(${name})`;
  $("graph-box").append(probe);
  const colour = getComputedStyle(probe).color;
  probe.remove();
  return colour;
}

export function drawGraph() {
  const canvas = $("graph");
  if (!canvas || document.hidden) return;
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 240;
  const h = canvas.clientHeight || 40;
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const now = hubNow();
  const values = new Array(GRAPH_SECONDS);
  let max = 0;
  for (let k = 0; k < GRAPH_SECONDS; k++) {
    const sec = now - (GRAPH_SECONDS - 1 - k);
    const i = ((sec % GRAPH_SECONDS) + GRAPH_SECONDS) % GRAPH_SECONDS;
    const v = graph.stamps[i] === sec ? graph.counts[i] : 0;
    values[k] = v;
    if (v > max) max = v;
  }
  if (!graphColours) {
    graphColours = { line: cssColour("--graph"), marker: cssColour("--marker") };
  }
  const colour = graphColours.line;
  const markerColour = graphColours.marker;
  const step = w / GRAPH_SECONDS;
  const scale = max > 0 ? (h - 4) / max : 0;
  ctx.beginPath();
  ctx.moveTo(0, h);
  for (let k = 0; k < GRAPH_SECONDS; k++) ctx.lineTo(k * step + step / 2, h - values[k] * scale);
  ctx.lineTo(w, h);
  ctx.closePath();
  ctx.globalAlpha = 0.25;
  ctx.fillStyle = colour;
  ctx.fill();
  ctx.globalAlpha = 1;
  ctx.beginPath();
  for (let k = 0; k < GRAPH_SECONDS; k++) {
    const x = k * step + step / 2;
    const y = h - values[k] * scale - 0.5;
    if (k === 0) ctx.moveTo(x, y);
    else ctx.lineTo(x, y);
  }
  ctx.strokeStyle = colour;
  ctx.lineWidth = 1;
  ctx.stroke();
  // Markers: a vertical line each.
  ctx.strokeStyle = markerColour;
  ctx.lineWidth = 1.5;
  for (const ts of markers) {
    const sec = tsSeconds(ts);
    const k = sec - (now - (GRAPH_SECONDS - 1));
    if (k < 0 || k >= GRAPH_SECONDS) continue;
    const x = Math.round(k * step + step / 2) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, h);
    ctx.stroke();
  }
  // The numbers go beside the graph, not over it.
  const recent = values[GRAPH_SECONDS - 2]; // the last complete second
  $("graph-rate").textContent = `${formatRate(recent)}/s`;
  $("graph-peak").textContent = max > 0 ? `peak ${formatRate(max)}` : "";
  $("graph-label").title = `now ${formatRate(recent)}/s, peak ${formatRate(max)}/s over the last 3 minutes`;
}

setInterval(drawGraph, 1000);
