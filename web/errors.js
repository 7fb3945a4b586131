// The ops dashboard's Errors section: brigade up's error groups (GET /api/errors), polled every
// 5 s, with count, first and last seen, release, sample trace ids (links to #trace/<id>) and a
// resolve button (POST /api/errors/<fingerprint>/resolve with this start's ops token). Shown
// under a supervisor only: a standalone dashboard has no central log to group.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { el, getJson } = window.brigadeOps;
  const $ = (id) => document.getElementById(id);
  const section = $("error-groups-section");
  const table = $("error-groups");
  const summary = $("error-groups-summary");
  const filter = $("error-groups-state");
  let token = "";
  let busy = false; // a resolve is on its way: do not redraw its button away

  const when = (at) => new Date(at).toLocaleString();

  function traces(ids) {
    const cell = el("td", { class: "small" });
    ids.forEach((id, n) => {
      if (n) cell.append(" ");
      cell.append(el("a", { href: `#trace/${id}`, textContent: id.slice(0, 8), title: id, "aria-label": `trace ${id}` }));
    });
    if (!ids.length) cell.textContent = "—";
    return cell;
  }

  function resolveButton(group) {
    if (group.state !== "open") return el("span", { class: "small", textContent: "resolved" });
    const button = el("button", { type: "button", textContent: "Resolve", "aria-label": `Resolve ${group.title}` });
    button.addEventListener("click", async () => {
      busy = true; button.disabled = true;
      try {
        const response = await fetch(`/api/errors/${group.fingerprint}/resolve`, {
          method: "POST", headers: { "x-brigade-ops-token": token },
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        summary.textContent = `Resolved: ${group.title}. It opens again if it comes back.`;
      } catch (error) {
        summary.textContent = `Resolving failed: ${error.message}`;
      }
      busy = false;
      refresh();
    });
    return button;
  }

  function row(group) {
    const where = group.frames[0] || group.route || "";
    return el("tr", { "data-fingerprint": group.fingerprint, "data-state": group.state, "data-count": group.count },
      el("th", { scope: "row" },
        el("span", { class: `state ${group.state === "open" ? "firing" : "resolved"}`, textContent: group.kind }), " ",
        group.title,
        el("div", { class: "small", textContent: `${group.service}${where ? " · " + where : ""}` })),
      el("td", { textContent: group.count }),
      el("td", {}, resolveButton(group)),
      el("td", { textContent: when(group.first_seen) }),
      el("td", { textContent: when(group.last_seen) }),
      el("td", { textContent: group.release }),
      traces(group.trace_ids));
  }

  async function refresh() {
    if (busy) return;
    const state = filter.value;
    const body = await getJson(`/api/errors${state ? `?state=${state}` : ""}`);
    const head = el("thead", {}, el("tr", {}, ...["Error", "Count", "", "First seen", "Last seen", "Release", "Traces"]
      .map((h) => el("th", { scope: "col", textContent: h }))));
    table.replaceChildren(head, el("tbody", {}, ...body.groups.map(row)));
    table.hidden = body.groups.length === 0;
    summary.textContent = body.groups.length
      ? `${body.groups.length} group${body.groups.length === 1 ? "" : "s"}, most recently seen first${body.evicted ? ` (${body.evicted} older dropped)` : ""}.`
      : "No error group.";
  }

  filter.addEventListener("change", () => refresh().catch((error) => { summary.textContent = error.message; }));

  (async () => {
    for (;;) {
      try {
        const config = await getJson("/api/dashboard/config");
        if (config.mode !== "supervisor") return;
        token = config.ops_token || "";
        break;
      } catch (_) { await new Promise((r) => setTimeout(r, 1000)); }
    }
    section.hidden = false;
    const loop = async () => {
      try { await refresh(); } catch (error) { summary.textContent = `The error groups could not be read (${error.message}).`; }
      setTimeout(loop, 5000);
    };
    loop();
  })();
});
