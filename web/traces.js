// The ops dashboard's Traces view. Searches the ops API's GET /api/traces (watch's window of
// traces, by request id, trace id, route, status, minimum duration and start time) and draws
// one trace (GET /api/traces/{id}) as a waterfall across processes: one row per span, its bar
// placed by start and length within the trace, coloured per service, failed spans marked; a
// row opens the span's attributes and the central log lines written inside it. A link to
// #trace=<id> (log lines carry one) opens that trace; a trace opens its log search.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const { el, getJson } = window.brigadeOps;
  const $ = (id) => document.getElementById(id);
  const section = $("traces-section");
  if (!section) return;
  const form = $("trace-search");
  const results = $("trace-results");
  const summary = $("trace-summary");
  const waterfall = $("trace-waterfall");

  const ms = (n) => (n >= 1000 ? `${(n / 1000).toFixed(2)} s` : `${n.toFixed(1)} ms`);
  // Colours at 4.5:1 or better against white text, one per service in order of appearance.
  const palette = ["#1f5fa8", "#8a3b00", "#0f6e4f", "#6b3fa0", "#8c2050", "#4a5a00"];

  // ---- Search ---------------------------------------------------------------------------

  async function search() {
    const params = new URLSearchParams();
    ["request_id", "trace_id", "route", "status", "min_duration_ms"].forEach((name) => {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    });
    // datetime-local is the browser's local time; the API takes RFC 3339.
    const since = form.elements.since.value;
    if (since) params.set("since", new Date(since).toISOString());
    params.set("limit", "50");
    try {
      const body = await getJson(`/api/traces?${params}`);
      results.replaceChildren(...body.traces.map(resultRow));
      summary.textContent = body.traces.length
        ? `${body.traces.length} trace${body.traces.length === 1 ? "" : "s"}, newest first.`
        : "No trace matches (watch keeps the last hour, failed and slow traces longest).";
    } catch (error) {
      results.replaceChildren();
      summary.textContent = `The search failed: ${error.message}`;
    }
  }

  function resultRow(trace) {
    const open = el("a", { href: `#trace=${trace.trace_id}`, class: "trace-link", textContent: trace.name || trace.trace_id });
    return el("li", { class: trace.error ? "trace-result error" : "trace-result", "data-trace-id": trace.trace_id },
      open, " ",
      el("span", { class: "small", textContent: `${ms(trace.duration_ms)} · ${trace.spans} spans · ${trace.services.join(", ")}` }),
      trace.error ? el("span", { class: "level error", textContent: " ERROR" }) : "",
      trace.request_id ? el("span", { class: "small", textContent: ` · request ${trace.request_id}` }) : "",
      " ", el("span", { class: "small", textContent: new Date(trace.start_ms).toLocaleTimeString() }));
  }

  // ---- Waterfall ------------------------------------------------------------------------

  // Orders spans depth-first under their parents (children by start), so a child sits
  // below its parent; spans whose parent is not held start new roots.
  function ordered(spans) {
    const ids = new Set(spans.map((s) => s.span_id));
    const children = new Map();
    spans.forEach((s) => {
      const parent = s.parent_span_id && ids.has(s.parent_span_id) ? s.parent_span_id : "";
      if (!children.has(parent)) children.set(parent, []);
      children.get(parent).push(s);
    });
    const out = [];
    const walk = (parent, depth) => (children.get(parent) || [])
      .sort((a, b) => a.start_ms - b.start_ms)
      .forEach((s) => { out.push([s, depth]); walk(s.span_id, depth + 1); });
    walk("", 0);
    return out;
  }

  function logList(lines) {
    return el("ol", { class: "log-lines" }, ...lines.map((line) => {
      const level = String(line.level || "").toLowerCase();
      return el("li", { class: `log-line ${level}` },
        el("span", { class: `level ${level}`, textContent: level.toUpperCase() }), " ",
        el("span", { class: "small", textContent: line.instance || line.service || "" }), " ",
        el("span", { textContent: line.message || "" }));
    }));
  }

  function spanRow(span, depth, start, total, colour) {
    const left = total > 0 ? ((span.start_ms - start) / total) * 100 : 0;
    const width = total > 0 ? Math.max((span.duration_ms / total) * 100, 0.5) : 100;
    const bar = el("span", { class: "span-bar", "aria-hidden": "true" });
    bar.style.left = `${Math.min(left, 99.5)}%`;
    bar.style.width = `${Math.min(width, 100 - Math.min(left, 99.5))}%`;
    bar.style.background = colour;
    const label = el("summary", { class: "span-label" },
      el("span", { class: "span-name", textContent: span.name }), " ",
      el("span", { class: "small", textContent: `${span.service} · ${span.kind} · ${ms(span.duration_ms)}` }),
      span.error ? el("span", { class: "level error", textContent: " ERROR" }) : "",
      span.logs.length ? el("span", { class: "small", textContent: ` · ${span.logs.length} log line${span.logs.length === 1 ? "" : "s"}` }) : "");
    label.style.paddingLeft = `${depth * 1.2}em`;
    const attributes = el("dl", { class: "span-attributes" },
      ...Object.entries(span.attributes).flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: v })]));
    if (span.status_message) attributes.append(el("dt", { textContent: "status" }), el("dd", { textContent: span.status_message }));
    const details = el("details", { class: "span-details" }, label, attributes);
    if (span.logs.length) details.append(logList(span.logs));
    return el("li", { class: span.error ? "span-row error" : "span-row", "data-service": span.service, "data-span-id": span.span_id },
      el("div", { class: "span-track" }, bar), details);
  }

  async function openTrace(id) {
    waterfall.hidden = false;
    waterfall.replaceChildren(el("p", { class: "small", textContent: `Loading trace ${id}…` }));
    let trace;
    try {
      trace = await getJson(`/api/traces/${encodeURIComponent(id)}`);
    } catch (error) {
      waterfall.replaceChildren(el("p", { class: "small", textContent: `Trace ${id}: ${error.message}` }));
      return;
    }
    const start = Math.min(...trace.spans.map((s) => s.start_ms));
    const end = Math.max(...trace.spans.map((s) => s.start_ms + s.duration_ms));
    const services = [...new Set(trace.spans.map((s) => s.service))];
    const colour = (service) => palette[services.indexOf(service) % palette.length];
    const legend = el("ul", { class: "trace-legend" }, ...services.map((service) => {
      const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
      swatch.style.background = colour(service);
      return el("li", {}, swatch, ` ${service}`);
    }));
    const logs = el("button", { type: "button", textContent: "Search the logs for this trace" });
    logs.addEventListener("click", () => {
      const grep = $("log-grep");
      const logForm = $("log-search");
      if (!grep || !logForm) return;
      grep.value = trace.trace_id;
      $("log-search-section").scrollIntoView();
      logForm.requestSubmit();
    });
    const rows = ordered(trace.spans).map(([span, depth]) => spanRow(span, depth, start, end - start, colour(span.service)));
    const parts = [
      el("h3", { id: "trace-title", textContent: `Trace ${trace.trace_id}` }),
      el("p", { class: "small", textContent: `${trace.spans.length} spans across ${services.length} process${services.length === 1 ? "" : "es"}, ${ms(end - start)}.` }),
      legend, logs,
      el("ol", { class: "waterfall", "aria-labelledby": "trace-title" }, ...rows),
    ];
    if (trace.other_logs.length) {
      parts.push(el("h4", { textContent: "Log lines of this trace outside its spans" }), logList(trace.other_logs));
    }
    waterfall.replaceChildren(...parts);
  }

  function fromHash() {
    const match = /^#trace=([0-9a-fA-F]{32})$/.exec(location.hash);
    if (!match) return;
    section.scrollIntoView();
    openTrace(match[1].toLowerCase());
  }

  form.addEventListener("submit", (event) => { event.preventDefault(); search(); });
  window.addEventListener("hashchange", fromHash);
  fromHash();
});
