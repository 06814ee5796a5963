// taskq dashboard: draws each page from the JSON API. Everything from the server goes into
// the page as text (textContent, attribute values), never as HTML.
"use strict";

const ROOT = document.querySelector('meta[name="taskq-root"]').content;
const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const STATES = ["sent", "received", "started", "succeeded", "failed", "retried", "rejected", "cancelled"];
const SVG = "http://www.w3.org/2000/svg";
let refresh = null;  // the open page's redraw from fresh data
let lastRedraw = Promise.resolve();  // the latest redraw, running or waiting to
let waitingRedraw = null;  // a redraw not started yet: it serves every caller until it starts

// Redraws the open page, one redraw at a time, after those already asked for: a redraw a live
// update started before an action finished would otherwise paint what it read before the
// action over what the action's redraw read after it. Calls made while one waits share it.
function redraw() {
  if (waitingRedraw === null) {
    waitingRedraw = lastRedraw.catch(() => {}).then(() => {
      waitingRedraw = null;
      return refresh && refresh();
    });
    lastRedraw = waitingRedraw;
  }
  return waitingRedraw;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "onclick" || key === "onsubmit" || key === "onchange") node[key] = value;
    else if (value !== null && value !== undefined && value !== false) node.setAttribute(key, String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

// A button held down on the page: a redraw now would replace what it was pressed on, and the
// click (a press and a release on the same element) would never come. Live updates are skipped
// meanwhile, and what a fetch under way brings is drawn once the click has happened.
let pressed = false;
let onRelease = [];
document.addEventListener("pointerdown", () => { pressed = true; }, true);
function pointerUp() {
  pressed = false;
  const waiting = onRelease;
  onRelease = [];
  setTimeout(() => waiting.forEach((resume) => resume()));  // after the click it makes
}
document.addEventListener("pointerup", pointerUp, true);
document.addEventListener("pointercancel", pointerUp, true);
window.addEventListener("blur", pointerUp);  // released in another window: no pointerup here

function pointerReleased() {
  return pressed ? new Promise((resume) => onRelease.push(resume)) : Promise.resolve();
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: {"Content-Type": "application/json", "X-CSRF-Token": CSRF},
    body: JSON.stringify(body),
  };
  const response = await fetch(ROOT + path, {credentials: "same-origin", ...options});
  const data = await response.json();
  await pointerReleased();  // every page is drawn from what this returns
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function when(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function ago(seconds) {
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

function localInput(seconds) {
  // Unix seconds as a datetime-local value, in the browser's timezone
  if (!seconds) return "";
  const date = new Date(Number(seconds) * 1000);
  return new Date(date.getTime() - date.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function json(value) {
  return el("pre", {class: "code"}, JSON.stringify(value, null, 2));
}

function badge(state) {
  return el("span", {class: `badge state-${state}`}, state);
}

function taskLink(task) {
  return el("a", {href: `${ROOT}/tasks/${encodeURIComponent(task.task_id)}`, class: "mono"}, task.task_id);
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
    el("tbody", {}, rows.length ? rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))
      : el("tr", {}, el("td", {colspan: headers.length, class: "muted"}, "nothing here"))));
}

let lastFlash = null;  // the outcome of the last action: kept across live redraws

function flashNode() {
  return lastFlash === null ? "" : el("p", {class: `flash ${lastFlash.kind}`}, lastFlash.text);
}

function flash(text, kind) {
  lastFlash = {text, kind: kind || "error"};
  const box = document.getElementById("flash");
  if (box) box.replaceChildren(flashNode());
}

async function act(question, path, body) {
  if (!window.confirm(question)) return;
  let result;
  try {
    result = await api(path, body);
  } catch (error) {
    flash(error.message);  // the page stays as it is: what was typed is kept
    return;
  }
  for (const form of document.querySelectorAll("form[data-dirty]")) delete form.dataset.dirty;
  await redraw();
  flash(`Done: ${JSON.stringify(result)}`, "ok");
}

function page(title, ...children) {
  if (document.querySelector("form[data-dirty]")) return;  // never wipe what is being typed
  const main = document.getElementById("page");
  main.replaceChildren(el("h1", {}, title), el("div", {id: "flash"}, flashNode()), ...children);
}

// -- charts (inline SVG) --------------------------------------------------------------------

function barChart(minutes, label) {
  const width = 600, height = 140, pad = 24;
  const max = Math.max(1, ...minutes.map((m) => m.succeeded + m.failed));
  const step = (width - pad) / Math.max(minutes.length, 1);
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height + 16}`, class: "chart", role: "img", "aria-label": label});
  chart.append(svg("text", {x: 0, y: 12, class: "axis"}, String(max)));
  chart.append(svg("line", {x1: pad, y1: height, x2: width, y2: height, class: "axis-line"}));
  minutes.forEach((m, i) => {
    const x = pad + i * step;
    const ok = (m.succeeded / max) * (height - 16), bad = (m.failed / max) * (height - 16);
    const title = `${when(m.minute).slice(11, 16)}: ${m.succeeded} succeeded, ${m.failed} failed`;
    chart.append(svg("rect", {x, y: height - ok, width: Math.max(step - 1, 1), height: ok, class: "bar-ok"}, svg("title", {}, title)));
    chart.append(svg("rect", {x, y: height - ok - bad, width: Math.max(step - 1, 1), height: bad, class: "bar-failed"}, svg("title", {}, title)));
  });
  chart.append(svg("text", {x: pad, y: height + 14, class: "axis"}, "−60 min"));
  chart.append(svg("text", {x: width - 30, y: height + 14, class: "axis"}, "now"));
  return chart;
}

function rateChart(minutes) {
  const width = 600, height = 140, pad = 24;
  const step = (width - pad) / Math.max(minutes.length - 1, 1);
  const points = minutes.map((m, i) => {
    const done = m.succeeded + m.failed;
    const rate = done ? m.failed / done : 0;
    return `${pad + i * step},${height - rate * (height - 16)}`;
  });
  return svg("svg", {viewBox: `0 0 ${width} ${height + 16}`, class: "chart", role: "img", "aria-label": "failure rate per minute"},
    svg("text", {x: 0, y: 12, class: "axis"}, "100%"),
    svg("text", {x: 0, y: height, class: "axis"}, "0%"),
    svg("line", {x1: pad, y1: height, x2: width, y2: height, class: "axis-line"}),
    svg("polyline", {points: points.join(" "), class: "rate-line"}),
    svg("text", {x: pad, y: height + 14, class: "axis"}, "−60 min"),
    svg("text", {x: width - 30, y: height + 14, class: "axis"}, "now"));
}

function depthChart(queue) {
  const states = ["ready", "delayed", "in_flight", "dead"];
  const max = Math.max(1, ...states.map((s) => queue[s]));
  return el("div", {class: "depth"}, states.map((s) =>
    el("div", {class: "depth-row"},
      el("span", {class: "depth-label"}, s.replace("_", " ")),
      el("span", {class: `depth-bar depth-${s}`, style: null, "data-width": Math.round((queue[s] / max) * 100)}),
      el("span", {class: "depth-value"}, String(queue[s])))));
}

function depthOverTime(history) {
  // one line per state, over the time this dashboard has watched the queue (up to an hour)
  const width = 600, height = 120, pad = 24;
  const states = ["ready", "delayed", "in_flight", "dead"];
  const chart = svg("svg", {viewBox: `0 0 ${width} ${height + 16}`, class: "chart depth-chart", role: "img", "aria-label": "queue depth over time"});
  if (history.length < 2) {
    chart.append(svg("text", {x: pad, y: height / 2, class: "axis"}, "collecting depths while the dashboard runs…"));
    return chart;
  }
  const max = Math.max(1, ...history.flatMap((h) => states.map((s) => h[s])));
  const times = history.map((h) => h.time);
  const start = Math.min(...times), span = Math.max(Math.max(...times) - start, 1);
  chart.append(svg("text", {x: 0, y: 12, class: "axis"}, String(max)));
  chart.append(svg("line", {x1: pad, y1: height, x2: width, y2: height, class: "axis-line"}));
  for (const state of states) {
    const points = history.map((h) => `${pad + ((h.time - start) / span) * (width - pad)},${height - (h[state] / max) * (height - 16)}`);
    chart.append(svg("polyline", {points: points.join(" "), class: `depth-line depth-line-${state}`}, svg("title", {}, state.replace("_", " "))));
  }
  chart.append(svg("text", {x: pad, y: height + 14, class: "axis"}, when(start).slice(11, 19)));
  chart.append(svg("text", {x: width - 50, y: height + 14, class: "axis"}, "now"));
  return chart;
}

function sizeBars(root) {
  // widths as SVG-free CSS: set through the DOM (the CSP forbids inline style attributes)
  for (const bar of root.querySelectorAll("[data-width]")) bar.style.width = `${bar.dataset.width}%`;
}

// -- pages ----------------------------------------------------------------------------------

function renderOverview(data) {
  const windows = data.throughput.map((w) => el("div", {class: "card"},
    el("div", {class: "card-title"}, `last ${w.minutes} min`),
    el("div", {class: "card-value"}, `${w.per_minute.toFixed(1)}/min`),
    el("div", {class: "muted"}, `${w.succeeded} ok, ${w.failed} failed, failure rate ${w.failure_rate === null ? "–" : (w.failure_rate * 100).toFixed(1) + "%"}`)));
  const alive = el("div", {class: "card"},
    el("div", {class: "card-title"}, "workers alive"),
    el("div", {class: "card-value", id: "workers-alive"}, `${data.alive} / ${data.workers.length}`),
    el("a", {href: `${ROOT}/workers`}, "see workers"));
  let queue;
  if (data.queue) {
    queue = el("section", {class: "panel", id: "queue"}, el("h2", {}, `Queue ${data.queue.queue}`),
      el("div", {class: "grid"}, depthChart(data.queue), depthOverTime(data.queue_history)));
  } else {
    queue = el("section", {class: "panel", id: "queue"}, el("h2", {}, "Queue"), el("p", {class: "muted"}, `n/a: ${data.queue_note}`));
  }
  const failures = table(["time", "task", "id", "error"], data.failures.map((f) => [
    when(f.time), f.task_name, taskLink(f), `${f.error_type || "error"}: ${f.error_message || ""}`]));
  page("Overview",
    el("div", {class: "cards"}, alive, windows),
    el("div", {class: "grid"},
      el("section", {class: "panel"}, el("h2", {}, "Throughput per minute (last hour)"), barChart(data.minutes, "tasks finished per minute")),
      el("section", {class: "panel"}, el("h2", {}, "Failure rate per minute"), rateChart(data.minutes))),
    queue,
    el("section", {class: "panel", id: "failures"}, el("h2", {}, "Latest failures"), failures));
  sizeBars(document.getElementById("page"));
}

async function overviewPage() {
  refresh = async () => renderOverview(await api("/api/overview"));
  await refresh();
}

async function tasksPage() {
  const params = new URLSearchParams(location.search);
  const field = (name, label, attrs) => el("label", {}, label, el("input", {name, value: params.get(name) || "", ...attrs}));
  const state = el("select", {name: "state"}, el("option", {value: ""}, "any state"),
    STATES.map((s) => el("option", {value: s, selected: params.get("state") === s}, s)));
  const form = el("form", {class: "filters", method: "get", action: `${ROOT}/tasks`},
    field("id", "id", {placeholder: "task id"}), field("name", "name", {placeholder: "task name"}),
    el("label", {}, "state", state), field("worker", "worker", {placeholder: "host:pid:process"}),
    field("since", "since (your time)", {type: "datetime-local", value: localInput(params.get("since"))}),
    field("until", "until (your time)", {type: "datetime-local", value: localInput(params.get("until"))}),
    el("button", {type: "submit"}, "Filter"));
  form.onsubmit = (event) => {
    event.preventDefault();
    const chosen = [...new FormData(form).entries()].filter(([, value]) => value !== "")
      .map(([name, value]) => [name, ["since", "until"].includes(name) ? String(new Date(value).getTime() / 1000) : value]);
    location.assign(`${ROOT}/tasks?${new URLSearchParams(chosen)}`);
  };
  const results = el("div", {id: "results"});
  page("Tasks", form, results);
  refresh = async () => {
    const data = await api(`/api/tasks?${params}`);
    const next = new URLSearchParams(params);
    if (data.cursor) next.set("cursor", data.cursor);
    results.replaceChildren(
      table(["task", "id", "state", "worker", "last event", "duration"], data.tasks.map((t) => [
        t.task_name, taskLink(t), badge(t.state), t.worker, when(t.last_time), t.duration === null ? "–" : `${t.duration.toFixed(3)} s`])),
      data.cursor ? el("a", {class: "button", href: `${ROOT}/tasks?${next}`, id: "next-page"}, "Next page") : "");
  };
  await refresh();
}

function progressBar(progress) {
  const meta = progress.meta;
  let percent = null;
  if (typeof meta === "number") percent = meta;
  else if (meta && typeof meta.percent === "number") percent = meta.percent;
  else if (meta && typeof meta.done === "number" && typeof meta.total === "number" && meta.total > 0) percent = (100 * meta.done) / meta.total;
  const shown = percent === null ? null : Math.max(0, Math.min(100, percent));
  return el("section", {class: "panel", id: "progress"}, el("h2", {}, "Progress"),
    el("div", {class: "muted"}, `state ${progress.state}`),
    shown === null ? json(meta) : el("div", {class: "progress"}, el("span", {class: "progress-fill", "data-width": Math.round(shown)}), el("span", {class: "progress-text"}, `${Math.round(shown)}%`)));
}

async function taskPage(taskId) {
  refresh = async () => {
    let data;
    try {
      data = await api(`/api/tasks/${encodeURIComponent(taskId)}`);
    } catch (error) {
      page(`Task ${taskId}`, el("p", {class: "muted"}, error.message));
      return;
    }
    const t = data.task;
    const result = data.result;
    const parts = [
      el("dl", {class: "facts"},
        el("dt", {}, "task"), el("dd", {}, t.task_name),
        el("dt", {}, "state"), el("dd", {id: "task-state"}, badge(t.state)),
        el("dt", {}, "worker"), el("dd", {id: "worker"}, t.worker),
        el("dt", {}, "retries"), el("dd", {id: "retries"}, String(data.retries)),
        el("dt", {}, "first seen"), el("dd", {}, when(t.first_time)),
        el("dt", {}, "last event"), el("dd", {}, when(t.last_time))),
    ];
    if (data.can_cancel) {
      parts.push(el("button", {class: "danger", id: "cancel", onclick: () => act(`Cancel task ${taskId}?`, `/api/tasks/${encodeURIComponent(taskId)}/cancel`, {})}, "Cancel task"));
    }
    if (data.can_retry) {
      parts.push(el("button", {id: "retry", onclick: () => act(`Send task ${taskId} again, as a new task with the same arguments?`, `/api/tasks/${encodeURIComponent(taskId)}/retry`, {})}, "Retry task"));
    }
    if (data.retried_as.length) {
      parts.push(el("p", {id: "retried-as"}, "Retried as ", data.retried_as.flatMap((id, i) => [i ? ", " : "", taskLink({task_id: id})])));
    }
    if (data.progress) parts.push(progressBar(data.progress));
    const message = data.message;
    parts.push(el("section", {class: "panel", id: "arguments"}, el("h2", {}, "Arguments"),
      message ? [el("div", {class: "muted"}, "args"), json(message.args), el("div", {class: "muted"}, "kwargs"), json(message.kwargs)]
        : el("p", {class: "muted", id: "arguments-note"}, data.message_note)));
    const labels = message ? message.labels : (result ? result.labels : null);
    if (labels) parts.push(el("section", {class: "panel", id: "labels"}, el("h2", {}, "Labels"), json(labels)));
    if (result) {
      if (result.is_err && result.error) {
        parts.push(el("section", {class: "panel", id: "error"}, el("h2", {}, "Error"),
          el("p", {class: "error-text"}, `${result.error.type}: ${result.error.message}`),
          result.traceback ? el("pre", {class: "code", id: "traceback"}, result.traceback) : ""));
      } else {
        parts.push(el("section", {class: "panel", id: "result"}, el("h2", {}, "Result"), json(result.return_value),
          el("p", {class: "muted"}, `ran in ${result.execution_time.toFixed(3)} s`)));
      }
    }
    parts.push(el("section", {class: "panel", id: "timeline"}, el("h2", {}, "Events"),
      el("ol", {class: "timeline"}, data.events.map((e) => el("li", {},
        el("span", {class: "mono"}, when(e.time)), " ", badge(e.kind), " ", e.worker,
        e.retry ? ` retry ${e.retry} in ${e.retry_delay} s` : "",
        e.error_type || e.error_message ? ` — ${e.error_type || ""} ${e.error_message || ""}` : "",
        e.new_task_id ? [" as task ", taskLink({task_id: e.new_task_id})] : "",
        e.duration !== undefined ? ` (${e.duration.toFixed(3)} s)` : "")))));
    page(`Task ${taskId}`, ...parts);
    sizeBars(document.getElementById("page"));
  };
  await refresh();
}

async function workersPage() {
  refresh = async () => {
    const data = await api("/api/workers");
    page("Workers",
      el("p", {class: "muted"}, `stale after ${data.stale_after} s without a heartbeat`),
      table(["worker", "", "broker", "queue", "running", "concurrency", "processed", "failed", "last heartbeat", "running now"],
        data.workers.map((w) => [
          el("span", {class: "mono"}, w.worker),
          el("span", {class: w.alive ? "badge alive" : "badge stale"},
            w.alive ? "alive" : w.clock_ahead ? "clock ahead" : "stale"),
          w.broker, w.queue, String(w.running), String(w.concurrency), String(w.processed), String(w.failed),
          w.clock_ahead ? `dated ${Math.round(-w.age)} s ahead` : ago(w.age), el("span", {}, w.running_tasks.map((t) => el("div", {}, t.task_name, " ", taskLink(t)))),
        ])));
  };
  await refresh();
}

async function deadLettersPage() {
  refresh = async () => {
    const data = await api("/api/dead-letters");
    if (!data.available) {
      page("Dead letters", el("p", {class: "muted"}, "This broker keeps no dead letters."));
      return;
    }
    const features = (await api("/api/overview")).features;
    const actions = features.dead_letter_actions;
    const all = actions ? el("div", {class: "actions"},
      el("button", {id: "replay-all", onclick: () => act(`Replay all ${data.count} dead letters?`, "/api/dead-letters/replay", {ids: null})}, "Replay all"),
      el("button", {class: "danger", id: "purge-all", onclick: () => act(`Purge all ${data.count} dead letters for good?`, "/api/dead-letters/purge", {ids: null})}, "Purge all")) : "";
    page("Dead letters", el("p", {id: "dead-count"}, `${data.count} dead letter(s)`), all,
      table(["dead at", "reason", "task", "deliveries", "payload", ""], data.dead_letters.map((d) => [
        when(d.dead_at), el("span", {class: "reason"}, d.reason),
        d.message ? el("span", {}, d.message.task_name, el("br"), el("a", {href: `${ROOT}/tasks/${encodeURIComponent(d.message.task_id)}`, class: "mono"}, d.message.task_id)) : "–",
        d.deliveries === null ? "–" : String(d.deliveries),
        d.message ? json({args: d.message.args, kwargs: d.message.kwargs, labels: d.message.labels}) : el("pre", {class: "code"}, d.payload || ""),
        actions ? el("span", {class: "row-actions"},
          el("button", {onclick: () => act(`Replay dead letter ${d.id}?`, "/api/dead-letters/replay", {ids: [d.id]})}, "Replay"),
          el("button", {class: "danger", onclick: () => act(`Purge dead letter ${d.id} for good?`, "/api/dead-letters/purge", {ids: [d.id]})}, "Purge")) : "",
      ])));
  };
  await refresh();
}

function addScheduleForm(source, tasks) {
  const form = el("form", {class: "filters add-schedule"},
    el("label", {}, "task", el("select", {name: "task_name"}, tasks.map((t) => el("option", {value: t}, t)))),
    el("label", {}, "kind", el("select", {name: "kind"}, ["cron", "interval", "time"].map((k) => el("option", {value: k}, k)))),
    el("label", {}, "cron / seconds / ISO time", el("input", {name: "spec", placeholder: "*/5 * * * *"})),
    el("label", {}, "timezone (cron)", el("input", {name: "timezone", placeholder: "Europe/Paris"})),
    el("label", {}, "args (JSON)", el("input", {name: "args", value: "[]"})),
    el("label", {}, "kwargs (JSON)", el("input", {name: "kwargs", value: "{}"})),
    el("button", {type: "submit"}, "Add schedule"));
  form.oninput = () => { form.dataset.dirty = "1"; };  // live updates wait until it is sent
  form.onsubmit = (event) => {
    event.preventDefault();
    const body = Object.fromEntries(new FormData(form).entries());
    act(`Add a ${body.kind} schedule of ${body.task_name}?`, `/api/schedules/${source.index}`, body);
  };
  return form;
}

async function schedulesPage() {
  refresh = async () => {
    const data = await api("/api/schedules");
    if (!data.available) {
      page("Schedules", el("p", {class: "muted"}, "Start the dashboard with --scheduler to see schedules."));
      return;
    }
    const actions = (await api("/api/overview")).features.schedule_actions;
    page("Schedules", ...data.sources.map((source) => el("section", {class: "panel source"},
      el("h2", {}, `${source.source} #${source.index}`, source.dynamic ? el("span", {class: "badge"}, "dynamic") : ""),
      source.error ? el("p", {class: "flash error"}, source.error) : "",
      table(["task", "kind", "schedule", "timezone", "next fire", "arguments", ""], source.schedules.map((s) => [
        s.task_name, s.kind, el("span", {class: "mono"}, s.spec), s.timezone, when(s.next_fire),
        json({args: s.args, kwargs: s.kwargs}),
        actions ? el("span", {class: "row-actions"},
          el("button", {onclick: () => act(`Run ${s.task_name} now?`, `/api/schedules/${source.index}/${encodeURIComponent(s.schedule_id)}/run`, {})}, "Run now"),
          source.dynamic ? el("button", {class: "danger", onclick: () => act(`Delete this schedule of ${s.task_name}?`, `/api/schedules/${source.index}/${encodeURIComponent(s.schedule_id)}/delete`, {})}, "Delete") : "") : "",
      ])),
      actions && source.dynamic ? addScheduleForm(source, data.tasks) : "")));
  };
  await refresh();
}

