// The cashier screen's other paths: the customer-facing display, cancel, a declined card, a
// cart that does not add up, and a QR that expires (removed at once, never left scannable).
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./lib/harness");

let agent;
let browser;
let page;
let customer;
let base;
let n = 0;

function order() {
  n += 1;
  return "CASH-" + Date.now() + "-" + n;
}

async function start(body) {
  const r = await h.pos(agent, "POST", "/api/transactions/init", body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

before(async () => {
  agent = await h.startAgent("cashier");
  base = await h.uiUrl(agent);
  browser = await h.launchBrowser();
  page = await h.newPage(browser);
  customer = await h.newPage(browser, { viewport: { width: 1280, height: 800 } });
  await page.goto(base + "#/cashier");
  await customer.goto(base + "?view=customer");
  await page.locator("#cashier-idle").waitFor();
  await customer.locator("#cashier-idle").waitFor();
});

after(async () => {
  for (const p of [page, customer]) if (p && h.unexpectedErrors(p).length) console.log("# page errors:\n# " + h.unexpectedErrors(p).join("\n# "));
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

test("the customer display shows only the amount, items, QR and status", async () => {
  assert.equal((await customer.locator(".idle-title").textContent()).trim(), "Welcome");
  assert.equal(await customer.locator("#nav").isVisible(), false);
  const tx = await start(h.cart(order()));
  await customer.locator("#cashier-active").waitFor();
  await page.locator("#cashier-active").waitFor();
  assert.equal((await customer.locator("#amount").textContent()).trim(), "€12.50");
  assert.equal(await customer.locator("#cancel").count(), 0, "no cashier controls on the customer's screen");
  assert.equal(await customer.locator("#banner").isVisible(), false);
  await customer.waitForFunction(() => {
    const i = document.getElementById("qr");
    return i && i.complete && i.naturalWidth > 0;
  });
  const box = await customer.locator("#qr").boundingBox();
  assert.ok(box.width >= 400, "the customer's QR is larger: " + box.width);
  const shot = h.artifact("customer-qr.png");
  await customer.locator("#qr-box").screenshot({ path: shot });
  assert.deepEqual(h.decodeQr(shot), [tx.transactionPage.qrURL]);
  await customer.screenshot({ path: h.artifact("customer.png") });

  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/pay", { card: "5200000000000056" });
  await customer.locator("#cashier-outcome[data-status=approved]").waitFor();
  assert.match(await customer.locator("#cashier-outcome").textContent(), /Thank you/);
  await page.locator("#cashier-outcome[data-status=approved]").waitFor();
  await page.click("#outcome-done");
  await page.locator("#cashier-idle").waitFor();
  await page.locator(".last-payment", { hasText: "€12.50" }).waitFor();
});

test("a live cart shows its items without a QR; the payment then takes over", async () => {
  const id = order();
  const cartBody = h.cart(id);
  delete cartBody.posData;
  cartBody.products = cartBody.products.slice(0, 1);
  cartBody.amount = 900;
  const r = await h.pos(agent, "POST", "/api/transactions/products/update", cartBody);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  await page.locator('#qr-box[data-reason="cart"]').waitFor();
  assert.equal((await page.locator("#amount").textContent()).trim(), "€9.00");
  assert.equal(await page.locator("#qr").count(), 0, "a cart is not payable: no QR");
  assert.equal(await page.locator("#cancel").isDisabled(), true);

  const tx = await start(h.cart(id));
  await page.locator("#qr").waitFor();
  assert.equal((await page.locator("#amount").textContent()).trim(), "€12.50");
  assert.equal(await page.locator("#qr").getAttribute("data-url"), tx.transactionPage.qrURL);
  await page.click("#cancel");
  await page.click("#confirm-yes");
  await page.locator("#cashier-outcome[data-status=cancelled]").waitFor();
  await page.click("#outcome-done");
});

test("the cashier cancels a waiting payment", async () => {
  const tx = await start(h.cart(order()));
  await page.locator("#cashier-active").waitFor();
  await page.click("#cancel");
  await page.click("#confirm-yes");
  await page.locator("#cashier-outcome[data-status=cancelled]").waitFor();
  assert.equal((await page.locator("#outcome-title").textContent()).trim(), "Payment cancelled");
  await customer.locator("#cashier-outcome[data-status=cancelled]").waitFor();
  const after = await h.pos(agent, "GET", "/api/agent/transactions/" + tx.TransactionNumber);
  assert.equal(after.body.statusKey, "cancelled");
  await page.click("#outcome-done");
});

test("a declined card shows the declined outcome", async () => {
  const tx = await start(h.cart(order()));
  await page.locator("#cashier-active").waitFor();
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/pay", { card: "4456530000001013" });
  await page.locator("#cashier-outcome[data-status=declined]").waitFor();
  assert.equal((await page.locator("#outcome-title").textContent()).trim(), "Payment declined");
  await page.screenshot({ path: h.artifact("cashier-declined.png") });
  await page.click("#outcome-done");
});

test("a cart that does not add up to the amount is flagged", async () => {
  const tx = await start(h.cart(order(), { amount: 1300 }));
  await page.locator("#cashier-active").waitFor();
  await page.locator("#mismatch").waitFor();
  assert.equal((await page.locator("#amount").textContent()).trim(), "€13.00");
  await page.click("#cancel");
  await page.click("#confirm-yes");
  await page.locator("#cashier-outcome[data-status=cancelled]").waitFor();
  assert.ok(tx.productSumMismatch);
  await page.click("#outcome-done");
});

test("the QR disappears at its expiry even when SensePass cannot report the timeout", async () => {
  await start(h.cart(order(), { timeOut: 10 }));
  await page.locator("#cashier-active").waitFor();
  await page.locator("#qr").waitFor();
  // SensePass goes offline: the timeout status cannot arrive, so the screen must act alone.
  await h.control(agent, "POST", "/faults", { offline: true });
  await page.locator("#banner", { hasText: "Offline" }).waitFor({ timeout: 15000 });
  await page.locator('#qr-box[data-reason="expired"]').waitFor({ timeout: 15000 });
  assert.equal(await page.locator("#qr").count(), 0, "no scannable QR after the expiry");
  assert.match(await page.locator("#qr-box").textContent(), /QR code expired/);
  await customer.locator('#qr-box[data-reason="expired"]').waitFor({ timeout: 5000 });
  assert.equal(await customer.locator("#qr").count(), 0);
  await page.screenshot({ path: h.artifact("cashier-expired.png") });

  // Back online: the agent learns the timeout and the outcome follows.
  await h.control(agent, "DELETE", "/faults");
  await page.locator("#cashier-outcome[data-status=timed_out]").waitFor({ timeout: 60000 });
  assert.equal((await page.locator("#outcome-title").textContent()).trim(), "Payment timed out");
  await page.locator("#banner").waitFor({ state: "hidden", timeout: 30000 });
});

test("the outcome screen returns to idle by itself", async () => {
  await page.locator("#cashier-idle").waitFor({ timeout: 15000 });
  assert.deepEqual(h.unexpectedErrors(page), []);
  assert.deepEqual(h.unexpectedErrors(customer), []);
});
