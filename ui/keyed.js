// Till Agent UI: the keyed-card tender of the cashier screen (Paymentsense Connect-E).
//
// A phone or mail order: the cashier types the amount, the order and optionally the customer,
// picks a stored card of that customer (then only its CV2 is asked) or a new card, and the
// agent's checkout page — which loads the provider's client.js, card fields and 3-D Secure step
// included — is shown in a frame. The outcome shown is the agent's, which it read from the
// provider's REST API; the frame's own message only makes this screen look sooner. The idle
// screen also lists pre-authorisations waiting to be collected (collecting is money-out: it
// needs the manager login, like refunds).
"use strict";

(function (T) {
  let flow = null; // {step: "form"|"pay"|"outcome", payment, form values}
  let root = null;
  let polling = 0;
  let drawn = null; // the element the tender last put on screen

  function providers() {
    const h = T.health || {};
    return Array.isArray(h.gatewayProviders) ? h.gatewayProviders : [];
  }

  function available() {
    return !T.customerView && providers().includes("connect-e");
  }

  function orderId() {
    return "K-" + Date.now().toString(36).toUpperCase().slice(-6);
  }

  /** The idle screen's entry: the button and the pre-authorisations to collect. */
  function entry() {
    if (!available()) return null;
    const list = T.h("div", { id: "preauths", class: "preauths" });
    loadPreauths(list);
    return T.h("div", { class: "keyed-entry" },
      T.h("button", { type: "button", class: "btn primary", id: "keyed-open", onclick: () => start() }, "Keyed card payment"),
      list);
  }

  async function loadPreauths(box) {
    try {
      const r = await T.api("/api/agent/payments?state=authorized&limit=10");
      const items = (r.body && r.body.items) || [];
      if (!items.length) return;
      T.fill(box,
        T.h("h2", { class: "preauths-title" }, "Pre-authorisations to collect"),
        T.h("ul", { class: "preauth-list" }, items.map((p) =>
          T.h("li", { "data-id": p.id },
            T.h("span", {}, T.money(p.authorizedAmount - p.capturedAmount, p.currency), " · order " + p.orderId +
              (p.card && p.card.masked ? " · " + p.card.masked : "")),
            " ",
            T.h("button", { type: "button", class: "btn", "data-collect": p.id, onclick: (ev) => collect(p, ev.target) }, "Collect")))));
    } catch (_) { /* the list is a convenience */ }
  }

  async function collect(p, button) {
    button.disabled = true;
    try {
      const r = await T.auth.call((token) => T.api("/api/agent/payments/" + encodeURIComponent(p.id) + "/capture", {
        method: "POST", body: {}, token, headers: { "Idempotency-Key": T.randomKey("collect") },
      }));
      const op = r.body.operation || {};
      T.announce(op.state === "approved" ? "Collected " + T.money(op.amount, p.currency) : "Collection " + op.state, op.state === "approved" ? "ok" : "warn");
      T.emit("resync");
    } catch (e) {
      button.disabled = false;
      T.announce(e instanceof T.ApiError && e.status === 401 ? "Collecting needs the manager login (Manager tab)." : T.errorText(e), "error");
    }
  }

  function start(prefill) {
    flow = Object.assign({ step: "form", kind: "sale", currency: "GBP", amount: "", order: orderId(), customer: "", cardId: "" }, prefill || {});
    draw();
  }

  function close() {
    flow = null;
    polling++;
    T.emit("resync");
    if (T.views.cashier && T.currentRoute && T.currentRoute() === "cashier") T.views.cashier.enter();
  }

  function field(id, label, input) {
    return T.h("div", { class: "field" }, T.h("label", { for: id }, label), input);
  }

  function draw() {
    root = document.getElementById("view-cashier");
    if (!root || !flow) return;
    if (flow.step === "form") drawForm();
    else if (flow.step === "pay") drawPay();
    else drawOutcome();
    drawn = root.firstElementChild;
  }

  /**
   * For the cashier screen's redraws (health, events): the tender's screen stays as it is while
   * it is on screen — redrawing would reload the card form and lose what was typed.
   */
  function render() {
    const r = document.getElementById("view-cashier");
    if (drawn && r && r.contains(drawn)) return;
    draw();
  }

  function drawForm() {
    const error = T.h("p", { class: "error", role: "alert", id: "keyed-error" });
    const amount = T.h("input", { id: "keyed-amount", type: "text", inputmode: "decimal", autocomplete: "off", required: true, value: flow.amount, placeholder: "0.00" });
    const currency = T.h("select", { id: "keyed-currency" }, ["GBP", "EUR", "USD"].map((c) => T.h("option", { value: c, selected: c === flow.currency }, c)));
    const kind = T.h("select", { id: "keyed-kind" },
      T.h("option", { value: "sale", selected: flow.kind === "sale" }, "Sale"),
      T.h("option", { value: "preauth", selected: flow.kind === "preauth" }, "Pre-authorisation (collect later)"));
    const order = T.h("input", { id: "keyed-order", type: "text", autocomplete: "off", maxlength: "50", value: flow.order });
    const customer = T.h("input", { id: "keyed-customer", type: "text", autocomplete: "off", maxlength: "50", value: flow.customer, placeholder: "optional: keeps the card on file" });
    const cards = T.h("fieldset", { id: "keyed-cards", class: "keyed-cards", hidden: true });
    let loadedFor = null;
    async function loadCards() {
      const c = customer.value.trim();
      if (!c) { cards.hidden = true; loadedFor = null; return; }
      if (c === loadedFor) return; // a second change event (blur) keeps the cashier's pick
      loadedFor = c;
      try {
        const r = await T.api("/api/agent/cards?customerId=" + encodeURIComponent(c));
        const items = (r.body && r.body.items) || [];
        const radio = (value, label, checked) => T.h("label", { class: "radio" },
          T.h("input", { type: "radio", name: "keyed-card", value, checked, "data-card": value }), " " + label);
        T.fill(cards, T.h("legend", {}, "Card"),
          radio("", "New card", !flow.cardId),
          items.map((card) => radio(String(card.id), (card.cardType || "Card") + " " + card.masked + " (expires " + card.expiry + ") — CV2 only", String(card.id) === flow.cardId)));
        cards.hidden = false;
      } catch (_) { cards.hidden = true; }
    }
    customer.addEventListener("change", loadCards);
    const form = T.h("form", { class: "card keyed-form", id: "keyed-form", "aria-labelledby": "keyed-title" },
      T.h("h1", { id: "keyed-title" }, "Keyed card payment"),
      T.h("p", { class: "muted" }, "Phone or mail order: the card is typed into the card processor's form, never into the till."),
      field("keyed-amount", "Amount", T.h("span", { class: "amount-row" }, amount, " ", currency)),
      field("keyed-kind", "Type", kind),
      field("keyed-order", "Order", order),
      field("keyed-customer", "Customer (optional)", customer),
      cards,
      error,
      T.h("div", { class: "actions" },
        T.h("button", { type: "button", class: "btn", id: "keyed-back", onclick: close }, "Back"),
        T.h("button", { type: "submit", class: "btn primary", id: "keyed-start" }, "Continue to card entry")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      error.textContent = "";
      const cur = currency.value;
      const minor = T.majorToMinor(amount.value.trim(), cur);
      if (minor === null || minor <= 0) { error.textContent = "Enter an amount, e.g. 12.50."; amount.focus(); return; }
      const picked = form.querySelector("input[name=keyed-card]:checked");
      Object.assign(flow, { amount: amount.value.trim(), currency: cur, kind: kind.value, order: order.value.trim(), customer: customer.value.trim(), cardId: picked ? picked.value : "" });
      const body = { provider: "connect-e", kind: flow.kind, amount: minor, currency: cur, orderId: flow.order, moto: true };
      if (flow.customer) body.customerId = flow.customer;
      if (flow.cardId) body.cardId = Number(flow.cardId);
      const button = form.querySelector("#keyed-start");
      button.disabled = true;
      try {
        const r = await T.api("/api/agent/payments", { method: "POST", body });
        flow.payment = r.body;
        flow.step = r.body.state === "pending" ? "pay" : "outcome";
        draw();
        if (flow.step === "pay") follow(r.body.id);
      } catch (e) {
        button.disabled = false;
        error.textContent = T.errorText(e);
      }
    });
    T.fill(root, form);
    if (flow.customer) loadCards();
    amount.focus();
  }

  function drawPay() {
    const p = flow.payment;
    const frame = T.h("iframe", { id: "keyed-frame", class: "keyed-frame", title: "Card entry", src: p.checkoutUrl });
    T.fill(root, T.h("div", { class: "card keyed-pay", id: "keyed-pay", "data-state": p.state },
      T.h("h1", {}, T.money(p.amount, p.currency), " · ", p.kind === "preauth" ? "pre-authorisation" : "sale"),
      T.h("p", { class: "muted" }, "Order " + p.orderId + (p.customerId ? " · customer " + p.customerId : "")),
      frame,
      T.h("p", { id: "keyed-status", role: "status", "aria-live": "polite" }, "Waiting for card entry…"),
      T.h("div", { class: "actions" },
        T.h("button", { type: "button", class: "btn", id: "keyed-cancel", onclick: cancel }, "Cancel payment"))));
  }

  async function cancel() {
    const p = flow && flow.payment;
    if (!p) return;
    try {
      const r = await T.api("/api/agent/payments/" + encodeURIComponent(p.id) + "/cancel", { method: "POST" });
      show(r.body);
    } catch (e) {
      T.announce(T.errorText(e), "error");
    }
  }

  const WORDS = {
    captured: "Approved",
    authorized: "Pre-authorised — collect it later",
    declined: "Declined",
    cancelled: "Cancelled",
    expired: "Expired",
    failed: "Failed",
  };

  function show(p) {
    if (!flow) return;
    flow.payment = p;
    const status = document.getElementById("keyed-status");
    if (p.state === "pending") {
      if (status) {
        status.textContent = p.awaiting && p.awaiting.type === "authentication" ? "3-D Secure: the cardholder is confirming…"
          : p.awaiting && p.awaiting.type === "resume" ? "Authenticated: waiting to be completed" : "Waiting for card entry…";
      }
      return;
    }
    flow.step = "outcome";
    polling++;
    draw();
  }

  /** Follows the payment: long-polls the agent, and looks at once when the frame reports. */
  async function follow(id) {
    const mine = ++polling;
    while (flow && polling === mine && flow.step === "pay") {
      try {
        const r = await T.api("/api/agent/payments/" + encodeURIComponent(id) + "?wait=25", { timeoutMs: 35000 });
        if (polling !== mine) return;
        show(r.body);
      } catch (_) {
        await new Promise((res) => setTimeout(res, 1000));
      }
    }
  }

  window.addEventListener("message", (ev) => {
    if (ev.origin !== window.location.origin || !ev.data || ev.data.type !== "till-checkout") return;
    if (flow && flow.payment && ev.data.id === flow.payment.id && flow.step === "pay") {
      T.api("/api/agent/payments/" + encodeURIComponent(ev.data.id)).then((r) => show(r.body), () => {});
    }
  });

  function drawOutcome() {
    const p = flow.payment;
    const ok = p.state === "captured" || p.state === "authorized";
    const reason = p.decline && (p.decline.message || p.decline.category);
    T.fill(root, T.h("div", { class: "card keyed-outcome outcome " + (ok ? "ok" : "bad"), id: "keyed-outcome", "data-state": p.state },
      T.h("h1", { id: "keyed-outcome-title" }, WORDS[p.state] || p.state),
      T.h("p", { class: "outcome-amount" }, T.money(p.amount, p.currency), " · order " + p.orderId),
      p.card && p.card.masked ? T.h("p", { id: "keyed-card" }, (p.card.type || "Card") + " " + p.card.masked) : null,
      p.authCode ? T.h("p", { class: "muted" }, "Auth code " + p.authCode) : null,
      reason && !ok ? T.h("p", { class: "muted", id: "keyed-reason" }, reason) : null,
      p.recoveredLabel ? T.h("p", { id: "keyed-recovered" }, p.recoveredLabel + " after " + (p.providerName || p.provider) + " declined") : null,
      p.recoveredLabel ? null : T.h("p", { class: "muted" }, "Paid with " + (p.providerName || p.provider)),
      T.h("div", { class: "actions" },
        ok ? null : T.h("button", { type: "button", class: "btn", id: "keyed-retry", onclick: () => start({ amount: flow.amount, currency: flow.currency, kind: flow.kind, order: flow.order, customer: flow.customer }) }, "Try another card"),
        T.h("button", { type: "button", class: "btn primary", id: "keyed-done", onclick: close }, "Done"))));
  }

  T.keyed = {
    entry,
    active: () => flow !== null,
    render,
  };
})(window.Till);
