// The cashier screen and the customer display at the till screen sizes stores use (800×600 up to
// 1920×1080), touch targets, the customer's wording, cancel outcomes a cashier can act on, and
// keyboard focus after a refund.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./lib/harness");

const SIZES = [[800, 600], [1024, 768], [1280, 800], [1920, 1080]];

let agent;
let browser;
let base;
let n = 0;

function order() {
  n += 1;
  return "LAYOUT-" + Date.now() + "-" + n;
}

/** A cart with a sub-product (12.50 + 3.00 juice with free ice = 15.50). */
function bigCart(id, extra) {
  const c = h.cart(id, extra);
  c.products.push({ name: "Orange juice", amount: 300, quantity: 1, vat: 0, discount: 0, subProducts: [{ name: "Ice", amount: 0, quantity: 1 }] });
  c.amount = 1550;
  return c;
}

async function start(body) {
  const r = await h.pos(agent, "POST", "/api/transactions/init", body);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

async function cancelByPos(tx) {
  await h.pos(agent, "POST", "/api/transactions/cancel/" + tx.TransactionNumber, {});
}

/**
 * Whether the element under the centre of `selector` is that element (or inside it): false when
 * something else (the QR box, for one) covers it or it lies outside the viewport.
 */
async function reachable(page, selector) {
  return page.evaluate((sel) => {
    const el = document.querySelector(sel);
    if (!el) return "missing";
    const b = el.getBoundingClientRect();
    const x = b.left + b.width / 2;
    const y = b.top + b.height / 2;
    if (x < 0 || y < 0 || x > window.innerWidth || y > window.innerHeight) return "outside the viewport";
    const hit = document.elementFromPoint(x, y);
    return hit && (hit === el || el.contains(hit)) ? true : "covered by " + (hit ? (hit.id || hit.className || hit.tagName) : "nothing");
  }, selector);
}

/** Visible interactive elements smaller than 44 × 44 px (a radio counts by its label). */
async function smallTargets(page, scope) {
  return page.evaluate((scopeSel) => {
    const root = document.querySelector(scopeSel) || document;
    const out = [];
    for (const el of root.querySelectorAll("a[href], button, select, input, label.radio")) {
      if (el.matches("input[type=radio], input[type=checkbox]") && el.closest("label")) continue;
      if (el.closest(".sr-only, .skip, [hidden], dialog:not([open])")) continue;
      const b = el.getBoundingClientRect();
      if (b.width === 0 || b.height === 0) continue;
      if (b.height < 44 || b.width < 44) out.push((el.id || el.textContent.trim().slice(0, 24) || el.tagName) + " " + Math.round(b.width) + "×" + Math.round(b.height));
    }
    return out;
  }, scope);
}

before(async () => {
  agent = await h.startAgent("layout");
  base = await h.uiUrl(agent);
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

test("at every till screen size nothing covers the amount, status, total or Cancel", async () => {
  const tx = await start(bigCart(order()));
  try {
    for (const [width, height] of SIZES) {
      for (const view of ["cashier", "customer"]) {
        const page = await h.newPage(browser, { viewport: { width, height } });
        await page.goto(base + (view === "customer" ? "?view=customer" : "#/cashier"));
        await page.locator("#cashier-active").waitFor();
        await page.waitForFunction(() => { const i = document.getElementById("qr"); return i && i.complete && i.naturalWidth > 0; });
        const size = width + "x" + height;
        for (const sel of ["#amount", "#live-status", "#items tfoot .price", "#qr"].concat(view === "cashier" ? ["#cancel"] : [])) {
          assert.equal(await reachable(page, sel), true, view + " " + size + ": " + sel);
        }
        const qr = await page.locator("#qr").boundingBox();
        assert.ok(qr.width >= 160, view + " " + size + ": a scannable QR (" + qr.width + " px)");
        const shot = h.artifact(view + "-" + size + ".png");
        await page.screenshot({ path: shot });
        if (size === "800x600") {
          h.publish(shot, view + "-800x600.png");
          const qrShot = h.artifact(view + "-" + size + "-qr.png");
          await page.locator("#qr-box").screenshot({ path: qrShot });
          assert.deepEqual(h.decodeQr(qrShot), [tx.transactionPage.qrURL], "the QR decodes at 800×600");
        }
        assert.deepEqual(h.unexpectedErrors(page), []);
        await page.close();
      }
    }
  } finally {
    await cancelByPos(tx);
  }
});

test("a long cart keeps its total in view on the customer display at 1024×768", async () => {
  const c = h.cart(order());
  c.products = [];
  for (let i = 0; i < 14; i++) c.products.push({ name: "Item " + (i + 1), amount: 100, quantity: 1, vat: 0, discount: 0 });
  c.amount = 1400;
  const tx = await start(c);
  const page = await h.newPage(browser, { viewport: { width: 1024, height: 768 } });
  await page.goto(base + "?view=customer");
  await page.locator("#cashier-active").waitFor();
  assert.equal(await reachable(page, "#items tfoot .price"), true, "the total is visible");
  assert.equal((await page.locator("#items tfoot .price").textContent()).trim(), "€14.00");
  await page.close();
  await cancelByPos(tx);
});

test("the customer display greets with the merchant, lists sub-products and speaks to the customer", async () => {
  const page = await h.newPage(browser, { viewport: { width: 1280, height: 800 } });
  await page.goto(base + "?view=customer");
  const tx = await start(bigCart(order()));
  await page.locator("#cashier-active").waitFor();
  // The merchant (SensePass businessName), never the product's or the register's name.
  assert.equal((await page.locator(".bar .product").textContent()).trim(), tx.businessName);
  assert.equal(await page.locator("#store").isVisible(), false, "the register name is not shown to customers");
  assert.equal((await page.locator("#live-status").textContent()).trim(), "Waiting for you to pay");
  assert.match(await page.locator("#items").textContent(), /\+ Ice/);
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/customer-input", {}).catch(() => {});
  await cancelByPos(tx);
  await page.locator("#cashier-outcome[data-status=cancelled]").waitFor();
  assert.match(await page.locator("#cashier-outcome").textContent(), /No money was taken/);
  assert.doesNotMatch(await page.locator("#cashier-outcome").textContent(), /The payment was cancelled/);
  // Idle: a welcome and the merchant, nothing about pairing, managers or connections.
  await page.locator("#cashier-idle").waitFor({ timeout: 20000 });
  const idle = await page.locator("#cashier-idle").textContent();
  assert.match(idle, /Welcome/);
  assert.match(idle, new RegExp(tx.businessName));
  assert.doesNotMatch(idle, /pair|manager|Till Agent|offline/i);
  await page.close();
});

test("every touch target on the cashier screen and the outcome screen is at least 44 px", async () => {
  const page = await h.newPage(browser, { viewport: { width: 800, height: 600 } });
  await page.goto(base + "#/cashier");
  await page.locator("#cashier-idle").waitFor();
  assert.deepEqual(await smallTargets(page, "body"), [], "idle screen and header");
  const tx = await start(h.cart(order()));
  await page.locator("#cashier-active").waitFor();
  assert.deepEqual(await smallTargets(page, "body"), [], "active payment");
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/pay", { card: "4456530000001013" });
  await page.locator("#cashier-outcome[data-status=declined]").waitFor();
  assert.deepEqual(await smallTargets(page, "body"), [], "outcome");
  // After a decline the cashier is not told to serve the next customer.
  assert.equal((await page.locator("#outcome-done").textContent()).trim(), "Done");
  assert.match(await page.locator("#cashier-outcome").textContent(), /No money was taken/);
  await page.click("#outcome-done");
  await page.goto(base + "#/settings");
  await page.locator("#view-settings .panel").first().waitFor();
  assert.deepEqual(await smallTargets(page, "#view-settings"), [], "settings");
  await page.close();
});

test("Cancel asks first; the cashier can keep waiting", async () => {
  const page = await h.newPage(browser);
  await page.goto(base + "#/cashier");
  const tx = await start(h.cart(order()));
  await page.locator("#cashier-active").waitFor();
  await page.click("#cancel");
  await page.locator("#confirm[open]").waitFor();
  assert.match(await page.locator("#confirm").textContent(), /€12\.50/);
  await page.click("#confirm-no");
  await page.waitForTimeout(500);
  const still = await h.pos(agent, "GET", "/api/agent/transactions/" + tx.TransactionNumber);
  assert.equal(still.body.statusKey, "initialized", "Keep waiting changes nothing");
  await page.click("#cancel");
  await page.click("#confirm-yes");
  await page.locator("#cashier-outcome[data-status=cancelled]").waitFor();
  await page.close();
});

test("a cancel while the customer is in 3-D Secure says they are already paying, and the payment ends on screen", async () => {
  const page = await h.newPage(browser);
  await page.goto(base + "#/cashier");
  const tx = await start(h.cart(order()));
  await page.locator("#qr").waitFor();
  // The customer enters the 3-D Secure card on their phone: the payment waits in the challenge (2).
  const r = await fetch(tx.transactionPage.qrURL + "/card", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: "card=4456530000001096",
  });
  assert.ok(r.ok, "card entry " + r.status);
  await page.click("#cancel");
  await page.click("#confirm-yes");
  await page.locator("#cancel-msg", { hasText: "already paying" }).waitFor({ timeout: 15000 });
  const text = await page.locator("#cancel-msg").textContent();
  assert.doesNotMatch(text, /outcome unknown|HTTP \d|will retry/i, text);
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/approve", {});
  await page.locator("#cashier-outcome[data-status=approved]").waitFor({ timeout: 20000 });
  await page.close();
});

test("the POS's timeOut wins over a short-lived live cart: the customer gets the full time", async () => {
  const page = await h.newPage(browser);
  await page.goto(base + "#/cashier");
  const id = order();
  const cart = h.cart(id);
  cart.timeOut = 10;
  delete cart.posData;
  const shown = await h.pos(agent, "POST", "/api/transactions/products/update", cart);
  assert.equal(shown.status, 200, JSON.stringify(shown.body));
  const body = h.cart(id);
  body.timeOut = 600;
  const tx = await start(body);
  assert.notEqual(tx.TransactionNumber, shown.body.TransactionNumber, "a fresh payment");
  await page.locator("#countdown-value").waitFor();
  const left = await page.locator("#countdown-value").textContent();
  assert.match(left, /^(9:[45]\d|10:00)$/, "about ten minutes left, not the cart's seconds: " + left);
  await cancelByPos(tx);
  await page.close();
});

test("a cart update while a payment is open is refused and the payment stays on both screens", async () => {
  const page = await h.newPage(browser);
  await page.goto(base + "#/cashier");
  const tx = await start(h.cart(order()));
  await page.locator("#qr").waitFor();
  const cart = h.cart(order());
  cart.amount = 500;
  cart.products = [{ name: "Cake", amount: 500, quantity: 1, vat: 0, discount: 0 }];
  const r = await h.pos(agent, "POST", "/api/transactions/products/update", cart);
  assert.equal(r.status, 409, JSON.stringify(r.body));
  assert.equal(r.body.transactionNumber, tx.TransactionNumber);
  await page.waitForTimeout(1000);
  assert.equal(await page.locator("#qr").count(), 1, "the QR of the open payment is still shown");
  assert.equal(await page.locator("#cancel").isDisabled(), false, "and it can still be cancelled");
  assert.match(await page.locator("#amount").textContent(), /12\.50/);
  await cancelByPos(tx);
  await page.close();
});

test("a cancel while SensePass is offline is queued: no raw error, the QR is withdrawn, the button stays off", async () => {
  const page = await h.newPage(browser);
  await page.goto(base + "#/cashier");
  const tx = await start(h.cart(order()));
  await page.locator("#qr").waitFor();
  await h.control(agent, "POST", "/faults", { offline: true });
  try {
    await page.click("#cancel");
    await page.click("#confirm-yes");
    await page.locator("#cancel-msg", { hasText: "queued" }).waitFor({ timeout: 30000 });
    const text = await page.locator("#cancel-msg").textContent();
    assert.doesNotMatch(text, /tcp|os error|connect|HTTP \d/i, "no transport error reaches the cashier: " + text);
    assert.equal(await page.locator("#cancel").isDisabled(), true);
    assert.equal(await page.locator("#qr").count(), 0, "the QR is no longer scannable");
    await page.screenshot({ path: h.artifact("cashier-cancel-queued.png") });
  } finally {
    await h.control(agent, "POST", "/faults", { offline: false });
  }
  await page.locator("#cashier-outcome[data-status=cancelled]").waitFor({ timeout: 60000 });
  const after = await h.pos(agent, "GET", "/api/agent/transactions/" + tx.TransactionNumber);
  assert.equal(after.body.statusKey, "cancelled");
  await page.close();
});

test("a payment that cannot start while offline says how much, why, and that no money moved", async () => {
  const page = await h.newPage(browser);
  await page.goto(base + "#/cashier");
  await page.locator("#cashier-idle").waitFor();
  await h.control(agent, "POST", "/faults", { offline: true });
  try {
    const r = await h.pos(agent, "POST", "/api/transactions/init", h.cart(order()));
    assert.ok(r.status >= 500, "the POS hears the failure: " + r.status);
    await page.locator("#cashier-outcome", { hasText: "€12.50" }).waitFor({ timeout: 20000 });
    const text = await page.locator("#cashier-outcome").textContent();
    assert.match(text, /€12\.50/, text);
    assert.match(text, /No money was taken/, text);
    assert.match(text, /could not be reached/, text);
    assert.doesNotMatch(text, /tcp|os error|error trying/i, text);
  } finally {
    await h.control(agent, "POST", "/faults", { offline: false });
  }
  await page.close();
});

test("the manager console: 44 px targets, and keyboard focus stays on the refund after it is sent", async () => {
  const tx = await start(h.cart(order()));
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/pay", {});
  await h.until(async () => (await h.pos(agent, "GET", "/api/agent/transactions/" + tx.TransactionNumber)).body.statusKey === "approved", 15000, "approval");
  const page = await h.newPage(browser);
  await h.managerLogin(agent, page, base);
  await page.locator("#journal").waitFor();
  await page.locator("#journal tbody tr").first().waitFor();
  assert.deepEqual(await smallTargets(page, "#view-manager"), [], "journal");
  const localId = (await h.pos(agent, "GET", "/api/agent/transactions/" + tx.TransactionNumber)).body.localId;
  await page.click("#journal a[href*='" + encodeURIComponent(localId) + "']");
  await page.locator("#refund-form").waitFor();
  assert.deepEqual(await smallTargets(page, "#view-manager"), [], "payment detail, refund form and receipt buttons");
  // Keyboard only: choose a partial refund, type the amount, submit, confirm.
  await page.focus("#refund-partial");
  await page.keyboard.press("Space");
  await page.fill("#refund-amount", "1.00");
  await page.focus("#refund-submit");
  await page.keyboard.press("Enter");
  await page.locator("#confirm[open]").waitFor();
  await page.keyboard.press("Tab");
  await page.focus("#confirm-yes");
  await page.keyboard.press("Enter");
  await page.locator('#refundable[data-minor="1150"]').waitFor({ timeout: 15000 });
  await page.waitForTimeout(800);
  const focused = await page.evaluate(() => {
    const a = document.activeElement;
    return a && a !== document.body ? (a.id || a.tagName) : "body";
  });
  assert.notEqual(focused, "body", "focus did not drop to the page body");
  assert.ok(await page.evaluate(() => !!document.activeElement.closest("#refund-panel")), "focus is on the refund panel: " + focused);
  // The outcome is written beside the form; no toast covers the form's hint (point 18).
  await page.locator("#refund-msg", { hasText: "approved" }).waitFor();
  const hint = await page.locator("#refund-hint").boundingBox();
  const toast = page.locator("#toast");
  if (hint && (await toast.isVisible())) {
    const t = await toast.boundingBox();
    const overlap = t && t.x < hint.x + hint.width && hint.x < t.x + t.width && t.y < hint.y + hint.height && hint.y < t.y + t.height;
    assert.ok(!overlap, "a toast covers the refund hint: " + JSON.stringify({ t, hint }));
  }
  await page.close();
});

test("a wrong API key while pairing is shown to the manager, who stays logged in", async () => {
  const page = await h.newPage(browser);
  await h.managerLogin(agent, page, base);
  await page.goto(base + "#/settings");
  await page.locator("#pairing").waitFor();
  await page.click("#pairing summary");
  await page.check("#pm-create");
  await page.fill("#pair-api-key", "not-a-key");
  await page.fill("#pair-pos-name", "Front till");
  await page.click("#pair-submit");
  await page.locator("#pair-error:not(:empty)").waitFor();
  assert.match(await page.locator("#pair-error").textContent(), /api ?key/i);
  assert.equal(await page.locator("#pin-login").count(), 0, "not logged out");
  assert.equal(await page.locator("#pairing").isVisible(), true);
  await page.close();
});

test("pairing by a device ID SensePass does not know is refused, and the environment cannot be relabelled", async () => {
  const login = await h.pos(agent, "POST", "/api/agent/manager/login", { pin: "1111" });
  assert.equal(login.status, 200, JSON.stringify(login.body));
  const auth = { Authorization: "Bearer " + login.body.token };
  const before = (await h.pos(agent, "GET", "/api/agent/health", undefined, auth)).body;
  const bad = await h.pos(agent, "POST", "/api/agent/pairing", { method: "device", deviceId: "nonsense" }, auth);
  assert.equal(bad.status, 400, JSON.stringify(bad.body));
  assert.equal(bad.body.invalid_parameters[0].parameter, "deviceId");
  const prod = await h.pos(agent, "POST", "/api/agent/pairing", { method: "device", deviceId: before.deviceId, environment: "production" }, auth);
  assert.equal(prod.status, 400, JSON.stringify(prod.body));
  assert.equal(prod.body.invalid_parameters[0].parameter, "environment");
  const after = (await h.pos(agent, "GET", "/api/agent/health", undefined, auth)).body;
  assert.equal(after.deviceId, before.deviceId, "nothing changed");
  assert.equal(after.environment, "sandbox");
});

test("receipts: the store's local time with its offset on PDF and preview alike, NOT PAID on a cancelled payment, sub-products listed", async () => {
  const zone = "Asia/Jerusalem";
  const store = await h.startAgent("receipt-tz", { env: { TZ: zone } });
  const ui = await h.uiUrl(store);
  const page = await h.newPage(browser, { timezoneId: zone });
  try {
    const c = bigCart(order());
    const cancelled = (await h.pos(store, "POST", "/api/transactions/init", c)).body;
    await h.pos(store, "POST", "/api/transactions/cancel/" + cancelled.TransactionNumber, {});
    const paid = (await h.pos(store, "POST", "/api/transactions/init", bigCart(order()))).body;
    await h.control(store, "POST", "/transactions/" + paid.TransactionNumber + "/pay", {});
    await h.until(async () => (await h.pos(store, "GET", "/api/agent/transactions/" + paid.TransactionNumber)).body.statusKey === "approved", 15000, "approval");

    const expectedOffset = new Intl.DateTimeFormat("en-US", { timeZone: zone, timeZoneName: "longOffset" })
      .formatToParts(new Date()).find((p) => p.type === "timeZoneName").value.replace("GMT", "");
    await h.managerLogin(store, page, ui);
    for (const [tx, isPaid] of [[cancelled, false], [paid, true]]) {
      const item = (await h.pos(store, "GET", "/api/agent/transactions/" + tx.TransactionNumber)).body;
      await page.goto(ui + "#/manager/tx/" + encodeURIComponent(item.localId));
      await page.locator("#receipt-preview:not([aria-busy])").waitFor();
      const preview = await page.locator("#receipt-preview").textContent();
      const date = (await page.locator("#receipt-date").textContent()).trim();
      assert.match(date, new RegExp("^\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d " + expectedOffset.replace("+", "\\+") + "$"), date);
      assert.match(preview, /\+ 1 × Ice/, "the console lists sub-products like the cashier screen");
      // The PDF says the same, character for character.
      const res = await fetch(store.url + "/api/agent/transactions/" + item.localId + "/receipt.pdf");
      const file = h.artifact("receipt-" + (isPaid ? "paid" : "cancelled") + "-tz.pdf");
      require("node:fs").writeFileSync(file, Buffer.from(await res.arrayBuffer()));
      const pdf = h.pdfText(file);
      assert.ok(pdf.includes(date), "the PDF prints " + date + ":\n" + pdf);
      assert.doesNotMatch(pdf, / UTC\b/);
      if (isPaid) {
        assert.doesNotMatch(preview, /NOT PAID/);
        assert.doesNotMatch(pdf, /NOT PAID/);
      } else {
        assert.match(preview, /NOT PAID/);
        assert.match(preview, /Total \(not charged\)/);
        assert.match(pdf, /NOT PAID/);
        assert.match(pdf, /NOT CHARGED/);
        h.pdfToPng(file, h.artifact("receipt-cancelled-tz.png"));
      }
    }
  } finally {
    await page.close();
    await store.stop();
  }
});
