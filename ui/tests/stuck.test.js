// A payment stuck open with no outcome (here: SensePass no longer knows it, as after a restart
// that lost it): the cashier's screen says what is known and where the way out is; a manager
// checks it with SensePass and closes it as not paid; the cashier's screen and the journal agree,
// and the till is free for the next payment. Nothing is closed on the till's word alone.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./lib/harness");

let agent;
let browser;
let cashier;
let manager;
let base;
let tx;
const orderId = "ST-" + Date.now();

before(async () => {
  agent = await h.startAgent("stuck");
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

test("a payment SensePass no longer knows: the cashier sees the way out after the QR expired", async () => {
  await cashier.goto(base + "#/cashier");
  await cashier.locator("#cashier-idle").waitFor();
  const r = await h.pos(agent, "POST", "/api/transactions/init", h.cart(orderId, { timeOut: 10 }));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  tx = r.body;
  await cashier.locator("#cashier-active").waitFor();
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/forget", {});
  await cashier.locator('#qr-box[data-reason="expired"]').waitFor({ timeout: 20000 });
  await cashier.locator('#qr-box[data-reason="stuck"]').waitFor({ timeout: 40000 });
  assert.match(await cashier.locator("#qr-box").textContent(), /Not confirmed by SensePass.*No money is known to have been taken.*A manager can check it/);
  assert.equal(await cashier.locator("#live-status").textContent(), "QR expired · not confirmed");
  const link = cashier.locator("#stuck-resolve");
  assert.equal(await link.getAttribute("href"), "#/manager/tx/" + encodeURIComponent(tx.localId || (await h.pos(agent, "GET", "/api/agent/transactions/" + tx.TransactionNumber)).body.localId));
  // Measured inside the page, on the element in the document at that moment: the screen redraws
  // on status events, and a handle resolved before a redraw measures a detached node (0 px).
  let height = -1;
  await h.until(async () => {
    height = await cashier.evaluate(() => {
      const el = document.getElementById("stuck-resolve");
      return el && el.isConnected ? el.getBoundingClientRect().height : -1;
    });
    return height >= 44;
  }, 3000, "the link's height").catch(() => {});
  assert.ok(height >= 44, "a touch target: " + height + " px high");
  await cashier.screenshot({ path: h.artifact("cashier-stuck-800x600.png") });
  // Cancel cannot help (SensePass does not know the payment): the cashier is told so, and where
  // the way out is.
  await cashier.click("#cancel");
  await cashier.locator("#confirm[open]").waitFor();
  await cashier.click("#confirm-yes");
  await cashier.locator("#cancel-msg", { hasText: "no longer known to SensePass" }).waitFor({ timeout: 15000 });
  assert.match(await cashier.locator("#cancel-msg").textContent(), /no money can be taken.*Check with SensePass and close/);
  const health = (await h.pos(agent, "GET", "/api/agent/health")).body;
  assert.equal(health.openTransactions, 1, "still open: nothing closes it by itself");
});

test("the manager checks it with SensePass and closes it; the cashier's screen and the journal agree", async () => {
  const href = await cashier.locator("#stuck-resolve").getAttribute("href");
  await h.managerLogin(agent, manager, base, "2468");
  await manager.goto(base + href);
  await manager.locator("#resolve-panel").waitFor();
  await manager.screenshot({ path: h.artifact("manager-resolve.png") });
  await manager.click("#resolve");
  await manager.locator("#confirm[open]").waitFor();
  assert.match(await manager.locator("#confirm-text").textContent(), /does not know it, no money can move through it/);
  await manager.click("#confirm-yes");
  await manager.locator('#detail .detail-head .badge[data-status="closed"]').waitFor({ timeout: 30000 });
  assert.match(await manager.locator("#resolution").textContent(), /SensePass does not know this transaction/);
  assert.equal(await manager.locator("#resolve-panel").count(), 0);

  await cashier.locator('#cashier-outcome[data-status="closed"]').waitFor({ timeout: 10000 });
  assert.match(await cashier.locator("#cashier-outcome").textContent(), /Payment closed, not paid.*no money was taken/);

  const detail = (await h.pos(agent, "GET", "/api/agent/transactions/" + tx.TransactionNumber)).body;
  assert.equal(detail.statusKey, "closed");
  assert.ok(detail.resolvedAt);
  assert.equal((await h.pos(agent, "GET", "/api/agent/health")).body.openTransactions, 0);
  // The POS asking for the last payment reads it as over and not paid (SensePass's own word for
  // that, "Transaction Cancel"), not as still waiting for the customer.
  const last = (await h.pos(agent, "GET", "/api/transactions/last")).body;
  assert.equal(last.TransactionNumber, tx.TransactionNumber, JSON.stringify(last));
  assert.equal(last.status, 9, JSON.stringify(last));
  assert.equal(last.statusName, "Transaction Cancel");
  assert.equal(last.closedNotPaid, true);
  assert.match(last.resolution, /SensePass does not know this transaction/);
  // The journal's status filter finds it under the name the screens use.
  await manager.goto(base + "#/manager");
  await manager.locator("#journal").waitFor();
  await manager.selectOption("#f-status", "closed");
  await manager.click("#filters button[type=submit]");
  await manager.locator("#journal-count", { hasText: "of 1" }).waitFor();
  assert.equal(await manager.locator("#journal tbody tr").first().getAttribute("data-order-id"), orderId);
  // The till is free and the order may be tried again.
  const again = await h.pos(agent, "POST", "/api/transactions/init", h.cart(orderId));
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.notEqual(again.body.TransactionNumber, tx.TransactionNumber);
  await h.pos(agent, "POST", "/api/transactions/cancel/" + again.body.TransactionNumber, {});
  assert.deepEqual(h.unexpectedErrors(manager), []);
});

test("resolving asks SensePass first: a payment still payable is cancelled, a finished one is refused", async () => {
  const token = (await h.pos(agent, "POST", "/api/agent/manager/login", { pin: "2468" })).body.token;
  const auth = { Authorization: "Bearer " + token };
  const open = (await h.pos(agent, "POST", "/api/transactions/init", h.cart(orderId + "-B"))).body;
  assert.equal((await h.pos(agent, "POST", "/api/agent/transactions/" + open.TransactionNumber + "/resolve", {})).status, 401);
  const r = await h.pos(agent, "POST", "/api/agent/transactions/" + open.TransactionNumber + "/resolve", {}, auth);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.resolved, "cancelled");
  assert.equal(r.body.transaction.statusKey, "cancelled");
  const twice = await h.pos(agent, "POST", "/api/agent/transactions/" + open.TransactionNumber + "/resolve", {}, auth);
  assert.equal(twice.status, 409, JSON.stringify(twice.body));

  // SensePass unreachable: nothing is closed.
  const offline = (await h.pos(agent, "POST", "/api/transactions/init", h.cart(orderId + "-C"))).body;
  await h.control(agent, "POST", "/faults", { offline: true });
  const refused = await h.pos(agent, "POST", "/api/agent/transactions/" + offline.TransactionNumber + "/resolve", {}, auth);
  await h.control(agent, "DELETE", "/faults");
  assert.ok(refused.status >= 500, JSON.stringify(refused.body));
  const still = (await h.pos(agent, "GET", "/api/agent/transactions/" + offline.TransactionNumber)).body;
  assert.ok(["initialized", "waiting"].includes(still.statusKey), still.statusKey);
  assert.equal(still.resolvedAt, null);
});

test("a sync call waiting on a payment a manager closes is answered at once: over, not paid", async () => {
  const token = (await h.pos(agent, "POST", "/api/agent/manager/login", { pin: "2468" })).body.token;
  const order = orderId + "-S";
  // The payment the previous test left open (SensePass was offline) is cancelled first.
  const left = (await h.pos(agent, "GET", "/api/transactions/last")).body;
  if (left && left.TransactionNumber && [0, 1, 2, 10].includes(left.status)) {
    await h.pos(agent, "POST", "/api/transactions/cancel/" + left.TransactionNumber, {});
  }
  const sync = h.pos(agent, "POST", "/api/transactions/init/sync", h.cart(order, { timeOut: 600 }));
  const tx = await h.until(async () => {
    const r = (await h.pos(agent, "GET", "/api/agent/transactions?orderId=" + encodeURIComponent(order))).body;
    return (r && r.items && r.items.find((i) => i.transactionNumber)) || null;
  }, 15000, "the sync payment in the journal");
  const number = tx.transactionNumber;
  await h.control(agent, "POST", "/transactions/" + number + "/forget", {});
  const closedAt = Date.now();
  const r = await h.pos(agent, "POST", "/api/agent/transactions/" + number + "/resolve", {}, { Authorization: "Bearer " + token });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.resolved, "closed", JSON.stringify(r.body));
  const answer = await sync;
  assert.ok(Date.now() - closedAt < 5000, "answered within seconds of the close, not after the payment's 10 minutes");
  assert.equal(answer.status, 200, JSON.stringify(answer.body));
  assert.equal(answer.body.status, 9, JSON.stringify(answer.body));
  assert.equal(answer.body.closedNotPaid, true);
});
