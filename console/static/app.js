// The console's pages. Everything from the bridge is shown with textContent (never innerHTML):
// caller IDs and variables come from strangers.
"use strict";

const state = { me: null, cursor: [], next: null, poll: null, hours: 1, charts: {} };

function el(tag, attrs = {}, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function showError(message) {
  const box = document.getElementById("error");
  box.textContent = message || "";
  box.classList.toggle("d-none", !message);
}

async function api(path, options = {}) {
  const init = { credentials: "same-origin", headers: {} };
  if (options.method === "POST") {
    init.method = "POST";
    init.headers["X-CSRF-Token"] = state.me ? state.me.csrf : "";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.body || {});
  }
  const response = await fetch(path, init);
  if (response.status === 401) {
    window.location.assign("/console/login");
    throw new Error("signed out");
  }
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = response.status === 403 ? I18n.t("forbidden") : (data.error && data.error.message) || I18n.t("error_generic");
    const error = new Error(message);
    error.data = data;
    error.status = response.status;
    throw error;
  }
  return data;
}

const outcomeLabel = (o) => I18n.t("outcome_" + o);
const toMs = (value) => (value ? new Date(value).getTime() : 0);
const isOperator = () => state.me && state.me.role === "operator";

// ---- Calls -------------------------------------------------------------------------------
function callQuery(before) {
  const p = new URLSearchParams();
  const add = (key, value) => { if (value) p.set(key, value); };
  add("phone", document.getElementById("q-phone").value.trim());
  add("call_id", document.getElementById("q-call").value.trim());
  add("from", toMs(document.getElementById("q-from").value) || "");
  add("to", toMs(document.getElementById("q-to").value) || "");
  add("event", document.getElementById("q-event").value.trim());
  add("rule", document.getElementById("q-rule").value.trim());
  add("outcome", document.getElementById("q-outcome").value);
  if (before) p.set("before", before);
  return "/console/api/calls?" + p.toString();
}

async function loadCalls() {
  const before = state.cursor.length ? state.cursor[state.cursor.length - 1] : 0;
  const data = await api(callQuery(before));
  const body = document.getElementById("calls-body");
  body.replaceChildren();
  for (const c of data.calls) {
    const row = el("tr", { class: "call-row", dataset: { callId: c.call_id } });
    const link = el("a", { href: "#call/" + encodeURIComponent(c.call_id) }, c.call_id);
    const idCell = el("td");
    idCell.append(link);
    row.append(idCell, el("td", { class: "tel" }, c.tel), el("td", {}, c.event),
      el("td", {}, c.first_at), el("td", {}, c.last_at), el("td", {}, c.events),
      el("td", { class: "outcome-" + c.outcome, dataset: { outcome: c.outcome } }, outcomeLabel(c.outcome)));
    body.append(row);
  }
  document.getElementById("calls-empty").classList.toggle("d-none", data.calls.length > 0);
  state.next = data.next;
  document.getElementById("calls-next").disabled = data.next === null;
  document.getElementById("calls-first").disabled = state.cursor.length === 0;
  // Running calls refresh by polling while the list is shown.
  clearTimeout(state.poll);
  if (data.calls.some((c) => c.outcome === "running"))
    state.poll = setTimeout(() => { if (location.hash === "#calls" || location.hash === "") loadCalls().catch(() => {}); }, 2000);
}

// ---- One call ----------------------------------------------------------------------------
function keyValueTable(object) {
  const table = el("table", { class: "table table-sm mb-1" });
  const body = el("tbody");
  for (const [k, v] of Object.entries(object || {})) {
    const row = el("tr");
    row.append(el("th", {}, k), el("td", {}, typeof v === "string" ? v : JSON.stringify(v)));
    body.append(row);
  }
  table.append(body);
  return table;
}

