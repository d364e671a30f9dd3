// Till Agent placeholder page: polls the agent's health endpoint and shows what it says.
//
// The page runs in two places and must work in both:
// - inside the desktop window, loaded from Tauri's own scheme (tauri://localhost or
//   http://tauri.localhost), where the agent is a separate origin on http://127.0.0.1:8003;
// - in a plain browser, served by the agent itself, where the API is same-origin.
"use strict";

(function () {
  const DEFAULT_AGENT = "http://127.0.0.1:8003";
  const HEALTH_PATH = "/api/agent/health";
  const POLL_MS = 3000;
  const TIMEOUT_MS = 2500;

  const $ = (id) => document.getElementById(id);

  // Same-origin when the page is served over http(s) from a loopback host other than Tauri's;
  // otherwise the agent's fixed local address.
  function agentBase() {
    const { protocol, hostname, origin } = window.location;
    const loopback = hostname === "127.0.0.1" || hostname === "localhost" || hostname === "[::1]";
    if ((protocol === "http:" || protocol === "https:") && loopback) return origin;
    return DEFAULT_AGENT;
  }

  const base = agentBase();
  $("agent-url").textContent = base;

  // The header's store line from the health answer: the paired till's name, or "not paired yet".
  function storeLine(body) {
    if (!body || typeof body !== "object") return null;
    const candidates = [body.storeName, body.businessName, body.posName];
    for (const c of candidates) {
      if (typeof c === "string" && c.trim() !== "") return "Store: " + c.trim();
    }
    if (body.paired === false) return "Store: not paired yet";
    return null;
  }

  // One-line summary of the health answer: its status word and version, if any.
  function summary(body) {
    if (!body || typeof body !== "object") return "agent reachable";
    const parts = [];
    if (typeof body.status === "string") parts.push(body.status);
    else if (body.ok === true) parts.push("ok");
    if (typeof body.version === "string") parts.push("v" + body.version);
    return parts.length ? "agent reachable: " + parts.join(", ") : "agent reachable";
  }

  function show(state, text) {
    const status = $("status");
    status.dataset.state = state;
    status.textContent = text;
    $("spinner").hidden = state === "ok";
    $("headline").textContent = state === "ok" ? "Agent running" : "Agent starting…";
    $("checked").textContent = "last checked " + new Date().toLocaleTimeString();
  }

  async function check() {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
    try {
      const res = await fetch(base + HEALTH_PATH, {
        method: "GET",
        headers: { Accept: "application/json" },
        cache: "no-store",
        signal: controller.signal,
      });
      let body = null;
      try { body = await res.json(); } catch (_) { body = null; }
      if (!res.ok) {
        show("down", "agent answered HTTP " + res.status);
        return;
      }
      const line = storeLine(body);
      if (line) $("store").textContent = line;
      show("ok", summary(body));
    } catch (_) {
      // Network error, timeout, or a CORS refusal: from the page they all look the same.
      show("down", "agent not reachable");
    } finally {
      clearTimeout(timer);
    }
  }

  check();
  setInterval(check, POLL_MS);
})();
