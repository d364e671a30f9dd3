// Offline: the banner appears whenever SensePass is unreachable, with the count of queued
// operations; a refund asked for meanwhile is queued, counted against what is left to refund,
// and delivered once the connection returns.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./lib/harness");

let agent;
let browser;
let page;
let base;
let tx;
const orderId = "OFF-" + Date.now();

before(async () => {
  agent = await h.startAgent("offline");
  base = await h.uiUrl(agent);
  browser = await h.launchBrowser();
  page = await h.newPage(browser);
});

after(async () => {
  if (page && h.unexpectedErrors(page).length) console.log("# page errors:\n# " + h.unexpectedErrors(page).join("\n# "));
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

test("an approved payment, then SensePass goes offline: the banner says so", async () => {
  await page.goto(base + "#/cashier");
  await page.locator("#cashier-idle").waitFor();
  tx = (await h.pos(agent, "POST", "/api/transactions/init", h.cart(orderId))).body;
  await page.locator("#cashier-active").waitFor();
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/pay", { card: "4111111111111111" });
  await page.locator("#cashier-outcome[data-status=approved]").waitFor();
  // Let the payment commit go out before the network does.
  await h.until(async () => {
    const ops = (await h.pos(agent, "GET", "/api/agent/outbox?state=delivered")).body.items;
    return ops.some((o) => o.kind === "commit");
  }, 15000, "the payment commit");

  assert.equal(await page.locator("#banner").isVisible(), false);
  await h.control(agent, "POST", "/faults", { offline: true });
  await page.locator("#banner", { hasText: "Offline" }).waitFor({ timeout: 15000 });
  assert.equal(await page.locator("#conn").getAttribute("data-state"), "offline");
  assert.equal(await page.locator("#queued-count").getAttribute("data-count"), "0");
});

test("a refund while offline is queued and the banner counts it", async () => {
  h.setPin(agent, "13579");
  await page.goto(base + "#/manager/tx/" + encodeURIComponent(tx.TransactionNumber));
  await h.loginOnPage(page, "13579");
  await page.locator("#detail").waitFor();
  assert.equal(await page.locator("#refundable").getAttribute("data-minor"), "1250");

  await page.check("#refund-full");
  await page.click("#refund-submit");
  await page.locator("#confirm[open]").waitFor();
  await page.click("#confirm-yes");
  await page.locator("#refund-msg", { hasText: "queued" }).waitFor({ timeout: 20000 });
  await page.locator('#queued-count[data-count="1"]').waitFor({ timeout: 10000 });
  assert.match(await page.locator("#banner").textContent(), /Queued operations: 1/);
  await page.locator('#refundable[data-minor="0"]').waitFor({ timeout: 10000 });
  assert.equal((await page.locator("#queued-refund").textContent()).trim(), "€12.50");
  assert.match(await page.locator("#refund-panel").textContent(), /Nothing is left to refund/);

  await page.evaluate(() => { document.getElementById("toast").hidden = true; });
  await page.screenshot({ path: h.artifact("offline-refund-queued.png") });

  await page.goto(base + "#/manager/outbox");
  await page.locator('#outbox tbody tr[data-state="pending"], #outbox tbody tr[data-state="in_flight"]').first().waitFor();
  assert.match(await page.locator("#outbox").textContent(), /Refund/);
  await page.screenshot({ path: h.artifact("offline-outbox.png") });
});

test("back online: the banner goes and the refund is delivered once", async () => {
  await h.control(agent, "DELETE", "/faults");
  await page.locator("#banner").waitFor({ state: "hidden", timeout: 60000 });
  await page.locator('#outbox tbody tr[data-state="delivered"]', { hasText: "Refund" }).waitFor({ timeout: 60000 });
  const refunds = (await h.pos(agent, "GET", "/api/agent/outbox")).body.items.filter((o) => o.kind === "refund");
  assert.equal(refunds.length, 1);
  assert.equal(refunds[0].state, "delivered");

  await page.goto(base + "#/manager/tx/" + encodeURIComponent(tx.TransactionNumber));
  await page.locator("#detail").waitFor();
  await page.locator("#detail .badge", { hasText: "Refunded" }).first().waitFor({ timeout: 30000 });
  assert.equal((await page.locator("#refunded").textContent()).trim(), "€12.50");
  assert.equal(await page.locator("#refundable").getAttribute("data-minor"), "0");
  assert.deepEqual(h.unexpectedErrors(page), []);
});
