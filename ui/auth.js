// Till Agent UI: the manager session.
//
// Refunds, pairing, settings and the POS token are behind a manager PIN. The first visit sets a
// PIN; later visits log in with it. The agent answers a short-lived session token, kept in
// sessionStorage (gone when the window closes) and sent as `Authorization: Bearer <token>`.
"use strict";

(function (T) {
  const KEY = "till.manager";
  /** The agent's error types that mean "this manager session is not valid". */
  const SESSION_ERRORS = new Set(["unauthorized", "manager_only", "session_expired"]);
  let memory = null; // used when sessionStorage is unavailable

  function load() {
    let s = memory;
    try {
      s = JSON.parse(sessionStorage.getItem(KEY) || "null") || memory;
    } catch (_) { /* storage unavailable or corrupt: the in-memory copy decides */ }
    if (s && s.token && (!s.expiresAt || Date.parse(s.expiresAt) > Date.now())) return s;
    return null;
  }

  const auth = {
    /** The current session token, or null when logged out or expired. */
    token() {
      const s = load();
      return s ? s.token : null;
    },
    /** True when a manager is logged in. */
    active() {
      return auth.token() !== null;
    },
    /** GET /api/agent/manager → {pinSet}. */
    async status() {
      return (await T.api("/api/agent/manager")).body || {};
    },
    /** POST /api/agent/manager/pin {pin, currentPin?}. */
    async setPin(pin, currentPin) {
      const body = { pin };
      if (currentPin) body.currentPin = currentPin;
      return (await T.api("/api/agent/manager/pin", { body })).body;
    },
    /** POST /api/agent/manager/login {pin} → stores {token, expiresAt}. */
    async login(pin) {
      const r = await T.api("/api/agent/manager/login", { body: { pin } });
      const s = { token: r.body.token, expiresAt: r.body.expiresAt || null };
      memory = s;
      try { sessionStorage.setItem(KEY, JSON.stringify(s)); } catch (_) { /* kept in memory only */ }
      T.emit("auth", true);
      return s;
    },
    logout() {
      const s = load();
      // End the session on the agent too (best effort: a 401 has already ended it there).
      if (s && s.token) T.api("/api/agent/manager/logout", { method: "POST", token: s.token }).catch(() => {});
      memory = null;
      try { sessionStorage.removeItem(KEY); } catch (_) { /* nothing stored */ }
      T.emit("auth", false);
    },
    /**
     * Runs `fn(token)`; a 401 answer about the manager session itself (expired or revoked:
     * `unauthorized` / `manager_only`) ends it, and every error is rethrown. A 401 that SensePass
     * gave about something else (a wrong location API key while pairing) keeps the manager logged
     * in, so that its message can be shown.
     */
    async call(fn) {
      const token = auth.token();
      if (!token) {
        T.emit("auth", false);
        throw new T.ApiError(401, { title: "Log in as manager first" });
      }
      try {
        return await fn(token);
      } catch (e) {
        if (e instanceof T.ApiError && e.status === 401 && SESSION_ERRORS.has(e.type)) auth.logout();
        throw e;
      }
    },
  };
  T.auth = auth;

  const PIN_PATTERN = "[0-9]{4,12}";
  const capital = (t) => t.charAt(0).toUpperCase() + t.slice(1).replace(/\.$/, "");

  function pinInput(id, label, autocomplete) {
    return T.h("div", { class: "field" },
      T.h("label", { for: id }, label),
      T.h("input", {
        id, name: id, type: "password", inputmode: "numeric", pattern: PIN_PATTERN,
        minlength: "4", maxlength: "12", required: true, autocomplete,
        "aria-describedby": "pin-hint",
      }));
  }

  /**
   * Renders the PIN gate into `container`: the first-run "set a PIN" form or the login form.
   * Calls `onReady()` after a successful login.
   */
  auth.renderGate = async function (container, purpose, onReady) {
    T.fill(container, T.h("p", { class: "muted" }, "Checking the manager PIN…"));
    let pinSet = true;
    try {
      pinSet = !!(await auth.status()).pinSet;
    } catch (e) {
      T.fill(container, T.h("div", { class: "card narrow" },
        T.h("h2", {}, "Manager"),
        T.h("p", { class: "error", role: "alert" }, T.errorText(e)),
        T.h("button", { type: "button", class: "btn", onclick: () => auth.renderGate(container, purpose, onReady) }, "Try again")));
      return;
    }
    const error = T.h("p", { class: "error", role: "alert", id: "pin-error" });
    const hint = T.h("p", { class: "hint", id: "pin-hint" }, "4 to 12 digits.");
    let form;
    if (!pinSet) {
      // The first PIN is set on the till itself, never through this page: whoever reached the
      // page first would otherwise own the till.
      form = T.h("div", { class: "card narrow", id: "pin-setup", "aria-labelledby": "pin-setup-title" },
        T.h("h2", { id: "pin-setup-title" }, "No manager PIN yet"),
        T.h("p", {}, "Refunds, pairing and settings are protected by a manager PIN. Set it on this till with:"),
        T.h("pre", { class: "command" }, "till-agent manager set-pin"),
        T.h("p", { class: "muted" }, "(add --sandbox for the sandbox's journal). Then come back here."),
        error,
        T.h("button", { type: "button", class: "btn primary", id: "pin-recheck", onclick: () => auth.renderGate(container, purpose, onReady) }, "I have set it"));
    } else {
      form = T.h("form", { class: "card narrow", id: "pin-login", "aria-labelledby": "pin-login-title" },
        T.h("h2", { id: "pin-login-title" }, "Manager login"),
        T.h("p", {}, purpose || "Enter the manager PIN."),
        pinInput("login-pin", "Manager PIN", "current-password"),
        hint, error,
        T.h("button", { type: "submit", class: "btn primary" }, "Log in"));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        const input = form.querySelector("#login-pin");
        error.textContent = "";
        try {
          await auth.login(input.value.trim());
          onReady();
        } catch (e) {
          input.value = "";
          input.focus();
          error.textContent = e instanceof T.ApiError && e.status === 401 ? capital(e.message || "wrong PIN") + "." : T.errorText(e);
        }
      });
    }
    T.fill(container, form);
    const first = form.querySelector("input");
    if (first) first.focus();
  };
})(window.Till);
