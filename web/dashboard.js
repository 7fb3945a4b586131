// The ops dashboard. Asks GET /api/dashboard/config which sources exist, then polls them:
// every second the supervisor's GET /api/status (under `brigade up`) and the balancer's pools
// (GET /api/dashboard/balancer) for the topology, drain/undrain, rollout and scale controls and
// the events; every 10 s watch's range queries for the charts (drawn with the vendored uPlot);
// every 5 s watch's alerts (with silence buttons) and the newest error lines of the central
// logs, whose request ids open the log search. Everything is same-origin.
"use strict";

// What every script of the dashboard needs, defined once here: the page loads this script
// first and the section scripts (errors.js, traces.js) after it, all `defer`, so they run in
// document order and find `window.brigadeOps` in place.
window.brigadeOps = (() => {
  // An element with attributes (class, data-*, aria-*, or any DOM property) and children.
  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    Object.entries(attrs).forEach(([k, v]) => {
      if (k === "class") e.className = v;
      else if (k.startsWith("data-") || k.startsWith("aria-")) e.setAttribute(k, v);
      else e[k] = v;
    });
    e.append(...children);
    return e;
  }

  // The text of a failed answer: a problem's field errors, else its detail or title.
  function problemText(response, data) {
    const fields = (data.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
    return fields || data.detail || data.title || `HTTP ${response.status}`;
  }

  // GET a same-origin JSON document, never from the browser's cache; a failure throws an
  // Error whose message is the problem's text.
  async function getJson(path) {
    const response = await fetch(path, { cache: "no-store" });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(problemText(response, data));
    return data;
  }

  return { el, getJson, problemText };
})();

