// Till Fleet dashboard: reads the fleet's JSON API with the administrator token (kept for this
// browser tab only, in sessionStorage) and refreshes every few seconds.
"use strict";

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("fleetToken") || "";
let timer = null;

/** Money in minor units as major units with the currency code. `exponent` (the currency's
 *  minor-unit digits) comes from the server with every amount, so this page has no currency rule. */
function money(minor, currency, exponent) {
  const sign = minor < 0 ? "-" : "";
  const digits = String(Math.abs(minor)).padStart(exponent + 1, "0");
  const major = exponent > 0 ? `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}` : digits;
  return `${sign}${major} ${currency}`;
}

function when(iso) {
  if (!iso) return "never";
  const d = new Date(iso);
  return d.toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text == null ? "" : String(text);
  if (cls) td.className = cls;
  return td;
}

function fill(table, rows, render, emptyText) {
  const body = $(`${table} tbody`);
  body.replaceChildren();
  if (rows.length === 0) {
    const tr = document.createElement("tr");
    tr.className = "empty";
    const td = cell(emptyText);
    td.colSpan = $(`${table} thead tr`).children.length;
    tr.append(td);
    body.append(tr);
    return;
  }
  for (const r of rows) {
    const tr = document.createElement("tr");
    tr.append(...render(r));
    body.append(tr);
  }
}

async function api(path, options = {}) {
  const r = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` } });
  if (r.status === 401) {
    signOut("The administrator token was not accepted.");
    throw new Error("unauthorized");
  }
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.message || `HTTP ${r.status}`);
  return body;
}

function showError(msg) {
  const e = $("#error");
  e.textContent = msg || "";
  e.hidden = !msg;
}

function pill(text, cls) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  span.className = `pill ${cls}`;
  span.textContent = text;
  td.append(span);
  return td;
}

async function loadTills() {
  const tills = await api("/api/v1/tills");
  const online = tills.filter((t) => t.online).length;
  $("#summary").textContent = `${tills.length} tills, ${online} online`;
  fill("#tills", tills, (t) => [
    cell(t.store),
    cell(t.name),
    t.revoked_at ? pill("revoked", "revoked") : t.online ? pill("online", "online") : pill("offline", "offline"),
    cell(when(t.last_seen)),
    cell([t.version, t.channel].filter(Boolean).join(" · ")),
    cell(t.queued_operations, "num"),
    cell(t.changes_behind, t.changes_behind > 0 ? "num behind" : "num"),
  ], "No tills enrolled yet: create an enrolment code below.");
}

async function loadTotals() {
  const day = $("#day").value;
  const lines = await api(`/api/v1/reports/day?date=${encodeURIComponent(day)}`);
  $("#day-csv").dataset.csv = `/api/v1/reports/day?date=${encodeURIComponent(day)}`;
  fill("#totals", lines, (l) => [
    cell(l.store), cell(l.till), cell(l.provider), cell(l.tender || "—"),
    cell(l.sales, "num"), cell(money(l.sales_amount, l.currency, l.exponent), "num"), cell(l.declines, "num"),
    cell(l.recoveries ? `${l.recoveries} · ${money(l.recovered_amount, l.currency, l.exponent)}` : "0", "num"), cell(l.open, "num"),
  ], "No payments on this day.");
  // One total line per currency: amounts in different currencies are never added.
  const byCurrency = new Map();
  for (const l of lines) {
    const t = byCurrency.get(l.currency) || { sales: 0, amount: 0, declines: 0, open: 0, recoveries: 0, recovered: 0, exponent: l.exponent };
    t.sales += l.sales; t.amount += l.sales_amount; t.declines += l.declines; t.open += l.open;
    t.recoveries += l.recoveries || 0; t.recovered += l.recovered_amount || 0;
    byCurrency.set(l.currency, t);
  }
  const foot = $("#totals tfoot");
  foot.replaceChildren();
  for (const [currency, t] of byCurrency) {
    const tr = document.createElement("tr");
    const label = cell(`Chain total (${currency})`);
    label.colSpan = 4;
    tr.append(label, cell(t.sales, "num"), cell(money(t.amount, currency, t.exponent), "num"), cell(t.declines, "num"),
      cell(t.recoveries ? `${t.recoveries} · ${money(t.recovered, currency, t.exponent)}` : "0", "num"), cell(t.open, "num"));
    foot.append(tr);
  }
}

async function loadRefunds() {
  const rows = await api("/api/v1/reports/refunds-pending");
  fill("#refunds", rows, (r) => [
    cell(r.store), cell(r.till), cell(r.kind), cell(r.amount == null ? "" : r.amount, "num"), cell(r.state),
    cell(r.attempts, "num"), cell(r.last_error || ""), cell(when(r.created_at)),
  ], "No refunds waiting.");
}

async function refresh() {
  try {
    await Promise.all([loadTills(), loadTotals(), loadRefunds()]);
    showError("");
  } catch (e) {
    if (e.message !== "unauthorized") showError(`Could not refresh: ${e.message}`);
  }
}

function signIn() {
  $("#login").hidden = true;
  $("#logout").hidden = false;
  $("#main").hidden = false;
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, 5000);
}

function signOut(message) {
  token = "";
  sessionStorage.removeItem("fleetToken");
  clearInterval(timer);
  $("#login").hidden = false;
  $("#logout").hidden = true;
  $("#main").hidden = true;
  showError(message || "");
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("fleetToken", token);
  $("#token").value = "";
  signIn();
});
$("#logout").addEventListener("click", () => signOut(""));
$("#day").addEventListener("change", refresh);

$("#code-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  try {
    const r = await api("/api/v1/enrolment-codes", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ store: $("#code-store").value }),
    });
    $("#code").textContent = `${r.code} (store ${r.store}, valid ${r.ttl_hours} h)`;
    refresh();
  } catch (e) {
    showError(`Could not create a code: ${e.message}`);
  }
});

$("#search").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const by = $("#search-by").value;
  const value = $("#search-value").value.trim();
  try {
    const rows = await api(`/api/v1/payments/search?${by}=${encodeURIComponent(value)}`);
    fill("#results", rows, (p) => [
      cell(p.store), cell(p.till), cell(p.order_id || ""), cell(money(p.amount, p.currency, p.exponent), "num"),
      cell(p.status_name || p.state || p.status || ""), cell(p.tender || ""), cell(p.last_four ? `•••• ${p.last_four}` : ""),
      cell(when(p.created_at)),
    ], "No payment found.");
    showError("");
  } catch (e) {
    if (e.message !== "unauthorized") showError(`Search failed: ${e.message}`);
  }
});

// CSV links download with the token (a plain link could not send it).
document.addEventListener("click", async (ev) => {
  const a = ev.target.closest("a.csv");
  if (!a) return;
  ev.preventDefault();
  const path = a.dataset.csv;
  const sep = path.includes("?") ? "&" : "?";
  const r = await fetch(`${path}${sep}format=csv`, { headers: { Authorization: `Bearer ${token}` } });
  const blob = await r.blob();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = (r.headers.get("Content-Disposition") || "").match(/filename="([^"]+)"/)?.[1] || "report.csv";
  link.click();
  URL.revokeObjectURL(link.href);
});

$("#day").value = new Date().toISOString().slice(0, 10);
if (token) signIn();
