// How times, rates and paths read: pure functions (and a one-second cache of
// the last timestamp parsed).

export function basename(path) {
  const i = path.lastIndexOf("/");
  return i >= 0 && i < path.length - 1 ? path.slice(i + 1) : path;
}

// Timestamps: the hub's UTC `ts` shown in local time; one Date per second of ts.
let tsCacheKey = "";

let tsCacheLocal = "";
let tsCacheSec = 0;

function tsParts(ts) {
  const key = ts.slice(0, 19);
  if (key !== tsCacheKey) {
    tsCacheKey = key;
    const d = new Date(`${key}Z`);
    tsCacheSec = Math.floor(d.getTime() / 1000);
    tsCacheLocal = Number.isNaN(tsCacheSec)
      ? key
      : `${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
  }
}

export function formatTime(ts) {
  if (!ts) return "";
  tsParts(ts);
  const ms = ts.length > 20 && ts[19] === "." ? ts.slice(19, 23) : "";
  return tsCacheLocal + ms;
}

export function tsSeconds(ts) {
  tsParts(ts);
  return tsCacheSec;
}

const pad2 = (n) => (n < 10 ? `0${n}` : String(n));

export function formatRate(r) {
  if (r >= 10000) return `${Math.round(r / 1000)}k`;
  if (r >= 1000) return `${(r / 1000).toFixed(1)}k`;
  if (r >= 10 || r === 0) return String(Math.round(r));
  return r.toFixed(1);
}
