// An Acquired payment session followed live on the customer display and the cashier screen, in
// Debian's chromium against the real `till-agent run --sandbox`: the POS creates the session, the
// customer display shows the total and the card form; the cart changes (the POS's PATCH) and the
// display shows — and the card form pays — the new total; the customer passes a 3-D Secure
// challenge; both screens show the outcome the agent confirmed with Acquired. A declined card
// shows the reason on the cashier screen. Checked against the simulator's ground truth.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { execFileSync } = require("node:child_process");
const h = require("./lib/harness");

const CHALLENGE = "4000015979612025";
const DECLINE = "4000000000009995";

let agent;
let browser;
let customer;
let cashier;
let token;

async function truth() {
  return (await fetch(agent.control + "/acquired/state")).json();
}

async function session(order, amount) {
  const r = await h.pos(agent, "POST", "/api/agent/payments", { provider: "acquired", kind: "sale", amount, currency: "GBP", orderId: order, moto: false });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return r.body;
}

async function typeCard(frame, number) {
  await frame.locator("#acquired-card-number").fill(number);
  await frame.locator("#acquired-expiry").fill("12/30");
  await frame.locator("#acquired-cvv").fill("123");
  const name = frame.locator("#acquired-name");
  if (await name.count()) await name.fill("A Customer");
}

before(async () => {
  agent = await h.startAgent("customer-checkout");
  const bin = process.env.TILL_AGENT_BIN || path.join(h.REPO, "target", "debug", "till-agent");
  token = execFileSync(bin, ["token", "--data-dir", agent.dir, "--config", agent.config]).toString().trim();
  browser = await h.launchBrowser();
  const base = await h.uiUrl(agent);
  customer = await h.newPage(browser, { viewport: { width: 1024, height: 768 } });
  await customer.goto(base + "?view=customer#/cashier");
  cashier = await h.newPage(browser, { viewport: { width: 1024, height: 768 } });
  await cashier.goto(base + "#/cashier");
  // Both screens are connected to the event stream before the POS starts.
  await h.until(async () => (await customer.evaluate(() => !!document.querySelector("#view-cashier").childElementCount)), 10000, "customer display ready");
  await customer.waitForTimeout(500);
});

after(async () => {
  for (const p of [customer, cashier]) {
    if (p && h.unexpectedErrors(p).length) console.log("# page errors:\n# " + h.unexpectedErrors(p).join("\n# "));
  }
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

test("the customer display follows an Acquired session: new total, 3-D Secure, approved on both screens", async () => {
  const order = "AQ-CD-" + Date.now();
  const p = await session(order, 1250);
  await customer.locator('#card-session[data-state="pending"]').waitFor();
  assert.match(await customer.locator("#card-session-amount").textContent(), /12\.50/);
  let frame = customer.frameLocator("#card-session-frame");
  await frame.locator("#acquired-card-number").waitFor();
  assert.match(await frame.locator("#checkout-amount").textContent(), /12\.50 GBP/);
  await cashier.locator('#card-session[data-state="pending"]').waitFor();
  assert.match(await cashier.locator("#card-session-state").textContent(), /Waiting for the customer/);
  assert.equal(await cashier.locator("#card-session-frame").count(), 0, "the card form is the customer's, not the cashier's");

  // The cart changes: a delivery charge. The display shows the new total and its card form pays it.
  const changed = await h.pos(agent, "PATCH", "/api/agent/payments/" + p.id, { amount: 1500 }, { Authorization: "Bearer " + token });
  assert.equal(changed.status, 200, JSON.stringify(changed.body));
  await h.until(async () => /15\.00/.test(await customer.locator("#card-session-amount").textContent()), 10000, "new total on the display");
  frame = customer.frameLocator("#card-session-frame");
  await h.until(async () => /15\.00 GBP/.test(await frame.locator("#checkout-amount").textContent().catch(() => "")), 10000, "new total in the card form");
  assert.match(await cashier.locator("#card-session-amount").textContent(), /15\.00/);

  await typeCard(frame, CHALLENGE);
  const form = h.artifact("customer-display-acquired-form.png");
  await customer.screenshot({ path: form });
  h.publish(form, "customer-display-acquired-form.png");
  await frame.locator("#checkout-pay").click();
  await frame.locator("#acquired-tds").waitFor();
  await frame.locator("#acquired-tds-success").click();
  await customer.locator('#card-session[data-state="captured"]').waitFor({ timeout: 20000 });
  assert.match(await customer.locator("#card-session-state").textContent(), /Thank you/);
  await cashier.locator('#card-session[data-state="captured"]').waitFor({ timeout: 10000 });
  assert.equal((await cashier.locator("#card-session-state").textContent()).trim(), "Approved");
  const shot = h.artifact("customer-display-acquired.png");
  await customer.screenshot({ path: shot });
  h.publish(shot, "customer-display-acquired.png");

  const txs = (await truth()).transactions.filter((t) => t.orderId === order);
  assert.equal(txs.length, 1, JSON.stringify(txs));
  assert.equal(txs[0].capturedMinor, 1500, "the updated amount was charged, once");
  assert.deepEqual(h.unexpectedErrors(customer), []);
  assert.deepEqual(h.unexpectedErrors(cashier), []);
});

test("a declined card: the customer is told, the cashier sees the reason, nothing is charged", async () => {
  const order = "AQ-CD-D-" + Date.now();
  await session(order, 990);
  await customer.locator('#card-session[data-state="pending"]').waitFor();
  const frame = customer.frameLocator("#card-session-frame");
  await frame.locator("#acquired-card-number").waitFor();
  await typeCard(frame, DECLINE);
  await frame.locator("#checkout-pay").click();
  await customer.locator('#card-session[data-state="declined"]').waitFor({ timeout: 20000 });
  assert.match(await customer.locator("#card-session-state").textContent(), /declined/i);
  await cashier.locator('#card-session[data-state="declined"]').waitFor({ timeout: 10000 });
  assert.match(await cashier.locator("#card-session-reason").textContent(), /insufficient/i);
  const txs = (await truth()).transactions.filter((t) => t.orderId === order);
  assert.ok(txs.every((t) => t.capturedMinor === 0), JSON.stringify(txs));
});
