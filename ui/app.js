// Till Agent UI: start-up, hash routes, the agent's health and event stream, the offline banner.
//
// Routes: #/cashier (default), #/manager[/tx/ID | /outbox | /summary], #/settings.
// `?view=customer` shows only the customer-facing part of the cashier screen (a second display).
"use strict";

(function (T) {
  const HEALTH_MS = 3000;
  const params = new URLSearchParams(window.location.search);
  T.customerView = params.get("view") === "customer";

  // ------------------------------------------------------------ confirm dialog

  /** A modal question; resolves true when confirmed. {title, text, confirm, cancel, danger}. */
  T.confirm = function (opts) {
    const dialog = document.getElementById("confirm");
    document.getElementById("confirm-title").textContent = opts.title || "Are you sure?";
    document.getElementById("confirm-text").textContent = opts.text || "";
    const yes = document.getElementById("confirm-yes");
    yes.textContent = opts.confirm || "Confirm";
    document.getElementById("confirm-no").textContent = opts.cancel || "Cancel";
    yes.classList.toggle("danger", !!opts.danger);
    yes.classList.toggle("primary", !opts.danger);
    return new Promise((resolve) => {
      const done = () => {
        dialog.removeEventListener("close", done);
        resolve(dialog.returnValue === "ok");
      };
      dialog.returnValue = "";
      dialog.addEventListener("close", done);
      if (typeof dialog.showModal === "function") {
        dialog.showModal();
        document.getElementById("confirm-no").focus();
      } else {
        dialog.removeEventListener("close", done);
        resolve(window.confirm((opts.title || "") + "\n\n" + (opts.text || "")));
      }
    });
  };

  // ------------------------------------------------------------ health

  T.health = null;
  T.agentReachable = null;
  // One health request at a time. A caller that changed something (pairing, login) and awaits
  // refreshHealth() must get an answer read *after* its change: when a request is already under
  // way (it may have been answered before the change), one more is made after it and the caller
  // waits for that one. Callers arriving meanwhile share it.
  let healthRun = null;
  let healthNext = null;
  /** Reads /api/agent/health now (coalescing concurrent calls) and tells every view. */
  T.refreshHealth = function () {
    if (healthRun) {
      if (!healthNext) healthNext = healthRun.then(() => { healthNext = null; return T.refreshHealth(); });
      return healthNext;
    }
    healthRun = (async () => {
      try {
        // With the manager's session, health shows the device ID in full; without, only its end.
        const r = await T.api("/api/agent/health", { timeoutMs: 2500, token: T.auth.token() || undefined });
        T.health = r.body || {};
        T.agentReachable = true;
      } catch (_) {
        T.agentReachable = false;
      }
      renderHealth();
      T.emit("health", T.health);
    })().finally(() => { healthRun = null; });
    return healthRun;
  };

  function renderHealth() {
    const h = T.health || {};
    const conn = document.getElementById("conn");
    const store = document.getElementById("store");
    const banner = document.getElementById("banner");
    if (T.agentReachable === false) {
      conn.dataset.state = "down";
      conn.textContent = "Agent offline";
      T.fill(banner,
        T.h("strong", {}, "The Till Agent is not running or not reachable."),
        " Payments cannot start until it is back. Retrying every few seconds…");
      banner.dataset.tone = "bad";
      banner.hidden = false;
      return;
    }
    store.textContent = h.paired ? (h.posName || "Paired till") : "Not paired";
    store.title = store.textContent;
    if (T.customerView) return; // the customer sees the merchant's name, never till or connection state
    if (h.paired === false) {
      // Without a device there is no SensePass connection to miss: say what to do instead.
      conn.dataset.state = "unpaired";
      conn.textContent = "Not paired";
      T.fill(banner, T.h("strong", {}, "Not paired. "), "This till cannot take payments until a manager pairs it in ",
        T.h("a", { href: "#/settings" }, "Settings"), ".");
      banner.dataset.tone = "info";
      banner.hidden = false;
      return;
    }
    const reachable = h.sensepassReachable !== false;
    const socket = h.socketConnected !== false;
    const queued = Number(h.queuedOperations || 0);
    if (reachable && socket) {
      conn.dataset.state = "ok";
      conn.textContent = h.environment === "sandbox" ? "Online · sandbox" : "Online";
      const trouble = printerTrouble(h.printer);
      if (trouble) {
        // The cashier waits for a receipt that does not come: say why, in health's own words.
        T.fill(banner, T.h("strong", { id: "printer-trouble" }, trouble + ". "),
          "Receipts wait in the queue and print when the printer is back. ",
          T.h("a", { href: "#/settings" }, "Printer settings"));
        banner.dataset.tone = "warn";
        banner.hidden = false;
      } else {
        banner.hidden = true;
        banner.replaceChildren();
      }
    } else {
      conn.dataset.state = "offline";
      conn.textContent = "Offline";
      const what = !reachable
        ? "SensePass unreachable" + (h.offlineSince ? " since " + T.time(h.offlineSince) : "") + "."
        : "Live connection to SensePass down; polling for statuses.";
      T.fill(banner,
        T.h("span", { class: "queued-wrap" }, "Queued operations: ",
          T.h("strong", { class: "queued", id: "queued-count", "data-count": String(queued) }, String(queued)),
          queued ? ", sent when the connection returns" : ""),
        T.h("strong", {}, "Offline. "), what);
      banner.dataset.tone = "warn";
      banner.hidden = false;
    }
  }

  /**
   * The printer's summary when something needs the cashier's eyes (out of paper, cover open,
   * offline, unreachable, or a receipt that may have printed), else null. Receipts merely waiting
   * on a ready printer are being printed: no banner for that.
   */
  function printerTrouble(p) {
    if (!p || !p.configured) return null;
    const bad = ["paper_out", "cover_open", "offline", "unreachable"].includes(p.state);
    if (!bad && !(Number(p.mayHavePrinted) > 0)) return null;
    const text = p.summary || "printer: " + p.state;
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  // ------------------------------------------------------------ event stream

  let source = null;
  let retryTimer = null;

  function connectEvents() {
    if (source) source.close();
    source = new EventSource(T.url("/api/agent/events"));
    source.addEventListener("hello", () => {
      T.emit("resync");
      T.refreshHealth();
    });
    source.addEventListener("lagged", () => T.emit("resync"));
    source.addEventListener("status", (ev) => {
      const data = parse(ev.data);
      if (data) T.emit("status", data);
    });
    source.addEventListener("connectivity", (ev) => {
      T.emit("connectivity", parse(ev.data));
      T.refreshHealth();
    });
    source.addEventListener("payment", (ev) => {
      const data = parse(ev.data);
      if (data) T.emit("payment", data);
    });
    source.addEventListener("operation", (ev) => {
      T.emit("operation", parse(ev.data));
      T.refreshHealth();
    });
    source.onerror = () => {
      // The browser retries by itself while the stream is merely interrupted; a closed stream
      // (agent restarted with an error answer) needs a new EventSource.
      if (source.readyState === EventSource.CLOSED) {
        clearTimeout(retryTimer);
        retryTimer = setTimeout(connectEvents, 2000);
      }
      T.refreshHealth();
    };
  }

  function parse(text) {
    try { return JSON.parse(text); } catch (_) { return null; }
  }

  // ------------------------------------------------------------ routes

  let current = null;

  function route() {
    let hash = window.location.hash.replace(/^#\/?/, "");
    if (T.customerView) hash = "cashier";
    const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
    let name = parts[0] || "cashier";
    if (!T.views[name]) name = "cashier";
    for (const a of document.querySelectorAll("#nav a")) {
      if (a.dataset.route === name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    for (const v of ["cashier", "manager", "settings"]) {
      document.getElementById("view-" + v).hidden = v !== name;
    }
    if (current && current !== name && T.views[current].leave) T.views[current].leave();
    const changed = current !== name;
    current = name;
    document.body.dataset.route = name;
    T.views[name].enter(parts.slice(1), changed);
    if (changed && !T.customerView) document.getElementById("main").focus({ preventScroll: true });
  }
  T.route = route;
  T.currentRoute = () => current;

  // ------------------------------------------------------------ start

  function start() {
    if (T.customerView) {
      document.body.classList.add("customer");
      document.title = "Customer display";
      T.on("merchant", (name) => {
        const product = document.querySelector(".bar .product");
        if (product && name) product.textContent = name;
      });
    }
    window.addEventListener("hashchange", route);
    route();
    T.refreshHealth();
    setInterval(T.refreshHealth, HEALTH_MS);
    // A login or logout changes what health may show (the device ID in full or only its end).
    T.on("auth", () => T.refreshHealth());
    connectEvents();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})(window.Till);
