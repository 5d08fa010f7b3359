// The console's page: executions, one execution (tree, graph, timeline, node panel; its
// actions and the launch page are in actions.js), all
// read from the JSON API and kept live by the server's events. Every value a task controls
// goes into the page as text (textContent, SVG text nodes), never as markup, and the
// server's Content-Security-Policy forbids inline script: a task that prints `<script>`
// runs nothing.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const headers = token ? { Authorization: "Bearer " + token } : {};
const SVG = "http://www.w3.org/2000/svg";
const STATUSES = ["running", "succeeded", "failed", "cancelled", "interrupted"];
const PAGE = 25;

// ---- small helpers ---------------------------------------------------------------------

// An element; `attrs` are properties (`text` sets textContent, `on*` listeners, `data-*`
// attributes), children are nodes or strings (as text).
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  setAttrs(e, attrs);
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.appendChild(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
  }
  return e;
}

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
  if (text !== undefined) e.textContent = String(text);
  return e;
}

function setAttrs(e, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === "text") e.textContent = String(v);
    else if (k === "class") e.className = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k.startsWith("data-") || k === "title" || k === "href" || k === "type" || k === "value") e.setAttribute(k, String(v));
    else e[k] = v;
  }
}

// replaceChildren that skips absent (null) parts instead of writing "null".
function put(node, ...kids) {
  node.replaceChildren(...kids.filter((k) => k !== null && k !== undefined));
}

function badge(status) {
  return el("span", { class: "badge " + status, text: status });
}

// A value as indented JSON; a big one (a million-element map's output) cut at PRETTY_MAX
// characters, saying so: a <pre> of millions of lines would stall the page.
const PRETTY_MAX = 200000;
function pretty(v) {
  const text = JSON.stringify(v, null, 2);
  if (text === undefined || text.length <= PRETTY_MAX) return text;
  return text.slice(0, PRETTY_MAX) + `\n… (cut: ${text.length} characters in all; the API's JSON has the whole value)`;
}

function fmtMs(ms) {
  if (ms === null || ms === undefined) return "";
  if (ms < 1000) return ms + " ms";
  if (ms < 60000) return (ms / 1000).toFixed(1) + " s";
  return Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
}

function fmtUs(us) {
  if (us === null || us === undefined) return "";
  return us < 1000 ? us + " µs" : fmtMs(Math.round(us / 100) / 10);
}

function enc(s) {
  return encodeURIComponent(s);
}

async function api(path) {
  const res = await fetch(path, { headers });
  let body;
  try {
    body = await res.json();
  } catch (e) {
    throw new Error(res.status + " " + res.statusText);
  }
  if (!res.ok) throw new Error(body.error || res.statusText);
  return body;
}

function say(text, isError) {
  const s = document.getElementById("status");
  s.textContent = text;
  s.className = "status" + (isError ? " error" : "");
}

function tasks(t) {
  return `${t.succeeded} done · ${t.running} running · ${t.failed} failed · ${t.cached} cached`;
}

// Calls `f` at most once per `ms`, the last call winning.
function throttle(f, ms) {
  let timer = null;
  let again = false;
  return () => {
    if (timer) {
      again = true;
      return;
    }
    f();
    timer = setTimeout(() => {
      timer = null;
      if (again) {
        again = false;
        f();
      }
    }, ms);
  };
}

// ---- live events -------------------------------------------------------------------------

let onExecutions = () => {};
const events = new EventSource("/api/events" + (token ? "?token=" + enc(token) : ""));
events.addEventListener("executions", (ev) => {
  document.getElementById("live").textContent = "live";
  let list = [];
  try {
    list = JSON.parse(ev.data);
  } catch (e) {
    return;
  }
  onExecutions(list);
});
events.addEventListener("store-error", (ev) => say("the store cannot be read: " + ev.data, true));
events.addEventListener("error", () => (document.getElementById("live").textContent = "reconnecting…"));

// ---- routing -------------------------------------------------------------------------------

function route() {
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const main = document.getElementById("main");
  main.replaceChildren();
  onExecutions = () => {};
  const m = path.match(/^\/x\/([^/]+)$/);
  if (m) executionPage(main, decodeURIComponent(m[1]), params);
  else if (path === "/launch") launchPage(main, params);
  else executionsPage(main, params);
}

