// Settings → Receipt printer: bad settings are refused field by field and change nothing; a
// printer that answers is saved, shows in the till's status, and the test page reaches it. The
// printer is a TCP server on a loopback port that records the ESC/POS bytes it receives. Then the
// customer display choice in the same Settings page (the desktop app follows it; see
// scripts/smoke-customer-display.sh for the window itself), and a printer out of paper on the
// cashier screen (the banner, in health's words) but never on the customer's; a reprint of the
// merchant's copy from the manager console.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const net = require("node:net");
const h = require("./lib/harness");

let agent;
let browser;
let page;
let base;
let printer;
let received = Buffer.alloc(0);
// What the fake printer's paper sensor says (DLE EOT 4): 0x12 paper present, 0x72 paper end.
let paperSensor = 0x12;

before(async () => {
  printer = net.createServer((socket) => {
    socket.on("data", (chunk) => {
      // Answer ESC/POS real-time status queries (DLE EOT n) with "ready"; record the rest.
      const kept = [];
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] === 0x10 && chunk[i + 1] === 0x04) {
          socket.write(Buffer.from([chunk[i + 2] === 4 ? paperSensor : 0x12]));
          i += 2;
          continue;
        }
        kept.push(chunk[i]);
      }
      received = Buffer.concat([received, Buffer.from(kept)]);
    });
    socket.on("error", () => {});
  });
  await new Promise((r) => printer.listen(0, "127.0.0.1", r));
  agent = await h.startAgent("printer");
  base = await h.uiUrl(agent);
  browser = await h.launchBrowser();
  page = await h.newPage(browser);
  h.setPin(agent, "2468");
});

after(async () => {
  if (page && h.unexpectedErrors(page).length) console.log("# page errors:\n# " + h.unexpectedErrors(page).join("\n# "));
  if (browser) await browser.close();
  if (agent) await agent.stop();
  if (printer) printer.close();
});

test("bad printer settings are named in Settings and change nothing", async () => {
  await page.goto(base + "#/settings");
  await h.loginOnPage(page, "2468");
  await page.locator("#printer-form").waitFor();
  // A port nothing listens on, and an unknown code page: both named, in one answer.
  const free = net.createServer();
  await new Promise((r) => free.listen(0, "127.0.0.1", r));
  const port = free.address().port;
  await new Promise((r) => free.close(r));
  await page.fill("#printer-url", "tcp://127.0.0.1:" + port);
  await page.fill("#printer-pages", "wpc1252, klingon");
  await page.click("#printer-save");
  await page.locator('#printer-error li[data-field="codePages"]', { hasText: "klingon" }).waitFor();
  // The code page is fixed: now the unreachable host is what is left.
  await page.fill("#printer-pages", "wpc1252");
  await page.click("#printer-save");
  await page.locator('#printer-error li[data-field="url"]', { hasText: "not reachable" }).waitFor();
  await page.fill("#printer-url", "file:///etc/hostname");
  await page.click("#printer-save");
  await page.locator('#printer-error li[data-field="url"]', { hasText: "not a device file or a FIFO" }).waitFor();
  const state = (await h.pos(agent, "GET", "/api/agent/printer")).body;
  assert.equal(state.settings.url, null, "nothing was saved");
  await page.click("#printer-test");
  await page.locator("#printer-error", { hasText: /no receipt printer/i }).waitFor();
});

test("a printer that answers is saved, shown, and prints the test page", async () => {
  await page.fill("#printer-url", "tcp://127.0.0.1:" + printer.address().port);
  await page.selectOption("#printer-columns", "32");
  await page.click("#printer-save");
  await page.locator("#toast", { hasText: "Printer settings saved" }).waitFor();
  const state = (await h.pos(agent, "GET", "/api/agent/printer")).body;
  assert.equal(state.settings.columns, 32);
  await page.click("#printer-test");
  await h.until(async () => received.includes(Buffer.from("Printer test")), 15000, "the test page at the printer");
  // GS V: the page was cut.
  assert.ok(received.includes(Buffer.from([0x1d, 0x56])), "cut");
  await page.locator("#printer-summary", { hasText: "printer: ready" }).waitFor({ timeout: 15000 });
  await page.screenshot({ path: h.artifact("settings-printer.png"), fullPage: true });
  // The refused saves above answered 400/503 on purpose; nothing else may have failed.
  assert.deepEqual(h.unexpectedErrors(page).filter((e) => !/status of (400|503)/.test(e)), []);
});

