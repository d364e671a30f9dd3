// Till Agent UI: settings and pairing (#/settings).
//
// Anyone sees whether the till is paired and online. Pairing, unpairing, the POS token and the
// manager PIN need a manager login.
"use strict";

(function (T) {
  let root = null;
  let settings = null;

  function kv(label, value, attrs) {
    return [T.h("dt", {}, label), T.h("dd", attrs || {}, value)];
  }

  function statusPanel() {
    const h = T.health || {};
    const online = h.sensepassReachable !== false && h.socketConnected !== false;
    return T.h("section", { class: "panel", id: "pairing-status", "aria-labelledby": "ps-title" },
      T.h("h2", { id: "ps-title" }, "This till"),
      T.h("dl", { class: "kv" },
        kv("Pairing", h.paired ? T.h("span", { class: "badge tone-ok" }, "Paired") : T.h("span", { class: "badge tone-warn" }, "Not paired"), { id: "paired" }),
        kv("Register name", h.posName || "—", { id: "pos-name" }),
        // The device ID works as a SensePass credential: health sends only its end without a login.
        kv("Device ID", T.h("span", { class: "mono wrap" }, h.deviceId || "—"), { id: "device-id" }),
        kv("Environment", h.environment || "—", { id: "environment" }),
        kv("SensePass", T.agentReachable === false ? "agent not reachable" : online ? "online" : "offline", { id: "online" }),
        kv("Open payments", String(h.openTransactions ?? "—")),
        kv("Queued operations", String(h.queuedOperations ?? "—")),
        kv("Receipt printer", T.h("span", { class: "badge tone-" + printerTone(h.printer) }, (h.printer && h.printer.summary) || "—"), { id: "printer-summary" }),
        kv("Agent version", h.version || "—")));
  }

  function printerTone(p) {
    if (!p || !p.configured) return "muted";
    if (p.state === "ready" || (p.state === "unknown" && !p.waiting)) return p.mayHavePrinted ? "warn" : "ok";
    return "warn";
  }

  // ------------------------------------------------------------ receipt printer

  /** Printer settings (manager): URL, width, code pages, when to print, a test print. Every
   *  field the agent refuses is named under the form, and nothing is saved then. */
  function printerPanel() {
    const panel = T.h("section", { class: "panel", id: "printer-panel", "aria-labelledby": "printer-title" },
      T.h("h2", { id: "printer-title" }, "Receipt printer"),
      T.h("p", { class: "muted" }, "An ESC/POS thermal printer: ", T.h("code", {}, "tcp://host:9100"), ", ",
        T.h("code", {}, "file:///dev/usb/lp0"), " or ", T.h("code", {}, "cups://queue"), "."));
    const loading = T.h("p", { class: "muted" }, "Loading…");
    panel.appendChild(loading);
    T.api("/api/agent/printer").then((r) => {
      const state = r.body || {};
      const s = state.settings || {};
      const error = T.h("div", { class: "error", role: "alert", id: "printer-error" });
      const field = (id, label, input, hint) => T.h("div", { class: "field", "data-for": id },
        T.h("label", { for: id }, label), input, hint ? T.h("p", { class: "hint" }, hint) : null);
      const cols = T.h("select", { id: "printer-columns" },
        [32, 42, 48].map((n) => T.h("option", { value: String(n), selected: s.columns === n }, n + (n === 32 ? " (58 mm)" : " (80 mm)"))));
      const check = (id, label, on) => T.h("label", { class: "radio", for: id }, T.h("input", { type: "checkbox", id, checked: !!on }), " " + label);
      const form = T.h("form", { id: "printer-form" },
        field("printer-url", "Printer address", T.h("input", { id: "printer-url", type: "text", class: "mono", autocomplete: "off", value: s.url || "", placeholder: "tcp://192.168.1.50:9100" }), "Empty: no printer (PDF receipts only)."),
        field("printer-columns", "Paper width", cols),
        field("printer-pages", "Code pages", T.h("input", { id: "printer-pages", type: "text", class: "mono", value: (s.codePages || []).join(", ") }),
          "The printer's, preferred first: " + (state.codePages || []).join(", ") + ". Characters none has print as EUR, RUB, e…"),
        check("printer-approval", "Print the customer's receipt on approval", s.printOnApproval),
        check("printer-refund", "Print the customer's receipt on a refund", s.printOnRefund),
        error,
        T.h("div", { class: "actions-row" },
          T.h("button", { type: "submit", class: "btn primary", id: "printer-save" }, "Save"),
          T.h("button", { type: "button", class: "btn", id: "printer-test" }, "Test print")));
      form.addEventListener("submit", async (ev) => {
        ev.preventDefault();
        error.textContent = "";
        const url = form.querySelector("#printer-url").value.trim();
        const body = {
          url: url || null,
          columns: Number(form.querySelector("#printer-columns").value),
          codePages: form.querySelector("#printer-pages").value.split(",").map((x) => x.trim()).filter(Boolean),
          printOnApproval: form.querySelector("#printer-approval").checked,
          printOnRefund: form.querySelector("#printer-refund").checked,
        };
        try {
          await T.auth.call((token) => T.api("/api/agent/printer/settings", { token, body }));
          T.announce("Printer settings saved.", "ok");
          await T.refreshHealth();
        } catch (e) {
          const params = e && e.body && e.body.invalid_parameters;
          if (params && params.length) {
            T.fill(error, T.h("ul", {}, params.map((p) => T.h("li", { "data-field": p.parameter }, p.parameter + ": " + p.reason))));
          } else {
            error.textContent = T.errorText(e);
          }
        }
      });
      form.querySelector("#printer-test").addEventListener("click", async () => {
        error.textContent = "";
        try {
          await T.auth.call((token) => T.api("/api/agent/printer/test", { token, body: {} }));
          T.announce("Test page sent to the printer queue.", "ok");
        } catch (e) {
          error.textContent = T.errorText(e);
        }
      });
      loading.replaceWith(form);
    }).catch((e) => { loading.textContent = T.errorText(e); loading.className = "error"; });
    return panel;
  }

  /** The desktop app's customer window on a second monitor (manager). */
  function displayPanel() {
    const select = T.h("select", { id: "customer-display" },
      T.h("option", { value: "second_screen" }, "On the second screen, when one is connected"),
      T.h("option", { value: "off" }, "Off"));
    T.api("/api/agent/display").then((r) => { select.value = (r.body && r.body.customerDisplay) || "second_screen"; }).catch(() => {});
    select.addEventListener("change", async () => {
      try {
        await T.auth.call((token) => T.api("/api/agent/display", { token, body: { customerDisplay: select.value } }));
        T.announce("Customer display: " + select.options[select.selectedIndex].text + ".", "ok");
      } catch (e) {
        T.announce(T.errorText(e), "bad");
      }
    });
    return T.h("section", { class: "panel", id: "display-panel", "aria-labelledby": "display-title" },
      T.h("h2", { id: "display-title" }, "Customer display"),
      T.h("p", { class: "muted" }, "In the desktop app, a full-screen window for the customer: the cart, the total, the QR or card checkout and the outcome. Without the app, open ",
        T.h("code", {}, "?view=customer"), " on the second screen's browser."),
      T.h("div", { class: "field" }, T.h("label", { for: "customer-display" }, "Customer window"), select));
  }

  // ------------------------------------------------------------ pairing

  function pairForm() {
    const error = T.h("p", { class: "error", role: "alert", id: "pair-error" });
    const radio = (value, label, checked) => T.h("label", { class: "radio", for: "pm-" + value },
      T.h("input", { type: "radio", name: "pair-method", id: "pm-" + value, value, checked }), " " + label);
    const field = (id, label, input, hint) => T.h("div", { class: "field", "data-for": id },
      T.h("label", { for: id }, label), input, hint ? T.h("p", { class: "hint" }, hint) : null);
    // The environment follows the agent's configuration (the SensePass URL it calls); pairing
    // cannot change it, so it is shown, not chosen.
    const envKey = (T.health || {}).environment || "custom";
    const env = T.h("output", { id: "pair-env", "data-environment": envKey },
      { production: "Production (real payments)", sandbox: "Sandbox (test payments)" }[envKey] || "Custom SensePass address");
    const form = T.h("form", { class: "pair-form", id: "pair-form" },
      T.h("fieldset", {}, T.h("legend", {}, "How to pair"),
        radio("pin", "Tag PIN", true),
        radio("create", "New dynamic-QR device", false),
        radio("device", "Device ID", false)),
      field("pair-env", "Environment", env, "Set by the agent's configuration (sensepass_url); the device must belong to this environment."),
      field("pair-pin", "Tag PIN", T.h("input", { id: "pair-pin", type: "text", placeholder: "XXX-XXX-XXX", autocomplete: "off", pattern: "[A-Za-z0-9]{3}-?[A-Za-z0-9]{3}-?[A-Za-z0-9]{3}" }), "Printed under the QR of the SensePass tag."),
      field("pair-api-key", "Location API key", T.h("input", { id: "pair-api-key", type: "password", autocomplete: "off" }), "From the SensePass dashboard. It is used once to pair and is not stored."),
      field("pair-pos-name", "Register name", T.h("input", { id: "pair-pos-name", type: "text", autocomplete: "off", placeholder: "Till 1" })),
      field("pair-device-id", "Device ID", T.h("input", { id: "pair-device-id", type: "text", autocomplete: "off", class: "mono" })),
      error,
      T.h("button", { type: "submit", class: "btn primary", id: "pair-submit" }, "Pair this till"));

    const sync = () => {
      const method = form.querySelector("input[name=pair-method]:checked").value;
      const show = { "pair-pin": method === "pin", "pair-api-key": method !== "device", "pair-pos-name": method !== "device",
        "pair-device-id": method === "device" };
      for (const [id, on] of Object.entries(show)) {
        const wrap = form.querySelector('[data-for="' + id + '"]');
        wrap.hidden = !on;
        // The register name is optional with a tag PIN, required for a new device.
        form.querySelector("#" + id).required = on && (id !== "pair-pos-name" || method === "create");
      }
    };
    form.addEventListener("change", sync);
    sync();

    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const method = form.querySelector("input[name=pair-method]:checked").value;
      const val = (id) => form.querySelector("#" + id).value.trim();
      const body = { method };
      if (method === "pin") { body.pin = val("pair-pin"); body.apiKey = val("pair-api-key"); if (val("pair-pos-name")) body.posName = val("pair-pos-name"); }
      if (method === "create") { body.apiKey = val("pair-api-key"); body.posName = val("pair-pos-name"); }
      if (method === "device") body.deviceId = val("pair-device-id");
      if (envKey === "production" && !(await T.confirm({
        title: "Pair with production?",
        text: "Payments on this till will charge real cards.",
        confirm: "Pair with production",
      }))) return;
      const button = form.querySelector("#pair-submit");
      button.disabled = true;
      error.textContent = "";
      try {
        const r = await T.auth.call((token) => T.api("/api/agent/pairing", { token, body }));
        T.announce("Paired" + (r.body && r.body.posName ? " as " + r.body.posName : "") + ".", "ok");
        form.querySelector("#pair-api-key").value = "";
        await T.refreshHealth();
        render();
      } catch (e) {
        error.textContent = T.errorText(e);
        button.disabled = false;
      }
    });
    return form;
  }

  async function unpair() {
    const ok = await T.confirm({
      title: "Unpair this till?",
      text: "The till stops taking payments until it is paired again. The journal, receipts and queued refunds are kept.",
      confirm: "Unpair", danger: true,
    });
    if (!ok) return;
    try {
      await T.auth.call((token) => T.api("/api/agent/pairing", { method: "DELETE", token }));
      T.announce("Unpaired.", "ok");
      await T.refreshHealth();
      render();
    } catch (e) {
      T.announce(T.errorText(e), "bad");
    }
  }

  function pairingPanel() {
    const h = T.health || {};
    const panel = T.h("section", { class: "panel", id: "pairing", "aria-labelledby": "pair-title", "data-paired": String(!!h.paired) },
      T.h("h2", { id: "pair-title" }, "Pairing"));
    if (h.paired) {
      T.append(panel, [
        T.h("p", {}, "Paired as ", T.h("strong", {}, h.posName || "this till"), " (" + (h.environment || "unknown environment") + ")."),
        T.h("div", { class: "actions-row" },
          T.h("button", { type: "button", class: "btn danger", id: "unpair", onclick: unpair }, "Unpair…")),
        T.h("details", { class: "repair" }, T.h("summary", {}, "Pair with a different device"), pairForm()),
      ]);
    } else {
      T.append(panel, [T.h("p", {}, "Pair this till with a SensePass device to take payments."), pairForm()]);
    }
    return panel;
  }

  // ------------------------------------------------------------ POS token and settings

  /** The configured listen address; port 0 means "any free port": show the one in use. */
  function localApi(listen) {
    if (listen && /:0$/.test(listen)) return T.base ? T.base.replace(/^https?:\/\//, "") : window.location.host;
    return listen || "—";
  }

  function tokenPanel() {
    const panel = T.h("section", { class: "panel", id: "token-panel", "aria-labelledby": "token-title" },
      T.h("h2", { id: "token-title" }, "POS token"),
      T.h("p", { class: "muted" }, "POS software sends it as ", T.h("code", {}, "Authorization: Bearer …"), " for refunds, credits and cancelling approved payments."));
    if (!settings) {
      panel.appendChild(T.h("p", { class: "muted", id: "token-loading" }, "Loading…"));
      return panel;
    }
    const token = settings.posToken || "";
    const out = T.h("output", { class: "token mono", id: "pos-token", "data-shown": "false", "aria-label": "POS token (hidden)" }, "•".repeat(24));
    const toggle = T.h("button", { type: "button", class: "btn", id: "token-show", "aria-pressed": "false" }, "Show");
    toggle.addEventListener("click", () => {
      const shown = out.dataset.shown !== "true";
      out.dataset.shown = String(shown);
      out.textContent = shown ? token : "•".repeat(24);
      out.setAttribute("aria-label", shown ? "POS token" : "POS token (hidden)");
      toggle.textContent = shown ? "Hide" : "Show";
      toggle.setAttribute("aria-pressed", String(shown));
    });
    const copy = T.h("button", { type: "button", class: "btn", id: "token-copy" }, "Copy");
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(token);
      } catch (_) {
        const t = T.h("textarea", { class: "sr-only" });
        t.value = token;
        document.body.appendChild(t);
        t.select();
        try { document.execCommand("copy"); } catch (_) { /* nothing more to try */ }
        t.remove();
      }
      T.announce("POS token copied.", "ok");
    });
    T.append(panel, [
      T.h("div", { class: "token-row" }, out, toggle, copy),
      settings.waivePosToken ? T.h("p", { class: "warning" }, "The POS token is waived: money-out operations are accepted without it.") : null,
      T.h("dl", { class: "kv small" },
        kv("Local API", T.h("span", { class: "mono" }, localApi(settings.listen))),
        kv("SensePass API", T.h("span", { class: "mono wrap" }, settings.sensepassUrl || "—")),
        kv("Socket.IO", T.h("span", { class: "mono wrap" }, settings.socketUrl || "—"))),
    ]);
    return panel;
  }

  function pinPanel() {
    const error = T.h("p", { class: "error", role: "alert" });
    const input = (id, label, ac) => T.h("div", { class: "field" }, T.h("label", { for: id }, label),
      T.h("input", { id, type: "password", inputmode: "numeric", pattern: "[0-9]{4,12}", minlength: "4", maxlength: "12", required: true, autocomplete: ac }));
    const form = T.h("form", { class: "pin-form", id: "pin-change" },
      input("pc-current", "Current PIN", "current-password"),
      input("pc-new", "New PIN", "new-password"),
      input("pc-again", "Repeat the new PIN", "new-password"),
      error,
      T.h("button", { type: "submit", class: "btn" }, "Change PIN"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const cur = form.querySelector("#pc-current").value.trim();
      const pin = form.querySelector("#pc-new").value.trim();
      if (!/^[0-9]{4,12}$/.test(pin)) { error.textContent = "The PIN must be 4 to 12 digits."; return; }
      if (pin !== form.querySelector("#pc-again").value.trim()) { error.textContent = "The two new PINs differ."; return; }
      error.textContent = "";
      try {
        await T.auth.setPin(pin, cur);
        form.reset();
        T.announce("Manager PIN changed.", "ok");
      } catch (e) {
        error.textContent = e instanceof T.ApiError && e.status === 401 ? "The current PIN is wrong, or logins are locked for a while." : T.errorText(e);
      }
    });
    return T.h("section", { class: "panel", "aria-labelledby": "pin-title" },
      T.h("details", {}, T.h("summary", { id: "pin-title" }, "Change the manager PIN"), form));
  }

  async function loadSettings() {
    try {
      settings = (await T.auth.call((token) => T.api("/api/agent/settings", { token }))).body || {};
    } catch (e) {
      settings = null;
      const p = T.$("#token-loading", root);
      if (p) { p.textContent = T.errorText(e); p.className = "error"; }
      return;
    }
    const old = T.$("#token-panel", root);
    if (old) old.replaceWith(tokenPanel());
  }

  function render() {
    if (!root) return;
    const gate = T.h("div", { class: "gate", id: "settings-gate" });
    T.fill(root, T.h("div", { class: "console" },
      T.h("div", { class: "console-head" },
        T.h("h1", { class: "console-title" }, "Settings"),
        T.auth.active() ? T.h("button", { type: "button", class: "btn subtle", onclick: () => T.auth.logout() }, "Log out") : null),
      T.h("div", { class: "settings-grid" },
        T.h("div", { class: "col" }, statusPanel()),
        T.h("div", { class: "col" }, T.auth.active() ? [pairingPanel(), tokenPanel(), printerPanel(), displayPanel(), pinPanel()] : gate))));
    if (!T.auth.active()) {
      T.auth.renderGate(gate, "Enter the manager PIN to pair the till, see the POS token or change settings.", render);
    } else {
      settings = null;
      loadSettings();
    }
  }

  T.views.settings = {
    enter() {
      root = document.getElementById("view-settings");
      render();
    },
  };

  T.on("auth", () => { if (T.currentRoute() === "settings") render(); });
  T.on("health", () => {
    if (T.currentRoute() !== "settings" || !root) return;
    const old = T.$("#pairing-status", root);
    if (old) old.replaceWith(statusPanel());
    // Paired or unpaired elsewhere (or the answer to this page's own change came late): the
    // pairing panel follows, so it never offers "Unpair" to an unpaired till or hides the form.
    const pairing = T.$("#pairing", root);
    if (pairing && pairing.getAttribute("data-paired") !== String(!!(T.health || {}).paired)) pairing.replaceWith(pairingPanel());
  });
})(window.Till);
