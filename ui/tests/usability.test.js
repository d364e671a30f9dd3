// The usability script of docs/USABILITY.md, walked through in the real UI: a first-day cashier
// on an 800×600 till screen, then a manager at 1280×800. Every step checks what the script says
// the person should see, and takes the screenshot the document shows
// (UPDATE_SCREENSHOTS=1 copies them to docs/screenshots/usability-*.png).
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const h = require("./lib/harness");

let agent;
let browser;
let cashier;
let manager;
let base;
const stamp = Date.now();
const paidOrder = "TABLE-" + stamp + "-A";
const cancelledOrder = "TABLE-" + stamp + "-B";
const stuckOrder = "TABLE-" + stamp + "-C";
let stuckHref = null;

/** Screenshot `page` as step `name` of the script (an earlier step's notice hidden, unless `keepToast`). */
async function shot(page, name, keepToast) {
  if (!keepToast) await page.evaluate(() => { const t = document.getElementById("toast"); if (t) t.hidden = true; });
  const file = h.artifact("usability-" + name + ".png");
  await page.screenshot({ path: file });
  h.publish(file, "usability-" + name + ".png");
}

before(async () => {
  agent = await h.startAgent("usability");
  base = await h.uiUrl(agent);
  browser = await h.launchBrowser();
  cashier = await h.newPage(browser, { viewport: { width: 800, height: 600 } });
  manager = await h.newPage(browser, { viewport: { width: 1280, height: 800 } });
});

