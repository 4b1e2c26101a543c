"use strict";
// The Swapline dashboard: live queue figures, the task list and task pages, on the REST
// routes of the server that serves this file (docs/operations.md#the-web-dashboard-ui). Everything it
// shows is put in the page with textContent or as attributes, never as HTML.

const TOKEN_KEY = "swapline.token";
const STATUSES = ["PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED"];
const TERMINAL = new Set(["COMPLETED", "FAILED", "CANCELLED"]);
const PAGE_SIZE = 20;
const VIDEO_FORMATS = new Set(["mp4", "webm", "mov"]);
// Column heads of the figures on narrow screens.
const SHORT_NAMES = { PENDING: "PEND", PROCESSING: "PROC", COMPLETED: "DONE", FAILED: "FAIL", CANCELLED: "CANC" };
// The first page of the list is read again this long after the figures change.
const LIST_REFRESH_MS = 2000;

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function link(href, text) {
  const anchor = element("a", text);
  anchor.href = href;
  return anchor;
}

function statusLabel(status) {
  return element("span", status, "status status-" + status);
}

// ---- Tokens and calls -------------------------------------------------------------------

// A call answered 401 shows the token form once; every call waiting for a token resumes
// when it is submitted. The token stays in sessionStorage: this tab only, gone when closed.
let tokenWanted = null;

function askForToken() {
  if (!tokenWanted) {
    tokenWanted = new Promise((resolve) => {
      $("token-error").textContent = sessionStorage.getItem(TOKEN_KEY) ? "The server refused this token." : "";
      $("token-section").hidden = false;
      $("token-input").focus();
      setConnection("waiting for a token");
      $("token-form").onsubmit = (event) => {
        event.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, $("token-input").value.trim());
        $("token-input").value = "";
        $("token-section").hidden = true;
        $("forget-token").hidden = false;
        tokenWanted = null;
        resolve();
      };
    });
  }
  return tokenWanted;
}

// fetch with `Authorization: Bearer` when a token is known; a 401 asks for a token and
// tries again with it.
async function call(path, options = {}) {
  for (;;) {
    const headers = Object.assign({ Accept: "application/json" }, options.headers);
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store", credentials: "omit" }));
    if (response.status !== 401) return response;
    if (response.body) await response.body.cancel();
    await askForToken();
  }
}

async function failure(response) {
  const body = await response.json().catch(() => null);
  if (body && typeof body.detail === "string") return new Error(body.detail);
  if (body && Array.isArray(body.detail)) return new Error(body.detail.map((issue) => issue.msg).join("; "));
  return new Error("HTTP " + response.status);
}

async function getJSON(path) {
  const response = await call(path);
  if (!response.ok) throw await failure(response);
  return response.json();
}

// Reads a text/event-stream answer with fetch (EventSource cannot send the Authorization
// header) and hands each event's data, parsed as JSON, to `onEvent`. Returns when the server
// ends the stream; comments (the heartbeat) are skipped.
async function readEvents(path, onEvent, signal) {
  const response = await call(path, { signal, headers: { Accept: "text/event-stream" } });
  if (!response.ok) throw await failure(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffered.indexOf("\n\n")) >= 0) {
      const lines = buffered.slice(0, end).split("\n");
      buffered = buffered.slice(end + 2);
      const data = lines.filter((line) => line.startsWith("data:")).map((line) => line.slice(5).replace(/^ /, ""));
      if (data.length) onEvent(JSON.parse(data.join("\n")));
    }
  }
}

// ---- Queue figures ----------------------------------------------------------------------

function setConnection(text) {
  $("connection").textContent = text;
}

