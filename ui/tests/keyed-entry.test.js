// The keyed-card tender of the cashier screen in Debian's chromium: the real `till-agent run
// --sandbox` (which configures the sandbox's Connect-E simulator), the agent's checkout page in a
// frame loading the simulator's client.js, the three test cards (approve, 3-D Secure, decline)
// and a repeat payment with a stored card that asks only for the CV2. Outcomes are checked
// against the agent's API and the simulator's ground truth.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./lib/harness");

const APPROVE = "5200000000000056";
const THREE_DS = "4456530000001096";
const DECLINE = "4456530000001013";
// Declined by Connect-E, approved by the FlexFactor simulator (decline recovery).
const FF_APPROVE = "4000002760003184";

let agent;
let browser;
let page;
let base;
let n = 0;

function order() {
  n += 1;
  return "KEY-" + Date.now().toString(36) + "-" + n;
}

/** The simulator's ground truth (its control API sits beside the SensePass one). */
async function truth() {
  const r = await fetch(agent.control + "/connect-e/state");
  return r.json();
}

before(async () => {
  agent = await h.startAgent("keyed");
  base = await h.uiUrl(agent);
  browser = await h.launchBrowser();
  page = await h.newPage(browser);
  await page.goto(base + "#/cashier");
  await page.locator("#keyed-open").waitFor();
});