document.addEventListener("DOMContentLoaded", () => {
  const { el, getJson, problemText } = window.brigadeOps;
  const $ = (id) => document.getElementById(id);
  const topology = $("topology");
  const messages = $("messages");
  let busy = false; // a control is being used: do not redraw it away
  let config = null; // GET /api/dashboard/config
  let names = new Map(); // replica address → instance name (from the supervisor)

  function say(text, kind) { messages.replaceChildren(el("p", { class: `message ${kind}` }, text)); }

  async function send(method, path, body) {
    // Every change carries this start's token (from the config), which another site's page
    // cannot read: the ops API refuses changes without it.
    const headers = { "content-type": "application/json", "x-brigade-ops-token": (config && config.ops_token) || "" };
    const response = await fetch(path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(problemText(response, data));
    return data;
  }
  const post = (path, body) => send("POST", path, body);

  const time = (at) => new Date(at).toLocaleTimeString();

  // ---- Topology -------------------------------------------------------------------------

  // What was typed into a scale field survives the once-a-second redraw until it is used.
  const typed = new Map(); // pool → replicas typed

  function controls(pool, count) {
    const id = `scale-${pool}`;
    const input = el("input", { id, type: "number", min: 1, max: 64, value: typed.get(pool) ?? count });
    input.addEventListener("input", () => typed.set(pool, input.value));
    const scale = el("button", { type: "button", textContent: "Scale", "aria-label": `Scale pool ${pool}` });
    scale.addEventListener("click", async () => {
      busy = true; scale.disabled = true;
      try {
        await post(`/api/pools/${pool}/scale`, { replicas: Number(input.value) });
        typed.delete(pool);
        say(`Pool ${pool} scaled to ${input.value}.`, "ok");
      }
      catch (error) { say(`Scaling ${pool} failed: ${error.message}`, "error"); }
      busy = false; refreshTopology();
    });
    const rollout = el("button", { type: "button", textContent: "Rollout restart", "aria-label": `Rollout restart of pool ${pool}` });
    rollout.addEventListener("click", async () => {
      busy = true; rollout.disabled = true;
      say(`Restarting pool ${pool}, one replica at a time…`, "info");
      try { await post(`/api/pools/${pool}/rollout`, {}); say(`Pool ${pool} restarted.`, "ok"); }
      catch (error) { say(`Rollout of ${pool} failed: ${error.message}`, "error"); }
      busy = false; refreshTopology();
    });
    return el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { htmlFor: id, textContent: `Replicas of ${pool}` }), input),
      el("div", { class: "field" }, scale), el("div", { class: "field" }, rollout));
  }

  function drainButton(pool, backend) {
    const action = backend.draining ? "undrain" : "drain";
    const text = backend.draining ? "Undrain" : "Drain";
    const b = el("button", { type: "button", textContent: text, "aria-label": `${text} ${backend.address}` });
    b.addEventListener("click", async () => {
      busy = true; b.disabled = true;
      try { await post(`/api/dashboard/balancer/${pool}/${backend.address}/${action}`, {}); say(`${backend.address}: ${action}ed.`, "ok"); }
      catch (error) { say(`${action} of ${backend.address} failed: ${error.message}`, "error"); }
      busy = false; refreshTopology();
    });
    return b;
  }

  function balancerCells(pool, b) {
    return [el("td", {}, el("span", { class: `state ${b.state}`, textContent: b.state })),
      el("td", { textContent: b.in_flight }), el("td", { textContent: Number(b.ewma_ms).toFixed(1) }),
      el("td", { textContent: b.requests_total }), el("td", { textContent: b.failures_total }),
      el("td", {}, drainButton(pool, b))];
  }
  const BALANCER_COLUMNS = ["Balancer", "In flight", "EWMA ms", "Requests", "Failures", ""];
  const head = (columns) => el("thead", {}, el("tr", {}, ...columns.map((h) => el("th", { scope: "col", textContent: h }))));

  // Supervisor mode: the supervisor's children, each with the balancer's view of it.
  function childTable(children, backends) {
    const columns = ["Instance", "State", "Address", "PID", "Restarts"];
    if (backends) columns.push(...BALANCER_COLUMNS);
    const rows = children.map((c) => {
      const row = el("tr", { class: `child ${c.state}`, "data-instance": c.instance, "data-state": c.state, "data-pid": c.pid ?? "" },
        el("th", { scope: "row", textContent: c.instance + (c.backup ? " (backup)" : "") }),
        el("td", {}, el("span", { class: `state ${c.state}`, textContent: c.state })),
        el("td", { textContent: c.address || "—" }),
        el("td", { textContent: c.pid ?? "—" }),
        // Why it last failed (exit status, last output lines), on hover.
        el("td", { textContent: c.restarts, title: c.last_error ? `last failure: ${c.last_error}` : "" }));
      if (backends) {
        const b = backends.get(c.address);
        row.dataset.balancer = b ? b.state : "absent";
        if (b) row.append(...balancerCells(c.pool, b));
        else row.append(el("td", { textContent: "not in the balancer", colSpan: 6 }));
      }
      return row;
    });
    return el("table", {}, head(columns), el("tbody", {}, ...rows));
  }

  // Standalone mode: the balancer's backends only.
  function backendTable(pool) {
    const rows = pool.backends.map((b) => el("tr", { class: "backend", "data-address": b.address, "data-balancer": b.state },
      el("th", { scope: "row", textContent: b.address + (b.backup ? " (backup)" : "") }), ...balancerCells(pool.name, b)));
    return el("table", {}, head(["Backend", ...BALANCER_COLUMNS]), el("tbody", {}, ...rows));
  }

  // Replaces the topology; a control that had the keyboard focus has it again afterwards.
  function redraw(parts) {
    const focused = topology.contains(document.activeElement) ? document.activeElement : null;
    const key = focused && (focused.id || focused.getAttribute("aria-label"));
    topology.replaceChildren(...parts);
    if (!key) return;
    const again = document.getElementById(key)
      || [...topology.querySelectorAll("[aria-label]")].find((e) => e.getAttribute("aria-label") === key);
    if (again) again.focus();
  }

  function drawSupervisor(status, balancer) {
    const backendsOf = (pool) => {
      const found = balancer && balancer.pools.find((p) => p.name === pool);
      return found ? new Map(found.backends.map((b) => [b.address, b])) : null;
    };
    $("addresses").textContent =
      `public ${status.public_url || status.public || "—"} · balancer admin ${status.balancer_admin || "—"} · watch ${status.watch || "—"}`;
    names = new Map(status.children.filter((c) => c.address).map((c) => [c.address, c.instance]));
    if (status.balancer_admin) names.set(status.balancer_admin, "balance"); // scraped on its admin port
    if (!busy) {
      const pools = new Map();
      const others = [];
      status.children.forEach((c) => {
        if (c.pool) { if (!pools.has(c.pool)) pools.set(c.pool, []); pools.get(c.pool).push(c); }
        else others.push(c);
      });
      const parts = [el("h3", { textContent: "Processes" }), childTable(others)];
      pools.forEach((children, pool) => {
        const primaries = children.filter((c) => !c.backup).length;
        parts.push(el("h3", { textContent: `Pool ${pool}` }), childTable(children, backendsOf(pool)), controls(pool, primaries));
      });
      redraw(parts);
    }
    $("events").replaceChildren(...status.events.slice(-30).reverse().map((e) =>
      el("li", { class: `event ${e.level} ${e.kind}`, "data-kind": e.kind },
        el("time", { dateTime: e.at, textContent: time(e.at) }), " ",
        el("strong", { textContent: `${e.instance || (e.kind === "autoscale" ? "autoscaler" : "supervisor")} ${e.kind}` }), `: ${e.message}`)));
  }

  function drawStandalone(balancer) {
    $("addresses").textContent = `balancer admin ${config.balancer_admin || "—"} · watch ${config.watch || "—"}`;
    if (busy) return;
    const parts = [];
    balancer.pools.forEach((pool) => parts.push(el("h3", { textContent: `Pool ${pool.name} (${pool.algorithm})` }), backendTable(pool)));
    redraw(parts);
  }

  async function refreshTopology() {
    try {
      if (config.mode === "supervisor") {
        const status = await getJson("/api/status");
        let balancer = null;
        try { balancer = await getJson("/api/dashboard/balancer"); }
        catch (_) { /* the balancer is restarting: the supervisor's view still shows */ }
        drawSupervisor(status, balancer);
      } else {
        drawStandalone(await getJson("/api/dashboard/balancer"));
      }
      $("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (error) {
      const who = config.mode === "supervisor" ? "The supervisor" : "The balancer";
      $("updated").textContent = `${who} did not answer (${error.message}); retrying`;
    }
  }

  // ---- Charts ---------------------------------------------------------------------------

  const WINDOW_S = 15 * 60;
  const STEP_S = 15;
  const APP = 'http_route!~"/health/.*|/metrics"'; // customers' requests, not probes and scrapes
  const DURATION = "http_server_request_duration_seconds";
  const COLOURS = ["#8a2c0d", "#1a56c4", "#1d5e20", "#6b3fa0", "#a11616", "#5c4600", "#00707a", "#4a4a4a"];
  const processName = (m) => {
    const name = names.get(m.instance) || m.instance;
    return name === m.job ? name : `${name} (${m.job})`;
  };
  const CHARTS = [
    { id: "requests", title: "Requests per second", unit: "req/s", digits: 1,
      queries: [{ q: `sum by (job) (rate(${DURATION}_count{${APP}}[1m]))`, label: (m) => m.job }] },
    { id: "latency", title: "Latency (ms)", unit: "ms", digits: 1,
      exemplars: `${DURATION}_bucket{${APP}}`,
      queries: [0.5, 0.95, 0.99].map((p) => ({
        q: `histogram_quantile(${p}, sum by (le) (rate(${DURATION}_bucket{${APP}}[1m]))) * 1000`,
        label: () => `p${Math.round(p * 100)}` })) },
    { id: "errors", title: "5xx responses (% of requests)", unit: "%", digits: 2,
      queries: [{ q: `(sum(rate(${DURATION}_count{${APP},http_response_status_code=~"5.."}[1m])) or vector(0)) / sum(rate(${DURATION}_count{${APP}}[1m])) * 100`,
        label: () => "5xx" }] },
    { id: "cpu", title: "CPU per process (% of a core)", unit: "%", digits: 1,
      queries: [{ q: "rate(process_cpu_seconds_total[1m]) * 100", label: processName }] },
    { id: "memory", title: "Memory per process (MiB)", unit: "MiB", digits: 0,
      queries: [{ q: "process_resident_memory_bytes / 1048576", label: processName }] },
    { id: "orders", title: "Orders per minute", unit: "/min", digits: 1,
      queries: [{ q: "sum(rate(brigade_orders_placed_total[1m])) * 60", label: () => "orders" }] },
    // Revenue is counted in minor units; / 100 shows major units for two-decimal currencies (EUR).
    { id: "revenue", title: "Revenue per minute", unit: "/min", digits: 2,
      queries: [{ q: "sum by (currency) (rate(brigade_order_revenue_minor_total[1m])) * 60 / 100", label: (m) => m.currency || "revenue" }] },
  ];
  const charts = new Map(); // id → { figure, plot, key }

  function chartFigure(spec) {
    const titleId = `chart-${spec.id}-title`;
    const figure = el("figure", { class: "chart", "data-chart": spec.id, "data-points": "0", "aria-labelledby": titleId },
      el("figcaption", { id: titleId, textContent: spec.title }),
      el("div", { class: "plot" }),
      el("p", { class: "latest small", textContent: "No data yet." }));
    $("charts").append(figure);
    return figure;
  }

  async function series(query, start, end) {
    const params = new URLSearchParams({ query, start, end, step: STEP_S });
    const body = await getJson(`/api/dashboard/watch/query_range?${params}`);
    return body.data.result;
  }

  // Exemplars: the trace of a recent request in each latency bucket (replicas put them on
  // their histogram when traces are collected, watch keeps them). Each is a dot on the chart
  // at its step; a click on a step with dots opens the slowest of them in the Traces view, and
  // the slowest few are listed under the chart as links.
  async function exemplarsOf(query, start, end) {
    const params = new URLSearchParams({ query, start, end });
    const body = await getJson(`/api/dashboard/watch/query_exemplars?${params}`);
    return body.data.flatMap((s) => s.exemplars
      .filter((e) => /^[0-9a-f]{32}$/.test(e.labels.trace_id || ""))
      .map((e) => ({ trace: e.labels.trace_id, ms: Number(e.value) * 1000, t: e.timestamp,
        route: s.seriesLabels.http_route, method: s.seriesLabels.http_request_method,
        status: s.seriesLabels.http_response_status_code })));
  }

  function exemplarLine(xs, exemplars) {
    const ys = xs.map(() => null);
    const traces = xs.map(() => null);
    for (const e of exemplars) {
      const i = Math.round((e.t - xs[0]) / STEP_S);
      if (i < 0 || i >= xs.length || (ys[i] !== null && ys[i] >= e.ms)) continue;
      ys[i] = e.ms;
      traces[i] = e.trace;
    }
    return { ys, traces };
  }

  function listSlowest(figure, exemplars) {
    let list = figure.querySelector(".exemplars");
    if (!list) {
      list = el("ul", { class: "exemplars small", "aria-label": "Slowest traced requests" });
      figure.append(list);
    }
    const slowest = [...exemplars].sort((a, b) => b.ms - a.ms).slice(0, 5);
    list.replaceChildren(...slowest.map((e) => el("li", {},
      el("a", { href: `#trace=${e.trace}`, class: "trace-link",
        textContent: `${e.ms.toFixed(1)} ms · ${e.method || ""} ${e.route || ""} → ${e.status || ""} · ${new Date(e.t * 1000).toLocaleTimeString()}` }))));
    figure.dataset.exemplars = String(exemplars.length);
  }

  async function drawChart(spec, start, end) {
    const xs = [];
    for (let t = start; t <= end; t += STEP_S) xs.push(t);
    const index = new Map(xs.map((t, i) => [t, i]));
    const lines = [];
    for (const query of spec.queries) {
      for (const s of await series(query.q, start, end)) {
        const ys = xs.map(() => null);
        s.values.forEach(([t, v]) => {
          const i = index.get(Math.round(t));
          const n = Number(v);
          if (i !== undefined && Number.isFinite(n)) ys[i] = n;
        });
        lines.push({ label: query.label(s.metric), ys });
      }
    }
    lines.sort((a, b) => a.label.localeCompare(b.label));
    let entry = charts.get(spec.id);
    if (!entry) { entry = { figure: chartFigure(spec), plot: null, key: "", traces: [] }; charts.set(spec.id, entry); }
    let dots = null;
    if (spec.exemplars) {
      const exemplars = await exemplarsOf(spec.exemplars, start, end).catch(() => []);
      listSlowest(entry.figure, exemplars);
      dots = exemplarLine(xs, exemplars);
      entry.traces = dots.traces;
    }
    const values = lines.flatMap((l) => l.ys.filter((y) => y !== null));
    entry.figure.dataset.points = String(values.length);
    entry.figure.dataset.max = String(values.length ? Math.max(...values) : 0);
    const latest = lines.map((l) => {
      const last = [...l.ys].reverse().find((y) => y !== null);
      return last === undefined ? null : `${l.label} ${last.toFixed(spec.digits)} ${spec.unit}`;
    }).filter(Boolean);
    entry.figure.querySelector(".latest").textContent = latest.length ? `Now: ${latest.join(" · ")}` : "No data yet.";
    const key = lines.map((l) => l.label).join("|") + (dots ? "|traces" : "");
    const holder = entry.figure.querySelector(".plot");
    const data = [xs, ...lines.map((l) => l.ys), ...(dots ? [dots.ys] : [])];
    if (!window.uPlot) return; // the script could not load: the text summary still shows
    if (entry.plot && entry.key === key) { entry.plot.setData(data); return; }
    if (entry.plot) entry.plot.destroy();
    entry.key = key;
    entry.plot = new window.uPlot({
      width: Math.max(holder.clientWidth, 280), height: 200,
      scales: { x: { time: true } },
      legend: { live: false }, // the names only; the values are in the "Now:" line below
      series: [{ label: "time" }, ...lines.map((l, i) => ({
        label: l.label, stroke: COLOURS[i % COLOURS.length], width: 2, spanGaps: false,
        points: { show: true, size: 4, fill: COLOURS[i % COLOURS.length] },
      })), ...(dots ? [{ label: "traces", stroke: "#000", width: 0, paths: () => null,
        points: { show: true, size: 9, fill: "#fff", stroke: "#000", width: 2 } }] : [])],
      axes: [{}, { size: 60 }],
    }, data, holder);
    if (dots) {
      // A click on a step with a traced request opens that trace.
      entry.plot.over.addEventListener("click", () => {
        const trace = entry.traces[entry.plot.cursor.idx];
        if (trace) location.hash = `trace=${trace}`;
      });
      entry.plot.over.style.cursor = "pointer";
    }
    entry.plot.root.querySelector("canvas")?.setAttribute("aria-hidden", "true");
  }

  async function refreshCharts() {
    if (!config.watch) return;
    const end = Math.floor(Date.now() / 1000);
    const start = end - WINDOW_S;
    try {
      for (const spec of CHARTS) await drawChart(spec, start, end);
      $("charts-updated").textContent = `Charts updated ${new Date().toLocaleTimeString()} (every ${STEP_S} s point, one-minute rates)`;
    } catch (error) {
      $("charts-updated").textContent = `Watch did not answer the chart queries (${error.message}); retrying`;
    }
  }

  window.addEventListener("resize", () => {
    charts.forEach((entry) => {
      if (entry.plot) entry.plot.setSize({ width: Math.max(entry.figure.querySelector(".plot").clientWidth, 280), height: 200 });
    });
  });

  // ---- Alerts ---------------------------------------------------------------------------

  // An alert's labels in words; a replica's address also by its instance name.
  const describe = (labels) => Object.entries(labels).filter(([k]) => !["alertname", "severity"].includes(k))
    .map(([k, v]) => (k === "instance" && names.has(v) ? `${k}=${v} (${names.get(v)})` : `${k}=${v}`)).join(", ");

  function silenceButton(alert) {
    const name = alert.labels.alertname;
    const b = el("button", { type: "button", textContent: "Silence 1h",
      "aria-label": `Silence ${name} ${describe(alert.labels)} for one hour` });
    b.addEventListener("click", async () => {
      b.disabled = true;
      try {
        await post("/api/dashboard/watch/silences", {
          matchers: Object.entries(alert.labels).map(([k, v]) => `${k}=${JSON.stringify(v)}`),
          duration: "1h", createdBy: "ops dashboard",
          comment: `Silenced from the ops dashboard: ${(alert.annotations && alert.annotations.summary) || name}`,
        });
        say(`${name} silenced for one hour.`, "ok");
      } catch (error) { say(`Silencing ${name} failed: ${error.message}`, "error"); }
      refreshAlerts();
    });
    return b;
  }

  function unsilenceButton(name, id) {
    const b = el("button", { type: "button", textContent: "End silence", "aria-label": `End the silence of ${name}` });
    b.addEventListener("click", async () => {
      b.disabled = true;
      try { await send("DELETE", `/api/dashboard/watch/silences/${id}`); say(`The silence of ${name} ended.`, "ok"); }
      catch (error) { say(`Ending the silence of ${name} failed: ${error.message}`, "error"); }
      refreshAlerts();
    });
    return b;
  }

  function alertItem(alert, silences) {
    const name = alert.labels.alertname;
    const silencedBy = alert.silencedBy || [];
    const li = el("li", { class: `alert ${alert.state}${silencedBy.length ? " silenced" : ""}`,
      "data-alertname": name, "data-state": alert.state, "data-silenced": silencedBy.length ? "true" : "false" });
    const head = el("p", {}, el("strong", { textContent: name }), " ",
      el("span", { class: `state ${alert.state}`, textContent: alert.state }));
    if (alert.labels.severity) head.append(" ", el("span", { class: "small", textContent: alert.labels.severity }));
    const since = alert.firedAt || alert.activeAt;
    head.append(" ", el("span", { class: "small", textContent: `since ${time(since)}` }));
    li.append(head);
    if (alert.annotations && alert.annotations.summary) li.append(el("p", { textContent: alert.annotations.summary }));
    const where = describe(alert.labels);
    if (where) li.append(el("p", { class: "small", textContent: where }));
    if (silencedBy.length) {
      const silence = silences.get(silencedBy[0]);
      const until = silence ? ` until ${time(silence.endsAt)}` : "";
      li.append(el("p", { class: "silence-state", textContent: `Silenced${until}; no notification is sent.` }),
        unsilenceButton(name, silencedBy[0]));
    } else {
      li.append(silenceButton(alert));
    }
    return li;
  }

  function isHeartbeat(alert) {
    return alert.labels && alert.labels.severity === "none";
  }

  // The alerting pipeline's state from its heartbeat alerts: evaluated and firing means rules
  // run and notifications can flow.
  function showPipeline(heartbeats) {
    const firing = heartbeats.find((a) => a.state === "firing");
    const line = $("alert-pipeline");
    line.className = `small pipeline ${firing ? "ok" : "bad"}`;
    line.textContent = firing
      ? `Alerting pipeline working: ${firing.labels.alertname} firing since ${time(firing.firedAt || firing.activeAt)}.`
      : "Alerting pipeline: no heartbeat alert is firing; rules may not be evaluated.";
  }

  async function refreshAlerts() {
    if (!config.watch) return;
    try {
      const [active, silenceList, history] = await Promise.all([
        getJson("/api/dashboard/watch/alerts"),
        getJson("/api/dashboard/watch/silences"),
        getJson("/api/dashboard/watch/alerts/history?limit=200"),
      ]);
      const silences = new Map(silenceList.silences.map((s) => [s.id, s]));
      // Alerts of severity "none" (Watchdog) fire on purpose to prove the pipeline works: they
      // are its heartbeat, shown as such, never as a problem.
      const heartbeats = active.alerts.filter(isHeartbeat);
      showPipeline(heartbeats);
      const alerts = active.alerts.filter((a) => !isHeartbeat(a))
        .sort((a, b) => (a.state === b.state ? 0 : a.state === "firing" ? -1 : 1));
      $("alerts").replaceChildren(...alerts.map((a) => alertItem(a, silences)));
      $("no-alerts").hidden = alerts.length > 0;
      const activeNow = new Set(active.alerts.map((a) => a.fingerprint));
      const hourAgo = Date.now() - 3600 * 1000;
      const seen = new Set();
      const resolved = history.history.filter((h) => {
        if (h.alert && isHeartbeat(h.alert)) return false;
        if (h.state !== "inactive" || activeNow.has(h.fingerprint) || seen.has(h.fingerprint)) return false;
        seen.add(h.fingerprint);
        return new Date(h.at).getTime() >= hourAgo;
      });
      $("resolved").replaceChildren(...resolved.slice(0, 20).map((h) => {
        const labels = (h.alert && h.alert.labels) || {};
        const summary = h.alert && h.alert.annotations && h.alert.annotations.summary;
        return el("li", { class: "alert resolved", "data-alertname": h.alertname },
          el("p", {}, el("strong", { textContent: h.alertname }), " ",
            el("span", { class: "state resolved", textContent: "resolved" }), " ",
            el("span", { class: "small", textContent: `at ${time(h.at)}` })),
          summary ? el("p", { textContent: summary }) : "",
          describe(labels) ? el("p", { class: "small", textContent: describe(labels) }) : "");
      }));
      $("no-resolved").hidden = resolved.length > 0;
    } catch (error) {
      $("no-alerts").hidden = false;
      $("no-alerts").textContent = `Watch did not answer (${error.message}); retrying.`;
    }
  }

  // ---- Logs -----------------------------------------------------------------------------

  function logLine(line) {
    const level = String(line.level || "").toLowerCase();
    const li = el("li", { class: `log-line ${level}`, "data-level": level });
    li.append(el("time", { dateTime: line.timestamp || "", textContent: line.timestamp ? time(line.timestamp) : "" }), " ",
      el("span", { class: `level ${level}`, textContent: level.toUpperCase() }), " ",
      el("span", { class: "small", textContent: line.instance || line.service || "" }), " ",
      el("span", { textContent: line.message || "" }));
    const extra = line.error || line.reason;
    if (extra) li.append(" ", el("span", { class: "small", textContent: `(${extra})` }));
    if (line.request_id) {
      const a = el("a", { href: `?grep=${encodeURIComponent(line.request_id)}#log-search-section`, class: "request-id",
        textContent: line.request_id, "aria-label": `Search the logs for request ${line.request_id}` });
      a.addEventListener("click", (event) => {
        event.preventDefault();
        searchFor(line.request_id);
      });
      li.append(" ", el("span", { class: "small", textContent: "request " }), a);
    }
    if (/^[0-9a-f]{32}$/.test(line.trace_id || "")) {
      li.append(" ", el("a", { href: `#trace=${line.trace_id}`, class: "trace-link", textContent: "trace",
        "aria-label": `Open trace ${line.trace_id}` }));
    }
    return li;
  }

  async function refreshErrors() {
    if (!config.logs) return;
    try {
      const body = await getJson("/api/logs?level=warn&limit=15");
      $("error-lines").replaceChildren(...body.lines.map(logLine));
      $("no-errors").hidden = body.lines.length > 0;
    } catch (error) {
      $("no-errors").hidden = false;
      $("no-errors").textContent = `The logs could not be read (${error.message}).`;
    }
  }

  const form = $("log-search");
  async function runSearch() {
    const params = new URLSearchParams();
    ["grep", "level", "service"].forEach((name) => { if (form.elements[name].value) params.set(name, form.elements[name].value); });
    params.set("limit", "100");
    const url = new URL(location.href);
    url.search = "";
    if (form.elements.grep.value) url.searchParams.set("grep", form.elements.grep.value);
    history.replaceState(null, "", url);
    try {
      const body = await getJson(`/api/logs?${params}`);
      $("log-results").replaceChildren(...body.lines.map(logLine));
      $("log-summary").textContent = body.lines.length
        ? `${body.lines.length} line${body.lines.length === 1 ? "" : "s"}, newest first${body.lines.length === 100 ? " (the newest 100)" : ""}.`
        : "No line matches.";
    } catch (error) {
      $("log-summary").textContent = `The search failed: ${error.message}`;
    }
  }
  function searchFor(text) {
    form.elements.grep.value = text;
    form.elements.level.value = "";
    form.elements.service.value = "";
    $("log-search-section").scrollIntoView();
    runSearch().then(() => $("log-results").focus());
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); runSearch().then(follow); });

  // Live tail: GET /api/logs/tail (server-sent events) with the form's filter; new lines go on
  // top of the results, which keep at most FOLLOWED lines.
  const FOLLOWED = 500;
  let tail = null;
  function follow() {
    if (tail) tail.close();
    tail = null;
    if (!form.elements.follow.checked) return;
    const params = new URLSearchParams();
    ["grep", "level", "service"].forEach((name) => { if (form.elements[name].value) params.set(name, form.elements[name].value); });
    tail = new EventSource(`/api/logs/tail?${params}`);
    const results = $("log-results");
    tail.addEventListener("open", () => { $("log-summary").textContent = "Following: new lines appear on top as they are written."; });
    tail.addEventListener("line", (event) => {
      let line;
      try { line = JSON.parse(event.data); } catch (_) { return; }
      results.prepend(logLine(line));
      while (results.children.length > FOLLOWED) results.lastElementChild.remove();
    });
    tail.addEventListener("skipped", (event) => {
      $("log-summary").textContent = `Following; ${event.data} lines came too fast to show (search for them once the burst is over).`;
    });
    // EventSource reconnects by itself; say so while it does.
    tail.addEventListener("error", () => { $("log-summary").textContent = "The live tail lost the ops API; reconnecting…"; });
  }
  form.elements.follow.addEventListener("change", () => runSearch().then(follow));

  // ---- Start ----------------------------------------------------------------------------

  async function refreshConfig() {
    config = await getJson("/api/dashboard/config");
    const supervised = config.mode === "supervisor";
    $("mode").textContent = supervised ? "operations" : "operations (standalone: balancer and watch only)";
    $("topology-help").hidden = !supervised;
    $("events-section").hidden = !supervised;
    $("charts-section").hidden = !config.watch;
    $("alerts-section").hidden = !config.watch;
    $("errors-section").hidden = !config.logs;
    $("log-search-section").hidden = !config.logs;
  }

  function every(ms, work) {
    const loop = async () => { try { await work(); } catch (_) { /* shown by the panel */ } setTimeout(loop, ms); };
    loop();
  }

  (async () => {
    for (;;) {
      try { await refreshConfig(); break; }
      catch (error) { $("updated").textContent = `The dashboard's server did not answer (${error.message}); retrying`; }
      await new Promise((r) => setTimeout(r, 1000));
    }
    every(1000, refreshTopology);
    every(5000, async () => { await refreshConfig(); await refreshAlerts(); await refreshErrors(); });
    every(10000, refreshCharts);
    const grep = new URLSearchParams(location.search).get("grep");
    if (grep && config.logs) searchFor(grep);
  })();
});
