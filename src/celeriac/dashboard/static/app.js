// celeriac dashboard: renders /api/state (pushed by SSE on /api/stream) and the task
// list. Every value from the fleet goes into the page as text (textContent), never as
// HTML: task arguments are whatever a client sent.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);
let current = null;        // the last state
let openTask = null;       // the task id shown in the detail panel
const charts = {};

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const cell of cells) tr.appendChild(cell instanceof Node ? cell : el("td", cell));
  return tr;
}

function td(text, cls) { return el("td", text, cls); }

function when(ts) {
  if (!ts) return "";
  return new Date(ts * 1000).toLocaleTimeString();
}

// a run time in the unit that shows it (tasks often take microseconds)
function seconds(value) {
  if (typeof value !== "number") return "";
  if (value === 0) return "0";
  if (value < 1e-3) return `${+(value * 1e6).toPrecision(3)} µs`;
  if (value < 1) return `${+(value * 1e3).toPrecision(3)} ms`;
  return `${+value.toPrecision(3)} s`;
}

function notice(message, ok) {
  const box = $("notice");
  box.textContent = message;
  box.className = ok ? "" : "error";
  box.hidden = false;
}

// -- views -------------------------------------------------------------------------------
function show(view) {
  for (const section of document.querySelectorAll(".view")) {
    section.hidden = section.id !== "view-" + view;
  }
  for (const link of document.querySelectorAll("nav a")) {
    link.classList.toggle("active", link.dataset.view === view);
  }
  if (view === "tasks") loadTasks();
  if (view === "charts" && current) drawCharts(current.charts);
}

function currentView() {
  const name = location.hash.replace("#", "");
  return ["workers", "queues", "tasks", "charts"].includes(name) ? name : "workers";
}

function renderWorkers(state) {
  const body = $("workers-table").querySelector("tbody");
  body.replaceChildren();
  for (const w of state.workers) {
    const pool = w.pool ? `${w.pool}${w.concurrency ? " × " + w.concurrency : ""}` : "";
    body.appendChild(row([
      td(w.hostname),
      td(w.online ? "online" : "offline", w.online ? "online" : "offline"),
      td(w.heartbeat_age === null ? "" : `${w.heartbeat_age} s ago`),
      td(w.sw), td(pool), td(w.active), td(w.processed),
      td((w.loadavg || []).map((x) => x.toFixed(2)).join(" ")),
    ]));
  }
  $("workers-empty").hidden = state.workers.length > 0;
  $("online-count").textContent = `${state.online} online of ${state.workers.length}`;
}

function renderQueues(state) {
  const body = $("queues-table").querySelector("tbody");
  body.replaceChildren();
  const q = state.queues;
  if (!q) {
    $("broker-line").textContent = state.queues_error || "reading the broker…";
    return;
  }
  const dash = (v) => (v === null || v === undefined ? "—" : v);
  $("broker-line").textContent =
    `Delayed (countdown/eta/retry): ${dash(q.delayed)} · in flight: ${dash(q.in_flight)}` +
    ` · dead letters: ${q.dead_letters}` + (state.queues_error ? ` · ${state.queues_error}` : "");
  for (const queue of q.queues) {
    const purge = el("button", "Purge", "danger");
    purge.type = "button";
    purge.dataset.queue = queue.queue;
    purge.addEventListener("click", () => act("purge_queue", { queue: queue.queue },
      `Delete every ready message of queue ${queue.queue}? There is no undo.`));
    const actions = el("td");
    actions.appendChild(purge);
    body.appendChild(row([td(queue.queue), td(dash(queue.ready)), td(queue.dead_letters),
                          actions]));
  }
}

async function loadTasks() {
  const params = new URLSearchParams({ search: $("task-search").value,
                                       state: $("task-state").value });
  const reply = await fetch("/api/tasks?" + params, { credentials: "same-origin" });
  if (!reply.ok) return;
  const tasks = await reply.json();
  const body = $("tasks-table").querySelector("tbody");
  body.replaceChildren();
  for (const t of tasks) {
    const tr = row([td(t.name), td(t.uuid), td(t.state, "state state-" + t.state),
                    td(t.args), td(t.kwargs), td(t.worker), td(when(t.received)),
                    td(seconds(t.runtime))]);
    tr.dataset.uuid = t.uuid;
    tr.addEventListener("click", () => openDetail(t.uuid));
    body.appendChild(tr);
  }
  if (current) {
    $("task-count").textContent =
      `${tasks.length} shown · ${current.tasks_kept} kept (at most ${current.max_tasks})`;
  }
}