after(async () => {
  if (page && h.unexpectedErrors(page).length) console.log("# page errors:\n# " + h.unexpectedErrors(page).join("\n# "));
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

/** Fills the tender's form and continues to card entry; returns the order id. */
async function startKeyed(amount, opts) {
  opts = opts || {};
  const id = opts.order || order();
  await page.goto(base + "#/cashier");
  await page.click("#keyed-open");
  await page.locator("#keyed-form").waitFor();
  await page.fill("#keyed-amount", amount);
  await page.fill("#keyed-order", id);
  if (opts.customer) {
    await page.fill("#keyed-customer", opts.customer);
    await page.locator("#keyed-customer").dispatchEvent("change");
    if (opts.storedCard) {
      await page.locator("#keyed-cards input[data-card]:not([data-card=''])").first().waitFor();
      await page.locator("#keyed-cards input[data-card]:not([data-card=''])").first().check();
    }
  }
  await page.click("#keyed-start");
  await page.locator("#keyed-frame").waitFor();
  return id;
}

function frame() {
  return page.frameLocator("#keyed-frame");
}

async function typeCard(number) {
  const f = frame();
  await f.locator("#connect-e-card-number").fill(number);
  await f.locator("#connect-e-expiry").fill("12/30");
  await f.locator("#connect-e-cv2").fill("020");
  await f.locator("#connect-e-name").fill("A Customer");
}

async function outcome(state) {
  const box = page.locator("#keyed-outcome");
  await box.waitFor({ timeout: 30000 });
  assert.equal(await box.getAttribute("data-state"), state, await box.textContent());
  return (await box.textContent()).trim();
}

test("an approved keyed sale (and the keyed-entry screenshot)", async () => {
  const id = await startKeyed("12.50");
  await typeCard(APPROVE);
  const shot = h.artifact("keyed-entry.png");
  await page.screenshot({ path: shot });
  h.publish(shot, "keyed-entry.png");
  await frame().locator("#checkout-pay").click();
  const text = await outcome("captured");
  assert.match(text, /Approved/);
  assert.match(text, /\*\*\*\* 0056/);
  assert.match(text, /Paymentsense Connect-E/);
  const t = await truth();
  const paid = t.payments.filter((p) => p.orderId === id);
  assert.equal(paid.length, 1);
  assert.equal(paid[0].statusCode, 0);
  await page.click("#keyed-done");
  await page.locator("#cashier-idle").waitFor();
});

test("a 3-D Secure card goes through the provider's step", async () => {
  const id = await startKeyed("30.00");
  await typeCard(THREE_DS);
  await frame().locator("#checkout-pay").click();
  await frame().locator("#connect-e-3ds-complete").click();
  await outcome("captured");
  const t = await truth();
  const p = t.payments.find((x) => x.orderId === id);
  assert.ok(p.statusHistory.includes(3), JSON.stringify(p));
  await page.click("#keyed-done");
});

test("a declined card, then another card for the same order", async () => {
  const id = await startKeyed("7.00");
  await typeCard(DECLINE);
  await frame().locator("#checkout-pay").click();
  await outcome("declined");
  await page.click("#keyed-retry");
  await page.locator("#keyed-form").waitFor();
  assert.equal(await page.inputValue("#keyed-order"), id);
  await page.click("#keyed-start");
  await page.locator("#keyed-frame").waitFor();
  await typeCard(APPROVE);
  await frame().locator("#checkout-pay").click();
  await outcome("captured");
  const t = await truth();
  assert.equal(t.tokens.filter((x) => x.orderId === id).length, 2);
  assert.equal(t.payments.filter((x) => x.orderId === id && x.statusCode === 0).length, 1);
  await page.click("#keyed-done");
});

test("a card Connect-E declines is recovered by FlexFactor, vaulted by the page itself", async () => {
  const id = await startKeyed("9.00");
  await typeCard(FF_APPROVE);
  await frame().locator("#checkout-pay").click();
  const text = await outcome("captured");
  assert.match(text, /Recovered by FlexFactor/);
  assert.match(text, /\*\*\*\* 3184/);
  // Connect-E declined it; FlexFactor rescued it once, for the whole amount.
  const t = await truth();
  assert.equal(t.payments.filter((x) => x.orderId === id && x.statusCode === 0).length, 0);
  const ff = await (await fetch(agent.control + "/flexfactor/state")).json();
  const rescued = ff.orders.filter((o) => o.rescued > 0);
  assert.equal(rescued.length, 1, JSON.stringify(ff.orders));
  assert.equal(rescued[0].rescued, 900);
  await page.click("#keyed-done");
});

test("a stored card is charged again with only its CV2", async () => {
  const customer = "ui-cust-" + Date.now();
  await startKeyed("5.00", { customer });
  await typeCard(APPROVE);
  await frame().locator("#checkout-pay").click();
  await outcome("captured");
  await page.click("#keyed-done");
  const id = await startKeyed("6.00", { customer, storedCard: true });
  const f = frame();
  await f.locator("#connect-e-cv2").waitFor();
  assert.equal(await f.locator("#connect-e-card-number").count(), 0, "no card number on a repeat payment");
  await f.locator("#connect-e-cv2").fill("020");
  await f.locator("#checkout-pay").click();
  await outcome("captured");
  const t = await truth();
  const p = t.payments.find((x) => x.orderId === id);
  assert.equal(p.cv2Only, true, JSON.stringify(p));
  await page.click("#keyed-done");
});

test("a pre-authorisation is listed on the idle screen and collected", async () => {
  const r = await h.pos(agent, "POST", "/api/agent/payments", { provider: "connect-e", kind: "preauth", amount: 4000, currency: "GBP", orderId: order() });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  // The cardholder pays on the checkout page opened on its own.
  const checkout = await h.newPage(browser);
  await checkout.goto(r.body.checkoutUrl);
  await checkout.fill("#connect-e-card-number", APPROVE);
  await checkout.fill("#connect-e-expiry", "12/30");
  await checkout.fill("#connect-e-cv2", "020");
  await checkout.fill("#connect-e-name", "A Customer");
  await checkout.click("#checkout-pay");
  await checkout.locator("main[data-state=authorized]").waitFor();
  await checkout.close();
  await h.managerLogin(agent, page, base);
  await page.goto(base + "#/cashier");
  const collect = page.locator(`[data-collect="${r.body.id}"]`);
  await collect.waitFor();
  await collect.click();
  await h.until(async () => {
    const p = await h.pos(agent, "GET", "/api/agent/payments/" + r.body.id);
    return p.body.state === "captured" && p.body.capturedAmount === 4000;
  }, 15000, "the collection");
});
