// A payment from the POS to the manager's refund, through the real agent, its sandbox and the
// UI in headless chromium:
// POS starts a payment over HTTP → the cashier screen shows the amount and a QR whose decoded
// content is the payment URL → the sandbox customer pays → the screen shows approved → the
// manager sets a PIN, logs in, finds the payment by order ID, downloads its receipt, refunds
// part of it and sees what is left.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const h = require("./lib/harness");

let agent;
let browser;
let page;
let base;
const orderId = "UI-" + Date.now();
let number;
let qrURL;

before(async () => {
  agent = await h.startAgent("payment");
  base = await h.uiUrl(agent);
  browser = await h.launchBrowser();
  page = await h.newPage(browser);
});

after(async () => {
  if (page && h.unexpectedErrors(page).length) console.log("# page errors:\n# " + h.unexpectedErrors(page).join("\n# "));
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

test("the cashier screen is idle and names the till", async () => {
  await page.goto(base + "#/cashier");
  await page.locator("#cashier-idle").waitFor();
  const health = (await h.pos(agent, "GET", "/api/agent/health")).body;
  await page.locator(".idle-title", { hasText: health.posName }).waitFor();
  await page.locator("#conn[data-state=ok]").waitFor();
  assert.equal(await page.locator("#banner").isHidden(), true, "no offline banner while online");
});

test("a payment started by the POS appears with its amount, items and a scannable QR", async () => {
  const started = await h.pos(agent, "POST", "/api/transactions/init", h.cart(orderId));
  assert.equal(started.status, 200, JSON.stringify(started.body));
  number = started.body.TransactionNumber;
  qrURL = started.body.transactionPage.qrURL;
  assert.ok(number && qrURL);

  await page.locator("#cashier-active").waitFor({ timeout: 10000 });
  assert.equal((await page.locator("#amount").textContent()).trim(), "€12.50");
  const items = await page.locator("#items tbody tr").allTextContents();
  assert.equal(items.length, 2);
  assert.match(items[0], /2 ×\s*Flat white\s*€9\.00/);
  assert.match(items[1], /1 ×\s*Almond croissant\s*€3\.50/);
  assert.match(await page.locator("#live-status").textContent(), /Waiting/);
  assert.match(await page.locator("#countdown").textContent(), /Expires in \d+:\d\d/);
  assert.equal(await page.locator("#mismatch").count(), 0);

  const img = page.locator("#qr");
  await img.waitFor();
  await page.waitForFunction(() => {
    const i = document.getElementById("qr");
    return i && i.complete && i.naturalWidth > 0;
  }, null, { timeout: 10000 });
  assert.equal(await img.getAttribute("data-url"), qrURL);
  const box = await img.boundingBox();
  assert.ok(box.width >= 300 && box.height >= 300, "the QR is large: " + JSON.stringify(box));
  const shot = h.artifact("cashier-qr.png");
  await page.locator("#qr-box").screenshot({ path: shot });
  assert.deepEqual(h.decodeQr(shot), [qrURL], "the QR decodes to the transaction's payment URL");

  const cashier = h.artifact("cashier.png");
  await page.screenshot({ path: cashier });
  h.publish(cashier, "cashier.png");
});

test("a tap shows at once, and the QR on screen is kept, not reloaded", async () => {
  await page.evaluate(() => { document.getElementById("qr").dataset.marker = "first"; });
  await h.control(agent, "POST", "/transactions/" + number + "/tap", {});
  await page.locator("#live-status[data-status=tapped]").waitFor();
  assert.equal((await page.locator("#live-status").textContent()).trim(), "Customer opened the payment");
  assert.equal(await page.locator("#qr").getAttribute("data-marker"), "first");
  assert.equal((await page.locator("#cashier-live").textContent()).trim(), "€12.50: Customer opened the payment");
});

test("the customer pays and the cashier screen shows approved", async () => {
  await h.control(agent, "POST", "/transactions/" + number + "/pay", { card: "4111111111111111" });
  await page.locator("#cashier-outcome[data-status=approved]").waitFor({ timeout: 15000 });
  assert.equal((await page.locator("#outcome-title").textContent()).trim(), "Payment approved");
  assert.equal((await page.locator("#cashier-live").textContent()).trim(), "Payment approved, €12.50");
  assert.match(await page.locator("#cashier-outcome").textContent(), /€12\.50/);
  assert.equal(await page.locator("#qr").count(), 0, "no QR left on screen");
  await page.screenshot({ path: h.artifact("cashier-approved.png") });
});

test("the manager logs in with the PIN set on the till and finds the payment by order ID", async () => {
  await page.goto(base + "#/manager");
  await page.locator("#pin-setup").waitFor();
  h.setPin(agent, "2468");
  await page.click("#pin-recheck");
  await h.loginOnPage(page, "2468");
  await page.locator("#filters").waitFor();

  await page.fill("#f-order", orderId);
  await page.click("#filters button[type=submit]");
  const row = page.locator('#journal tbody tr[data-order-id="' + orderId + '"]');
  await row.waitFor();
  assert.equal(await page.locator("#journal tbody tr").count(), 1);
  assert.match(await row.textContent(), /€12\.50/);
  assert.match(await row.textContent(), /Approved/);
  await row.locator("a").click();
  await page.locator("#detail").waitFor();
  assert.equal((await page.locator("#detail-amount").textContent()).trim(), "€12.50");
  await page.locator("#timeline li").first().waitFor();
  assert.match(await page.locator("#timeline").textContent(), /Approved/);
  assert.match(await page.locator("#confirmations").textContent(), /1111/);
  assert.equal(await page.locator("#refundable").getAttribute("data-minor"), "1250");
});

test("the receipt downloads as a PDF showing the amount", async () => {
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.click("#receipt-download"),
  ]);
  const pdf = h.artifact("receipt-download.pdf");
  await download.saveAs(pdf);
  const bytes = fs.readFileSync(pdf);
  assert.equal(bytes.subarray(0, 4).toString("latin1"), "%PDF");
  const text = h.pdfText(pdf);
  assert.match(text, /€12\.50/);
  assert.match(text, /Flat white/);
  assert.match(text, /Almond croissant/);
  assert.match(text, /UI-\d+/);
  h.pdfToPng(pdf, h.artifact("receipt-before-refund.png"));

  // The panel previews the receipt at once and embeds the PDF itself on demand.
  assert.match(await page.locator("#receipt-preview").textContent(), /Flat white[\s\S]*Total\s*€12\.50/);
  await page.click("#receipt-show-pdf");
  const src = await page.locator("#receipt-frame").getAttribute("src");
  assert.match(src, new RegExp("/api/agent/transactions/" + number + "/receipt\\.pdf$"));
  await page.click("#receipt-show-pdf");
  await page.locator("#receipt-preview").waitFor();
});

