// Till Agent UI: shared helpers (agent address, HTTP, money and date formatting, DOM building).
//
// The UI runs in two places and must behave the same in both:
// - in a browser, served by the agent itself (http://127.0.0.1:PORT/): the API is same-origin and
//   every URL is relative;
// - inside the desktop window, loaded from Tauri's own scheme (tauri://localhost on Linux/macOS,
//   http(s)://tauri.localhost on Windows): the agent is another origin, http://127.0.0.1:8003.
// It talks to the agent only through its local HTTP API and the server-sent event stream.
"use strict";

window.Till = window.Till || {};

(function (T) {
  const DEFAULT_AGENT = "http://127.0.0.1:8003";

  /** The agent's base URL ("" = same origin, relative URLs). */
  function agentBase() {
    if (typeof window.TILL_AGENT_URL === "string" && window.TILL_AGENT_URL) {
      return window.TILL_AGENT_URL.replace(/\/+$/, "");
    }
    const { protocol, hostname } = window.location;
    const tauriHost = hostname === "tauri.localhost";
    if ((protocol === "http:" || protocol === "https:") && !tauriHost) return "";
    return DEFAULT_AGENT;
  }
  T.base = agentBase();
  /** The views by route name (cashier, manager, settings), each {enter(parts), leave()}. */
  T.views = {};

  /** Absolute or relative URL of an agent path. */
  T.url = function (path) {
    return T.base + path;
  };

  /** An error answered by the agent ({status, error_type, title, invalid_parameters?}). */
  class ApiError extends Error {
    constructor(status, body) {
      const title = (body && (body.title || body.status_message || body.errorMessage || body.error)) || "HTTP " + status;
      super(title);
      this.status = status;
      this.body = body || {};
      this.type = this.body.error_type || null;
    }
    /** A sentence for people: the title plus every invalid field. */
    describe() {
      const params = Array.isArray(this.body.invalid_parameters) ? this.body.invalid_parameters : [];
      if (!params.length) return this.message;
      return this.message + ": " + params.map((p) => p.parameter + " " + p.reason).join("; ");
    }
  }
  T.ApiError = ApiError;

  /**
   * Calls the agent. `opts`: {method, body (JSON-encoded), token (Bearer), headers, timeoutMs}.
   * Resolves {status, body}; rejects with ApiError on a non-2xx answer, TypeError on no answer.
   */
  T.api = async function (path, opts) {
    opts = opts || {};
    const headers = Object.assign({ Accept: "application/json" }, opts.headers || {});
    let body;
    if (opts.body !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(opts.body);
    }
    if (opts.token) headers.Authorization = "Bearer " + opts.token;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), opts.timeoutMs || 15000);
    let res;
    try {
      res = await fetch(T.url(path), {
        method: opts.method || (body !== undefined ? "POST" : "GET"),
        headers,
        body,
        cache: "no-store",
        signal: controller.signal,
      });
    } finally {
      clearTimeout(timer);
    }
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch (_) { data = { title: text.slice(0, 200) }; }
    }
    if (!res.ok) throw new ApiError(res.status, data);
    return { status: res.status, body: data };
  };

  /** A message for any error thrown by T.api. */
  T.errorText = function (err) {
    if (err instanceof ApiError) return err.describe();
    if (err && err.name === "AbortError") return "The agent did not answer in time.";
    return "The agent is not reachable.";
  };

  // ---------------------------------------------------------------- money

  /** Minor-unit digits of the currencies SensePass and till-core know (all have 2). */
  const DIGITS = { USD: 2, CAD: 2, ILS: 2, EUR: 2, RUB: 2, GBP: 2 };
  T.digits = function (currency) {
    return DIGITS[currency] !== undefined ? DIGITS[currency] : 2;
  };

  const formatters = {};
  function formatter(currency) {
    if (!formatters[currency]) {
      try {
        formatters[currency] = new Intl.NumberFormat(undefined, {
          style: "currency",
          currency,
          minimumFractionDigits: T.digits(currency),
          maximumFractionDigits: T.digits(currency),
        });
      } catch (_) {
        formatters[currency] = null;
      }
    }
    return formatters[currency];
  }

  /** Integer minor units → "€12.50" (the browser's locale, the currency's symbol). */
  T.money = function (minor, currency) {
    if (minor === null || minor === undefined || !Number.isFinite(Number(minor))) return "—";
    minor = Math.trunc(Number(minor));
    const d = T.digits(currency);
    const neg = minor < 0;
    const abs = Math.abs(minor);
    const scale = Math.pow(10, d);
    const whole = Math.floor(abs / scale);
    const frac = String(abs % scale).padStart(d, "0");
    const exact = (neg ? "-" : "") + whole + (d ? "." + frac : "");
    const f = currency && formatter(currency);
    return f ? f.format(Number(exact)) : exact + (currency ? " " + currency : "");
  };

  /**
   * An exact decimal (string or JSON number, major units: "12.5", 12.5) → integer minor units,
   * or null when it is not a plain decimal with at most the currency's digits.
   */
  T.majorToMinor = function (value, currency) {
    if (value === null || value === undefined) return null;
    let s = String(value).trim().replace(",", ".");
    const d = T.digits(currency);
    const m = /^(-)?(\d+)(?:\.(\d+))?$/.exec(s);
    if (!m) return null;
    let frac = m[3] || "";
    if (frac.length > d) {
      if (/[^0]/.test(frac.slice(d))) return null;
      frac = frac.slice(0, d);
    }
    const minor = Number(m[2]) * Math.pow(10, d) + Number(frac.padEnd(d, "0") || "0");
    if (!Number.isSafeInteger(minor)) return null;
    return m[1] ? -minor : minor;
  };

  /** Minor units → "2.50" for an input field (no symbol, no grouping). */
  T.minorToInput = function (minor, currency) {
    const d = T.digits(currency);
    const scale = Math.pow(10, d);
    const abs = Math.abs(minor);
    return (minor < 0 ? "-" : "") + Math.floor(abs / scale) + (d ? "." + String(abs % scale).padStart(d, "0") : "");
  };

  // ---------------------------------------------------------------- dates

  T.dateTime = function (iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.toLocaleString(undefined, { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  };
  T.time = function (iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  };
  /** "YYYY-MM-DD" of a local date, for <input type=date>. */
  T.isoDay = function (date) {
    const p = (n) => String(n).padStart(2, "0");
    return date.getFullYear() + "-" + p(date.getMonth() + 1) + "-" + p(date.getDate());
  };
  /** Local midnight of "YYYY-MM-DD" (+ days) as RFC 3339 UTC, or null. */
  T.dayStart = function (day, plusDays) {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(day || "");
    if (!m) return null;
    const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]) + (plusDays || 0), 0, 0, 0, 0);
    return d.toISOString();
  };

  // ---------------------------------------------------------------- statuses

  /** statusKey → [label, tone]. Tones: wait, busy, ok, bad, warn, info. */
  const STATUS = {
    creating: ["Starting payment", "wait"],
    unknown: ["Checking with SensePass", "warn"],
    initialized: ["Waiting for the customer", "wait"],
    waiting: ["Waiting for the customer", "wait"],
    tapped: ["Customer opened the payment", "busy"],
    user_approved: ["Customer is paying", "busy"],
    user_declined: ["Customer declined in the app", "warn"],
    processing: ["Processing payment", "busy"],
    approved: ["Approved", "ok"],
    declined: ["Declined", "bad"],
    failed: ["Failed", "bad"],
    timed_out: ["Timed out", "warn"],
    cancelled: ["Cancelled", "warn"],
    refunded: ["Refunded", "info"],
    refund_processing: ["Refund processing", "info"],
    partially_refunded: ["Partially refunded", "info"],
    not_created: ["Not created", "bad"],
    closed: ["Closed, not paid", "warn"],
  };
  T.statusLabel = function (key) {
    return (STATUS[key] || [key ? String(key).replace(/_/g, " ") : "Unknown", "wait"])[0];
  };
  T.statusTone = function (key) {
    return (STATUS[key] || [null, "wait"])[1];
  };
  /** Keys of a payment still waiting for the customer (the cashier screen shows it). */
  T.OPEN_KEYS = ["creating", "unknown", "initialized", "waiting", "tapped", "user_approved", "user_declined", "processing"];
  /** The journal-filter statuses, in the order the manager's status filter lists them. */
  T.FILTER_KEYS = ["approved", "declined", "failed", "timed_out", "cancelled", "closed", "refunded", "partially_refunded", "refund_processing", "initialized", "waiting", "tapped", "user_approved", "user_declined", "processing"];

  /** A status badge element. */
  T.badge = function (key) {
    return T.h("span", { class: "badge tone-" + T.statusTone(key), "data-status": key || "" }, T.statusLabel(key));
  };

  // ---------------------------------------------------------------- DOM

  /**
   * Builds an element. Children: strings (as text, never HTML), nodes, arrays, null (skipped).
   * Attributes: `class`, `on<event>` functions, booleans (present/absent), `dataset`, others as is.
   */
  T.h = function (tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
      else if (k === "dataset") Object.assign(el.dataset, v);
      else if (v === true) el.setAttribute(k, "");
      else el.setAttribute(k, String(v));
    }
    T.append(el, children);
    return el;
  };
  T.append = function (el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  };
  /** Replaces an element's children. */
  T.fill = function (el, ...children) {
    el.replaceChildren();
    return T.append(el, children);
  };
  T.$ = (sel, root) => (root || document).querySelector(sel);

  /** A small "copied / saved" notice in the shared live region. */
  T.announce = function (text, tone) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = text;
    el.dataset.tone = tone || "info";
    el.hidden = false;
    clearTimeout(T._toastTimer);
    T._toastTimer = setTimeout(() => { el.hidden = true; }, 4000);
  };

  /** Short form of a long id: first 8 … last 4. */
  T.shortId = function (id) {
    if (!id) return "—";
    id = String(id);
    return id.length > 16 ? id.slice(0, 8) + "…" + id.slice(-4) : id;
  };

  /** A random key for an Idempotency-Key header (one per money-out attempt). */
  T.randomKey = function (prefix) {
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return (prefix || "ui") + "-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  };

  // ---------------------------------------------------------------- events

  /** A tiny publish/subscribe hub the views share (health, SSE events, route changes). */
  const listeners = {};
  T.on = function (name, fn) {
    (listeners[name] = listeners[name] || []).push(fn);
  };
  T.emit = function (name, data) {
    for (const fn of listeners[name] || []) {
      try { fn(data); } catch (e) { console.error(name, e); }
    }
  };
})(window.Till);
