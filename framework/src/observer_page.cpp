// The observer page the metrics endpoint serves at "/": one HTML document
// with its style and script inline (no external assets: it works offline
// and behind a strict Content-Security-Policy). Its script asks the
// endpoint's /api/node and /api/tree (the introspection documents, see
// docs/operations.md) once a second and draws the node and its
// connections, cluster members, the supervision trees with live restart
// counts, and the message rates of the last two minutes as an SVG chart.
//
// Everything that comes from the node (peer and node names, child ids,
// exit reasons) is set with textContent, never as markup: those strings
// come from peers.

#include "metrics.hpp"

namespace relay {

const char* observer_page() {
  return R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Relay observer</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2430; background: #f5f6f8; }
  header { background: #1d2430; color: #fff; padding: 10px 20px; display: flex; gap: 24px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  #status { margin-left: auto; font-size: 12px; opacity: .8; }
  main { display: grid; grid-template-columns: 1fr 1fr; gap: 16px; padding: 16px 20px; }
  section { background: #fff; border-radius: 6px; padding: 12px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  section.wide { grid-column: 1 / span 2; }
  h2 { font-size: 14px; margin: 0 0 8px; text-transform: uppercase; letter-spacing: .04em; color: #56607a; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid #eceef2; white-space: nowrap; }
  th { color: #56607a; font-weight: 600; }
  ul.tree, ul.tree ul { list-style: none; margin: 0; padding-left: 18px; border-left: 1px dotted #b8bfcc; }
  ul.tree { padding-left: 0; border-left: none; }
  li { margin: 2px 0; }
  .sup { font-weight: 600; }
  .state-running { color: #1a7f37; }
  .state-restarting, .state-undefined { color: #b35900; }
  .restarts { display: inline-block; min-width: 1.6em; text-align: center; border-radius: 9px; padding: 0 6px; background: #eceef2; font-size: 12px; }
  .restarts.hot { background: #ffd8a8; }
  .dim { color: #7b8499; font-size: 12px; }
  .error { color: #b42318; }
  svg text { font-size: 11px; fill: #56607a; }
</style>
</head>
<body>
<header><h1>Relay observer</h1><span id="node">connecting...</span><span id="status"></span></header>
<main>
  <section><h2>Connections</h2><table id="peers"></table></section>
  <section><h2>Cluster members</h2><div id="members" class="dim">not a cluster member</div></section>
  <section class="wide"><h2>Supervision trees</h2><div id="tree" class="dim">no supervisor registered on this node</div></section>
  <section class="wide"><h2>Messages to and from other nodes, per second</h2>
    <svg id="chart" width="900" height="180" viewBox="0 0 900 180" role="img" aria-label="messages per second"></svg>
  </section>
</main>
<script>
"use strict";
const REFRESH_MS = 1000, POINTS = 120;
const rates = [];          // {t, in, out}
let previous = null;       // {t, in, out} totals of the last poll

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children)
    e.appendChild(typeof c === "string" || typeof c === "number"
                  ? document.createTextNode(String(c)) : c);
  return e;
}

function replace(id, ...children) {
  const target = document.getElementById(id);
  target.replaceChildren(...children);
  target.className = "";
}

async function get(topic) {
  const res = await fetch("/api/" + topic, {cache: "no-store"});
  const text = await res.text();
  if (!res.ok) throw new Error(topic + ": " + text);
  return JSON.parse(text);
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB"];
  let i = 0;
  while (n >= 1024 && i + 1 < units.length) { n /= 1024; ++i; }
  return (i === 0 ? n : n.toFixed(1)) + " " + units[i];
}

function drawNode(doc) {
  document.getElementById("node").textContent =
    "node " + doc.name + "  pid " + doc.pid + "  " + (doc.listen || []).join(", ");
  const head = el("tr", {}, ...["peer", "transport", "msgs in", "msgs out",
    "bytes in", "bytes out", "queued", "rtt"].map(h => el("th", {}, h)));
  const rows = (doc.peers || []).map(p => el("tr", {},
    el("td", {}, p.name + (p.hidden ? " (hidden)" : "")),
    el("td", {}, p.transport),
    el("td", {}, p.messages_in), el("td", {}, p.messages_out),
    el("td", {}, bytes(p.bytes_in)), el("td", {}, bytes(p.bytes_out)),
    el("td", {}, bytes(p.queued_bytes)),
    el("td", {}, p.rtt && p.rtt.last_ms !== undefined
                   ? p.rtt.last_ms.toFixed(3) + " ms" : "-")));
  replace("peers", head, ...rows);
  const members = (doc.sources || []).filter(s => Array.isArray(s.members));
  if (members.length > 0) {
    const mhead = el("tr", {}, ...["member", "address", "status", "reachable"]
      .map(h => el("th", {}, h)));
    const mrows = members[0].members.map(m => el("tr", {},
      el("td", {}, m.name), el("td", {}, m.address), el("td", {}, m.status),
      el("td", {}, m.reachable ? "yes" : "no")));
    replace("members", el("table", {}, mhead, ...mrows));
  }
  // Rates from the totals of all connections.
  const now = doc.clock_ms / 1000; // the node's clock
  const totals = {t: now, in: 0, out: 0};
  for (const p of doc.peers || []) { totals.in += p.messages_in; totals.out += p.messages_out; }
  if (previous && now > previous.t) {
    const dt = now - previous.t;
    rates.push({t: now, in: Math.max(0, (totals.in - previous.in) / dt),
                out: Math.max(0, (totals.out - previous.out) / dt)});
    if (rates.length > POINTS) rates.shift();
  }
  previous = totals;
  drawChart();
}

function drawChart() {
  const svg = document.getElementById("chart");
  const W = 900, H = 180, L = 64, B = 20, T = 10;
  const max = Math.max(10, ...rates.map(r => Math.max(r.in, r.out)));
  const ns = "http://www.w3.org/2000/svg";
  const node = (tag, attrs, text) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const x = i => L + (W - L - 10) * i / (POINTS - 1);
  const y = v => T + (H - T - B) * (1 - v / max);
  const parts = [
    node("line", {x1: L, y1: y(0), x2: W - 10, y2: y(0), stroke: "#b8bfcc"}),
    node("line", {x1: L, y1: T, x2: L, y2: y(0), stroke: "#b8bfcc"}),
    node("text", {x: 4, y: T + 10}, Math.round(max) + "/s"),
    node("text", {x: 4, y: y(0)}, "0"),
    node("text", {x: L, y: H - 4}, (POINTS * REFRESH_MS / 1000) + " s ago"),
    node("text", {x: W - 60, y: H - 4}, "now"),
  ];
  for (const [key, color, dash] of [["in", "#2f6fde", "6 3"], ["out", "#1a7f37", ""]]) {
    const offset = POINTS - rates.length;
    const pts = rates.map((r, i) => x(offset + i) + "," + y(r[key])).join(" ");
    // In is dashed: with requests and answers the two lines often coincide.
    parts.push(node("polyline", {points: pts, fill: "none", stroke: color,
                                 "stroke-width": 2, "stroke-dasharray": dash}));
    const last = rates.length ? rates[rates.length - 1][key] : 0;
    parts.push(node("text", {x: key === "in" ? L + 10 : L + 160, y: T + 10, fill: color},
                    "messages " + key + ": " + last.toFixed(0) + "/s"));
  }
  svg.replaceChildren(...parts);
}

function drawTree(doc) {
  const sups = new Map(), procs = new Map(), nested = new Set();
  for (const s of doc.sources || []) {
    if (s.kind === "supervisor") sups.set(s.actor, s);
    else if (s.kind === "process") procs.set(s.actor, s);
  }
  // Actor ids are per node: only a child on this node can be one of them.
  const localSup = c => (c.node === undefined && sups.has(c.actor)) ? c.actor : 0;
  for (const s of sups.values())
    for (const c of s.children || []) if (localSup(c)) nested.add(c.actor);
  const shown = new Set();  // a cycle in a bad answer ends here
  const level = sup => el("ul", {}, ...(sup.children || []).map(c => {
    const li = el("li", {},
      el("span", {}, c.id || "(dynamic)"), " ",
      el("span", {class: "state-" + c.state}, c.state), " ",
      el("span", {class: "dim"}, c.restart + (c.actor ? "  actor " + c.actor : "")
        + (procs.has(c.actor) ? "  pid " + procs.get(c.actor).pid : "")
        + (c.node !== undefined ? "  on " + c.node : "")), " ",
      el("span", {class: "restarts" + (c.restarts > 0 ? " hot" : ""),
                  title: "restarts"}, c.restarts));
    const child = localSup(c);
    if (child && !shown.has(child)) { shown.add(child); li.appendChild(level(sups.get(child))); }
    return li;
  }));
  const roots = [...sups.values()].filter(s => !nested.has(s.actor));
  if (roots.length === 0) {
    replace("tree", "no supervisor registered on this node");
    document.getElementById("tree").className = "dim";
    return;
  }
  replace("tree", el("ul", {class: "tree"}, ...roots.map(s => {
    shown.add(s.actor);
    return el("li", {},
      el("span", {class: "sup"}, s.name || "(unnamed)"), " ",
      el("span", {class: "dim"}, s.strategy + "  intensity " + s.intensity
         + " per " + s.period_ms + " ms  actor " + s.actor), " ",
      el("span", {class: "restarts" + (s.restarts > 0 ? " hot" : ""),
                  title: "restarts"}, s.restarts),
      level(s));
  })));
  document.getElementById("tree").className = "tree-root";
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [node, tree] = await Promise.all([get("node"), get("tree")]);
    drawNode(node);
    drawTree(tree);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "";
  } catch (e) {
    status.textContent = String(e.message || e);
    status.className = "error";
  }
}
refresh();
setInterval(refresh, REFRESH_MS);
</script>
</body>
</html>
)html";
}

} // namespace relay