function showStats(stats) {
  const counts = new Map();
  for (const { workflow, status, count } of stats.counts || []) {
    if (!counts.has(workflow)) counts.set(workflow, new Map());
    counts.get(workflow).set(status, Number(count));
  }
  const head = $("stats-head");
  head.replaceChildren(element("th", "Workflow"), ...STATUSES.map(statusHead), element("th", "All", "number"));
  const rows = [...counts.keys()].sort().map((workflow) => statsRow(workflow, counts.get(workflow)));
  if (rows.length > 1 || rows.length === 0) {
    const total = new Map();
    for (const byStatus of counts.values()) for (const [status, count] of byStatus) total.set(status, (total.get(status) || 0) + count);
    rows.push(statsRow("", total));
  }
  $("stats-body").replaceChildren(...rows);
  const summary = [
    "oldest pending: " + seconds(stats.oldest_pending_age_ms),
    "leased: " + (stats.active_leases || 0),
    "waiting consumers: " + (stats.waiting_consumers || 0),
    "finished in the last minute: " + (stats.finished_last_minute || 0) + " (" + (stats.failed_last_minute || 0) + " failed)",
  ];
  if (stats.generated_at_ms) summary.push("as of " + utc(stats.generated_at_ms));
  $("stats-summary").textContent = summary.join(" · ");
}

function statusHead(status) {
  const cell = element("th", null, "number");
  cell.title = status;
  cell.append(element("span", status, "long"), element("span", SHORT_NAMES[status], "short"));
  return cell;
}

// One workflow's counts ("" for the total), each linking to the list filtered by it.
function statsRow(workflow, byStatus) {
  const row = element("tr");
  row.dataset.workflow = workflow;
  row.append(element("th", workflow || "all workflows"));
  let all = 0;
  for (const status of STATUSES) {
    const count = byStatus.get(status) || 0;
    all += count;
    const cell = element("td", null, "number");
    cell.dataset.status = status;
    cell.append(link(listHash({ status, workflow }), count));
    row.append(cell);
  }
  const cell = element("td", null, "number");
  cell.dataset.status = "ALL";
  cell.append(link(listHash({ status: "", workflow }), all));
  row.append(cell);
  return row;
}

function seconds(ms) {
  return ms ? (Number(ms) / 1000).toFixed(1) + " s" : "—";
}

async function followStats() {
  let retryMs = 1000;
  for (;;) {
    try {
      await readEvents("/api/face-swap/stats/events", (stats) => {
        retryMs = 1000;
        setConnection("live");
        showStats(stats);
        refreshListSoon();
      });
      setConnection("reconnecting…");
    } catch (error) {
      setConnection("queue figures unavailable (" + error.message + "); retrying");
    }
    await sleep(retryMs);
    retryMs = Math.min(retryMs * 2, 30000);
  }
}

// ---- Routing ------------------------------------------------------------------------------

// `#/?status=&workflow=` is the list, `#/task/ID` a task; the server answers `/ui/task/ID`
// with this page too, for links without a fragment.
function listHash({ status, workflow }) {
  const query = new URLSearchParams();
  if (status) query.set("status", status);
  if (workflow) query.set("workflow", workflow);
  const text = query.toString();
  return "/ui/#/" + (text ? "?" + text : "");
}

let watchController = null;

