// Till Agent UI: the manager console (behind the manager PIN).
//
// #/manager            the journal: filters (dates, status, amount, order ID), pagination, CSV
// #/manager/tx/ID      one payment: items, status timeline, confirmations, receipt, refunds
// #/manager/outbox     operations waiting to be sent (refunds, commits, cancels), their fate, Retry now / Dismiss
// #/manager/summary    end-of-day totals by currency and status, with CSV export
"use strict";

(function (T) {
  const PAGE = 20;
  let root = null;
  let sub = "journal";
  let parts = [];
  const filters = { from: "", to: "", status: "", minAmount: "", maxAmount: "", orderId: "" };
  let offset = 0;
  let summaryDay = "";
  let outboxState = "";
  let detailId = null;
  let reloadTimer = null;

  // ------------------------------------------------------------ frame

  function frame(content) {
    const tab = (href, key, label) => T.h("a", {
      href, class: "subtab", "aria-current": sub === key ? "page" : null,
    }, label);
    T.fill(root,
      T.h("div", { class: "console" },
        T.h("div", { class: "console-head" },
          T.h("h1", { class: "console-title" }, "Manager"),
          T.h("nav", { class: "subtabs", "aria-label": "Manager sections" },
            tab("#/manager", "journal", "Journal"),
            tab("#/manager/outbox", "outbox", "Outbox"),
            tab("#/manager/summary", "summary", "End of day")),
          T.h("button", { type: "button", class: "btn subtle", id: "logout", onclick: () => { T.auth.logout(); } }, "Log out")),
        T.h("div", { class: "console-body", id: "console-body" }, content)));
  }

  function body() {
    return T.$("#console-body", root);
  }

  /**
   * Downloads the CSV at `path` with the manager session (the export is manager-only, and a
   * plain link cannot carry the session): fetched with the token, saved from a blob URL.
   */
  async function downloadCsv(path, name, where) {
    try {
      const blob = await T.auth.call(async (token) => {
        const r = await fetch(T.url(path), { headers: { Authorization: "Bearer " + token, Accept: "text/csv" }, cache: "no-store" });
        if (!r.ok) {
          let body = null;
          try { body = await r.json(); } catch (_) { /* not JSON */ }
          throw new T.ApiError(r.status, body);
        }
        return r.blob();
      });
      const href = URL.createObjectURL(blob);
      const a = T.h("a", { href, download: name, hidden: true });
      document.body.appendChild(a);
      a.click();
      setTimeout(() => { URL.revokeObjectURL(href); a.remove(); }, 5000);
    } catch (e) {
      T.announce("The CSV could not be exported: " + T.errorText(e), "bad");
      if (where) where.dataset.error = T.errorText(e);
    }
  }

  /** Makes link `a` download its CSV with the manager session instead of navigating. */
  function csvLink(a) {
    a.addEventListener("click", (ev) => {
      ev.preventDefault();
      downloadCsv(a.getAttribute("href").replace(T.base, ""), a.getAttribute("download") || "transactions.csv", a);
    });
    return a;
  }

  function failure(e) {
    return T.h("p", { class: "error", role: "alert" }, T.errorText(e));
  }

  // ------------------------------------------------------------ journal

  function queryString(extra) {
    const q = new URLSearchParams();
    const from = T.dayStart(filters.from);
    const to = T.dayStart(filters.to, 1);
    if (from) q.set("from", from);
    if (to) q.set("to", to);
    if (filters.status) q.set("status", filters.status);
    const min = T.majorToMinor(filters.minAmount, "");
    const max = T.majorToMinor(filters.maxAmount, "");
    if (filters.minAmount && min !== null) q.set("minAmount", String(min));
    if (filters.maxAmount && max !== null) q.set("maxAmount", String(max));
    // Any part of an order ID, in any case: a manager types what the customer reads out.
    if (filters.orderId.trim()) q.set("orderSearch", filters.orderId.trim());
    for (const [k, v] of Object.entries(extra || {})) q.set(k, String(v));
    return q.toString();
  }

  function filterForm() {
    const field = (id, label, input) => T.h("div", { class: "field" }, T.h("label", { for: id }, label), input);
    const statusSelect = T.h("select", { id: "f-status", name: "status" },
      T.h("option", { value: "" }, "Any status"),
      T.FILTER_KEYS.map((k) => T.h("option", { value: k, selected: filters.status === k }, T.statusLabel(k))));
    const form = T.h("form", { class: "filters", id: "filters", role: "search", "aria-label": "Filter the journal" },
      field("f-from", "From", T.h("input", { id: "f-from", type: "date", value: filters.from })),
      field("f-to", "To", T.h("input", { id: "f-to", type: "date", value: filters.to })),
      field("f-status", "Status", statusSelect),
      field("f-min", "Min amount", T.h("input", { id: "f-min", type: "text", inputmode: "decimal", placeholder: "0.00", value: filters.minAmount, size: "7" })),
      field("f-max", "Max amount", T.h("input", { id: "f-max", type: "text", inputmode: "decimal", placeholder: "0.00", value: filters.maxAmount, size: "7" })),
      field("f-order", "Order ID", T.h("input", { id: "f-order", type: "search", value: filters.orderId, autocomplete: "off", placeholder: "any part" })),
      T.h("div", { class: "filter-actions" },
        T.h("button", { type: "submit", class: "btn primary" }, "Search"),
        T.h("button", { type: "button", class: "btn subtle", id: "f-reset" }, "Clear")),
      T.h("p", { class: "error", id: "f-error", role: "alert" }));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const min = form.querySelector("#f-min").value.trim();
      const max = form.querySelector("#f-max").value.trim();
      const err = form.querySelector("#f-error");
      if ((min && T.majorToMinor(min, "") === null) || (max && T.majorToMinor(max, "") === null)) {
        err.textContent = "Amounts must be numbers like 12.50.";
        return;
      }
      err.textContent = "";
      Object.assign(filters, {
        from: form.querySelector("#f-from").value,
        to: form.querySelector("#f-to").value,
        status: form.querySelector("#f-status").value,
        minAmount: min, maxAmount: max,
        orderId: form.querySelector("#f-order").value,
      });
      offset = 0;
      loadJournal();
    });
    form.querySelector("#f-reset").addEventListener("click", () => {
      Object.assign(filters, { from: "", to: "", status: "", minAmount: "", maxAmount: "", orderId: "" });
      offset = 0;
      showJournal();
    });
    return form;
  }

  function showJournal() {
    frame([
      filterForm(),
      T.h("div", { class: "table-tools" },
        T.h("p", { class: "muted", id: "journal-count", role: "status", "aria-live": "polite" }, "Loading…"),
        csvLink(T.h("a", { class: "btn subtle", id: "csv", href: "#", download: "transactions.csv" }, "Export CSV"))),
      T.h("div", { id: "journal-table" }),
    ]);
    loadJournal();
  }

  async function loadJournal() {
    const table = T.$("#journal-table", root);
    const count = T.$("#journal-count", root);
    const csv = T.$("#csv", root);
    if (!table) return;
    csv.href = T.url("/api/agent/transactions.csv?" + queryString());
    let page;
    try {
      page = (await T.api("/api/agent/transactions?" + queryString({ limit: PAGE, offset }))).body;
    } catch (e) {
      T.fill(table, failure(e));
      count.textContent = "";
      return;
    }
    const items = page.items || [];
    const total = page.total || 0;
    count.textContent = total === 0 ? "No transactions match." :
      "Showing " + (offset + 1) + "–" + (offset + items.length) + " of " + total;
    if (!items.length) { table.replaceChildren(); return; }
    const rows = items.map((it) => {
      const href = "#/manager/tx/" + encodeURIComponent(it.localId);
      const tr = T.h("tr", { class: "row-link", "data-local-id": it.localId, "data-order-id": it.orderId || "" },
        T.h("td", { class: "nowrap" }, T.dateTime(it.createdAt)),
        T.h("td", {}, T.h("a", { href }, it.orderId || T.shortId(it.localId))),
        T.h("td", { class: "num" }, T.money(it.amountMinor, it.currency)),
        T.h("td", { class: "provider" }, it.providerName || it.provider || "SensePass"),
        T.h("td", {}, T.badge(it.statusKey), it.productSumMismatch ? T.h("span", { class: "flag", title: "Line items differ from the amount" }, " ⚠") : null),
        T.h("td", { class: "mono" }, T.shortId(it.transactionNumber)));
      tr.addEventListener("click", (ev) => {
        if (ev.target.closest("a")) return;
        window.location.hash = href;
      });
      return tr;
    });
    T.fill(table, T.h("table", { class: "grid", id: "journal" },
      T.h("caption", { class: "sr-only" }, "Transactions"),
      T.h("thead", {}, T.h("tr", {},
        T.h("th", { scope: "col" }, "Date"), T.h("th", { scope: "col" }, "Order"),
        T.h("th", { scope: "col", class: "num" }, "Amount"), T.h("th", { scope: "col" }, "Provider"),
        T.h("th", { scope: "col" }, "Status"), T.h("th", { scope: "col" }, "Transaction"))),
      T.h("tbody", {}, rows)),
    T.h("div", { class: "pager" },
      T.h("button", { type: "button", class: "btn", id: "prev", disabled: offset === 0, onclick: () => { offset = Math.max(0, offset - PAGE); loadJournal(); } }, "← Previous"),
      T.h("span", { class: "muted" }, "Page " + (Math.floor(offset / PAGE) + 1) + " of " + Math.max(1, Math.ceil(total / PAGE))),
      T.h("button", { type: "button", class: "btn", id: "next", disabled: offset + items.length >= total, onclick: () => { offset += PAGE; loadJournal(); } }, "Next →")));
  }

  // ------------------------------------------------------------ detail

  function receiptUrl(tx, download) {
    const id = tx.transactionNumber || tx.localId;
    return T.url("/api/agent/transactions/" + encodeURIComponent(id) + "/receipt.pdf" + (download ? "?download=1" : ""));
  }

  function kv(label, value, attrs) {
    return [T.h("dt", {}, label), T.h("dd", attrs || {}, value)];
  }

  /** The lines with the agent's totals (`lines` of the journal entry, sub-lines included). */
  function itemsTable(tx) {
    const lines = Array.isArray(tx.lines) ? tx.lines : [];
    if (!lines.length) return T.h("p", { class: "muted" }, "No line items were sent with this payment.");
    const cur = tx.currency;
    const row = (l, sub) => T.h("tr", sub ? { class: "sub" } : {},
      T.h("td", {}, (sub ? "+ " : "") + (l.name || "Item")),
      T.h("td", { class: "num" }, String(l.quantity)),
      T.h("td", { class: "num" }, T.money(l.unit || 0, cur)),
      T.h("td", { class: "num" }, Number(l.vat) ? T.money(l.vat, cur) : "—"),
      T.h("td", { class: "num" }, Number(l.discount) ? "−" + T.money(l.discount, cur) : "—"),
      T.h("td", { class: "num" }, sub ? "" : T.money(l.total, cur)));
    return T.h("table", { class: "grid compact" },
      T.h("caption", { class: "sr-only" }, "Line items"),
      T.h("thead", {}, T.h("tr", {},
        T.h("th", { scope: "col" }, "Item"), T.h("th", { scope: "col", class: "num" }, "Qty"),
        T.h("th", { scope: "col", class: "num" }, "Unit"), T.h("th", { scope: "col", class: "num" }, "VAT"),
        T.h("th", { scope: "col", class: "num" }, "Discount"), T.h("th", { scope: "col", class: "num" }, "Total"))),
      T.h("tbody", {}, lines.map((l) => [row(l, false), (l.subLines || []).map((x) => row(x, true))])),
      T.h("tfoot", {}, T.h("tr", {},
        T.h("th", { scope: "row", colspan: "5" }, "Total charged"),
        T.h("td", { class: "num strong" }, T.money(tx.amountMinor, cur)))));
  }

  function confirmations(tx) {
    const list = tx.transaction && Array.isArray(tx.transaction.confirmations) ? tx.transaction.confirmations : [];
    if (!list.length) return T.h("p", { class: "muted" }, "No confirmations yet.");
    return T.h("ul", { class: "confirmations", id: "confirmations" }, list.map((c) => {
      const amount = T.majorToMinor(c.amount, tx.currency);
      return T.h("li", {},
        T.h("div", { class: "conf-head" },
          T.h("strong", {}, c.paymentType === "Refund" ? "Refund" : "Payment"),
          amount !== null ? T.h("span", { class: "num" }, T.money(amount, tx.currency)) : null),
        T.h("div", { class: "muted small" },
          [c.cardType || c.paymentMethodName, c.lastFourDigits ? "•••• " + c.lastFourDigits : null,
            c.authNumber ? "auth " + c.authNumber : null, c.confirmationNumber ? "conf. " + c.confirmationNumber : null,
            c.approvalDate || c.dateApproval ? T.dateTime(c.approvalDate || c.dateApproval) : null].filter(Boolean).join(" · ")));
    }));
  }

  let showIgnored = false;

  function timeline(tx) {
    const events = Array.isArray(tx.events) ? tx.events : [];
    if (!events.length) return T.h("p", { class: "muted" }, "No status events recorded.");
    const ignored = events.filter((e) => e.applied === false).length;
    const list = T.h("ol", { class: "timeline", id: "timeline", "data-show-ignored": String(showIgnored) },
      events.map((e) => T.h("li", { class: e.applied === false ? "stale" : "" },
        T.h("time", { datetime: e.at }, T.time(e.at)),
        T.badge(e.statusKey),
        T.h("span", { class: "muted small" }, "via " + (e.source || "?") + (e.applied === false ? " · ignored (stale or duplicate)" : "")))));
    if (!ignored) return list;
    const toggle = T.h("button", { type: "button", class: "btn subtle small", "aria-controls": "timeline", "aria-expanded": String(showIgnored) },
      (showIgnored ? "Hide " : "Show ") + ignored + " ignored " + (ignored === 1 ? "observation" : "observations"));
    toggle.addEventListener("click", () => {
      showIgnored = !showIgnored;
      list.dataset.showIgnored = String(showIgnored);
      toggle.setAttribute("aria-expanded", String(showIgnored));
      toggle.textContent = (showIgnored ? "Hide " : "Show ") + ignored + " ignored " + (ignored === 1 ? "observation" : "observations");
    });
    return [list, toggle];
  }

  function refundPanel(tx, reload) {
    const cur = tx.currency;
    const captured = ["approved", "partially_refunded", "refund_processing", "refunded"].includes(tx.statusKey);
    const left = Number(tx.refundableMinor || 0);
    const box = T.h("section", { class: "panel", id: "refund-panel", "aria-labelledby": "refund-title" },
      T.h("h2", { id: "refund-title" }, "Refund"),
      T.h("dl", { class: "kv money-kv" },
        kv("Captured", T.money(captured ? tx.amountMinor : 0, cur)),
        kv("Refunded", T.money(tx.refundedMinor || 0, cur), { id: "refunded" }),
        kv("Queued", T.money(tx.queuedRefundMinor || 0, cur), { id: "queued-refund" }),
        kv("Left to refund", T.h("strong", {}, T.money(captured ? left : 0, cur)), { id: "refundable", "data-minor": String(captured ? left : 0) })));
    if (!captured) {
      box.appendChild(T.h("p", { class: "muted" }, "Only approved payments can be refunded."));
      return box;
    }
    if (left <= 0) {
      box.appendChild(T.h("p", { class: "muted" }, "Nothing is left to refund."));
      return box;
    }
    let key = T.randomKey("refund");
    const msg = T.h("p", { class: "refund-msg", id: "refund-msg", role: "status", "aria-live": "polite" });
    const amountInput = T.h("input", { id: "refund-amount", type: "text", inputmode: "decimal", autocomplete: "off", value: T.minorToInput(left, cur), "aria-describedby": "refund-hint" });
    const full = T.h("input", { type: "radio", name: "refund-kind", id: "refund-full", value: "full", checked: tx.refundedMinor === 0 && !tx.queuedRefundMinor });
    const partial = T.h("input", { type: "radio", name: "refund-kind", id: "refund-partial", value: "partial", checked: !(tx.refundedMinor === 0 && !tx.queuedRefundMinor) });
    const sync = () => {
      amountInput.disabled = full.checked;
      if (full.checked) amountInput.value = T.minorToInput(left, cur);
      key = T.randomKey("refund");
    };
    full.addEventListener("change", sync);
    partial.addEventListener("change", sync);
    amountInput.addEventListener("input", () => { key = T.randomKey("refund"); });
    const form = T.h("form", { class: "refund-form", id: "refund-form" },
      T.h("fieldset", {},
        T.h("legend", {}, "Amount"),
        T.h("label", { class: "radio", for: "refund-full" }, full, " Full (" + T.money(left, cur) + ")"),
        T.h("label", { class: "radio", for: "refund-partial" }, partial, " Partial")),
      T.h("div", { class: "field" },
        T.h("label", { for: "refund-amount" }, "Refund amount (" + cur + ")"),
        amountInput,
        T.h("p", { class: "hint", id: "refund-hint" }, "At most " + T.money(left, cur) + ", queued refunds included.")),
      T.h("button", { type: "submit", class: "btn danger", id: "refund-submit" }, "Refund…"),
      msg);
    sync();
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const isFull = full.checked;
      const minor = isFull ? left : T.majorToMinor(amountInput.value, cur);
      if (minor === null || minor <= 0) { msg.dataset.tone = "bad"; msg.textContent = "Enter an amount greater than zero, like 2.50."; amountInput.focus(); return; }
      if (minor > left) { msg.dataset.tone = "bad"; msg.textContent = "That is more than the " + T.money(left, cur) + " left to refund."; amountInput.focus(); return; }
      const ok = await T.confirm({
        title: "Refund " + T.money(minor, cur) + "?",
        text: "The money goes back to the customer's card" + (tx.orderId ? " for order " + tx.orderId : "") + ". This cannot be undone.",
        confirm: "Refund " + T.money(minor, cur), danger: true,
      });
      if (!ok) return;
      const button = T.$("#refund-submit", form);
      button.disabled = true;
      msg.dataset.tone = "info";
      msg.textContent = "Sending the refund…";
      try {
        const r = await T.auth.call((token) => T.api("/api/transactions/refund", {
          token,
          headers: { "Idempotency-Key": key },
          body: { transactionNumber: tx.transactionNumber, isPartial: minor < tx.amountMinor, refundAmount: minor, isCent: true },
        }));
        const b = r.body || {};
        if (r.status === 202 || b.status === "queued" || b.state === "pending" || b.state === "in_flight") {
          msg.dataset.tone = "warn";
          msg.textContent = "Refund of " + T.money(minor, cur) + " queued: SensePass is unreachable, it will be sent once the connection returns.";
        } else if (b.result === "Declined") {
          msg.dataset.tone = "bad";
          msg.textContent = "SensePass declined the refund" + (b.errorMessage ? ": " + b.errorMessage : ".");
        } else {
          msg.dataset.tone = "ok";
          msg.textContent = "Refund of " + T.money(minor, cur) + " approved.";
        }
        key = T.randomKey("refund");
        // The result is written beside the form (and read out by its live region); a toast
        // would cover the form's hint, so none is shown here.
        setTimeout(reload, 300);
      } catch (e) {
        msg.dataset.tone = "bad";
        if (e instanceof T.ApiError && e.type === "refund_exceeds_captured") {
          msg.textContent = "That is more than is left to refund (" + T.money(e.body.remainingMinor, cur) + ").";
          key = T.randomKey("refund");
        } else {
          // A network error keeps the same Idempotency-Key: retrying cannot refund twice.
          msg.textContent = T.errorText(e);
        }
        button.disabled = false;
      }
    });
    box.appendChild(form);
    return box;
  }

  /**
   * The receipt as HTML, from the same journal data as the PDF: instant, and readable in
   * webviews without a PDF viewer. The PDF itself is one click away (PDF, Download, Print).
   */
  function receiptPreview(tx) {
    // Drawn from the agent's receipt model (receipt.json), the same one the PDF is drawn from:
    // line totals, VAT, the paid mark, local times and the masked card are computed once, in the
    // agent, and never again here.
    const paper = T.h("div", { class: "receipt-paper", id: "receipt-preview", role: "document", "aria-label": "Receipt preview", "aria-busy": "true" },
      T.h("p", { class: "r-muted" }, "Loading the receipt…"));
    T.api("/api/agent/transactions/" + encodeURIComponent(tx.localId) + "/receipt.json").then((res) => {
      const r = res.body || {};
      const cur = r.currency || tx.currency;
      const m = (minor) => T.money(minor, cur);
      const line = (label, value, cls) => T.h("div", { class: "r-line " + (cls || "") }, T.h("span", {}, label), T.h("span", {}, value));
      const lineRows = (l, sub) => [
        line((sub ? "+ " : "") + l.quantity + " × " + (l.name || "Item"), sub ? "" : m(l.total), sub ? "r-sub" : ""),
        (l.subLines || []).map((x) => lineRows(x, true)),
      ];
      const a = r.approval || null;
      T.fill(paper,
        T.h("p", { class: "r-merchant" }, (r.merchant && r.merchant.name) || "Receipt"),
        r.merchant && r.merchant.address ? T.h("p", { class: "r-muted" }, r.merchant.address) : null,
        r.paid ? null : T.h("p", { class: "r-unpaid", id: "receipt-unpaid" }, "NOT PAID — no money was taken"),
        T.h("p", { class: "r-muted", id: "receipt-date" }, r.date || ""),
        T.h("hr"),
        (r.lines || []).map((l) => lineRows(l, false)),
        T.h("hr"),
        Number(r.vatTotal) ? line("VAT", m(r.vatTotal)) : null,
        line(r.paid ? "Total" : "Total (not charged)", m(r.total), "r-total"),
        line("Status", r.status || ""),
        a ? line([a.paymentMethod, a.cardMask].filter(Boolean).join(" "), a.authNumber ? "auth " + a.authNumber : "") : null,
        (r.refunds || []).map((x) => line(x.queued ? "Refund (queued)" : "Refund", "−" + m(x.amount))),
        r.note ? T.h("p", { class: "r-note" }, r.note) : null,
        T.h("hr"),
        T.h("p", { class: "r-muted" }, "Order " + (r.orderId || "—")),
        r.transactionNumber ? T.h("p", { class: "r-muted r-wrap" }, r.transactionNumber) : null,
        T.h("p", { class: "r-note" }, "Preview. Download or print the PDF for the customer's copy."));
      paper.removeAttribute("aria-busy");
    }).catch((e) => {
      T.fill(paper, T.h("p", { class: "error" }, "The receipt could not be loaded: " + T.errorText(e)));
      paper.removeAttribute("aria-busy");
    });
    return paper;
  }


  let receiptMode = "preview"; // preview | pdf

  function receiptPanel(tx) {
    const created = tx.status !== null && tx.statusKey !== "creating";
    const src = receiptUrl(tx, false);
    const holder = T.h("div", { class: "receipt-body", id: "receipt-body" });
    const toggle = T.h("button", { type: "button", class: "btn", id: "receipt-show-pdf", "aria-controls": "receipt-body" });
    const showMode = (mode) => {
      receiptMode = mode;
      toggle.textContent = mode === "pdf" ? "Preview" : "View PDF";
      T.fill(holder, mode === "pdf"
        ? T.h("iframe", { class: "receipt-frame", id: "receipt-frame", title: "Receipt PDF", src })
        : receiptPreview(tx));
    };
    toggle.addEventListener("click", () => showMode(receiptMode === "pdf" ? "preview" : "pdf"));
    const print = () => {
      // Prints the PDF itself. Same-origin (the browser) prints from a hidden frame; the desktop
      // window, where the agent is another origin, opens the PDF to print from its viewer.
      const frame = T.h("iframe", { class: "print-frame", src, title: "Receipt to print", "aria-hidden": "true", tabindex: "-1" });
      frame.addEventListener("load", () => {
        try {
          frame.contentWindow.focus();
          frame.contentWindow.print();
        } catch (_) {
          window.open(src, "_blank", "noopener");
        }
        setTimeout(() => frame.remove(), 60000);
      });
      document.body.appendChild(frame);
    };
    const panel = T.h("section", { class: "panel", id: "receipt-panel", "aria-labelledby": "receipt-title" },
      T.h("div", { class: "panel-head" },
        T.h("h2", { id: "receipt-title" }, "Receipt"),
        T.h("div", { class: "panel-actions" },
          created ? toggle : null,
          T.h("a", { class: "btn", id: "receipt-download", href: receiptUrl(tx, true), download: "receipt-" + (tx.orderId || tx.localId) + ".pdf" }, "Download"),
          T.h("button", { type: "button", class: "btn", id: "receipt-print", onclick: print }, "Print"),
          // Reprint on the till's thermal printer (the print queue), when one is configured.
          created && T.health && T.health.printer && T.health.printer.configured
            ? ["customer", "merchant"].map((copy) => T.h("button", {
              type: "button", class: "btn", id: "receipt-reprint-" + copy,
              onclick: async () => {
                try {
                  await T.auth.call((token) => T.api("/api/agent/transactions/" + encodeURIComponent(tx.localId) + "/print", { token, body: { copy } }));
                  T.announce("The " + copy + " copy is in the printer queue.", "ok");
                } catch (e) {
                  T.announce(T.errorText(e), "bad");
                }
              },
            }, copy === "customer" ? "Reprint (customer)" : "Reprint (merchant)"))
            : null)),
      created ? holder : T.h("p", { class: "muted" }, "No receipt: the payment was not created."));
    if (created) showMode(receiptMode);
    return panel;
  }

  /**
   * The way out of a payment stuck without an outcome: the agent asks SensePass and records what
   * it says; nothing is closed on the till's word alone (docs/DECISIONS.md, "stuck payment").
   */
  function resolvePanel(tx, reload) {
    const msg = T.h("p", { class: "refund-msg", id: "resolve-msg", role: "status", "aria-live": "polite" });
    const button = T.h("button", { type: "button", class: "btn", id: "resolve" }, "Check with SensePass and close");
    button.addEventListener("click", async () => {
      const ok = await T.confirm({
        title: "Close this payment?",
        text: "The agent asks SensePass how this payment ended and records that. If the customer can still pay it, it is cancelled first. If SensePass does not know it, no money can move through it and it is closed here as not paid. Nothing is closed while SensePass cannot be reached.",
        confirm: "Check and close", cancel: "Keep waiting",
      });
      if (!ok) return;
      button.disabled = true;
      msg.textContent = "Asking SensePass…";
      msg.dataset.tone = "info";
      try {
        const r = (await T.auth.call((token) => T.api("/api/agent/transactions/" + encodeURIComponent(tx.localId) + "/resolve", { method: "POST", token, timeoutMs: 60000 }))).body;
        const said = {
          sensepass: "SensePass had an outcome: " + T.statusLabel(r.transaction.statusKey) + ".",
          cancelled: "It was still open at SensePass and is now cancelled. No money was taken.",
          closed: "SensePass does not know this payment, so no money was taken. It is closed as not paid.",
          reconciled: "Checked with SensePass: " + T.statusLabel(r.transaction.statusKey) + ".",
        }[r.resolved] || T.statusLabel(r.transaction.statusKey);
        T.announce(said, "ok");
        reload();
      } catch (e) {
        msg.textContent = T.errorText(e) + " Nothing was closed.";
        msg.dataset.tone = "bad";
        button.disabled = false;
      }
    });
    return T.h("section", { class: "panel", id: "resolve-panel", "aria-labelledby": "resolve-title" },
      T.h("h2", { id: "resolve-title" }, "No outcome yet"),
      T.h("p", { class: "muted" }, "If this payment stays open — after a restart, or the QR code expired long ago — ask SensePass how it ended. The cashier's screen follows."),
      button, msg);
  }

  async function showDetail(id) {
    detailId = id;
    frame(T.h("p", { class: "muted" }, "Loading…"));
    await loadDetail(id, true);
  }

  async function loadDetail(id, first) {
    let tx;
    try {
      tx = (await T.api("/api/agent/transactions/" + encodeURIComponent(id))).body;
    } catch (e) {
      if (detailId === id) T.fill(body(), T.h("a", { href: "#/manager", class: "back" }, "← Journal"), failure(e));
      return;
    }
    if (detailId !== id || sub !== "detail") return;
    const reload = () => loadDetail(id, false);
    // A refresh keeps a loaded PDF rather than reloading it; the preview is redrawn.
    const receipt = !first && receiptMode === "pdf" ? T.$("#receipt-panel", root) : null;
    const view = T.h("article", { class: "detail", id: "detail", "data-local-id": tx.localId },
      T.h("a", { href: "#/manager", class: "back" }, "← Journal"),
      T.h("header", { class: "detail-head" },
        T.h("div", {},
          T.h("p", { class: "eyebrow" }, "Order ", T.h("span", { class: "id" }, tx.orderId || "—")),
          T.h("h2", { class: "detail-amount", id: "detail-amount" }, T.money(tx.amountMinor, tx.currency)),
          T.h("p", {}, T.badge(tx.statusKey))),
        T.h("dl", { class: "kv" },
          kv("Transaction", T.h("span", { class: "mono" }, tx.transactionNumber || "—")),
          kv("Created", T.dateTime(tx.createdAt)),
          kv("Updated", T.dateTime(tx.updatedAt)),
          kv("Committed", tx.committedAt ? T.dateTime(tx.committedAt) : "—"),
          tx.failure ? kv("Failure", tx.failure) : null,
          tx.resolvedAt ? kv("Closed", T.dateTime(tx.resolvedAt), { id: "resolved-at" }) : null,
          tx.resolution ? kv("Why", tx.resolution, { id: "resolution" }) : null)),
      T.OPEN_KEYS.includes(tx.statusKey) ? resolvePanel(tx, reload) : null,
      tx.productSumMismatch ? T.h("p", { class: "warning" }, "The line items do not add up to the amount charged.") : null,
      T.h("div", { class: "detail-grid" },
        T.h("div", { class: "col" },
          T.h("section", { class: "panel", "aria-labelledby": "items-title" }, T.h("h2", { id: "items-title" }, "Items"), itemsTable(tx)),
          T.h("section", { class: "panel", "aria-labelledby": "conf-title" }, T.h("h2", { id: "conf-title" }, "Confirmations"), confirmations(tx)),
          T.h("section", { class: "panel", "aria-labelledby": "tl-title" }, T.h("h2", { id: "tl-title" }, "Status timeline"), timeline(tx))),
        T.h("div", { class: "col" },
          refundPanel(tx, reload),
          receipt || receiptPanel(tx))));
    // Keep what the manager was typing in the refund form across a refresh.
    const prevInput = first ? null : T.$("#refund-amount", root);
    const typed = prevInput ? {
      value: prevInput.value,
      partial: T.$("#refund-partial", root).checked,
      focused: document.activeElement === prevInput,
      left: T.$("#refundable", root).dataset.minor,
    } : null;
    const msg = !first && T.$("#refund-msg", root) ? T.$("#refund-msg", root).cloneNode(true) : null;
    // Keyboard focus must survive the redraw: a manager who just refunded (focus on the now
    // re-created button, or already dropped to the page body) lands on the refund panel's result.
    const active = document.activeElement;
    const focusInRefund = !first && (!active || active === document.body || !!(active.closest && active.closest("#refund-panel")));
    T.fill(body(), view);
    const input = T.$("#refund-amount", root);
    if (typed && input && T.$("#refundable", root).dataset.minor === typed.left) {
      if (typed.partial) {
        T.$("#refund-partial", root).checked = true;
        input.disabled = false;
        input.value = typed.value;
      }
      if (typed.focused) input.focus();
    }
    if (msg && msg.textContent) {
      const m = T.$("#refund-msg", root);
      if (m) { m.textContent = msg.textContent; m.dataset.tone = msg.dataset.tone; }
      else T.$("#refund-panel", root).appendChild(msg);
    }
    if (first) {
      const h = T.$("#detail-amount", root);
      h.setAttribute("tabindex", "-1");
      h.focus({ preventScroll: true });
    } else if (focusInRefund && !(typed && typed.focused)) {
      const m = T.$("#refund-msg", root);
      const target = m && m.textContent ? m : T.$("#refund-title", root);
      if (target) {
        target.setAttribute("tabindex", "-1");
        target.focus({ preventScroll: true });
      }
    }
  }

  // ------------------------------------------------------------ outbox

  let outboxDismissed = false;

  function showOutbox() {
    const select = T.h("select", { id: "o-state" },
      [["", "All"], ["pending", "Pending"], ["in_flight", "Sending"], ["delivered", "Delivered"], ["failed", "Failed"]]
        .map(([v, l]) => T.h("option", { value: v, selected: outboxState === v }, l)));
    select.addEventListener("change", () => { outboxState = select.value; loadOutbox(); });
    const shown = T.h("input", { type: "checkbox", id: "o-dismissed", checked: outboxDismissed });
    shown.addEventListener("change", () => { outboxDismissed = shown.checked; loadOutbox(); });
    frame([
      T.h("div", { class: "table-tools" },
        T.h("p", { class: "muted" }, "Operations the agent must deliver to SensePass: refunds, payment commits and cancels. Each is sent exactly once, retried while SensePass is unreachable."),
        T.h("div", { class: "field inline" }, T.h("label", { for: "o-state" }, "State"), select),
        T.h("label", { class: "check", for: "o-dismissed" }, shown, " Show dismissed")),
      T.h("p", { class: "muted small", id: "outbox-help" },
        "Retry now sends a waiting operation at once. Dismiss is only offered for a failed operation: SensePass did not carry it out and it will not be sent again, so no money moved. Dismissing hides it from this list; the journal keeps it. A failed refund is not sent again from here: start a new refund from its payment."),
      T.h("p", { class: "refund-msg", id: "outbox-msg", role: "status", "aria-live": "polite" }),
      T.h("div", { id: "outbox-table" }, T.h("p", { class: "muted" }, "Loading…")),
    ]);
    loadOutbox();
  }

  const OP_TONE = { pending: "wait", in_flight: "busy", delivered: "ok", failed: "bad" };
  const OP_LABEL = { pending: "Pending", in_flight: "Sending", delivered: "Delivered", failed: "Failed" };
  const OP_KIND = { refund: "Refund", commit: "Payment commit", cancel: "Cancel", credit: "Credit" };

  function outboxMessage(text, tone) {
    const m = T.$("#outbox-msg", root);
    if (!m) return;
    m.textContent = text;
    m.dataset.tone = tone || "info";
  }

  async function outboxAction(op, action) {
    const what = (OP_KIND[op.kind] || op.kind) + " #" + op.id;
    if (action === "dismiss") {
      const ok = await T.confirm({
        title: "Dismiss " + what + "?",
        text: "SensePass did not carry it out and the agent will not send it again, so no money moved. It leaves this list; the journal keeps it." +
          (op.kind === "refund" ? " If the customer is still owed money, start a new refund from the payment." : ""),
        confirm: "Dismiss", cancel: "Keep it",
      });
      if (!ok) return;
    }
    try {
      await T.auth.call((token) => T.api("/api/agent/outbox/" + encodeURIComponent(op.id) + "/" + action, { method: "POST", token }));
      outboxMessage(action === "retry" ? what + " is being sent now." : what + " was dismissed.", "ok");
    } catch (e) {
      outboxMessage(T.errorText(e), "bad");
    }
    loadOutbox();
  }

  async function loadOutbox() {
    const el = T.$("#outbox-table", root);
    if (!el) return;
    let items;
    try {
      const q = new URLSearchParams();
      if (outboxState) q.set("state", outboxState);
      if (outboxDismissed) q.set("dismissed", "1");
      items = (await T.api("/api/agent/outbox?" + q.toString())).body.items || [];
    } catch (e) {
      T.fill(el, failure(e));
      return;
    }
    if (!T.$("#outbox-table", root)) return;
    if (!items.length) { T.fill(el, T.h("p", { class: "muted", id: "outbox-empty" }, "Nothing here.")); return; }
    T.fill(el, T.h("table", { class: "grid", id: "outbox" },
      T.h("caption", { class: "sr-only" }, "Outbox operations"),
      T.h("thead", {}, T.h("tr", {},
        ["#", "Operation", "Order", "State", "Amount", "Attempts", "Problem", "Created", "Actions"].map((c) =>
          T.h("th", { scope: "col", class: c === "Amount" || c === "Attempts" ? "num" : null }, c)))),
      T.h("tbody", {}, items.map((op) => {
        const currency = op.payload && typeof op.payload.currency === "string" ? op.payload.currency : null;
        const order = op.orderId || T.shortId(op.transactionNumber || op.transactionLocalId);
        const label = (OP_LABEL[op.state] || op.state) + (op.dismissedAt ? " · dismissed" : "");
        return T.h("tr", { "data-op-id": String(op.id), "data-state": op.state, "data-order-id": op.orderId || "" },
          T.h("td", { class: "mono" }, String(op.id)),
          T.h("td", {}, OP_KIND[op.kind] || op.kind || "—"),
          T.h("td", { class: "nowrap" }, op.transactionLocalId ? T.h("a", { href: "#/manager/tx/" + encodeURIComponent(op.transactionLocalId), class: "op-order" }, order) : "—"),
          T.h("td", {}, T.h("span", { class: "badge tone-" + (OP_TONE[op.state] || "wait"), "data-op-state": op.state }, label)),
          T.h("td", { class: "num" }, op.amountMinor === null || op.amountMinor === undefined ? "—" :
            currency ? T.money(op.amountMinor, currency) : T.minorToInput(op.amountMinor, "")),
          T.h("td", { class: "num" }, String(op.attempts || 0)),
          T.h("td", { class: "small op-problem", title: op.lastError || null }, op.problem || "—"),
          T.h("td", { class: "nowrap" }, T.dateTime(op.createdAt)),
          T.h("td", { class: "op-actions" },
            op.canRetry ? T.h("button", { type: "button", class: "btn small op-retry", onclick: () => outboxAction(op, "retry") }, "Retry now") : null,
            op.canDismiss ? T.h("button", { type: "button", class: "btn subtle small op-dismiss", onclick: () => outboxAction(op, "dismiss") }, "Dismiss") : null));
      }))));
  }

  // ------------------------------------------------------------ summary

  function showSummary() {
    if (!summaryDay) summaryDay = T.isoDay(new Date());
    const day = T.h("input", { type: "date", id: "s-day", value: summaryDay });
    const form = T.h("form", { class: "filters", id: "summary-form", "aria-label": "Choose the day" },
      T.h("div", { class: "field" }, T.h("label", { for: "s-day" }, "Day"), day),
      T.h("div", { class: "filter-actions" },
        T.h("button", { type: "submit", class: "btn primary" }, "Show"),
        T.h("button", { type: "button", class: "btn subtle", onclick: () => { summaryDay = T.isoDay(new Date()); showSummary(); } }, "Today"),
        csvLink(T.h("a", { class: "btn subtle", id: "summary-csv", href: "#", download: "transactions-" + summaryDay + ".csv" }, "Export CSV"))));
    form.addEventListener("submit", (ev) => { ev.preventDefault(); summaryDay = day.value || T.isoDay(new Date()); loadSummary(); });
    frame([form, T.h("div", { id: "summary" }, T.h("p", { class: "muted" }, "Loading…"))]);
    loadSummary();
  }

  async function loadSummary() {
    const el = T.$("#summary", root);
    if (!el) return;
    const from = T.dayStart(summaryDay);
    const to = T.dayStart(summaryDay, 1);
    const q = "from=" + encodeURIComponent(from) + "&to=" + encodeURIComponent(to);
    const csv = T.$("#summary-csv", root);
    if (csv) { csv.href = T.url("/api/agent/transactions.csv?" + q); csv.setAttribute("download", "transactions-" + summaryDay + ".csv"); }
    let s;
    try {
      s = (await T.api("/api/agent/summary?" + q)).body;
    } catch (e) {
      T.fill(el, failure(e));
      return;
    }
    const list = Array.isArray(s.currencies) ? s.currencies : [];
    const recoveries = Array.isArray(s.recoveries) ? s.recoveries : [];
    const recovered = recoveries.length ? T.h("section", { class: "panel summary-card", id: "summary-recoveries", "aria-label": "Declines recovered" },
      T.h("div", { class: "panel-head" }, T.h("h2", {}, "Declines recovered")),
      T.h("dl", { class: "kv money-kv" }, recoveries.map((r) =>
        kv("Recovered by " + r.byName + " · " + r.count + (r.count === 1 ? " payment" : " payments"), T.money(r.amountMinor, r.currency), { class: "s-recovered" })))) : null;
    if (!list.length && !recovered) { T.fill(el, T.h("p", { class: "muted", id: "summary-empty" }, "No transactions on this day.")); return; }
    T.fill(el, T.h("div", { class: "summary-grid" }, recovered, list.map((c) => T.h("section", { class: "panel summary-card", "data-currency": c.currency, "aria-label": "Totals in " + c.currency },
      T.h("div", { class: "panel-head" }, T.h("h2", {}, c.currency), T.h("span", { class: "muted" }, c.count + (c.count === 1 ? " transaction" : " transactions"))),
      T.h("p", { class: "summary-net" }, T.h("span", { class: "muted small" }, "Net takings"), T.h("strong", {}, T.money(c.netMinor, c.currency))),
      T.h("dl", { class: "kv money-kv" },
        kv("Taken in " + (c.approvedCount || 0) + (c.approvedCount === 1 ? " payment" : " payments"), T.money(c.approvedMinor, c.currency), { class: "s-taken" }),
        kv("Refunded", "−" + T.money(c.refundedMinor, c.currency)),
        kv("Net", T.money(c.netMinor, c.currency))),
      T.h("h3", {}, "Payments by status now"),
      T.h("p", { class: "muted small" }, "A payment refunded since is counted under Refunded or Partially refunded here, and still in the money taken above."),
      T.h("ul", { class: "by-status" }, Object.entries(c.byStatus || {}).sort((a, b) => b[1] - a[1]).map(([k, n]) =>
        T.h("li", {}, T.badge(k), T.h("span", { class: "num" }, String(n)))))))));
  }

  // ------------------------------------------------------------ routing

  function show() {
    if (!T.auth.active()) {
      T.fill(root, T.h("div", { class: "gate", id: "manager-gate" }));
      T.auth.renderGate(T.$("#manager-gate", root), "Enter the manager PIN to open the journal, receipts and refunds.", show);
      return;
    }
    if (parts[0] === "tx" && parts[1]) { sub = "detail"; showDetail(parts[1]); }
    else if (parts[0] === "outbox") { sub = "outbox"; showOutbox(); }
    else if (parts[0] === "summary") { sub = "summary"; showSummary(); }
    else { sub = "journal"; showJournal(); }
  }

  /** Refreshes what is on screen after an event, at most every 500 ms. */
  function reloadSoon(ev) {
    if (sub === "detail" && ev && ev.localId && ev.localId !== detailId) {
      const d = T.$("#detail", root);
      if (!d || d.dataset.localId !== ev.localId) return;
    }
    if (reloadTimer || !T.auth.active() || T.currentRoute() !== "manager") return;
    reloadTimer = setTimeout(() => {
      reloadTimer = null;
      if (T.currentRoute() !== "manager" || !T.auth.active()) return;
      if (sub === "journal") loadJournal();
      else if (sub === "outbox") loadOutbox();
      else if (sub === "summary") loadSummary();
      else if (sub === "detail" && detailId) loadDetail(detailId, false);
    }, 500);
  }

  T.views.manager = {
    enter(p) {
      root = document.getElementById("view-manager");
      parts = p || [];
      show();
    },
  };

  T.on("auth", () => { if (T.currentRoute() === "manager") show(); });
  T.on("status", reloadSoon);
  T.on("operation", reloadSoon);
})(window.Till);
