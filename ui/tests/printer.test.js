// Settings → Receipt printer: bad settings are refused field by field and change nothing; a
// printer that answers is saved, shows in the till's status, and the test page reaches it. The
// printer is a TCP server on a loopback port that records the ESC/POS bytes it receives.
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

before(async () => {
  printer = net.createServer((socket) => {
    socket.on("data", (chunk) => {
      // Answer ESC/POS real-time status queries (DLE EOT n) with "ready"; record the rest.
      const kept = [];
      for (let i = 0; i < chunk.length; i++) {
        if (chunk[i] === 0x10 && chunk[i + 1] === 0x04) { socket.write(Buffer.from([0x12])); i += 2; continue; }
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
