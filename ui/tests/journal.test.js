// The manager's journal: pagination and every filter (date range, status, amount, order ID),
// the CSV export of the filtered journal, and the end-of-day counts by status.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./lib/harness");

let agent;
let browser;
let page;
let base;
const prefix = "J-" + Date.now() + "-";

before(async () => {
  agent = await h.startAgent("journal");
  base = await h.uiUrl(agent);
  // 23 payments, cancelled at once: amounts 10.00, 10.50, … 21.00; the last two are approved.
  for (let i = 0; i < 23; i++) {
    const amount = 1000 + i * 50;
    const r = await h.pos(agent, "POST", "/api/transactions/init", { amount, currency: "USD", posData: { orderId: prefix + i } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    if (i >= 21) {
      await h.control(agent, "POST", "/transactions/" + r.body.TransactionNumber + "/pay", {});
      await h.until(async () => (await h.pos(agent, "GET", "/api/agent/transactions/" + r.body.TransactionNumber)).body.statusKey === "approved", 15000, "approval");
    } else {
      const c = await h.pos(agent, "POST", "/api/transactions/cancel/" + r.body.TransactionNumber, {});
      assert.equal(c.status, 200, JSON.stringify(c.body));
    }
  }
  browser = await h.launchBrowser();
  page = await h.newPage(browser);
  h.setPin(agent, "1111");
  await page.goto(base + "#/manager");
  await h.loginOnPage(page, "1111");
  await page.locator("#journal").waitFor();
});

after(async () => {
  if (page && h.unexpectedErrors(page).length) console.log("# page errors:\n# " + h.unexpectedErrors(page).join("\n# "));
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

async function rows() {
  await page.locator("#journal-count:not(:has-text('Loading'))").waitFor();
  return page.locator("#journal tbody tr").count();
}

async function search(fields) {
  await page.click("#f-reset");
  await page.locator("#journal tbody tr").first().waitFor();
  for (const [sel, value] of Object.entries(fields)) {
    if (sel === "#f-status") await page.selectOption(sel, value);
    else await page.fill(sel, value);
  }
  const response = page.waitForResponse((r) => r.url().includes("/api/agent/transactions?"));
  await page.click("#filters button[type=submit]");
  await response;
}

test("the journal pages through 20 at a time", async () => {
  assert.equal(await rows(), 20);
  assert.match(await page.locator("#journal-count").textContent(), /Showing 1–20 of 23/);
  assert.equal(await page.locator("#prev").isDisabled(), true);
  await page.click("#next");
  await page.locator("#journal-count", { hasText: "Showing 21–23 of 23" }).waitFor();
  assert.equal(await rows(), 3);
  assert.equal(await page.locator("#next").isDisabled(), true);
  await page.click("#prev");
  await page.locator("#journal-count", { hasText: "Showing 1–20 of 23" }).waitFor();
});

test("filters: status, amount range, order ID and dates", async () => {
  await search({ "#f-status": "approved" });
  await page.locator("#journal-count", { hasText: "of 2" }).waitFor();
  assert.equal(await rows(), 2);

  await search({ "#f-min": "20.00", "#f-max": "20.50" });
  await page.locator("#journal-count", { hasText: "of 2" }).waitFor();
  const text = await page.locator("#journal tbody").textContent();
  assert.match(text, /\$20\.00/);
  assert.match(text, /\$20\.50/);

  await search({ "#f-order": prefix + "7" });
  await page.locator("#journal-count", { hasText: "of 1" }).waitFor();
  assert.match(await page.locator("#journal tbody").textContent(), /\$13\.50/);

  const today = new Date().toISOString().slice(0, 10);
  const tomorrow = new Date(Date.now() + 86400000).toISOString().slice(0, 10);
  await search({ "#f-from": today, "#f-to": today });
  await page.locator("#journal-count", { hasText: "of 23" }).waitFor();
  await search({ "#f-from": tomorrow });
  await page.locator("#journal-count", { hasText: "No transactions match" }).waitFor();
  assert.equal(await page.locator("#journal tbody tr").count(), 0);

  await page.fill("#f-from", "");
  await page.fill("#f-min", "ten");
  await page.click("#filters button[type=submit]");
  await page.locator("#f-error", { hasText: "Amounts must be numbers" }).waitFor();
});

test("the CSV export carries the filters", async () => {
  await search({ "#f-status": "approved" });
  await page.locator("#journal-count", { hasText: "of 2" }).waitFor();
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#csv")]);
  const file = h.artifact("journal.csv");
  await download.saveAs(file);
  const lines = require("node:fs").readFileSync(file, "utf8").trim().split(/\r?\n/);
  assert.equal(lines.length, 3, "a header and two approved rows: " + lines.join(" | "));
  assert.ok(lines.slice(1).every((l) => l.includes("approved")));
  // The export is the manager's: without the session the agent refuses it.
  const anon = await fetch(agent.url + "/api/agent/transactions.csv");
  assert.equal(anon.status, 401);
  await page.goto(base + "#/manager/summary");
  const [daily] = await Promise.all([page.waitForEvent("download"), page.click("#summary-csv")]);
  assert.match(daily.suggestedFilename(), /^transactions-\d{4}-\d{2}-\d{2}\.csv$/);
  await page.goto(base + "#/manager");
  await page.locator("#journal").waitFor();
});

test("the end-of-day summary counts by status", async () => {
  await page.goto(base + "#/manager/summary");
  const card = page.locator('.summary-card[data-currency="USD"]');
  await card.waitFor();
  const text = await card.textContent();
  assert.match(text, /23 transactions/);
  assert.match(text, /\$41\.50/, "approved 20.50 + 21.00");
  assert.match(text, /Taken in 2 payments\s*\$41\.50/, "the money taken says how many payments it is");
  assert.match(text, /Payments by status now/);
  assert.match(text, /Cancelled\s*21/);
  assert.match(text, /Approved\s*2/);
  await page.screenshot({ path: h.artifact("manager-summary-usd.png") });
  assert.deepEqual(h.unexpectedErrors(page), []);
});

test("Failed also finds payments never created at SensePass; order search takes any part, any case", async () => {
  // SensePass unreachable: the payment is journaled, then certainly not created.
  await h.control(agent, "POST", "/faults", { offline: true });
  const r = await h.pos(agent, "POST", "/api/transactions/init", { amount: 777, currency: "USD", posData: { orderId: prefix + "Offline-A" } });
  await h.control(agent, "DELETE", "/faults");
  assert.notEqual(r.status, 200, JSON.stringify(r.body));
  await page.goto(base + "#/manager");
  await page.locator("#journal").waitFor();
  await search({ "#f-status": "failed" });
  await page.locator("#journal-count", { hasText: "of 1" }).waitFor();
  const row = page.locator("#journal tbody tr").first();
  assert.equal(await row.getAttribute("data-order-id"), prefix + "Offline-A");
  assert.equal(await row.locator(".badge").getAttribute("data-status"), "failed");

  await search({ "#f-order": ("offline-a").toUpperCase() });
  await page.locator("#journal-count", { hasText: "of 1" }).waitFor();
  await search({ "#f-order": prefix.toLowerCase() + "2" });
  // J-…-2 and J-…-20, -21, -22: any part of the order ID, whatever its case.
  await page.locator("#journal-count", { hasText: "of 4" }).waitFor();

  await page.goto(base + "#/manager/summary");
  const card = page.locator('.summary-card[data-currency="USD"]');
  await card.waitFor();
  assert.match(await card.textContent(), /Failed\s*1/);
  assert.doesNotMatch(await card.textContent(), /Not created/);
  assert.deepEqual(h.unexpectedErrors(page), []);
});