async function loadCall(id) {
  const data = await api("/console/api/calls/" + encodeURIComponent(id));
  document.getElementById("call-title").textContent = data.call_id;
  const timeline = document.getElementById("call-timeline");
  timeline.replaceChildren();
  for (const ev of data.events) {
    const card = el("div", { class: "event-card" });
    card.append(el("h4", { class: "h6" }, ev.received_at + "  " + ev.event + "  (" + ev.event_id + ", " + ev.state + ")"));
    card.append(keyValueTable(ev.input));
    const table = el("table", { class: "table table-sm attempts" });
    const head = el("tr");
    for (const k of ["rule", "attempt", "state", "gate", "request", "status", "response", "latency", "extracted", "error"])
      head.append(el("th", {}, I18n.t(k)));
    const thead = el("thead");
    thead.append(head);
    const tbody = el("tbody");
    for (const a of ev.actions) {
      const row = el("tr", { class: "attempt", dataset: { state: a.state } });
      const gate = el("td", {}, (a.matched ? I18n.t("matched") : I18n.t("not_matched")) + (a.gate ? ": " + a.gate : ""));
      const request = el("td");
      if (a.request && typeof a.request === "object" && Object.keys(a.request).length)
        request.append(el("pre", { class: "request" }, JSON.stringify(a.request, null, 2)));
      // The response body as the server sent it (capped, secrets redacted): text, never markup.
      const response = el("td");
      if (a.response) response.append(el("pre", { class: "request response" }, a.response));
      const extracted = el("td");
      extracted.append(keyValueTable(a.extracted));
      row.append(el("td", {}, a.rule), el("td", {}, a.attempt), el("td", {}, a.state), gate, request,
        el("td", { class: "status" }, a.status || ""), response,
        el("td", {}, a.latency_ms ? a.latency_ms.toFixed(1) + " ms" : ""),
        extracted, el("td", {}, a.error));
      tbody.append(row);
    }
    table.append(thead, tbody);
    card.append(table);
    if (ev.notes) {
      card.append(el("h5", { class: "h6" }, I18n.t("notes")));
      card.append(keyValueTable(ev.notes));
    }
    timeline.append(card);
  }
  const vars = document.getElementById("call-vars");
  vars.replaceChildren(...keyValueTable(data.variables).querySelector("tbody").children);
  if (data.events.some((e) => e.state === "pending")) {
    clearTimeout(state.poll);
    state.poll = setTimeout(() => { if (location.hash === "#call/" + encodeURIComponent(id)) loadCall(id).catch(() => {}); }, 2000);
  }
}

// ---- Failures ----------------------------------------------------------------------------
async function loadFailures() {
  const p = new URLSearchParams();
  const rule = document.getElementById("f-rule").value.trim();
  if (rule) p.set("rule", rule);
  const since = toMs(document.getElementById("f-since").value);
  if (since) p.set("since", since);
  const data = await api("/console/api/failures?" + p.toString());
  const body = document.getElementById("failures-body");
  body.replaceChildren();
  for (const f of data.failures) {
    const row = el("tr", { class: "failure", dataset: { eventId: f.event_id, rule: f.rule } });
    const pick = el("td");
    const box = el("input", { type: "checkbox", class: "form-check-input pick" });
    pick.append(box);
    const callCell = el("td");
    callCell.append(el("a", { href: "#call/" + encodeURIComponent(f.call_id) }, f.call_id));
    const actions = el("td");
    if (isOperator()) {
      const button = el("button", { type: "button", class: "btn btn-sm btn-outline-warning replay-one" }, I18n.t("replay"));
      button.addEventListener("click", () => replay({ targets: [{ event_id: f.event_id, rule: f.rule }] }));
      actions.append(button);
    }
    row.append(pick, el("td", {}, f.started_at), callCell, el("td", {}, f.event + " " + f.event_id), el("td", {}, f.rule),
      el("td", {}, f.attempt), el("td", {}, f.state), el("td", {}, f.error), actions);
    body.append(row);
  }
  document.getElementById("failures-empty").classList.toggle("d-none", data.failures.length > 0);
}

async function replay(request) {
  const list = document.getElementById("replay-results");
  list.replaceChildren();
  try {
    const data = await api("/console/api/replay", { method: "POST", body: request });
    for (const r of data.results)
      list.append(el("li", { class: "replay-result", dataset: { state: r.state } },
        r.event_id + " " + r.rule + ": " + r.state + (r.status ? " (" + r.status + ")" : "") + (r.error ? " " + r.error : "")));
    await loadFailures();
  } catch (e) {
    showError(e.message);
  }
}