async function openDetail(uuid) {
  const reply = await fetch("/api/tasks/" + encodeURIComponent(uuid),
                            { credentials: "same-origin" });
  if (!reply.ok) { notice(`Task ${uuid} is no longer in the history.`, false); return; }
  const t = await reply.json();
  openTask = t;
  $("detail-id").textContent = t.uuid;
  const fields = $("detail-fields");
  fields.replaceChildren();
  for (const key of ["name", "state", "worker", "args", "kwargs", "result", "exception",
                     "traceback", "retries", "runtime", "eta", "expires", "terminated",
                     "expired", "root_id", "parent_id", "children"]) {
    let value = t[key];
    if (value === undefined || value === null || value === "" || value === false) continue;
    if (Array.isArray(value)) { if (!value.length) continue; value = value.join("\n"); }
    fields.appendChild(el("dt", key));
    fields.appendChild(el("dd", value));
  }
  const timeline = $("detail-timeline");
  timeline.replaceChildren();
  for (const e of t.timeline) {
    timeline.appendChild(el("li", `${when(e.timestamp)}  ${e.type}  ${e.hostname || ""}`));
  }
  $("task-detail").hidden = false;
}

function drawChart(id, title, data, unit) {
  const box = $(id);
  const names = data.names;
  const runtime = unit === "runtime";
  const series = [{}].concat(names.map((name, i) => ({
    label: name, stroke: PALETTE[i % PALETTE.length], width: 2, spanGaps: true,
    ...(runtime ? { value: (u, v) => (v === null ? "--" : seconds(v)) } : {}),
  })));
  const rows = [data.times].concat(names.map((name) => data[unit][name]));
  const width = Math.max(320, box.clientWidth - 2);
  if (charts[id] && charts[id].names === names.join("\n")) {
    charts[id].plot.setData(rows);
    return;
  }
  if (charts[id]) charts[id].plot.destroy();
  box.replaceChildren();
  const plot = new uPlot({ title, width, height: 240, series,
                           axes: [{}, runtime
                             ? { values: (u, splits) => splits.map(seconds), size: 70 }
                             : { label: "tasks/s" }] },
                         rows, box);
  charts[id] = { plot, names: names.join("\n") };
}

const PALETTE = ["#2f6f4e", "#1f5fa8", "#b3261e", "#8a6100", "#6b3fa0", "#00838f",
                 "#c2185b", "#5d4037"];

function drawCharts(data) {
  if (typeof uPlot === "undefined") return;
  drawChart("chart-throughput", "Tasks finished per second", data, "throughput");
  drawChart("chart-runtime", "Mean run time", data, "runtime");
}

function render(state) {
  current = state;
  renderWorkers(state);
  renderQueues(state);
  const view = currentView();
  if (view === "tasks") {
    loadTasks();
    if (openTask) openDetail(openTask.uuid);  // its state and timeline as they change
  }
  if (view === "charts") drawCharts(state.charts);
  $("footer").textContent = `${state.events_seen} events received · ` +
    `${Object.entries(state.counts).map(([k, v]) => `${k} ${v}`).join(" · ")}`;
}

// -- actions -----------------------------------------------------------------------------
async function act(name, params, question) {
  if (!window.confirm(question)) return;
  let reply;
  try {
    reply = await fetch("/api/actions/" + name, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
      body: JSON.stringify(params),
    });
  } catch (err) {
    notice(`${name} failed: ${err}`, false);
    return;
  }
  const body = await reply.json().catch(() => ({ message: reply.statusText }));
  notice(body.message, reply.ok && body.ok);
}

function wire() {
  for (const link of document.querySelectorAll("nav a")) {
    link.addEventListener("click", () => setTimeout(() => show(currentView()), 0));
  }
  window.addEventListener("hashchange", () => show(currentView()));
  $("task-search").addEventListener("input", loadTasks);
  $("task-state").addEventListener("change", loadTasks);
  $("requeue-dead").addEventListener("click", () => act("requeue_dead", {},
    "Send every dead letter back to its queue?"));
  $("purge-dead").addEventListener("click", () => act("purge_dead", {},
    "Delete every dead letter? There is no undo."));
  $("revoke").addEventListener("click", () => openTask && act("revoke",
    { task_id: openTask.uuid, terminate: false }, `Revoke task ${openTask.uuid}?`));
  $("terminate").addEventListener("click", () => openTask && act("revoke",
    { task_id: openTask.uuid, terminate: true },
    `Revoke task ${openTask.uuid} and terminate it if it is running?`));
  $("rate-limit").addEventListener("click", () => {
    if (!openTask || !openTask.name) return;
    const rate = window.prompt(`Rate limit for ${openTask.name} (e.g. 10/s, 100/m):`, "10/s");
    if (rate) act("rate_limit", { task_name: openTask.name, rate },
                  `Set the rate limit of ${openTask.name} to ${rate} on every worker?`);
  });
  $("revoke-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const id = $("revoke-id").value.trim();
    if (!id) return;
    const terminate = $("revoke-terminate").checked;
    act("revoke", { task_id: id, terminate },
        `Revoke task ${id}${terminate ? " and terminate it if it is running" : ""}?`);
  });
  $("close-detail").addEventListener("click", () => {
    $("task-detail").hidden = true; openTask = null;
  });
}

function connect() {
  const live = $("live");
  const stream = new EventSource("/api/stream");
  stream.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  stream.onmessage = (message) => render(JSON.parse(message.data));
  stream.onerror = () => { live.textContent = "reconnecting…"; live.classList.remove("on"); };
}

wire();
show(currentView());
connect();