test("the customer display is chosen in Settings, and nothing but its two choices is taken", async () => {
  await page.goto(base + "#/settings");
  await page.locator("#customer-display").waitFor();
  await h.until(async () => (await page.inputValue("#customer-display")) === "second_screen", 5000, "the default choice shown");
  await page.selectOption("#customer-display", "off");
  await page.locator("#toast", { hasText: "Customer display: Off." }).waitFor();
  assert.equal((await h.pos(agent, "GET", "/api/agent/display")).body.customerDisplay, "off");

  // The API refuses anything else, naming the field, and changes nothing; the POS token is not enough.
  const login = await h.pos(agent, "POST", "/api/agent/manager/login", { pin: "2468" });
  const manager = { Authorization: "Bearer " + login.body.token };
  const bad = await h.pos(agent, "POST", "/api/agent/display", { customerDisplay: "third_screen" }, manager);
  assert.equal(bad.status, 400);
  assert.equal(bad.body.invalid_parameters[0].parameter, "customerDisplay");
  const pos = await h.pos(agent, "POST", "/api/agent/display", { customerDisplay: "second_screen" });
  assert.equal(pos.status, 401);
  assert.equal((await h.pos(agent, "GET", "/api/agent/display")).body.customerDisplay, "off");

  // Shown as saved when Settings is opened again, and turned back on from there.
  await page.goto(base + "#/cashier");
  await page.goto(base + "#/settings");
  await page.locator("#customer-display").waitFor();
  await h.until(async () => (await page.inputValue("#customer-display")) === "off", 5000, "the saved choice shown");
  await page.selectOption("#customer-display", "second_screen");
  await page.locator("#toast", { hasText: "Customer display: On the second screen" }).waitFor();
  assert.equal((await h.pos(agent, "GET", "/api/agent/display")).body.customerDisplay, "second_screen");
});

test("a printer out of paper shows on the cashier screen, not on the customer's, until it prints; the console reprints", async () => {
  // The printer saved by the test above runs out of paper; a payment is approved and its receipt waits.
  paperSensor = 0x72;
  const before = received.length;
  const tx = (await h.pos(agent, "POST", "/api/transactions/init", h.cart("PAPER-1"))).body;
  await h.control(agent, "POST", "/transactions/" + tx.TransactionNumber + "/pay", { card: "4111111111111111" });
  await page.goto(base + "#/cashier");
  await page.locator("#printer-trouble", { hasText: "Printer: out of paper, 1 receipt waiting" }).waitFor({ timeout: 20000 });
  await page.locator("#toast").waitFor({ state: "hidden", timeout: 15000 }).catch(() => {}); // the last test's toast
  const shot = h.artifact("cashier-printer-out-of-paper.png");
  await page.screenshot({ path: shot });
  h.publish(shot, "cashier-printer-out-of-paper.png");
  const customer = await h.newPage(browser);
  await customer.goto(base + "?view=customer");
  await customer.locator("body.customer").waitFor();
  await customer.waitForTimeout(1500);
  assert.equal(await customer.locator("#printer-trouble").count(), 0, "the customer is not told about the printer");
  await customer.close();
  assert.equal(received.length, before, "nothing printed while out of paper");
  // Paper back: the receipt prints, and the banner goes.
  paperSensor = 0x12;
  await h.until(async () => received.subarray(before).includes(Buffer.from("PAPER-1")), 20000, "the receipt after the paper is back");
  await page.locator("#printer-trouble").waitFor({ state: "detached", timeout: 20000 });

  // The manager console reprints the merchant's copy through the same queue.
  const record = (await h.pos(agent, "GET", "/api/agent/transactions/" + tx.TransactionNumber)).body;
  const mark = received.length;
  await page.goto(base + "#/manager/tx/" + encodeURIComponent(record.localId));
  await page.click("#receipt-reprint-merchant");
  await page.locator("#toast", { hasText: "The merchant copy is in the printer queue." }).waitFor();
  await h.until(async () => received.subarray(mark).includes(Buffer.from("MERCHANT COPY")), 20000, "the merchant copy from the console");
  assert.ok(received.subarray(mark).includes(Buffer.from("PAPER-1")), "the reprint is of that payment");
});
