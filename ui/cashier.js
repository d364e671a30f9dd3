// Till Agent UI: the cashier screen (and, with ?view=customer, the customer-facing display).
//
// The POS starts a payment over the local API; this screen learns of it from the `status` events
// of /api/agent/events and shows the amount, the items, a large QR code the customer scans, a
// countdown to the QR's expiry and the live status. At the expiry the QR is removed at once, never
// left scannable. A final status shows an outcome screen that returns to idle after 10 seconds.
"use strict";

(function (T) {
  const OUTCOME_MS = 10000;
  const OPEN = new Set(T.OPEN_KEYS);

  let root = null;
  let mode = "idle"; // idle | active | outcome
  let current = null; // the payment on screen
  let tick = null;
  let outcomeTimer = null;
  let outcomeDeadline = 0;
  let lastPayment = null;

  // ------------------------------------------------------------ payment model

  /** The fields this screen needs, from an SSE status event or a journal item. */
  function fromEvent(ev) {
    const tx = ev.transaction || null;
    return {
      localId: ev.localId,
      number: ev.transactionNumber || (tx && tx.TransactionNumber) || null,
      statusKey: ev.statusKey,
      isFinal: !!ev.isFinal,
      tx,
      lines: Array.isArray(ev.lines) ? ev.lines : null,
    };
  }
  function fromItem(item) {
    return {
      localId: item.localId,
      number: item.transactionNumber || null,
      statusKey: item.statusKey,
      isFinal: !OPEN.has(item.statusKey),
      tx: item.transaction || null,
      lines: Array.isArray(item.lines) ? item.lines : null,
      amountMinor: item.amountMinor,
      currency: item.currency,
      orderId: item.orderId,
      mismatch: item.productSumMismatch,
      failure: item.failure || null,
      phase: item.phase || null,
    };
  }

  /**
   * The merchant's trading name, from the payment entity (SensePass `businessName`): the customer
   * display greets the customer with it, never with the product's or the till's name.
   */
  function noteMerchant(tx) {
    const name = tx && typeof tx.businessName === "string" ? tx.businessName.trim() : "";
    if (name && name !== T.merchant) {
      T.merchant = name;
      T.emit("merchant", name);
    }
  }

  /** Merges a newer observation of the same payment into `current`. */
  function merge(p) {
    if (!current || current.localId !== p.localId) {
      current = p;
    } else {
      current.statusKey = p.statusKey;
      current.isFinal = p.isFinal;
      current.number = p.number || current.number;
      if (p.tx) current.tx = p.tx;
      if (p.lines) current.lines = p.lines;
      for (const k of ["amountMinor", "currency", "orderId", "mismatch", "failure", "phase"]) {
        if (p[k] !== undefined && p[k] !== null) current[k] = p[k];
      }
    }
    const tx = current.tx;
    noteMerchant(tx);
    if (tx) {
      if (tx.currency) current.currency = tx.currency;
      const m = T.majorToMinor(tx.amount, current.currency);
      if (m !== null) current.amountMinor = m;
      if (tx.posData && tx.posData.orderId) current.orderId = tx.posData.orderId;
      if (typeof tx.productSumMismatch === "boolean") current.mismatch = tx.productSumMismatch;
    }
    return current;
  }

  /**
   * Loads what an event lacks (amount before SensePass answered; with `always`, also the failure
   * reason of an outcome) from the journal.
   */
  async function complete(p, always) {
    if (!always && p.amountMinor !== undefined && p.currency) return;
    if (!p.localId) return;
    try {
      const r = await T.api("/api/agent/transactions/" + encodeURIComponent(p.localId));
      if (current && current.localId === p.localId) {
        const item = fromItem(r.body);
        // Keep the fresher status we may have received meanwhile.
        item.statusKey = current.statusKey;
        item.isFinal = current.isFinal;
        merge(item);
        render();
      }
    } catch (_) { /* the next event or resync fills it in */ }
  }

  // ------------------------------------------------------------ events

  function onStatus(ev) {
    const p = fromEvent(ev);
    const same = current && current.localId === p.localId;
    if (!same) {
      // A payment we are not showing: only a new open one takes over the screen. Finals of
      // other payments (a refund of an old sale, for instance) are not the cashier's business.
      if (!OPEN.has(p.statusKey)) return;
      current = null;
    }
    const wasFinal = same && current.isFinal;
    merge(p);
    if (current.isFinal && current.tx && current.tx.readyForPayment === false) {
      // A live cart closed without a payment (or replaced by one): nothing to tell the customer.
      toIdle();
    } else if (current.isFinal) {
      if (!wasFinal || mode !== "outcome") {
        showOutcome();
        // Events carry the status, not the amount nor why a payment failed: read both from the
        // journal and redraw the outcome with them. (The amount may already be known from an
        // earlier read while the failure was not yet: so always, not only without an amount.)
        if (current.amountMinor === undefined || current.statusKey !== "approved") {
          const p = current;
          complete(p, true).then(() => { if (current === p && mode === "outcome") showOutcome(); });
        }
      }
    } else {
      mode = "active";
      stopOutcomeTimer();
      render();
      complete(current);
    }
  }

  /** After (re)connecting the event stream: events may have been missed. */
  async function resync() {
    try {
      const open = await T.api("/api/agent/transactions?limit=1&status=" + T.OPEN_KEYS.filter((k) => k !== "creating" && k !== "unknown").join(","));
      const item = open.body && open.body.items && open.body.items[0];
      if (item) {
        if (!current || current.localId !== item.localId || mode !== "active") current = null;
        merge(fromItem(item));
        mode = "active";
        render();
        return;
      }
      if (mode === "active" && current) {
        // Our payment is no longer open: it ended while we were not listening.
        const r = await T.api("/api/agent/transactions/" + encodeURIComponent(current.localId));
        merge(fromItem(r.body));
        if (current.isFinal) showOutcome();
      }
    } catch (_) { /* offline: the health banner says so */ }
    if (mode === "idle") loadLast();
  }

  // ------------------------------------------------------------ cancel

  /**
   * What the cashier reads after a cancel that did not go through at once: what happened, whether
   * money moved, what to do next. Never a raw transport error. Returns [text, queued].
   */
  function cancelProblem(e) {
    if (e instanceof T.ApiError) {
      if (e.status === 501 || e.type === "cannot_cancel") {
        return ["The customer is already paying, so the payment can no longer be cancelled. Wait for the outcome on this screen.", false];
      }
      if (e.status === 404) return ["This payment is no longer known to SensePass, so no money can be taken through it. A manager can close it: Manager, this payment, \u201cCheck with SensePass and close\u201d.", false];
      if (e.status === 409) return ["The payment has already ended. Wait a moment for the outcome on this screen.", false];
      if (e.status === 202 || e.status === 503 || e.status === 504 || e.type === "outcome_unknown" || e.type === "queued") {
        return ["SensePass cannot be reached, so the cancel is queued and will be sent as soon as it can. Do not hand over the goods unless the payment shows as approved.", true];
      }
      return ["The payment could not be cancelled (" + e.describe() + "). Try again, or wait for the outcome on this screen.", false];
    }
    return ["The Till Agent did not answer. Try again in a moment; the payment is still open.", false];
  }

  async function cancel(button) {
    if (!current || !current.number) return;
    const p = current;
    const ok = await T.confirm({
      title: "Cancel this payment?",
      text: "The customer will not be able to pay " + (p.amountMinor !== undefined ? T.money(p.amountMinor, p.currency) + " " : "") + "with this QR code any more.",
      confirm: "Cancel payment",
      cancel: "Keep waiting",
      danger: true,
    });
    if (!ok || current !== p) return;
    button.disabled = true;
    const msg = T.$("#cancel-msg", root);
    if (msg) msg.textContent = "Cancelling…";
    try {
      const r = await T.api("/api/transactions/cancel/" + encodeURIComponent(p.number), { body: {} });
      if (r.status === 202 || (r.body && (r.body.queued === true || r.body.state === "queued"))) {
        p.cancelQueued = true;
        if (msg) msg.textContent = cancelProblem(new T.ApiError(202, r.body))[0];
        render();
      } else if (msg) {
        msg.textContent = "";
      }
    } catch (e) {
      const [text, queued] = cancelProblem(e);
      if (queued) {
        // The cancel is journaled and will be delivered: keep the button off and take the QR
        // away so that no customer starts paying a payment the cashier gave up on.
        p.cancelQueued = true;
        p.cancelNote = text;
        render();
      } else {
        p.cancelNote = text;
        const m = T.$("#cancel-msg", root);
        if (m) m.textContent = text;
        const b = T.$("#cancel", root);
        if (b) b.disabled = false;
      }
    }
  }

  // ------------------------------------------------------------ rendering

  function stopTick() {
    if (tick) { clearInterval(tick); tick = null; }
  }
  function stopOutcomeTimer() {
    if (outcomeTimer) { clearInterval(outcomeTimer); outcomeTimer = null; }
  }

  function storeName() {
    const h = T.health || {};
    return h.posName || "Till Agent";
  }

  function renderIdle() {
    stopTick();
    // The keyed-card tender (keyed.js) owns the screen while the cashier uses it.
    if (T.keyed && T.keyed.active()) {
      T.keyed.render();
      return;
    }
    const h = T.health || {};
    const connected = T.agentReachable !== false && h.sensepassReachable !== false && h.socketConnected !== false;
    let line;
    if (T.customerView) line = "Your total will appear here."; // till state is not the customer's business
    else if (T.agentReachable === false) line = "The Till Agent is not running. Payments cannot start until it is back.";
    else if (h.paired === false) line = "This till is not paired with SensePass yet. A manager can pair it in Settings.";
    else if (!connected) line = "Offline: payments can start again when SensePass is reachable.";
    else line = "Ready. Payments started on the POS appear here.";
    const last = lastPayment && !T.customerView
      ? T.h("p", { class: "last-payment" }, "Last payment: ",
          T.h("strong", {}, T.money(lastPayment.amountMinor, lastPayment.currency)), " ",
          T.badge(lastPayment.statusKey), " at " + T.time(lastPayment.updatedAt))
      : null;
    T.fill(root,
      T.h("div", { class: "idle", id: "cashier-idle", "data-state": "idle" },
        T.h("div", { class: "idle-mark", "aria-hidden": "true" }, qrGlyph()),
        T.h("h1", { class: "idle-title" }, T.customerView ? "Welcome" : storeName()),
        T.customerView && T.merchant ? T.h("p", { class: "idle-store", id: "merchant" }, T.merchant) : null,
        T.h("p", { class: "idle-line", "data-connected": String(T.customerView || connected) }, line),
        last,
        T.keyed ? T.keyed.entry() : null));
  }

  function qrGlyph() {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "72");
    svg.setAttribute("height", "72");
    const paths = ["M3 3h7v7H3z", "M14 3h7v7h-7z", "M3 14h7v7H3z", "M14 14h3v3h-3z", "M18 18h3v3h-3z", "M14 19h2v2h-2z", "M19 14h2v2h-2z"];
    for (const d of paths) {
      const p = document.createElementNS(ns, "path");
      p.setAttribute("d", d);
      svg.appendChild(p);
    }
    return svg;
  }

  function qty(q) {
    const n = Number(q === undefined ? 1 : q);
    return Number.isInteger(n) ? String(n) : n.toLocaleString(undefined, { maximumFractionDigits: 3 });
  }

  /**
   * One row per line and an indented row per sub-line (an extra shot, a side). The totals are the
   * agent's (`lines` of the status event / journal entry): this screen never adds a line up.
   */
  function itemRows(l, currency) {
    const subs = Array.isArray(l.subLines) ? l.subLines : [];
    const rows = [T.h("tr", { class: subs.length ? "has-sub" : null },
      T.h("td", { class: "qty" }, qty(l.quantity) + " ×"),
      T.h("td", { class: "name" }, l.name || "Item",
        Number(l.discount) > 0 ? T.h("span", { class: "discount" }, " −" + T.money(l.discount, currency)) : null),
      T.h("td", { class: "price" }, T.money(l.total, currency)))];
    for (const s of subs) {
      rows.push(T.h("tr", { class: "sub" },
        T.h("td", { class: "qty" }),
        T.h("td", { class: "name" }, "+ " + (Number(s.quantity === undefined ? 1 : s.quantity) !== 1 ? qty(s.quantity) + " × " : "") + (s.name || "Extra")),
        T.h("td", { class: "price" }, Number(s.unit) ? T.money(s.total, currency) : "")));
    }
    return rows;
  }

  function itemsList(lines, currency, totalMinor) {
    if (!Array.isArray(lines) || !lines.length) return T.h("p", { class: "muted items-empty" }, "No line items.");
    return T.h("table", { class: "items", id: "items" },
      T.h("caption", { class: "sr-only" }, "Items"),
      T.h("thead", { class: "sr-only" }, T.h("tr", {},
        T.h("th", { scope: "col" }, "Quantity"), T.h("th", { scope: "col" }, "Item"), T.h("th", { scope: "col" }, "Price"))),
      T.h("tbody", {}, lines.map((l) => itemRows(l, currency))),
      totalMinor === undefined ? null : T.h("tfoot", {}, T.h("tr", {},
        T.h("td", {}), T.h("th", { scope: "row" }, "Total"), T.h("td", { class: "price" }, T.money(totalMinor, currency)))));
  }

  function qrURL() {
    const tx = current && current.tx;
    return tx && tx.transactionPage && tx.transactionPage.qrURL ? tx.transactionPage.qrURL : null;
  }

  function secondsLeft() {
    const tx = current && current.tx;
    if (!tx || !tx.timeoutDate) return null;
    const end = Date.parse(tx.timeoutDate);
    if (isNaN(end)) return null;
    return Math.max(0, Math.ceil((end - Date.now()) / 1000));
  }

  /**
   * How long after the QR code expired a payment with no outcome counts as stuck (the agent gives
   * a waiting sync call up after the same 20 s): the screen then shows the way out.
   */
  const STUCK_AFTER_MS = 20000;
  let stuckTimer = null;

  /** Milliseconds since the QR code expired (negative before), or null. */
  function overdueMs() {
    const tx = current && current.tx;
    const end = tx && tx.timeoutDate ? Date.parse(tx.timeoutDate) : NaN;
    return isNaN(end) ? null : Date.now() - end;
  }

  function clock(s) {
    const m = Math.floor(s / 60);
    const r = s % 60;
    return m + ":" + String(r).padStart(2, "0");
  }

  function renderActive() {
    const p = current;
    const currency = p.currency || (p.tx && p.tx.currency) || "";
    const amount = p.amountMinor !== undefined ? T.money(p.amountMinor, currency) : "…";
    const cart = p.tx && p.tx.readyForPayment === false;
    const url = cart || p.cancelQueued ? null : qrURL();
    const left = secondsLeft();
    const expired = left === 0;
    const overdue = expired ? overdueMs() : null;
    const stuck = expired && !T.customerView && !p.cancelQueued && overdue !== null && overdue >= STUCK_AFTER_MS;
    clearTimeout(stuckTimer);
    if (expired && !stuck && overdue !== null && !T.customerView) {
      stuckTimer = setTimeout(() => { if (mode === "active" && current === p) renderActive(); }, STUCK_AFTER_MS - overdue + 100);
    }

    const countdown = left === null || cart || expired ? null : T.h("p", { class: "countdown" + (left <= 30 ? " soon" : ""), id: "countdown" },
      "Expires in ", T.h("time", { id: "countdown-value" }, clock(left)));

    let qr;
    if (url && !expired) {
      const img = T.h("img", {
        id: "qr", class: "qr-img", width: "400", height: "400",
        src: T.url("/api/agent/qr.svg?data=" + encodeURIComponent(url)),
        alt: "QR code to pay " + amount + ". Scan it with your phone's camera.",
        "data-url": url,
      });
      img.addEventListener("error", () => {
        T.fill(T.$("#qr-box", root), T.h("p", { class: "qr-missing" }, "The QR code could not be drawn. The customer can open:"),
          T.h("p", { class: "qr-link" }, url));
      });
      qr = T.h("figure", { class: "qr", id: "qr-box" }, img,
        T.h("figcaption", {}, T.customerView ? "Scan with your phone to pay" : "Customer scans to pay"),
        countdown);
    } else if (p.cancelQueued) {
      qr = T.h("div", { class: "qr qr-gone", id: "qr-box", "data-reason": "cancelling" },
        T.h("p", { class: "big" }, T.customerView ? "Payment cancelled" : "Cancel queued"),
        T.h("p", {}, T.customerView ? "Please wait for the cashier." : "The QR code is withdrawn; SensePass is told as soon as it is reachable."));
    } else if (stuck) {
      // No outcome long after the QR code expired: say what is known and where the way out is.
      qr = T.h("div", { class: "qr qr-gone", id: "qr-box", "data-reason": "stuck" },
        T.h("p", { class: "big" }, "Not confirmed by SensePass"),
        T.h("p", {}, "The QR code expired and SensePass has not said how this payment ended. No money is known to have been taken."),
        T.h("p", {}, "A manager can check it with SensePass and close it."),
        T.h("a", { class: "btn primary", id: "stuck-resolve", href: "#/manager/tx/" + encodeURIComponent(p.localId) }, "Resolve (manager)"));
    } else if (expired) {
      qr = T.h("div", { class: "qr qr-gone", id: "qr-box", "data-reason": "expired" },
        T.h("p", { class: "big" }, "QR code expired"), T.h("p", {}, "Waiting for SensePass to confirm the timeout…"));
    } else if (cart) {
      qr = T.h("div", { class: "qr qr-gone", id: "qr-box", "data-reason": "cart" },
        T.h("p", { class: "big" }, "Cart in progress"), T.h("p", {}, "The QR code appears when the POS starts the payment."));
    } else {
      qr = T.h("div", { class: "qr qr-gone", id: "qr-box", "data-reason": "pending" },
        T.h("div", { class: "spinner", "aria-hidden": "true" }), T.h("p", {}, "Preparing the QR code…"));
    }

    const info = T.h("div", { class: "pay-info" },
      T.customerView ? T.h("p", { class: "eyebrow" }, "Total to pay") :
        T.h("p", { class: "eyebrow" }, "Payment", p.orderId ? T.h("span", { class: "order" }, " · Order ", T.h("span", { class: "id" }, p.orderId)) : null),
      T.h("p", { class: "amount", id: "amount", "data-minor": String(p.amountMinor), "data-currency": currency }, amount),
      T.h("p", { class: "status-line" },
        T.h("span", { class: "pulse tone-" + (expired ? "warn" : T.statusTone(p.statusKey)), "aria-hidden": "true" }),
        T.h("span", { id: "live-status", "data-status": p.statusKey },
          cart ? "Cart in progress" : stuck ? "QR expired · not confirmed" : expired ? (T.customerView ? "QR code expired" : "QR expired · confirming with SensePass") : label(p.statusKey))),
      p.mismatch && !T.customerView ? T.h("p", { class: "warning", id: "mismatch", role: "alert" },
        "The line items do not add up to the amount. Check the sale on the POS.") : null,
      T.h("div", { class: "items-wrap" }, itemsList(p.lines, currency, p.amountMinor)),
      T.customerView ? null : T.h("div", { class: "pay-actions" },
        T.h("button", {
          type: "button", class: "btn danger large", id: "cancel",
          disabled: !p.number || cart || !!p.cancelQueued, onclick: (e) => cancel(e.currentTarget),
        }, "Cancel payment"),
        T.h("span", { class: "cancel-msg", id: "cancel-msg", role: "status", "aria-live": "polite" }, p.cancelNote || "")));

    // Keep the QR image already on screen when it shows the same URL: no reload, no flicker.
    const shown = T.$("#qr", root);
    if (shown && url && !expired && shown.dataset.url === url && shown.complete) {
      const box = shown.closest("#qr-box");
      const oldCountdown = T.$("#countdown", box);
      if (oldCountdown) oldCountdown.remove();
      if (countdown) box.appendChild(countdown);
      qr = box;
    }
    T.fill(root, T.h("div", { class: "active", id: "cashier-active", "data-state": "active", "data-status": p.statusKey }, info, qr));
    announce(cart ? "Cart in progress" : expired ? "QR code expired" : amount + ": " + label(p.statusKey));
    startTick(left !== null && !cart);
  }

  /** Tells screen readers about a status change, once, through a region that stays in place. */
  let lastAnnounced = "";
  function announce(text) {
    if (text === lastAnnounced) return;
    lastAnnounced = text;
    const el = document.getElementById("cashier-live");
    if (el) el.textContent = text;
  }

  function startTick(on) {
    stopTick();
    if (!on) return;
    tick = setInterval(() => {
      if (mode !== "active" || !current) return stopTick();
      const left = secondsLeft();
      if (left === null) return;
      if (left === 0) {
        // Expired: redraw now so the QR disappears, then wait for the final status.
        stopTick();
        renderActive();
        stopTick();
        return;
      }
      const v = T.$("#countdown-value", root);
      if (v) v.textContent = clock(left);
      const c = T.$("#countdown", root);
      if (c) c.classList.toggle("soon", left <= 30);
    }, 250);
  }

  /** Status wording for whoever looks at this screen: the cashier, or the customer. */
  function label(key) {
    if (!T.customerView) return T.statusLabel(key);
    switch (key) {
      case "initialized": case "waiting": return "Waiting for you to pay";
      case "tapped": case "user_approved": case "processing": return "Payment in progress…";
      case "user_declined": return "You declined the payment in the app";
      default: return T.statusLabel(key);
    }
  }

  /**
   * Why a payment did not go through, in a cashier's words: the decline reason SensePass gave, or
   * what kept the payment from starting. The journal's raw failure text (transport errors) is for
   * the manager console and logs, never for this screen.
   */
  function reasonOf(p) {
    const tx = p.tx || {};
    const r = tx.reason || tx.declineReason || null;
    if (r) {
      if (typeof r === "string") return r;
      const text = r.text || r.message || r.description || r.code;
      if (text) return String(text);
    }
    if (p.phase === "CreateFailed" || (typeof p.failure === "string" && /not sent|unreachable|connect/i.test(p.failure))) {
      return "SensePass could not be reached, so the payment did not start";
    }
    return null;
  }

  function outcomeText(key, p) {
    const cust = T.customerView;
    const reason = !cust && p ? reasonOf(p) : null;
    switch (key) {
      case "approved": return ["Payment approved", cust ? "Thank you!" : "The customer has paid.", "ok"];
      case "declined": return ["Payment declined", cust ? "Please try another card or payment method." : (reason ? "Reason: " + reason + ". " : "") + "No money was taken. Ask the customer for another payment method.", "bad"];
      case "failed": return ["Payment failed", cust ? "Please ask the cashier." : (reason ? "Reason: " + reason + ". " : "") + "No money was taken. Start the payment again from the POS.", "bad"];
      case "not_created": return ["Payment not started", cust ? "Please ask the cashier." : (reason ? "Reason: " + reason + ". " : "SensePass could not be reached. ") + "No money was taken. Start the payment again from the POS when the till is online.", "bad"];
      case "timed_out": return ["Payment timed out", cust ? "The QR code expired. Please ask the cashier to start again." : "The QR code expired before the customer paid; no money was taken. Start the payment again from the POS if the customer still wants to pay.", "warn"];
      case "cancelled": return ["Payment cancelled", cust ? "No money was taken." : "No money was taken.", "warn"];
      case "closed": return ["Payment closed, not paid", cust ? "No money was taken. Please ask the cashier." : "SensePass does not have this payment, so no money was taken. Start the payment again from the POS if the customer still wants to pay.", "warn"];
      case "refunded":
      case "partially_refunded":
      case "refund_processing": return ["Payment approved", "A refund has been recorded for it.", "ok"];
      default: return [T.statusLabel(key), "", "info"];
    }
  }

  function cardLine(tx) {
    const c = tx && Array.isArray(tx.confirmations)
      ? tx.confirmations.find((x) => x && x.paymentType !== "Refund") : null;
    if (!c) return null;
    const parts = [];
    if (c.cardType || c.paymentMethodName) parts.push(c.cardType || c.paymentMethodName);
    if (c.lastFourDigits) parts.push("•••• " + c.lastFourDigits);
    if (c.authNumber) parts.push("auth " + c.authNumber);
    return parts.length ? parts.join(" · ") : null;
  }

  function showOutcome() {
    mode = "outcome";
    stopTick();
    stopOutcomeTimer();
    outcomeDeadline = Date.now() + OUTCOME_MS;
    const p = current;
    const [title, line, tone] = outcomeText(p.statusKey, p);
    const currency = p.currency || "";
    const icon = { ok: "✓", bad: "✕", warn: "!", info: "i" }[tone];
    const card = p.statusKey === "approved" && !T.customerView ? cardLine(p.tx) : null;
    T.fill(root, T.h("div", { class: "outcome tone-" + tone, id: "cashier-outcome", "data-state": "outcome", "data-status": p.statusKey },
      T.h("div", { class: "outcome-icon", "aria-hidden": "true" }, icon),
      T.h("h1", { class: "outcome-title", id: "outcome-title" }, title),
      p.amountMinor !== undefined ? T.h("p", { class: "outcome-amount" }, T.money(p.amountMinor, currency)) : null,
      line ? T.h("p", { class: "outcome-line" }, line) : null,
      card ? T.h("p", { class: "outcome-card" }, card) : null,
      T.customerView ? null : T.h("div", { class: "outcome-actions" },
        T.h("button", { type: "button", class: "btn primary large", id: "outcome-done", onclick: toIdle }, p.statusKey === "approved" ? "Next customer" : "Done"),
        T.h("span", { class: "muted", id: "outcome-return" }, "Returns to the idle screen in 10 s"))));
    announce(title + (p.amountMinor !== undefined ? ", " + T.money(p.amountMinor, currency) : ""));
    const done = T.$("#outcome-done", root);
    if (done) done.focus({ preventScroll: true });
    outcomeTimer = setInterval(() => {
      const left = Math.max(0, Math.ceil((outcomeDeadline - Date.now()) / 1000));
      const r = T.$("#outcome-return", root);
      if (r) r.textContent = "Returns to the idle screen in " + left + " s";
      if (left === 0) toIdle();
    }, 500);
  }

  function toIdle() {
    stopOutcomeTimer();
    stopTick();
    if (current && current.isFinal && !(current.tx && current.tx.readyForPayment === false)) {
      lastPayment = { amountMinor: current.amountMinor, currency: current.currency, statusKey: current.statusKey, updatedAt: new Date().toISOString() };
    }
    mode = "idle";
    current = null;
    render();
    loadLast();
  }

  async function loadLast() {
    try {
      const r = await T.api("/api/agent/transactions?limit=1");
      const item = r.body && r.body.items && r.body.items[0];
      if (item) noteMerchant(item.transaction);
      if (T.customerView) {
        if (mode === "idle") renderIdle();
        return;
      }
      if (item && item.status !== null && !OPEN.has(item.statusKey)) {
        lastPayment = item;
        if (mode === "idle") renderIdle();
      }
    } catch (_) { /* not important */ }
  }

  function render() {
    if (!root) return;
    if (mode === "active" && current) renderActive();
    else if (mode === "outcome" && current) { /* the outcome screen stays until its timer ends */ }
    else renderIdle();
  }

  T.views.cashier = {
    enter() {
      root = document.getElementById("view-cashier");
      render();
      if (mode === "idle") resync();
    },
    leave() {
      // Events keep updating the model; the screen redraws on return.
      stopTick();
    },
  };

  T.on("status", (ev) => {
    root = root || document.getElementById("view-cashier");
    onStatus(ev);
  });
  T.on("resync", resync);
  T.on("health", () => {
    if (mode === "idle" && root && T.currentRoute && T.currentRoute() === "cashier") renderIdle();
  });

  // Exposed for the other views (the manager's "live payment" link) and for debugging.
  T.cashier = { current: () => current, mode: () => mode };
})(window.Till);
