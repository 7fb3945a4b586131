// brigade pages: the session (token in localStorage), calls to the JSON API, problem+json
// messages and the log-in panel, and error reports. No dependencies.
"use strict";

// Error reports: uncaught errors, unhandled rejections and failed API calls (no answer, or a
// 5xx) are sent to POST /api/v1/client-errors, where the replica logs them for brigade up's
// error groups. Only what grouping needs leaves the page: the kind, the message, the top
// frames and the page's path (no query, no fragment), plus the failed call's trace id. At
// most 10 reports per page load, each distinct error once; reporting never throws and never
// reports itself.
(() => {
  const ENDPOINT = "/api/v1/client-errors";
  const LIMIT = 10;
  const seen = new Set();
  let sent = 0;
  const nativeFetch = window.fetch.bind(window);

  const clean = (text) => String(text ?? "").replace(/[\u0000-\u001f\u007f]+/g, " ").trim().slice(0, 1000);
  const framesOf = (stack) => String(stack || "").split("\n").map(clean)
    .filter((line) => line.startsWith("at ") || line.includes("@")).slice(0, 10);

  function report(kind, message, stack, traceId) {
    try {
      const text = clean(message) || "(no message)";
      const frames = framesOf(stack);
      const key = `${kind}|${text}|${frames[0] || ""}`;
      if (sent >= LIMIT || seen.has(key)) return;
      seen.add(key);
      sent += 1;
      const body = { kind, message: text, frames, page: location.pathname };
      if (traceId) body.trace_id = traceId;
      nativeFetch(ENDPOINT, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify(body), keepalive: true,
      }).catch(() => {});
    } catch (_) { /* reporting must never break the page */ }
  }

  window.addEventListener("error", (event) => {
    const error = event.error;
    report("error", (error && error.message) || event.message, error && error.stack);
  });
  window.addEventListener("unhandledrejection", (event) => {
    const reason = event.reason;
    const message = reason instanceof Error ? reason.message : reason;
    report("unhandledrejection", message, reason && reason.stack);
  });
  // The trace id of an answer's `traceparent` (00-<trace>-<span>-<flags>).
  const traceOf = (response) => {
    const parts = (response.headers.get("traceparent") || "").split("-");
    return /^[0-9a-f]{32}$/.test(parts[1] || "") ? parts[1] : undefined;
  };
  window.fetch = async (input, init) => {
    const method = ((init && init.method) || (input && input.method) || "GET").toUpperCase();
    let path = "";
    try { path = new URL(typeof input === "string" ? input : input.url, location.href).pathname; } catch (_) { /* keep "" */ }
    try {
      const response = await nativeFetch(input, init);
      if (response.status >= 500) report("fetch", `${method} ${path} answered ${response.status}`, "", traceOf(response));
      return response;
    } catch (error) {
      if (!error || error.name !== "AbortError") report("fetch", `${method} ${path} failed: ${error && error.message}`, "");
      throw error;
    }
  };
})();

