// Till Agent UI: a card checkout the customer pays on the till's own screen (an Acquired payment
// session), followed live on the customer display and the cashier screen.
//
// The POS creates the payment over the local API (`POST /api/agent/payments`, provider
// `acquired`); every change of it arrives as a `payment` event of /api/agent/events, carrying the
// resource `GET /api/agent/payments/{id}` answers. Nothing here decides an outcome: the state is
// the agent's, which asked the provider.
//
// - Customer display (`?view=customer`): the amount and the session's checkout page in a frame
//   (the provider's card form, 3-D Secure included). When the cart changes the amount, the frame
//   is reloaded so that the customer sees — and the card form pays — the new total. The outcome
//   (approved, or declined with the reason) shows for 10 s, then the display returns to idle.
// - Cashier screen: a panel above the cashier view with the amount, the state and, for a decline
//   or failure, the reason.
//
// Not for: Connect-E keyed entry, which the cashier does in their own pane (keyed.js).
"use strict";

(function (T) {
  const OUTCOME_MS = 10000;
  /** Providers whose payments the customer pays on the customer display. */
  const CUSTOMER_CHECKOUT = new Set(["acquired"]);

  let panel = null; // the <section> this module owns
  let shown = null; // the payment on screen
  let frameFor = null; // "id:amount" the frame was loaded for
  let hideTimer = null;

  /** What each state reads as; `T.customerView` is known only once app.js has run. */
  function words(state) {
    const c = T.customerView;
    return {
      pending: c ? "Enter your card details below" : "Waiting for the customer to pay on the customer display",
      authorized: c ? "Thank you — payment approved" : "Pre-authorised",
      captured: c ? "Thank you — payment approved" : "Approved",
      declined: c ? "Payment declined — please try another card" : "Declined",
      cancelled: "Cancelled",
      expired: "Expired — no money was taken",
      failed: "Payment failed — no money was taken",
    }[state] || state;
  }

  function container() {
    if (panel) return panel;
    panel = T.h("section", { id: "card-session", class: "card-session", "aria-label": "Card payment", hidden: "" });
    const main = document.getElementById("main");
    const cashier = document.getElementById("view-cashier");
    if (main && cashier) main.insertBefore(panel, cashier);
    return panel;
  }

  /** The reason a payment did not go through, as the agent recorded it. */
  function reason(p) {
    const d = p.decline || {};
    const text = d.message || (d.category ? String(d.category).replace(/_/g, " ") : "") || (typeof p.error === "string" ? p.error : "");
    return text || null;
  }

  function hide() {
    clearTimeout(hideTimer);
    hideTimer = null;
    shown = null;
    frameFor = null;
    if (!panel) return;
    panel.hidden = true;
    panel.replaceChildren();
    document.body.classList.remove("card-session-open");
  }

  function render(p) {
    const el = container();
    const pending = p.state === "pending";
    const amount = T.money(p.amount, p.currency);
    const why = pending ? null : reason(p);
    const status = T.h("p", { class: "card-session-state", id: "card-session-state", "data-state": p.state, role: "status" },
      words(p.state));
    const head = T.h("div", { class: "card-session-head" },
      T.h("p", { class: "eyebrow" }, T.customerView ? (pending ? "Total to pay" : "Total") : (p.providerName || "Card") + " payment"),
      T.h("p", { class: "card-session-amount", id: "card-session-amount" }, amount),
      status,
      why ? T.h("p", { class: "card-session-reason", id: "card-session-reason" }, why) : null);
    const key = p.id + ":" + p.amount;
    let frame = el.querySelector("iframe");
    if (T.customerView && pending && p.checkoutUrl) {
      // Reload only when the payment or its amount changed: a reload mid-entry loses what the
      // customer typed, so nothing else triggers it.
      if (!frame || frameFor !== key) {
        frame = T.h("iframe", { id: "card-session-frame", class: "card-session-frame", title: "Card payment", src: p.checkoutUrl });
        frameFor = key;
      }
    } else {
      frame = null;
      frameFor = null;
    }
    T.fill(el, head, frame);
    el.hidden = false;
    el.setAttribute("data-payment", p.id);
    el.setAttribute("data-state", p.state);
    document.body.classList.toggle("card-session-open", T.customerView && pending);
  }

  function onPayment(p) {
    if (!p || !p.id || !CUSTOMER_CHECKOUT.has(p.provider)) return;
    // An older payment's late event never replaces the one on screen.
    if (shown && shown.id !== p.id && p.state !== "pending") return;
    shown = p;
    clearTimeout(hideTimer);
    render(p);
    if (p.state !== "pending") hideTimer = setTimeout(hide, OUTCOME_MS);
  }

  T.on("payment", onPayment);
  T.on("resync", async () => {
    // After a reconnect: the newest pending customer checkout, if any, is what to show.
    try {
      const r = await T.api("/api/agent/payments?state=pending&limit=5");
      const list = Array.isArray(r.body) ? r.body : (r.body && r.body.items) || [];
      const open = list.find((p) => CUSTOMER_CHECKOUT.has(p.provider));
      if (open) onPayment(open);
      else if (shown && shown.state === "pending") {
        const again = await T.api("/api/agent/payments/" + encodeURIComponent(shown.id));
        if (again.body) onPayment(again.body);
      }
    } catch (_) { /* the next event brings it */ }
  });

  T.cardSession = { shown: () => shown };
})(window.Till);