window.addEventListener("hashchange", route);
route();

// ---- executions page ---------------------------------------------------------------------

function executionsPage(main, params) {
  const status = params.get("status") || "";
  const entity = params.get("entity") || "";
  const children = params.get("children") === "1";
  const offset = Math.max(0, parseInt(params.get("offset") || "0", 10) || 0);

  const statusSel = el("select", { id: "filter-status" }, el("option", { value: "", text: "any status" }));
  for (const s of STATUSES) statusSel.appendChild(el("option", { value: s, text: s, selected: s === status }));
  const entityIn = el("input", { id: "filter-entity", type: "text", value: entity, placeholder: "entity" });
  const childrenIn = el("input", { id: "filter-children", type: "checkbox", checked: children });
  const go = (off) => {
    const p = new URLSearchParams();
    if (statusSel.value) p.set("status", statusSel.value);
    if (entityIn.value) p.set("entity", entityIn.value);
    if (childrenIn.checked) p.set("children", "1");
    if (off) p.set("offset", String(off));
    location.hash = "#/?" + p.toString();
  };
  const form = el("form", { class: "filters", onsubmit: (e) => (e.preventDefault(), go(0)) },
    statusSel, entityIn, el("label", {}, childrenIn, " child executions too"),
    el("button", { type: "submit", text: "filter" }));
  const tbody = el("tbody", { id: "executions" });
  const table = el("table", { class: "executions" },
    el("thead", {}, el("tr", {}, ...["execution", "status", "entity", "started", "duration", "tasks", "progress", "parent"].map((h) => el("th", { text: h })))),
    tbody);
  const prev = el("button", { id: "prev", text: "◂ newer", disabled: offset === 0, onclick: () => go(Math.max(0, offset - PAGE)) });
  const next = el("button", { id: "next", text: "older ▸", disabled: true, onclick: () => go(offset + PAGE) });
  main.append(el("h1", { text: "Executions" }), form, table, el("div", { class: "pager" }, prev, " ", next));

  const load = async () => {
    const p = new URLSearchParams({ limit: String(PAGE), offset: String(offset) });
    if (status) p.set("status", status);
    if (entity) p.set("entity", entity);
    if (children) p.set("children", "true");
    try {
      const body = await api("/api/executions?" + p.toString());
      tbody.replaceChildren(...body.executions.map(executionRow));
      next.disabled = body.executions.length < PAGE;
      say(body.executions.length
        ? `executions ${offset + 1}–${offset + body.executions.length}, newest first`
        : "no executions match");
    } catch (err) {
      say("cannot read the executions: " + err.message, true);
    }
  };
  load();
  onExecutions = throttle(load, 1000);
}

function executionRow(e) {
  const t = e.tasks;
  const done = t.succeeded + t.failed + t.cached;
  return el("tr", { class: "exec", "data-id": e.id },
    el("td", {}, el("a", { href: "#/x/" + enc(e.id), text: e.id })),
    el("td", {}, badge(e.status)),
    el("td", { text: e.entity }),
    el("td", { text: e.started }),
    el("td", { text: fmtMs(e.duration_ms) }),
    el("td", { class: "counts", text: tasks(t) }),
    el("td", {}, el("progress", { max: Math.max(t.total, 1), value: done })),
    el("td", {}, e.parent ? el("a", { href: "#/x/" + enc(e.parent), text: e.parent }) : ""));
}

// ---- execution page ----------------------------------------------------------------------

