// The Acquired checkout page renews its session shortly before the 10 minutes are over, in
// Debian's chromium: the page's clock is moved on (Playwright's clock) and the agent's clock runs
// 9 minutes ahead (TILL_AGENT_TEST_CLOCK_OFFSET_MS), so the session is in its last minutes for
// both. An idle page asks the agent for a fresh session and reloads on it; the customer pays the
// new one; the simulator holds two sessions for the order and one charge. A page whose customer
// has pressed Pay does not renew.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./lib/harness");

const APPROVE = "4111111111111111";
const CHALLENGE = "4000015979612025";

let agent;
let browser;

async function truth() {
  return (await fetch(agent.control + "/acquired/state")).json();
}

before(async () => {
  agent = await h.startAgent("session-renewal", { env: { TILL_AGENT_TEST_CLOCK_OFFSET_MS: "540000" } });
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

async function checkout(order) {
  const r = await h.pos(agent, "POST", "/api/agent/payments", { provider: "acquired", kind: "sale", amount: 640, currency: "GBP", orderId: order, moto: false });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const page = await h.newPage(browser);
  await page.clock.install();
  await page.goto(r.body.checkoutUrl);
  await page.locator("#acquired-card-number").waitFor();
  return { page, payment: r.body };
}

test("an idle checkout renews its session before it expires; the customer pays the new one, once", async () => {
  const order = "AQ-RN-" + Date.now();
  const { page, payment } = await checkout(order);
  const first = await page.locator("#checkout").getAttribute("data-session");
  // Nine minutes on the page: the session has less than 90 s left.
  await page.clock.fastForward("09:05");
  await h.until(async () => {
    const s = await page.locator("#checkout").getAttribute("data-session").catch(() => null);
    return s && s !== first;
  }, 15000, "the page reloaded on a new session");
  await page.locator("#acquired-card-number").waitFor();
  await page.fill("#acquired-card-number", APPROVE);
  await page.fill("#acquired-expiry", "12/30");
  await page.fill("#acquired-cvv", "123");
  const name = page.locator("#acquired-name");
  if (await name.count()) await name.fill("A Customer");
  await page.click("#checkout-pay");
  await page.locator('#checkout[data-state="captured"]').waitFor({ timeout: 20000 });
  const view = (await h.pos(agent, "GET", "/api/agent/payments/" + payment.id)).body;
  assert.equal(view.state, "captured");
  const t = await truth();
  assert.equal(t.sessions.filter((s) => s.orderId === order).length, 2, "the old and the fresh session");
  const txs = t.transactions.filter((x) => x.orderId === order);
  assert.equal(txs.length, 1, JSON.stringify(txs));
  assert.equal(txs[0].capturedMinor, 640);
  assert.deepEqual(h.unexpectedErrors(page), []);
  await page.close();
});

test("a checkout whose customer pressed Pay does not renew; the payment ends on its session", async () => {
  const order = "AQ-RN-P-" + Date.now();
  const { page, payment } = await checkout(order);
  const first = await page.locator("#checkout").getAttribute("data-session");
  // The customer pressed Pay and is in the 3-D Secure challenge when the minutes run out.
  await page.fill("#acquired-card-number", CHALLENGE);
  await page.fill("#acquired-expiry", "12/30");
  await page.fill("#acquired-cvv", "123");
  const name = page.locator("#acquired-name");
  if (await name.count()) await name.fill("A Customer");
  await page.click("#checkout-pay");
  await page.locator("#acquired-tds").waitFor();
  await page.clock.fastForward("09:05");
  await page.clock.runFor(15000);
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(await page.locator("#checkout").getAttribute("data-session"), first, "the page stayed on its session");
  assert.equal((await truth()).sessions.filter((s) => s.orderId === order).length, 1, "no fresh session was made");
  await page.click("#acquired-tds-success");
  await page.locator('#checkout[data-state="captured"]').waitFor({ timeout: 20000 });
  const txs = (await truth()).transactions.filter((x) => x.orderId === order);
  assert.equal(txs.length, 1, JSON.stringify(txs));
  assert.equal((await h.pos(agent, "GET", "/api/agent/payments/" + payment.id)).body.state, "captured");
  await page.close();
});