// -- routing and live updates -----------------------------------------------------------------

function route() {
  const path = location.pathname.slice(ROOT.length) || "/";
  for (const link of document.querySelectorAll("nav a")) {
    const target = link.dataset.path;
    link.classList.toggle("active", target === "/" ? path === "/" : path.startsWith(target));
  }
  if (path.startsWith("/tasks/")) return taskPage(decodeURIComponent(path.slice("/tasks/".length)));
  return ({"/tasks": tasksPage, "/workers": workersPage, "/dead-letters": deadLettersPage, "/schedules": schedulesPage}[path] || overviewPage)();
}

function live() {
  const indicator = document.getElementById("live");
  const source = new EventSource(`${ROOT}/api/stream`);
  source.addEventListener("open", () => indicator.classList.add("on"));
  source.addEventListener("error", () => indicator.classList.remove("on"));
  source.addEventListener("failure", (event) => flash(JSON.parse(event.data).error));
  source.addEventListener("overview", (event) => {
    const active = document.activeElement;
    if (active && ["INPUT", "SELECT", "TEXTAREA"].includes(active.tagName)) return;  // the user is typing
    if (document.querySelector("form[data-dirty]")) return;  // a form is half filled in
    if (pressed) return;  // the user is clicking: the next update redraws
    if (refresh === null) return;
    if ((location.pathname.slice(ROOT.length) || "/") === "/") renderOverview(JSON.parse(event.data));
    else redraw().catch((error) => flash(error.message));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  route().then(() => { document.body.dataset.ready = "1"; }).catch((error) => flash(error.message));
  live();
});