function executionPage(main, id, params) {
  const head = el("section", { id: "exec-head" });
  // The action buttons (cancel, recover, relaunch): actions.js.
  const actions = el("div", { id: "actions", class: "actions", "data-execution": id });
  const io = el("section", { id: "exec-io", class: "io" });
  const tree = el("ul", { id: "tree", class: "tree" });
  const graphBox = el("div", { id: "graph", class: "graph" });
  const graphSel = el("select", { id: "graph-owner" });
  const timeline = el("div", { id: "timeline", class: "timeline" });
  const panel = el("aside", { id: "node-panel", class: "panel" }, el("p", { class: "hint", text: "Select a node to see its inputs, outputs, attempts and logs." }));
  const state = { id, expanded: new Set(), selected: null, zoom: 1, graphOwner: null, status: null };

  const left = el("div", { class: "col-main" },
    head, actions, io,
    el("h2", { text: "Tree" }), tree,
    el("h2", {}, "Graph ", graphSel), graphBox,
    el("h2", {}, "Timeline ",
      el("button", { id: "zoom-in", text: "+", title: "zoom in", onclick: () => ((state.zoom *= 2), drawTimeline(timeline, state)) }),
      el("button", { id: "zoom-out", text: "−", title: "zoom out", onclick: () => ((state.zoom = Math.max(0.25, state.zoom / 2)), drawTimeline(timeline, state)) })),
    timeline);
  main.append(el("div", { class: "columns" }, left, panel));
  state.panel = panel;
  state.tree = tree;

  const refreshHead = async () => {
    try {
      const x = await api("/api/executions/" + enc(id));
      state.root = x.id;
      drawHead(head, io, x);
      drawActions(actions, x);
      say(x.status === "running" ? "running: updates live" : "execution " + x.status);
      const ended = state.status === "running" && x.status !== "running";
      state.status = x.status;
      return ended;
    } catch (err) {
      say("cannot read execution " + id + ": " + err.message, true);
      return false;
    }
  };
  refreshHead().then(() => {
    drawTree(tree, state);
    loadGraphs(graphSel, graphBox, state);
    drawTimeline(timeline, state);
  });
  // One refresh at a time (a big tree takes a while to read); changes during one bring
  // one more after it.
  let busy = false;
  let again = false;
  const refresh = async () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const ended = await refreshHead();
      await drawTree(tree, state);
      if (state.selected) await selectNode(state, state.selected);
      if (ended) {
        drawTimeline(timeline, state);
        drawGraph(graphBox, state);
      }
    } finally {
      busy = false;
      if (again) {
        again = false;
        setTimeout(refresh, 500);
      }
    }
  };
  const all = throttle(refresh, 1000);
  // Only updates of this execution's tree matter here.
  onExecutions = (list) => {
    if (list.some((e) => e.id === state.root || e.root === state.root || e.id === id)) all(list);
  };
}

function drawHead(head, io, x) {
  const t = x.tasks;
  const done = t.succeeded + t.failed + t.cached;
  put(head,
    el("h1", {}, x.entity, " ", el("span", { class: "id", text: x.id })),
    el("p", {}, el("span", { id: "exec-status" }, badge(x.status)), " ",
      el("span", { id: "exec-counts", class: "counts", text: tasks(t) }), " ",
      el("progress", { id: "progress", max: Math.max(t.total, 1), value: done }), " ",
      el("span", { text: `started ${x.started}` }), " ",
      el("span", { text: x.duration_ms !== null ? "took " + fmtMs(x.duration_ms) : "" })),
    x.parent ? el("p", {}, "called by ", el("a", { href: "#/x/" + enc(x.parent), text: x.parent })) : null,
    x.recovered_from ? el("p", {}, "recovers ", el("a", { href: "#/x/" + enc(x.recovered_from), text: x.recovered_from })) : null,
    x.error ? el("pre", { id: "exec-error", class: "error", text: x.error }) : null);
  const kids = (x.children || []).map((c) =>
    el("li", {}, el("a", { href: "#/x/" + enc(c.id), text: c.id }), " ", c.entity, " ", badge(c.status)));
  put(io,
    el("div", {}, el("h3", { text: "Inputs" }), el("pre", { id: "exec-inputs", class: "json", text: pretty(x.inputs) })),
    el("div", {}, el("h3", { text: "Output" }), el("pre", { id: "exec-output", class: "json", text: pretty(x.output) })),
    kids.length ? el("div", {}, el("h3", { text: `Child executions (${kids.length})` }), el("ul", { class: "children" }, ...kids.slice(0, 50))) : null);
}

// ---- tree ----------------------------------------------------------------------------------

// Redraws the tree, reopening what was open; swaps it in once built, so it does not flicker.
async function drawTree(tree, state) {
  const fresh = el("ul", { class: "tree" });
  try {
    await loadLevel(fresh, state, "", 0);
    tree.replaceChildren(...fresh.childNodes);
  } catch (err) {
    tree.replaceChildren(el("li", { class: "error", text: "cannot read the tree: " + err.message }));
  }
}

