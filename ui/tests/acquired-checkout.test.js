// The customer's card checkout of an Acquired payment session in Debian's chromium: the real
// `till-agent run --sandbox` (which configures the sandbox's Acquired simulator), the agent's
// checkout page loading the simulator's Components script, a 3-D Secure challenge the customer
// passes, and the outcome the page shows only after the agent confirmed it with Acquired. A
// declined card is shown as declined with no charge. Checked against the agent's API and the
// simulator's ground truth.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./lib/harness");

const CHALLENGE = "4000015979612025";
const DECLINE = "4000000000009995";

let agent;
let browser;
let page;

async function truth() {
  return (await fetch(agent.control + "/acquired/state")).json();
}

async function session(order, amount) {
  const r = await h.pos(agent, "POST", "/api/agent/payments", { provider: "acquired", kind: "sale", amount, currency: "GBP", orderId: order, moto: false });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  assert.ok(r.body.checkoutUrl, JSON.stringify(r.body));
  return r.body;
}

async function typeCard(number) {
  await page.fill("#acquired-card-number", number);
  await page.fill("#acquired-expiry", "12/30");
  await page.fill("#acquired-cvv", "123");
  const name = page.locator("#acquired-name");
  if (await name.count()) await name.fill("A Customer");
}

before(async () => {
  agent = await h.startAgent("acquired");
  browser = await h.launchBrowser();
  page = await h.newPage(browser, { viewport: { width: 1024, height: 768 } });
});

after(async () => {
  if (page && h.unexpectedErrors(page).length) console.log("# page errors:\n# " + h.unexpectedErrors(page).join("\n# "));
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

test("the customer pays a session with a 3-D Secure challenge; the page shows what Acquired confirmed", async () => {
  const order = "AQ-UI-" + Date.now();
  const p = await session(order, 1250);
  await page.goto(p.checkoutUrl);
  await page.locator("#acquired-card-number").waitFor();
  assert.match(await page.locator("#checkout-amount").textContent(), /12\.50 GBP/);
  await typeCard(CHALLENGE);
  await page.click("#checkout-pay");
  await page.locator("#acquired-tds").waitFor();
  await page.screenshot({ path: h.artifact("acquired-challenge.png") });
  await page.click("#acquired-tds-success");
  await page.locator('#checkout[data-state="captured"]').waitFor({ timeout: 20000 });
  assert.equal((await page.locator("#checkout-status").textContent()).trim(), "Payment approved");
  const shot = h.artifact("acquired-checkout.png");
  await page.screenshot({ path: shot });
  h.publish(shot, "acquired-checkout.png");
  const agentView = (await h.pos(agent, "GET", "/api/agent/payments/" + p.id)).body;
  assert.equal(agentView.state, "captured");
  assert.equal(agentView.capturedAmount, 1250);
  const txs = (await truth()).transactions.filter((t) => t.orderId === order);
  assert.equal(txs.length, 1, JSON.stringify(txs));
  assert.equal(txs[0].capturedMinor, 1250);
  assert.deepEqual(h.unexpectedErrors(page), []);
});

test("a declined card is shown as declined and nothing is charged", async () => {
  const order = "AQ-UI-D-" + Date.now();
  const p = await session(order, 990);
  await page.goto(p.checkoutUrl);
  await page.locator("#acquired-card-number").waitFor();
  await typeCard(DECLINE);
  await page.click("#checkout-pay");
  await page.locator('#checkout[data-state="declined"]').waitFor({ timeout: 20000 });
  const agentView = (await h.pos(agent, "GET", "/api/agent/payments/" + p.id)).body;
  assert.equal(agentView.state, "declined");
  assert.match(JSON.stringify(agentView.decline), /insufficient_funds/);
  const txs = (await truth()).transactions.filter((t) => t.orderId === order);
  assert.ok(txs.every((t) => t.capturedMinor === 0), JSON.stringify(txs));
});