// ---- Rules -------------------------------------------------------------------------------
function showValidation(data) {
  document.getElementById("validation-summary").textContent =
    (data.file || "") + ": " + (data.valid ? I18n.t("valid") : I18n.t("invalid"));
  const errors = document.getElementById("validation-errors");
  errors.replaceChildren(...(data.errors || []).map((e) => el("li", { class: "located-error" }, e)));
}

async function loadRules() {
  showValidation(await api("/console/api/rules/validate"));
  const data = await api("/console/api/rules");
  const list = document.getElementById("rules-list");
  list.replaceChildren();
  for (const e of data.events) {
    list.append(el("h3", { class: "h6 mt-3" }, e.event));
    const table = el("table", { class: "table table-sm" });
    const tbody = el("tbody");
    for (const r of e.rules) {
      const row = el("tr");
      const what = r.action ? r.action : r.method + " " + r.url + (r.body ? "\n" + r.body : "");
      const gate = r.gate ? r.gate.code + " =~ " + r.gate.pattern : "";
      const whatCell = el("td");
      whatCell.append(el("pre", { class: "request" }, what));
      row.append(el("td", {}, r.order), el("th", {}, r.name), el("td", {}, gate), whatCell, el("td", {}, r.memo));
      tbody.append(row);
    }
    table.append(tbody);
    list.append(table);
  }
}

async function reload() {
  const result = document.getElementById("reload-result");
  result.textContent = "";
  try {
    const data = await api("/console/api/rules/reload", { method: "POST" });
    result.textContent = I18n.t("reloaded");
    showValidation(data);
    setTimeout(() => loadRules().catch(() => {}), 1500);
  } catch (e) {
    if (e.data && e.data.errors) {
      showValidation(e.data);
      result.textContent = I18n.t("reload_rejected");
    } else {
      showError(e.message);
    }
  }
}