async function loadLevel(ul, state, parent, offset) {
  const body = await api(`/api/executions/${enc(state.id)}/nodes?parent=${enc(parent)}&limit=100&offset=${offset}&outputs=false`);
  const opening = [];
  for (const n of body.nodes) {
    const li = nodeItem(state, n);
    ul.appendChild(li);
    if (n.has_children && state.expanded.has(n.path)) opening.push(expand(li, state, n));
    if (n.kind === "map" && n.has_children) opening.push(mapPhases(li, state, n));
  }
  const shown = offset + body.nodes.length;
  if (body.total > shown) {
    const more = el("li", { class: "more" });
    more.appendChild(el("button", {
      text: `show more (${shown} of ${body.total})`,
      onclick: async () => {
        more.remove();
        await loadLevel(ul, state, parent, shown);
      },
    }));
    ul.appendChild(more);
  }
  await Promise.all(opening);
}

function nodeItem(state, n) {
  const li = el("li", { class: "node", "data-path": n.path, "data-status": n.status });
  const toggle = n.has_children
    ? el("button", { class: "toggle", text: state.expanded.has(n.path) ? "▾" : "▸", title: "open or close" })
    : el("span", { class: "toggle leaf", text: "·" });
  const row = el("div", { class: "row" + (state.selected === n.path ? " selected" : "") },
    toggle,
    el("span", { class: "entity", text: n.entity }),
    el("span", { class: "kind", text: n.kind }),
    badge(n.status),
    n.cached ? el("span", { class: "badge cached", text: "cached" }) : null,
    el("span", { class: "phases" }),
    el("span", { class: "path", text: n.path }));
  row.addEventListener("click", (e) => {
    if (e.target === toggle) return;
    for (const r of state.tree.querySelectorAll(".row.selected")) r.classList.remove("selected");
    row.classList.add("selected");
    selectNode(state, n.path);
  });
  if (n.has_children) {
    toggle.addEventListener("click", async () => {
      if (state.expanded.has(n.path)) {
        state.expanded.delete(n.path);
        toggle.textContent = "▸";
        const kids = li.querySelector(":scope > ul");
        if (kids) kids.remove();
      } else {
        state.expanded.add(n.path);
        toggle.textContent = "▾";
        await expand(li, state, n);
      }
    });
  }
  li.appendChild(row);
  return li;
}

async function expand(li, state, n) {
  const ul = el("ul", { class: "children" });
  li.appendChild(ul);
  try {
    await loadLevel(ul, state, n.path, 0);
  } catch (err) {
    ul.appendChild(el("li", { class: "error", text: err.message }));
  }
}

// A map's counts per phase of its elements (failed ones are listed first when opened).
async function mapPhases(li, state, n) {
  try {
    const body = await api(`/api/executions/${enc(state.id)}/nodes?parent=${enc(n.path)}&limit=0&outputs=false`);
    const parts = Object.entries(body.phases || {}).map(([k, v]) => `${v} ${k}`);
    li.querySelector(".phases").textContent = `${body.total} elements: ${parts.join(", ")}`;
  } catch (err) {
    li.querySelector(".phases").textContent = err.message;
  }
}

// ---- node panel --------------------------------------------------------------------------