test("a partial refund of 2.50 leaves 10.00 to refund", async () => {
  await page.check("#refund-partial");
  await page.fill("#refund-amount", "2.50");
  await page.click("#refund-submit");
  await page.locator("#confirm[open]").waitFor();
  assert.match(await page.locator("#confirm-title").textContent(), /Refund €2\.50/);
  await page.click("#confirm-yes");
  await page.locator("#refund-msg", { hasText: "approved" }).waitFor({ timeout: 15000 });
  await page.locator('#refundable[data-minor="1000"]').waitFor({ timeout: 10000 });
  assert.equal((await page.locator("#refundable").textContent()).trim(), "€10.00");
  assert.equal((await page.locator("#refunded").textContent()).trim(), "€2.50");
  await page.locator("#confirmations li", { hasText: "Refund" }).waitFor({ timeout: 10000 });
  await page.locator("#timeline li:not(.stale)", { hasText: "Partially refunded" }).first().waitFor({ timeout: 10000 });

  // The receipt now lists the refund; its rendering is the one shown in the docs.
  const res = await fetch(agent.url + "/api/agent/transactions/" + number + "/receipt.pdf");
  assert.equal(res.headers.get("content-type"), "application/pdf");
  const pdf = h.artifact("receipt.pdf");
  fs.writeFileSync(pdf, Buffer.from(await res.arrayBuffer()));
  const text = h.pdfText(pdf);
  assert.match(text, /€12\.50/);
  assert.match(text, /2\.50/);
  assert.match(text, /Refund/i);
  h.publish(h.pdfToPng(pdf, h.artifact("receipt.png")), "receipt.png");

  await page.evaluate(() => { document.getElementById("toast").hidden = true; window.scrollTo(0, 0); });
  const manager = h.artifact("manager.png");
  await page.screenshot({ path: manager, fullPage: true });
  h.publish(manager, "manager.png");

  // Asking for more than is left is refused before anything is sent.
  await page.check("#refund-partial");
  await page.fill("#refund-amount", "10.01");
  await page.click("#refund-submit");
  await page.locator("#refund-msg", { hasText: "more than" }).waitFor();
  assert.equal(await page.locator("#confirm[open]").count(), 0);
});

test("the journal, outbox and end-of-day summary show the payment and its refund", async () => {
  await page.goto(base + "#/manager");
  await page.locator("#journal tbody tr").first().waitFor();
  assert.match(await page.locator("#journal").textContent(), /Partially refunded/);
  const csv = await page.locator("#csv").getAttribute("href");
  assert.match(csv, /\/api\/agent\/transactions\.csv/);
  await page.screenshot({ path: h.artifact("manager-journal.png") });

  await page.goto(base + "#/manager/outbox");
  await page.locator("#outbox tbody tr").first().waitFor();
  assert.match(await page.locator("#outbox").textContent(), /Refund/);
  await page.screenshot({ path: h.artifact("manager-outbox.png") });

  await page.goto(base + "#/manager/summary");
  const card = page.locator('.summary-card[data-currency="EUR"]');
  await card.waitFor();
  assert.match(await card.textContent(), /€12\.50/);
  assert.match(await card.textContent(), /€2\.50/);
  assert.match(await card.textContent(), /€10\.00/);
  await page.screenshot({ path: h.artifact("manager-summary.png") });
  assert.deepEqual(h.unexpectedErrors(page), []);
});
