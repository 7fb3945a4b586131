// The ops dashboard: polls the supervisor's GET /api/status and the balancer's pools (through
// GET /api/dashboard/balancer) every second and draws the topology (pools and their replicas
// with the balancer's health, drain state, EWMA latency and in-flight count), the recent
// events, and drain/undrain, rollout and scale controls.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const topology = document.getElementById("topology");
  const events = document.getElementById("events");
  const messages = document.getElementById("messages");
  let busy = false; // a control is being used: do not redraw it away

  function el(tag, attrs = {}, ...children) {
    const e = document.createElement(tag);
    Object.entries(attrs).forEach(([k, v]) => {
      if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
    });
    e.append(...children);
    return e;
  }

  function say(text, kind) { messages.replaceChildren(el("p", { class: `message ${kind}` }, text)); }

  async function post(path, body) {
    const response = await fetch(path, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || data.title || `HTTP ${response.status}`);
    return data;
  }

  function controls(pool, count) {
    const id = `scale-${pool}`;
    const input = el("input", { id, type: "number", min: 0, max: 32, value: count });
    const scale = el("button", { type: "button", textContent: "Scale" });
    scale.setAttribute("aria-label", `Scale pool ${pool}`);
    scale.addEventListener("click", async () => {
      busy = true; scale.disabled = true;
      try { await post(`/api/pools/${pool}/scale`, { replicas: Number(input.value) }); say(`Pool ${pool} scaled to ${input.value}.`, "ok"); }
      catch (error) { say(`Scaling ${pool} failed: ${error.message}`, "error"); }
      busy = false; refresh();
    });
    const rollout = el("button", { type: "button", textContent: "Rollout restart" });
    rollout.setAttribute("aria-label", `Rollout restart of pool ${pool}`);
    rollout.addEventListener("click", async () => {
      busy = true; rollout.disabled = true;
      say(`Restarting pool ${pool}, one replica at a time…`, "info");
      try { await post(`/api/pools/${pool}/rollout`, {}); say(`Pool ${pool} restarted.`, "ok"); }
      catch (error) { say(`Rollout of ${pool} failed: ${error.message}`, "error"); }
      busy = false; refresh();
    });
    return el("div", { class: "row" },
      el("div", { class: "field" }, el("label", { htmlFor: id, textContent: `Replicas of ${pool}` }), input),
      el("div", { class: "field" }, scale), el("div", { class: "field" }, rollout));
  }

  function drainButton(pool, backend) {
    const action = backend.draining ? "undrain" : "drain";
    const b = el("button", { type: "button", textContent: backend.draining ? "Undrain" : "Drain" });
    b.setAttribute("aria-label", `${backend.draining ? "Undrain" : "Drain"} ${backend.address}`);
    b.addEventListener("click", async () => {
      busy = true; b.disabled = true;
      try { await post(`/api/dashboard/balancer/${pool}/${backend.address}/${action}`, {}); say(`${backend.address}: ${action}ed.`, "ok"); }
      catch (error) { say(`${action} of ${backend.address} failed: ${error.message}`, "error"); }
      busy = false; refresh();
    });
    return b;
  }

  function table(children, backends) {
    const columns = ["Instance", "State", "Address", "PID", "Restarts"];
    if (backends) columns.push("Balancer", "In flight", "EWMA ms", "Requests", "Failures", "");
    const head = el("tr", {}, ...columns.map((h) => el("th", { scope: "col", textContent: h })));
    const rows = children.map((c) => {
      const row = el("tr", { class: `child ${c.state}`, "data-instance": c.instance, "data-state": c.state, "data-pid": c.pid ?? "" },
        el("th", { scope: "row", textContent: c.instance + (c.backup ? " (backup)" : "") }),
        el("td", {}, el("span", { class: `state ${c.state}`, textContent: c.state })),
        el("td", { textContent: c.address || "—" }),
        el("td", { textContent: c.pid ?? "—" }),
        el("td", { textContent: c.restarts }));
      if (backends) {
        const b = backends.get(c.address);
        if (b) {
          row.dataset.balancer = b.state;
          row.append(el("td", {}, el("span", { class: `state ${b.state}`, textContent: b.state })),
            el("td", { textContent: b.in_flight }), el("td", { textContent: Number(b.ewma_ms).toFixed(1) }),
            el("td", { textContent: b.requests_total }), el("td", { textContent: b.failures_total }),
            el("td", {}, drainButton(c.pool, b)));
        } else {
          row.dataset.balancer = "absent";
          row.append(el("td", { textContent: "not in the balancer", colSpan: 6 }));
        }
      }
      return row;
    });
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  function draw(status, balancer) {
    const backendsOf = (pool) => {
      const found = balancer && balancer.pools.find((p) => p.name === pool);
      return found ? new Map(found.backends.map((b) => [b.address, b])) : null;
    };
    document.getElementById("addresses").textContent =
      `public ${status.public || "—"} · balancer admin ${status.balancer_admin || "—"} · watch ${status.watch || "—"}`;
    if (!busy) {
      const pools = new Map();
      const others = [];
      status.children.forEach((c) => {
        if (c.pool) { if (!pools.has(c.pool)) pools.set(c.pool, []); pools.get(c.pool).push(c); }
        else others.push(c);
      });
      const parts = [el("h3", { textContent: "Processes" }), table(others)];
      pools.forEach((children, pool) => {
        const primaries = children.filter((c) => !c.backup).length;
        parts.push(el("h3", { textContent: `Pool ${pool}` }), table(children, backendsOf(pool)), controls(pool, primaries));
      });
      topology.replaceChildren(...parts);
    }
    events.replaceChildren(...status.events.slice(-30).reverse().map((e) =>
      el("li", { class: `event ${e.level}` },
        el("time", { dateTime: e.at, textContent: new Date(e.at).toLocaleTimeString() }), " ",
        el("strong", { textContent: `${e.instance || "supervisor"} ${e.kind}` }), `: ${e.message}`)));
    document.getElementById("updated").textContent = `Updated ${new Date().toLocaleTimeString()}`;
  }

  async function refresh() {
    try {
      const response = await fetch("/api/status", { cache: "no-store" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const status = await response.json();
      let balancer = null;
      try {
        const answer = await fetch("/api/dashboard/balancer", { cache: "no-store" });
        if (answer.ok) balancer = await answer.json();
      } catch (_) { /* the balancer is restarting: the supervisor's view still shows */ }
      draw(status, balancer);
    } catch (error) {
      document.getElementById("updated").textContent = `The supervisor did not answer (${error.message}); retrying`;
    }
  }

  const loop = async () => { await refresh(); setTimeout(loop, 1000); };
  loop();
});