async function selectNode(state, path) {
  state.selected = path;
  const p = state.panel;
  try {
    const [node, logs] = await Promise.all([
      api(`/api/executions/${enc(state.id)}/node?path=${enc(path)}`),
      api(`/api/executions/${enc(state.id)}/logs?path=${enc(path)}`),
    ]);
    if (state.selected !== path) return;
    const dur = node.start_us !== null && node.end_us !== null ? fmtUs(node.end_us - node.start_us) : "";
    const parts = [
      el("h2", { id: "node-title", text: node.entity }),
      el("p", { class: "path", id: "node-path", text: node.path }),
      el("p", {}, badge(node.status), " ", node.kind, " · ", `${node.attempts} attempt(s)`, node.cached ? " · from the cache" : "", dur ? " · " + dur : "",
        " · execution ", el("a", { href: "#/x/" + enc(node.execution), text: node.execution })),
      el("h3", { text: "Inputs" }),
      node.inputs_unavailable
        ? el("p", { id: "node-inputs-note", class: "note", text: "not available: " + node.inputs_unavailable })
        : el("pre", { id: "node-inputs", class: "json", text: pretty(node.inputs) }),
      el("h3", { text: "Output" }),
      el("pre", { id: "node-output", class: "json", text: pretty(node.output) }),
      el("h3", { text: "Attempts" }),
    ];
    const mine = logs.attempts.filter((a) => a.path === path);
    if (!mine.length) {
      parts.push(el("p", { id: "node-no-attempts", class: "note", text: "no attempt kept: the store keeps an attempt when it failed or printed to stdout or stderr" }));
    }
    for (const a of mine) {
      parts.push(el("div", { class: "attempt", "data-attempt": a.attempt },
        el("p", {}, `attempt ${a.attempt}: `, badge(a.outcome), ` ${fmtUs(a.end_us - a.start_us)}`, a.worker !== null ? ` on worker ${a.worker}` : ""),
        a.message ? el("pre", { class: "error message", text: a.message }) : null,
        el("h4", { text: "stdout" }), el("pre", { class: "stdout", text: a.stdout || "(empty)" }),
        el("h4", { text: "stderr" }), el("pre", { class: "stderr", text: a.stderr || "(empty)" })));
    }
    p.replaceChildren(...parts.filter((x) => x));
  } catch (err) {
    p.replaceChildren(el("p", { class: "error", text: `cannot read node ${path}: ${err.message}` }));
  }
}

// ---- graph ---------------------------------------------------------------------------------

async function loadGraphs(sel, box, state) {
  try {
    const body = await api(`/api/executions/${enc(state.id)}/graphs`);
    sel.replaceChildren(...body.owners.map((o) => el("option", { value: o.path, text: `${o.path} (${o.kind})` })));
    sel.onchange = () => {
      state.graphOwner = sel.value;
      drawGraph(box, state);
    };
    if (body.owners.length) {
      state.graphOwner = body.owners[0].path;
      drawGraph(box, state);
    } else {
      box.replaceChildren(el("p", { class: "note", text: "no graph recorded" }));
    }
  } catch (err) {
    box.replaceChildren(el("p", { class: "error", text: "cannot read the graphs: " + err.message }));
  }
}

const MAX_GRAPH_NODES = 400;

// A layered layout: a node's layer is one past its deepest upstream node (bindings only
// name earlier nodes, so one pass in index order does it); rows within a layer in order.
async function drawGraph(box, state) {
  if (!state.graphOwner) return;
  let g;
  try {
    g = await api(`/api/executions/${enc(state.id)}/graphs?owner=${enc(state.graphOwner)}`);
  } catch (err) {
    box.replaceChildren(el("p", { class: "error", text: err.message }));
    return;
  }
  const nodes = g.nodes.slice(0, MAX_GRAPH_NODES);
  const layer = nodes.map(() => 0);
  const into = nodes.map(() => []);
  for (const e of g.edges) if (e.to < nodes.length && e.from < nodes.length) into[e.to].push(e.from);
  for (let i = 0; i < nodes.length; i++) for (const j of into[i]) layer[i] = Math.max(layer[i], layer[j] + 1);
  const rows = [];
  const pos = nodes.map((n, i) => {
    const l = layer[i];
    rows[l] = (rows[l] || 0) + 1;
    return { x: 20 + l * 220, y: 20 + (rows[l] - 1) * 56 };
  });
  const W = 180, H = 34;
  const width = 40 + (Math.max(0, ...layer) + 1) * 220;
  const height = 40 + Math.max(1, ...rows.filter((r) => r)) * 56;
  const s = svg("svg", { width, height, class: "graph-svg", "data-owner": g.owner });
  const defs = svg("defs");
  const marker = svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" });
  marker.appendChild(svg("path", { d: "M0,0 L10,5 L0,10 z", class: "arrowhead" }));
  defs.appendChild(marker);
  s.appendChild(defs);
  for (const e of g.edges) {
    if (e.from >= nodes.length || e.to >= nodes.length) continue;
    const a = pos[e.from], b = pos[e.to];
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2;
    const mx = (x1 + x2) / 2;
    const edge = svg("path", { d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, class: "edge " + e.kind, "marker-end": "url(#arrow)" });
    edge.appendChild(svg("title", {}, e.input ? `${e.input} ← node ${e.from}` : `after node ${e.from}`));
    s.appendChild(edge);
    if (e.input) s.appendChild(svg("text", { x: mx, y: (y1 + y2) / 2 - 3, class: "edge-label" }, e.input));
  }
  nodes.forEach((n, i) => {
    const grp = svg("g", { class: "gnode " + (n.status || "unrun"), "data-path": n.path, transform: `translate(${pos[i].x},${pos[i].y})` });
    grp.appendChild(svg("rect", { width: W, height: H, rx: 5 }));
    const label = n.entity.length > 22 ? n.entity.slice(0, 21) + "…" : n.entity;
    grp.appendChild(svg("text", { x: 8, y: 15, class: "gname" }, label + (n.map ? " [map]" : "")));
    grp.appendChild(svg("text", { x: 8, y: 28, class: "gstatus" }, n.status || "not run"));
    grp.appendChild(svg("title", {}, n.path));
    if (n.status) grp.addEventListener("click", () => selectNode(state, n.path));
    s.appendChild(grp);
  });
  const note = g.nodes.length > nodes.length ? el("p", { class: "note", text: `showing ${nodes.length} of ${g.nodes.length} nodes` }) : null;
  box.replaceChildren(...[note, s].filter((x) => x));
}