after(async () => {
  for (const p of [cashier, manager]) if (p && h.unexpectedErrors(p).length) console.log("# page errors:\n# " + h.unexpectedErrors(p).join("\n# "));
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

test("cashier 1: the till is ready", async () => {
  await cashier.goto(base + "#/cashier");
  await cashier.locator("#cashier-idle").waitFor();
  await shot(cashier, "01-cashier-ready");
});

test("cashier 2: the POS starts a payment; the customer scans the QR code and pays", async () => {
  const tx = (await h.pos(agent, "POST", "/api/transactions/init", h.cart(paidOrder))).body;
  await cashier.locator("#cashier-active").waitFor();
  await cashier.waitForFunction(() => { const i = document.getElementById("qr"); return i && i.complete && i.naturalWidth > 0; });
  assert.equal((await cashier.locator("#amount").textContent()).trim(), "€12.50");
  await shot(cashier, "02-cashier-qr");
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/pay", { card: "4111111111111111" });
  await cashier.locator('#cashier-outcome[data-status="approved"]').waitFor();
  await shot(cashier, "03-cashier-approved");
  await cashier.click("#outcome-done");
  await cashier.locator("#cashier-idle").waitFor();
});

test("cashier 3: the customer changes their mind; the cashier cancels", async () => {
  await h.pos(agent, "POST", "/api/transactions/init", h.cart(cancelledOrder));
  await cashier.locator("#cashier-active").waitFor();
  await cashier.locator("#cancel:not([disabled])").waitFor();
  await cashier.click("#cancel");
  await cashier.locator("#confirm[open]").waitFor();
  await shot(cashier, "04-cashier-cancel-confirm");
  await cashier.click("#confirm-yes");
  await cashier.locator('#cashier-outcome[data-status="cancelled"]').waitFor({ timeout: 15000 });
  assert.match(await cashier.locator("#cashier-outcome").textContent(), /No money was taken/);
  await shot(cashier, "05-cashier-cancelled");
  await cashier.click("#outcome-done");
  await cashier.locator("#cashier-idle").waitFor();
});

test("cashier 4: a payment nobody can confirm; the screen says what is known and who can help", async () => {
  const tx = (await h.pos(agent, "POST", "/api/transactions/init", h.cart(stuckOrder, { timeOut: 10 }))).body;
  await cashier.locator("#cashier-active").waitFor();
  // SensePass loses the payment (as after a restart that lost it): no outcome will ever come.
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/forget", {});
  await cashier.locator('#qr-box[data-reason="stuck"]').waitFor({ timeout: 60000 });
  assert.match(await cashier.locator("#qr-box").textContent(), /No money is known to have been taken/);
  stuckHref = await cashier.locator("#stuck-resolve").getAttribute("href");
  await shot(cashier, "06-cashier-stuck");
});

test("manager 1: logs in with the PIN", async () => {
  h.setPin(agent, "2468");
  await manager.goto(base + "#/manager");
  await manager.locator("#pin-login").waitFor();
  await shot(manager, "07-manager-login");
  await h.loginOnPage(manager, "2468");
  await manager.locator("#journal").waitFor();
});

test("manager 2: finds the customer's payment by what the customer reads out", async () => {
  await manager.fill("#f-order", ("table-" + stamp + "-a").toLowerCase());
  const response = manager.waitForResponse((r) => r.url().includes("/api/agent/transactions?"));
  await manager.click("#filters button[type=submit]");
  await response;
  await manager.locator("#journal-count", { hasText: "of 1" }).waitFor();
  assert.equal(await manager.locator("#journal tbody tr").first().getAttribute("data-order-id"), paidOrder);
  await shot(manager, "08-manager-search");
});

test("manager 3: refunds part of it", async () => {
  await manager.click("#journal tbody tr a");
  await manager.locator("#refund-panel").waitFor();
  await manager.check("#refund-partial");
  await manager.fill("#refund-amount", "2.50");
  await manager.click("#refund-submit");
  await manager.locator("#confirm[open]").waitFor();
  await manager.click("#confirm-yes");
  await manager.locator("#refund-msg", { hasText: "approved" }).waitFor({ timeout: 15000 });
  await manager.locator('#refundable[data-minor="1000"]').waitFor({ timeout: 10000 });
  await shot(manager, "09-manager-refund");
});

test("manager 4: resolves the payment the cashier could not finish", async () => {
  await manager.goto(base + stuckHref);
  await manager.locator("#resolve-panel").waitFor();
  await manager.click("#resolve");
  await manager.locator("#confirm[open]").waitFor();
  await shot(manager, "10-manager-resolve-confirm");
  await manager.click("#confirm-yes");
  await manager.locator('#detail .detail-head .badge[data-status="closed"]').waitFor({ timeout: 30000 });
  await shot(manager, "11-manager-resolved", true);
  await cashier.locator('#cashier-outcome[data-status="closed"]').waitFor({ timeout: 10000 });
  await shot(cashier, "12-cashier-closed");
});

test("manager 5: the outbox explains a failed operation, which may be dismissed", async () => {
  await manager.goto(base + "#/manager/outbox");
  const failed = manager.locator('#outbox tbody tr[data-state="failed"]').first();
  await failed.waitFor();
  assert.equal(await failed.getAttribute("data-order-id"), stuckOrder);
  assert.match(await failed.locator(".op-problem").textContent(), /It was not carried out/);
  await shot(manager, "13-manager-outbox");
  await failed.locator(".op-dismiss").click();
  await manager.locator("#confirm[open]").waitFor();
  await manager.click("#confirm-yes");
  await manager.locator("#outbox-msg", { hasText: "was dismissed" }).waitFor();
});

test("manager 6: closes the day and exports it for the bookkeeper", async () => {
  await manager.goto(base + "#/manager/summary");
  const card = manager.locator('.summary-card[data-currency="EUR"]');
  await card.waitFor();
  const text = await card.textContent();
  assert.match(text, /Taken in 1 payment\s*€12\.50/);
  assert.match(text, /Net\s*€10\.00/);
  await shot(manager, "14-manager-end-of-day");
  const [download] = await Promise.all([manager.waitForEvent("download"), manager.click("#summary-csv")]);
  const file = h.artifact("usability-day.csv");
  await download.saveAs(file);
  const csv = fs.readFileSync(file, "utf8");
  assert.match(csv.split("\n")[0], /^date,time,utc_offset,.*charged,refunded,refund_queued,net/);
  assert.ok(csv.includes(paidOrder) && csv.includes("12.50,12.50,2.50,0.00,10.00"), csv);
  assert.deepEqual(h.unexpectedErrors(manager), []);
  assert.deepEqual(h.unexpectedErrors(cashier), []);
});