async function simulate(send) {
  const vars = {};
  for (const line of document.getElementById("s-vars").value.split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) vars[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  const request = {
    event: document.getElementById("s-event").value.trim(),
    tel: document.getElementById("s-tel").value.trim(),
    answered: document.getElementById("s-answered").checked,
    vars, send,
  };
  const box = document.getElementById("simulate-results");
  box.replaceChildren();
  try {
    const data = await api("/console/api/simulate", { method: "POST", body: request });
    box.append(el("p", { id: "simulate-sent" }, data.sent ? I18n.t("sent") : I18n.t("not_sent")));
    if (!data.rules.length) box.append(el("p", {}, I18n.t("no_rules")));
    for (const r of data.rules) {
      const card = el("div", { class: "event-card simulated-rule", dataset: { rule: r.rule, runs: String(r.runs) } });
      card.append(el("h4", { class: "h6" }, r.rule + ": " + (r.runs ? I18n.t("runs") : I18n.t("skipped")) + " (" + r.gate + ")"));
      if (r.request) card.append(el("pre", { class: "request" }, JSON.stringify(r.request, null, 2)));
      if (r.response) card.append(el("pre", { class: "request" }, r.response.status + "\n" + r.response.body));
      if (r.error) card.append(el("p", { class: "text-danger" }, r.error));
      box.append(card);
    }
  } catch (e) {
    showError(e.message);
  }
}

// ---- Escalation chains (the escalation service's own endpoints, through /console/api/route) ----
// Pigeon's words in the console's language; one it does not know is shown as it came.
const resultLabel = (r) => {
  if (!r) return "";
  const label = I18n.t("result_" + r);
  return label === "result_" + r ? r : label;
};

async function loadChains() {
  const body = document.getElementById("chains-body");
  body.replaceChildren();
  let data;
  try {
    data = await api("/console/api/route/v1/escalation/chains?limit=100");
  } catch (e) {
    if (e.status !== 404) throw e;
    document.getElementById("chains-unavailable").classList.remove("d-none");
    return;
  }
  for (const c of data.chains) {
    const row = el("tr", { class: "chain", dataset: { chainId: c.id, status: c.status } });
    const link = el("a", { href: "#chains/" + encodeURIComponent(c.id) }, c.id);
    const idCell = el("td");
    idCell.append(link);
    const actions = el("td");
    if (isOperator() && c.status === "running") {
      const button = el("button", { type: "button", class: "btn btn-sm btn-outline-danger abort-chain" }, I18n.t("abort"));
      button.addEventListener("click", async () => {
        try {
          await api("/console/api/route/api/apps/pigeon/chain/abort", { method: "POST", body: { params: { resultId: c.id } } });
        } catch (e) {
          showError(e.message);
        }
        refreshChains().catch((e) => showError(e.message));
      });
      actions.append(button);
    }
    row.append(idCell, el("td", {}, resultLabel(c.status)), el("td", {}, c.callflow), el("td", {}, c.guidance),
      el("td", {}, c.created_at), el("td", {}, c.loops), el("td", {}, c.attempts), el("td", {}, c.key === null ? "" : c.key),
      el("td", {}, c.reason), actions);
    body.append(row);
  }
  if (data.chains.some((c) => c.status === "running")) {
    clearTimeout(state.poll);
    // The list and the chain shown below it, while one runs.
    state.poll = setTimeout(() => {
      if (location.hash.startsWith("#chains")) refreshChains().catch(() => {});
    }, 2000);
  }
}

// The list and the chain the page shows below it (#chains/ID).
async function refreshChains() {
  await loadChains();
  await loadChain(decodeURIComponent(location.hash.slice("#chains/".length)));
}

async function loadChain(id) {
  const box = document.getElementById("chain-detail");
  box.replaceChildren();
  if (!id) return;
  const data = await api("/console/api/route/v1/escalation/chains/" + encodeURIComponent(id));
  const result = data.result || {};
  box.append(el("h3", { class: "h6" }, id + ": " + resultLabel(result.status) + " " + (result.reason || "")));
  const table = el("table", { class: "table table-sm" });
  const head = el("tr");
  for (const k of ["loop", "contact", "started", "result", "key_pressed"]) head.append(el("th", {}, I18n.t(k)));
  const thead = el("thead");
  thead.append(head);
  const tbody = el("tbody");
  for (const h of result.history || []) {
    const row = el("tr", { class: "chain-attempt", dataset: { result: h.result || "" } });
    row.append(el("td", {}, h.loop), el("td", {}, (h.displayName || h.contactId || "") + " " + (h.phoneNumber || "")),
      el("td", {}, h.startedAt || ""), el("td", {}, resultLabel(h.result)), el("td", {}, h.keyInput || ""));
    tbody.append(row);
  }
  table.append(thead, tbody);
  box.append(table);
}

// The start form's lists: the call flows and guidances the escalation section defines, and an
// input for each {{parameter}} the chosen guidance's messages use.
async function loadDefinitions() {
  const form = document.getElementById("chain-start");
  if (!form) return;
  const defs = await api("/console/api/route/v1/escalation/definitions");
  state.definitions = defs;
  const fill = (id, items, describe) => {
    const select = document.getElementById(id);
    const chosen = select.value;
    select.replaceChildren(...items.map((item) => el("option", { value: item.id }, describe(item))));
    if (items.some((item) => item.id === chosen)) select.value = chosen;
  };
  fill("c-callflow", defs.callflows, (f) => f.id + (f.name ? " " + f.name : "") + " (" + f.contacts.length + " " + I18n.t("contacts") + ", " + I18n.t("loops") + " " + f.loop_limit + ")");
  fill("c-guidance", defs.guidances, (g) => g.id + (g.name ? " " + g.name : ""));
  showDefinition();
}

function showDefinition() {
  const defs = state.definitions;
  if (!defs) return;
  const flow = defs.callflows.find((f) => f.id === document.getElementById("c-callflow").value);
  const guidance = defs.guidances.find((g) => g.id === document.getElementById("c-guidance").value);
  const box = document.getElementById("c-definition");
  box.replaceChildren();
  if (flow) box.append(el("div", { class: "small text-muted" }, I18n.t("contacts") + ": " + flow.contacts.map((c) => c.name || c.id).join(" → ")));
  if (guidance) {
    box.append(el("div", { class: "small text-muted guidance-message" }, I18n.t("message") + ": " + guidance.message));
    box.append(el("div", { class: "small text-muted" }, I18n.t("keys") + ": " + guidance.keys.map((k) => k.key + " " + I18n.t("reaction_" + k.reaction)).join(", ")));
  }
  const named = document.getElementById("c-named-params");
  const kept = {};
  named.querySelectorAll("input").forEach((input) => { kept[input.dataset.param] = input.value; });
  named.replaceChildren();
  for (const name of guidance ? guidance.parameters : []) {
    const id = "c-param-" + name.replace(/[^A-Za-z0-9_-]/g, "_");
    const wrap = el("div", { class: "col-auto" });
    wrap.append(el("label", { class: "form-label", for: id }, name));
    const input = el("input", { class: "form-control named-param", id, dataset: { param: name } });
    input.value = kept[name] || "";
    wrap.append(input);
    named.append(wrap);
  }
}

async function startChain() {
  const parameters = {};
  document.querySelectorAll("#c-named-params input").forEach((input) => { parameters[input.dataset.param] = input.value; });
  for (const line of document.getElementById("c-params").value.split("\n")) {
    const at = line.indexOf("=");
    if (at > 0) parameters[line.slice(0, at).trim()] = line.slice(at + 1);
  }
  const params = {
    callflowId: document.getElementById("c-callflow").value,
    guidanceId: document.getElementById("c-guidance").value,
    parameters,
  };
  const out = document.getElementById("chain-started");
  out.textContent = "";
  try {
    const data = await api("/console/api/route/api/apps/pigeon/chain/invoke", { method: "POST", body: { params } });
    out.textContent = I18n.t("chain_started") + ": " + data.resultId;
    await loadChains();
  } catch (e) {
    showError(e.message);
  }
}

// ---- kintone (the connector's own endpoints, through /console/api/route) ----------------
function usageCell(apps) {
  const cell = el("td", { class: "usage" });
  for (const a of apps) {
    const share = a.daily_request_limit ? a.requests_today / a.daily_request_limit : 0;
    const line = el("div", { class: "app-usage" + (share >= 0.9 ? " text-danger" : share >= 0.7 ? " text-warning" : ""), dataset: { app: a.app } },
      I18n.t("app") + " " + a.app + ": " + a.requests_today.toLocaleString() + " / " + a.daily_request_limit.toLocaleString() +
      " (" + (share * 100).toFixed(1) + "%)");
    cell.append(line);
  }
  if (!apps.length) cell.textContent = I18n.t("no_requests_yet");
  return cell;
}

function oauthCell(c) {
  const cell = el("td", { class: "oauth-state" });
  if (!c.oauth) { cell.textContent = "-"; return cell; }
  cell.append(el("span", { class: c.oauth.authorized ? "text-success" : "text-danger" },
    c.oauth.authorized ? I18n.t("oauth_authorized") : I18n.t("oauth_not_authorized")));
  if (isOperator()) {
    cell.append(" ");
    cell.append(el("a", { class: "authorize-link", href: "/console/api/route" + c.oauth.authorize }, I18n.t("authorize")));
  }
  return cell;
}

async function loadKintone() {
  const table = document.getElementById("directory-status");
  table.replaceChildren();
  const body = document.getElementById("connections-body");
  body.replaceChildren();
  let data;
  try {
    data = await api("/console/api/route/v1/kintone/connections");
  } catch (e) {
    if (e.status !== 404) throw e;
    document.getElementById("kintone-unavailable").classList.remove("d-none");
    data = { connections: [], directory: null };
  }
  for (const c of data.connections) {
    const row = el("tr", { class: "kintone-connection", dataset: { connection: c.name } });
    const failures = Object.entries(c.failures || {}).map(([k, n]) => k + ": " + n).join(", ");
    row.append(el("th", {}, c.name), el("td", {}, c.url), el("td", {}, I18n.t("auth_" + c.auth) + (c.basic_auth ? " + Basic" : "")),
      oauthCell(c), el("td", { class: "in-flight" }, c.in_flight + " / " + c.max_concurrency), usageCell(c.apps), el("td", {}, failures));
    body.append(row);
  }
  const d = data.directory;
  const unavailable = document.getElementById("directory-unavailable");
  unavailable.classList.toggle("d-none", !!d);
  const button = document.getElementById("directory-sync");
  if (button) button.disabled = !d;
  if (!d) return;
  const shown = {
    [I18n.t("connection")]: d.connection + " / " + I18n.t("app") + " " + d.app,
    [I18n.t("customers")]: d.customers,
    [I18n.t("last_sync")]: d.last_sync || I18n.t("never"),
    [I18n.t("duration")]: (d.last_duration_ms / 1000).toFixed(1) + " s",
    [I18n.t("sync_running")]: d.running ? I18n.t("yes") : I18n.t("no"),
    [I18n.t("fetched")]: d.fetched + (d.expected ? " / " + d.expected : ""),
    [I18n.t("sync_counts")]: d.full_syncs + " / " + d.incremental_syncs,
    [I18n.t("sync_failures")]: d.failures,
    [I18n.t("last_error")]: d.last_error || "-",
  };
  table.replaceChildren(...keyValueTable(shown).querySelector("tbody").children);
}

async function syncDirectory() {
  const out = document.getElementById("directory-sync-result");
  out.textContent = "";
  try {
    await api("/console/api/route/v1/kintone/directory/sync", { method: "POST" });
    out.textContent = I18n.t("sync_requested");
    setTimeout(() => loadKintone().catch(() => {}), 1000);
  } catch (e) {
    showError(e.message);
  }
}

// ---- Overview ----------------------------------------------------------------------------
async function loadOverview() {
  const data = await api("/console/api/overview?hours=" + state.hours);
  document.getElementById("ov-queue").textContent = data.queue_depth;
  const ms = (v) => (v === null ? "-" : v.toFixed(1) + " ms");
  document.getElementById("ov-latency").textContent = ms(data.latency_ms.p50) + " / " + ms(data.latency_ms.p95);
  const table = document.getElementById("ov-actions");
  table.replaceChildren();
  for (const [k, v] of Object.entries(data.actions)) {
    const row = el("tr");
    row.append(el("th", {}, k), el("td", {}, v));
    table.append(row);
  }
  if (typeof Chart === "undefined") return;
  // Every minute of the period, those without events as 0.
  const byMinute = new Map(data.events_per_minute.map(([t, n]) => [t, n]));
  const last = Math.floor(Date.now() / 60000) * 60;
  const labels = [], counts = [];
  for (let t = last - data.hours * 3600 + 60; t <= last; t += 60) {
    labels.push(new Date(t * 1000).toLocaleTimeString(I18n.lang === "ja" ? "ja-JP" : "en-US", { hour: "2-digit", minute: "2-digit" }));
    counts.push(byMinute.get(t) || 0);
  }
  for (const c of Object.values(state.charts)) c.destroy();
  state.charts.events = new Chart(document.getElementById("chart-events"), {
    type: "line", data: { labels, datasets: [{ label: I18n.t("events_per_minute"), data: counts, borderColor: "#0d6efd" }] },
    options: { animation: false },
  });
  state.charts.actions = new Chart(document.getElementById("chart-actions"), {
    type: "bar", data: { labels: Object.keys(data.actions), datasets: [{ label: I18n.t("count"), data: Object.values(data.actions), backgroundColor: "#6c757d" }] },
    options: { animation: false },
  });
}

// ---- Routing -----------------------------------------------------------------------------
async function route() {
  showError("");
  clearTimeout(state.poll);
  // Messages about what was just done belong to the page they were done on.
  for (const id of ["directory-sync-result", "chain-started", "reload-result"]) {
    const node = document.getElementById(id);
    if (node) node.textContent = "";
  }
  const hash = location.hash || "#calls";
  const [page, ...rest] = hash.slice(1).split("/");
  const name = page === "call" ? "call" : ["calls", "failures", "chains", "kintone", "rules", "overview"].includes(page) ? page : "calls";
  document.querySelectorAll(".page").forEach((p) => p.classList.toggle("d-none", p.id !== "page-" + name));
  document.querySelectorAll(".nav-link").forEach((a) => a.classList.toggle("active", a.id === "nav-" + name));
  try {
    if (name === "calls") await loadCalls();
    else if (name === "call") await loadCall(decodeURIComponent(rest.join("/")));
    else if (name === "failures") await loadFailures();
    else if (name === "chains") {
      await loadChains();
      await loadChain(decodeURIComponent(rest.join("/")));
      // Operators get the start form's lists (when escalation is configured).
      if (isOperator() && document.getElementById("chains-unavailable").classList.contains("d-none")) await loadDefinitions();
    }
    else if (name === "rules") await loadRules();
    else if (name === "kintone") await loadKintone();
    else if (name === "overview") await loadOverview();
  } catch (e) {
    showError(e.message);
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  I18n.apply();
  document.getElementById("lang-toggle").addEventListener("click", () => I18n.toggle());
  document.addEventListener("languagechange", () => route());
  try {
    state.me = await api("/console/api/me");
  } catch (e) {
    return;
  }
  const showWho = () => {
    document.getElementById("who").textContent = state.me.user + " (" + I18n.t("role_" + state.me.role) + ")";
  };
  showWho();
  document.addEventListener("languagechange", showWho);
  if (!isOperator()) document.querySelectorAll(".op-only").forEach((b) => b.remove());
  document.getElementById("sign-out").addEventListener("click", async () => {
    await api("/console/logout", { method: "POST" }).catch(() => {});
    window.location.assign("/console/login");
  });
  document.getElementById("call-search").addEventListener("submit", (e) => {
    e.preventDefault();
    state.cursor = [];
    loadCalls().catch((err) => showError(err.message));
  });
  document.getElementById("calls-next").addEventListener("click", () => {
    if (state.next === null) return;
    state.cursor.push(state.next);
    loadCalls().catch((err) => showError(err.message));
  });
  document.getElementById("calls-first").addEventListener("click", () => {
    state.cursor = [];
    loadCalls().catch((err) => showError(err.message));
  });
  document.getElementById("failure-filter").addEventListener("submit", (e) => {
    e.preventDefault();
    loadFailures().catch((err) => showError(err.message));
  });
  const selected = document.getElementById("replay-selected");
  if (selected) selected.addEventListener("click", () => {
    const targets = [...document.querySelectorAll("#failures-body tr")]
      .filter((r) => r.querySelector(".pick").checked)
      .map((r) => ({ event_id: r.dataset.eventId, rule: r.dataset.rule }));
    if (targets.length) replay({ targets });
  });
  const since = document.getElementById("replay-since");
  if (since) since.addEventListener("click", () => replay({ since_ms: toMs(document.getElementById("f-since").value) }));
  const syncButton = document.getElementById("directory-sync");
  if (syncButton) syncButton.addEventListener("click", syncDirectory);
  const chainForm = document.getElementById("chain-start");
  if (chainForm) {
    chainForm.addEventListener("submit", (e) => { e.preventDefault(); startChain(); });
    document.getElementById("c-callflow").addEventListener("change", showDefinition);
    document.getElementById("c-guidance").addEventListener("change", showDefinition);
  }
  document.getElementById("simulate-form").addEventListener("submit", (e) => { e.preventDefault(); simulate(false); });
  const sendButton = document.getElementById("simulate-send");
  if (sendButton) sendButton.addEventListener("click", () => simulate(true));
  const reloadButton = document.getElementById("reload");
  if (reloadButton) reloadButton.addEventListener("click", reload);
  document.getElementById("ov-hour").addEventListener("click", () => { state.hours = 1; loadOverview().catch((e) => showError(e.message)); });
  document.getElementById("ov-day").addEventListener("click", () => { state.hours = 24; loadOverview().catch((e) => showError(e.message)); });
  window.addEventListener("hashchange", route);
  route();
});