// ---- timeline ------------------------------------------------------------------------------

// One row per worker; attempts whose worker the store did not keep are packed into lanes, so
// what ran at once still shows side by side.
async function drawTimeline(box, state) {
  let body;
  try {
    body = await api(`/api/executions/${enc(state.id)}/timeline`);
  } catch (err) {
    box.replaceChildren(el("p", { class: "error", text: "cannot read the timeline: " + err.message }));
    return;
  }
  const spans = body.spans.filter((s) => s.start_us !== null);
  if (!spans.length) {
    box.replaceChildren(el("p", { class: "note", text: "no task has run yet" }));
    return;
  }
  const t0 = Math.min(...spans.map((s) => s.start_us));
  const t1 = Math.max(...spans.map((s) => s.end_us || s.start_us));
  const rows = new Map();
  const lanes = [];
  for (const s of spans) {
    let key;
    if (s.worker !== null) key = `worker ${s.worker}`;
    else {
      let k = lanes.findIndex((end) => end <= s.start_us);
      if (k < 0) {
        k = lanes.length;
        lanes.push(0);
      }
      lanes[k] = s.end_us || s.start_us;
      key = `lane ${k + 1}`;
    }
    if (!rows.has(key)) rows.set(key, []);
    rows.get(key).push(s);
  }
  const LABEL = 90, ROW = 22;
  const plot = Math.max(300, (box.clientWidth || 900) - LABEL - 30) * state.zoom;
  const scale = plot / Math.max(1, t1 - t0);
  const height = 30 + rows.size * ROW;
  const s = svg("svg", { width: LABEL + plot + 20, height, class: "timeline-svg" });
  for (let i = 0; i <= 5; i++) {
    const x = LABEL + (plot * i) / 5;
    s.appendChild(svg("line", { x1: x, x2: x, y1: 14, y2: height, class: "tick" }));
    s.appendChild(svg("text", { x: x + 2, y: 11, class: "tick-label" }, fmtUs(Math.round(((t1 - t0) * i) / 5))));
  }
  let r = 0;
  for (const [key, list] of rows) {
    const y = 20 + r * ROW;
    s.appendChild(svg("text", { x: 4, y: y + 13, class: "row-label" }, key));
    for (const a of list) {
      const x = LABEL + (a.start_us - t0) * scale;
      const w = Math.max(2, ((a.end_us || t1) - a.start_us) * scale);
      const bar = svg("rect", { x, y, width: w, height: ROW - 6, class: "bar " + a.outcome, "data-path": a.path });
      bar.appendChild(svg("title", {}, `${a.path} attempt ${a.attempt}: ${a.outcome}, ${fmtUs((a.end_us || t1) - a.start_us)}`));
      bar.addEventListener("click", () => selectNode(state, a.path));
      s.appendChild(bar);
    }
    r++;
  }
  const note = body.total > body.spans.length ? el("p", { class: "note", text: `the first ${body.spans.length} of ${body.total} attempts` }) : null;
  box.replaceChildren(...[note, s].filter((x) => x));
}