function route() {
  if (watchController) watchController.abort();
  watchController = new AbortController();
  const fragment = location.hash.replace(/^#/, "");
  const taskInFragment = /^\/task\/([^/?]+)$/.exec(fragment);
  const taskInPath = /^\/ui\/task\/([^/]+)\/?$/.exec(location.pathname);
  const taskID = taskInFragment ? taskInFragment[1] : !fragment && taskInPath ? taskInPath[1] : null;
  $("list-view").hidden = taskID !== null;
  $("task-view").hidden = taskID === null;
  if (taskID !== null) {
    showTask(decodeURIComponent(taskID), watchController.signal);
  } else {
    const query = new URLSearchParams(fragment.replace(/^\/?\??/, ""));
    showList(query.get("status") || "", query.get("workflow") || "");
  }
}

// ---- The task list --------------------------------------------------------------------------

const list = { status: "", workflow: "", pageTokens: [""], nextPageToken: "" };

function showList(status, workflow) {
  document.title = "Swapline: tasks";
  $("filter-status").value = status;
  $("filter-workflow").value = workflow;
  if (status !== list.status || workflow !== list.workflow || list.pageTokens.length === 0) {
    Object.assign(list, { status, workflow, pageTokens: [""] });
  }
  loadPage();
}

// The figures changed: the first page of the list shown may have too (later pages stay put
// while the reader is on them).
let listRefresh = null;

function refreshListSoon() {
  if (listRefresh) return;
  listRefresh = setTimeout(() => {
    listRefresh = null;
    if (!$("list-view").hidden && list.pageTokens.length === 1) loadPage();
  }, LIST_REFRESH_MS);
}

let pageRequests = 0;

async function loadPage() {
  // Only the latest request shows its page (a refresh may race a click on Older).
  const request = ++pageRequests;
  const query = new URLSearchParams({ page_size: String(PAGE_SIZE) });
  if (list.status) query.set("status", list.status);
  if (list.workflow) query.set("workflow", list.workflow);
  const pageToken = list.pageTokens[list.pageTokens.length - 1];
  if (pageToken) query.set("page_token", pageToken);
  $("list-error").textContent = "";
  try {
    const page = await getJSON("/api/face-swap/tasks?" + query);
    if (request !== pageRequests) return;
    list.nextPageToken = page.next_page_token || "";
    const rows = (page.tasks || []).map(taskRow);
    $("task-table").tBodies[0].replaceChildren(...rows);
    $("list-empty").hidden = rows.length > 0;
  } catch (error) {
    if (request !== pageRequests) return;
    list.nextPageToken = "";
    $("task-table").tBodies[0].replaceChildren();
    $("list-error").textContent = "Could not list tasks: " + error.message;
  }
  $("page-number").textContent = "page " + list.pageTokens.length;
  $("prev-page").disabled = list.pageTokens.length <= 1;
  $("next-page").disabled = !list.nextPageToken;
}

function taskRow(task) {
  const row = element("tr");
  row.dataset.taskId = task.taskId;
  const idCell = element("td");
  idCell.append(link("/ui/#/task/" + encodeURIComponent(task.taskId), task.taskId));
  const statusCell = element("td");
  statusCell.append(statusLabel(task.status));
  row.append(
    idCell,
    statusCell,
    element("td", task.workflow, "wide"),
    element("td", task.created_at, "wide"),
    element("td", Math.round((task.progress || 0) * 100) + " %", "number wide"),
  );
  return row;
}

// ---- A task's page -------------------------------------------------------------------------

let shownTask = null;

async function showTask(taskID, signal) {
  document.title = "Swapline: " + taskID;
  $("task-title").textContent = taskID;
  $("task-error").textContent = "";
  shownTask = null;
  for (const id of ["task-status", "task-workflow", "task-created", "task-updated", "task-attempt", "task-priority", "task-failure", "task-progress-text", "task-params"]) {
    $(id).textContent = "";
  }
  $("task-history").tBodies[0].replaceChildren();
  $("task-result").replaceChildren();
  $("cancel-task").hidden = true;
  try {
    let task = await getJSON("/api/face-swap/task/" + encodeURIComponent(taskID));
    if (signal.aborted) return;
    renderTask(task);
    if (TERMINAL.has(task.status)) return;
    // Live progress; each change of state reads the task again for its history (events
    // carry the task without it).
    await readEvents("/api/face-swap/task/" + encodeURIComponent(taskID) + "/events", (event) => {
      const stateChanged = shownTask && event.status !== shownTask.status;
      renderTask(Object.assign(event, { history: shownTask ? shownTask.history : [] }));
      if (stateChanged) refreshHistory(taskID, signal);
    }, signal);
  } catch (error) {
    if (!signal.aborted) $("task-error").textContent = error.message;
  }
}

async function refreshHistory(taskID, signal) {
  try {
    const task = await getJSON("/api/face-swap/task/" + encodeURIComponent(taskID));
    if (!signal.aborted && shownTask && task.taskId === shownTask.taskId) renderTask(task);
  } catch (error) {
    if (!signal.aborted) $("task-error").textContent = error.message;
  }
}

function renderTask(task) {
  // An older answer (a GetTask that raced a newer event) never replaces a newer one.
  if (shownTask && task.updated_at < shownTask.updated_at) return;
  shownTask = task;
  $("task-status").replaceChildren(statusLabel(task.status));
  $("task-workflow").textContent = task.workflow;
  $("task-created").textContent = task.created_at;
  $("task-updated").textContent = task.updated_at;
  $("task-attempt").textContent = task.attempt;
  $("task-priority").textContent = task.priority;
  $("task-failure").textContent = task.error || "—";
  $("task-progress").value = task.progress || 0;
  $("task-progress-text").textContent = Math.round((task.progress || 0) * 100) + " %";
  $("task-params").textContent = JSON.stringify(task.params, null, 2);
  $("cancel-task").hidden = TERMINAL.has(task.status);
  $("cancel-task").disabled = false;
  renderHistory(task.history || []);
  renderResult(task.result);
}

function renderHistory(history) {
  $("task-history").tBodies[0].replaceChildren(
    ...history.map((change) => {
      const row = element("tr");
      const statusCell = element("td");
      statusCell.append(statusLabel(change.status));
      const when = typeof change.at_ms === "number" ? utc(change.at_ms) : change.at;
      row.append(element("td", when), statusCell, element("td", change.attempt, "number"), element("td", change.note || ""));
      return row;
    }),
  );
}

function renderResult(result) {
  const box = $("task-result");
  if (!result) {
    box.replaceChildren(element("p", "None yet.", "muted"));
    return;
  }
  // Each output once: output_url is also one of the outputs.
  const urls = new Map();
  for (const [format, url] of Object.entries(result.outputs || {})) if (!urls.has(url)) urls.set(url, format);
  if (result.output_url && !urls.has(result.output_url)) urls.set(result.output_url, "");
  const figures = [];
  for (const [url, format] of urls) {
    const resolved = new URL(url, location.href);
    if (resolved.protocol !== "https:" && resolved.protocol !== "http:") continue;
    const figure = element("figure");
    const extension = (format || resolved.pathname.split(".").pop() || "").toLowerCase();
    const media = element(VIDEO_FORMATS.has(extension) ? "video" : "img");
    if (media.tagName === "VIDEO") media.controls = true;
    else media.alt = "result" + (format ? " (" + format + ")" : "");
    media.src = resolved.href;
    const caption = element("figcaption");
    caption.append(link(resolved.href, format || "output"));
    figure.append(media, caption);
    figures.push(figure);
  }
  if (result.processing_time) figures.push(element("p", "processed in " + Number(result.processing_time).toFixed(1) + " s", "muted"));
  box.replaceChildren(...figures);
}

async function cancelShownTask() {
  if (!shownTask) return;
  const button = $("cancel-task");
  button.disabled = true;
  $("task-error").textContent = "";
  try {
    const response = await call("/api/face-swap/task/" + encodeURIComponent(shownTask.taskId) + "/cancel", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
    });
    if (!response.ok) throw await failure(response);
    const task = await response.json();
    renderTask(Object.assign(task, { history: shownTask.history }));
    refreshHistory(task.taskId, watchController.signal);
  } catch (error) {
    $("task-error").textContent = "Could not cancel: " + error.message;
    button.disabled = false;
  }
}

function utc(ms) {
  return new Date(Number(ms)).toISOString().replace("T", " ").replace(/\.\d+Z$/, "");
}

// ---- Start --------------------------------------------------------------------------------

function start() {
  $("filters").addEventListener("submit", (event) => {
    event.preventDefault();
    const hash = listHash({ status: $("filter-status").value, workflow: $("filter-workflow").value.trim() }).replace("/ui/", "");
    if (location.hash === hash) route();
    else location.hash = hash;
  });
  $("refresh-list").addEventListener("click", loadPage);
  $("next-page").addEventListener("click", () => {
    if (!list.nextPageToken) return;
    list.pageTokens.push(list.nextPageToken);
    loadPage();
  });
  $("prev-page").addEventListener("click", () => {
    if (list.pageTokens.length <= 1) return;
    list.pageTokens.pop();
    loadPage();
  });
  $("cancel-task").addEventListener("click", cancelShownTask);
  $("forget-token").hidden = !sessionStorage.getItem(TOKEN_KEY);
  $("forget-token").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  window.addEventListener("hashchange", route);
  route();
  followStats();
}

start();
