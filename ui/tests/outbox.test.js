// The manager's outbox: rows name the payment's order ID, the last error is written for a manager
// and cleared once delivered, "Retry now" sends a waiting operation at once, and "Dismiss" is
// offered only for a failed operation (explained before it is done).
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./lib/harness");

let agent;
let browser;
let page;
let base;
let tx;
let token;
const orderId = "OB-" + Date.now();

before(async () => {
  agent = await h.startAgent("outbox");
  base = await h.uiUrl(agent);
  browser = await h.launchBrowser();
  page = await h.newPage(browser, { viewport: { width: 1280, height: 800 } });
  tx = (await h.pos(agent, "POST", "/api/transactions/init", h.cart(orderId))).body;
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/pay", { card: "4111111111111111" });
  await h.until(async () => {
    const ops = (await h.pos(agent, "GET", "/api/agent/outbox?state=delivered")).body.items;
    return ops.some((o) => o.kind === "commit");
  }, 20000, "the payment commit");
  await h.managerLogin(agent, page, base, "2468");
  token = (await h.pos(agent, "POST", "/api/agent/manager/login", { pin: "2468" })).body.token;
});

after(async () => {
  if (page && h.unexpectedErrors(page).length) console.log("# page errors:\n# " + h.unexpectedErrors(page).join("\n# "));
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

test("a refund queued while offline: its order, a manager's problem text, and Retry now", async () => {
  await h.control(agent, "POST", "/faults", { offline: true });
  const r = await h.pos(agent, "POST", "/api/transactions/refund",
    { transactionNumber: tx.TransactionNumber, isPartial: true, refundAmount: 250, isCent: true },
    { Authorization: "Bearer " + token, "Idempotency-Key": "ob-refund-1" });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  // Let the back-off grow well past the time Retry now takes.
  const waiting = await h.until(async () => {
    const op = (await h.pos(agent, "GET", "/api/agent/outbox?state=pending")).body.items.find((o) => o.kind === "refund");
    return op && op.attempts >= 5 ? op : null;
  }, 40000, "five attempts");
  assert.equal(waiting.orderId, orderId);
  assert.equal(waiting.transactionNumber, tx.TransactionNumber);

  await page.goto(base + "#/manager/outbox");
  const row = page.locator('#outbox tbody tr[data-op-id="' + waiting.id + '"]');
  await row.waitFor();
  assert.equal(await row.getAttribute("data-order-id"), orderId);
  assert.equal((await row.locator(".op-order").textContent()).trim(), orderId);
  assert.match(await row.locator(".op-problem").textContent(), /SensePass could not be reached\. It is sent again automatically\./);
  assert.doesNotMatch(await row.locator(".op-problem").textContent(), /tcp|os error|connect/i, "no transport error on screen");
  assert.equal(await row.locator(".op-dismiss").count(), 0, "a pending refund may still move money: no dismiss");
  await page.screenshot({ path: h.artifact("outbox-pending.png") });

  await h.control(agent, "DELETE", "/faults");
  const before = (await h.pos(agent, "GET", "/api/agent/outbox?state=pending")).body.items.find((o) => o.id === waiting.id);
  assert.ok(before, "still pending after going online");
  const due = Date.parse(before.nextAttemptAt);
  await row.locator(".op-retry").click();
  await page.locator('#outbox tbody tr[data-op-id="' + waiting.id + '"][data-state="delivered"]').waitFor({ timeout: 10000 });
  assert.ok(Date.now() < due, "delivered before its back-off was over (" + new Date(due).toISOString() + ")");
  assert.equal((await page.locator('#outbox tbody tr[data-op-id="' + waiting.id + '"] .op-problem').textContent()).trim(), "—", "the error is cleared once delivered");
  const op = (await h.pos(agent, "GET", "/api/agent/outbox?state=delivered")).body.items.find((o) => o.id === waiting.id);
  assert.equal(op.lastError, null);
});

test("the Sending filter and label use the API's own state name", async () => {
  const r = await h.pos(agent, "GET", "/api/agent/outbox");
  for (const op of r.body.items) assert.ok(["pending", "in_flight", "delivered", "failed"].includes(op.state), op.state);
  await page.selectOption("#o-state", "in_flight");
  await page.locator("#outbox-empty, #outbox").first().waitFor();
  await page.selectOption("#o-state", "");
  await page.locator("#outbox tbody tr").first().waitFor();
});

test("a failed cancel: Dismiss is explained, hides it, and Show dismissed brings it back", async () => {
  const c = await h.pos(agent, "POST", "/api/transactions/cancel/" + tx.TransactionNumber, {}, { Authorization: "Bearer " + token });
  assert.notEqual(c.status, 200, "an approved payment cannot be cancelled: " + JSON.stringify(c.body));
  const failed = (await h.pos(agent, "GET", "/api/agent/outbox?state=failed")).body.items.find((o) => o.kind === "cancel");
  assert.ok(failed, "the cancel failed");
  assert.equal(failed.canDismiss, true);
  await page.goto(base + "#/manager");
  await page.goto(base + "#/manager/outbox");
  const row = page.locator('#outbox tbody tr[data-op-id="' + failed.id + '"]');
  await row.waitFor();
  assert.match(await row.locator(".op-problem").textContent(), /SensePass refused it .*It was not carried out\./);
  await page.screenshot({ path: h.artifact("outbox-failed.png") });
  await row.locator(".op-dismiss").click();
  await page.locator("#confirm[open]").waitFor();
  assert.match(await page.locator("#confirm-text").textContent(), /did not carry it out.*no money moved/);
  await page.click("#confirm-yes");
  await row.waitFor({ state: "detached" });
  await page.locator("#outbox-msg", { hasText: "was dismissed" }).waitFor();
  await page.check("#o-dismissed");
  await page.locator('#outbox tbody tr[data-op-id="' + failed.id + '"]', { hasText: "dismissed" }).waitFor();
  assert.equal(await page.locator('#outbox tbody tr[data-op-id="' + failed.id + '"] .op-dismiss').count(), 0);

  // The API refuses to dismiss what may still move money, and needs a manager session.
  const delivered = (await h.pos(agent, "GET", "/api/agent/outbox?state=delivered")).body.items[0];
  const again = await h.pos(agent, "POST", "/api/agent/outbox/" + delivered.id + "/dismiss", {}, { Authorization: "Bearer " + token });
  assert.equal(again.status, 409, JSON.stringify(again.body));
  const anon = await h.pos(agent, "POST", "/api/agent/outbox/" + failed.id + "/retry", {});
  assert.equal(anon.status, 401);
  assert.deepEqual(h.unexpectedErrors(page), []);
});