const brigade = (() => {
  const KEY = "brigade.session";
  const listeners = [];

  function session() {
    try { return JSON.parse(localStorage.getItem(KEY)); } catch (_) { return null; }
  }
  function setSession(value) {
    if (value) localStorage.setItem(KEY, JSON.stringify(value));
    else localStorage.removeItem(KEY);
    render();
    listeners.forEach((fn) => fn(value));
  }

  /** An API answer that was not 2xx/304, with its problem+json body. */
  class Problem extends Error {
    constructor(status, body) {
      super((body && (body.detail || body.title)) || `HTTP ${status}`);
      this.status = status;
      this.problem = body || {};
    }
  }

  async function api(method, path, options = {}) {
    const headers = Object.assign({ accept: "application/json" }, options.headers || {});
    const s = session();
    if (s && s.token) headers.authorization = `Bearer ${s.token}`;
    let body;
    if (options.body !== undefined) {
      headers["content-type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const response = await fetch(path, { method, headers, body, cache: "no-store" });
    const text = response.status === 204 || response.status === 304 ? "" : await response.text();
    let data = null;
    if (text) { try { data = JSON.parse(text); } catch (_) { data = { detail: text }; } }
    if (response.status >= 400) {
      if (response.status === 401 && s) setSession(null);
      throw new Problem(response.status, data);
    }
    return { status: response.status, headers: response.headers, data };
  }

  function clearMessages() { document.getElementById("messages").replaceChildren(); }

  function message(text, kind = "info") {
    const box = document.getElementById("messages");
    const p = document.createElement("p");
    p.className = `message ${kind}`;
    p.textContent = text;
    box.replaceChildren(p);
  }

  /** Shows an error: a problem's title, detail and per-field errors. */
  function showError(error) {
    const box = document.getElementById("messages");
    const div = document.createElement("div");
    div.className = "message error";
    div.setAttribute("role", "alert");
    const p = document.createElement("p");
    const problem = (error && error.problem) || {};
    const title = problem.title || "Something went wrong";
    p.innerHTML = "";
    const strong = document.createElement("strong");
    strong.textContent = title;
    p.append(strong);
    const detail = problem.detail || (error && !error.problem ? String(error.message || error) : "");
    if (detail) p.append(`: ${detail}`);
    div.append(p);
    if (Array.isArray(problem.errors) && problem.errors.length) {
      const ul = document.createElement("ul");
      problem.errors.forEach((e) => {
        const li = document.createElement("li");
        li.textContent = `${e.field}: ${e.message}`;
        ul.append(li);
      });
      div.append(ul);
    }
    if (problem.type) div.dataset.problemType = problem.type;
    box.replaceChildren(div);
  }

  function money(minor, currency) {
    const sign = minor < 0 ? "-" : "";
    const abs = Math.abs(minor);
    return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")} ${currency}`;
  }

  function time(iso) {
    return new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  /** Header: who is logged in and a log-out button; the log-in panel while nobody is. */
  function render() {
    const s = session();
    const who = document.getElementById("who");
    const panel = document.getElementById("login-panel");
    if (panel) panel.hidden = !!s;
    if (!who) return;
    who.replaceChildren();
    if (s) {
      const span = document.createElement("span");
      span.textContent = `${s.account.email} (${s.account.role})`;
      const out = document.createElement("button");
      out.type = "button";
      out.id = "logout";
      out.textContent = "Log out";
      out.addEventListener("click", async () => {
        try { await api("DELETE", "/api/v1/sessions/current"); } catch (_) { /* gone anyway */ }
        setSession(null);
      });
      who.append(span, " ", out);
    }
  }

  async function logIn(email, password) {
    const { data } = await api("POST", "/api/v1/sessions", { body: { email, password } });
    setSession({ token: data.token, account: data.account });
  }

  function wireLogin() {
    const form = document.getElementById("login-form");
    if (!form) return;
    const email = document.getElementById("login-email");
    const password = document.getElementById("login-password");
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      clearMessages();
      try { await logIn(email.value.trim(), password.value); password.value = ""; }
      catch (error) { showError(error); }
    });
    const signup = document.getElementById("signup-button");
    if (signup) signup.addEventListener("click", async () => {
      clearMessages();
      try {
        await api("POST", "/api/v1/accounts", { body: { email: email.value.trim(), password: password.value } });
        await logIn(email.value.trim(), password.value);
        password.value = "";
        message("Welcome! Your account is ready.", "ok");
      } catch (error) { showError(error); }
    });
  }

  /** Calls `fn` now and after every log-in or log-out. */
  function onSession(fn) { listeners.push(fn); fn(session()); }

  /** Runs `tick` now and again after `delay()` ms, until the page goes away. */
  function every(tick, delay) {
    let timer;
    const run = async () => {
      try { await tick(); } catch (error) { showError(error); }
      timer = setTimeout(run, delay());
    };
    run();
    return () => clearTimeout(timer);
  }

  document.addEventListener("DOMContentLoaded", () => { render(); wireLogin(); });
  return { api, session, setSession, onSession, message, showError, clearMessages, money, time, every, Problem };
})();
