// Settings and pairing: the manager PIN gate (first run, wrong PIN, change), the POS token with
// its copy button, unpairing with confirmation, and pairing again by creating a dynamic-QR device.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const h = require("./lib/harness");

let agent;
let browser;
let page;
let base;

before(async () => {
  agent = await h.startAgent("settings");
  base = await h.uiUrl(agent);
  browser = await h.launchBrowser();
  page = await h.newPage(browser);
});

after(async () => {
  if (page && h.unexpectedErrors(page).length) console.log("# page errors:\n# " + h.unexpectedErrors(page).join("\n# "));
  if (browser) await browser.close();
  if (agent) await agent.stop();
});

test("settings show the pairing to anyone and ask for a manager PIN for the rest", async () => {
  await page.goto(base + "#/settings");
  await page.locator("#pairing-status").waitFor();
  // Exactly "Paired" ("Not paired", shown before health has answered, contains it too).
  await page.locator("#paired", { hasText: /^Paired$/ }).waitFor();
  const health = (await h.pos(agent, "GET", "/api/agent/health")).body;
  // The device ID is a SensePass credential: health itself sends only its last four characters
  // to a caller without the POS token or a manager session, and the page shows just that.
  assert.match(health.deviceId, /^•••• \S{4}$/);
  assert.equal(health.deviceIdMasked, true);
  assert.equal((await page.locator("#device-id").textContent()).trim(), health.deviceId);
  await page.locator("#pin-setup").waitFor();
  assert.equal(await page.locator("#pos-token").count(), 0, "no token before a manager login");
  assert.equal(await page.locator("#pin-setup input").count(), 0, "the page cannot set the first PIN");
  const claim = await h.pos(agent, "POST", "/api/agent/manager/pin", { pin: "0000" });
  assert.equal(claim.status, 409, JSON.stringify(claim.body));
  h.setPin(agent, "4321");
  await page.click("#pin-recheck");
  await h.loginOnPage(page, "4321");
  await page.locator("#pairing").waitFor();
  const login = await h.pos(agent, "POST", "/api/agent/manager/login", { pin: "4321" });
  const full = (await h.pos(agent, "GET", "/api/agent/health", undefined, { Authorization: "Bearer " + login.body.token })).body;
  assert.equal(full.deviceIdMasked, false);
  assert.ok(full.deviceId.endsWith(health.deviceId.slice(-4)) && full.deviceId.length > 4, full.deviceId);
  await page.locator("#device-id", { hasText: full.deviceId }).waitFor();
});

test("the POS token is hidden until shown, matches the agent's and can be copied", async () => {
  await page.locator("#pos-token").waitFor();
  assert.match(await page.locator("#pos-token").textContent(), /^•+$/);
  await page.click("#token-show");
  const shown = (await page.locator("#pos-token").textContent()).trim();
  assert.match(shown, /^[0-9a-f]{64}$/);
  const login = await h.pos(agent, "POST", "/api/agent/manager/login", { pin: "4321" });
  const settings = await h.pos(agent, "GET", "/api/agent/settings", undefined, { Authorization: "Bearer " + login.body.token });
  assert.equal(shown, settings.body.posToken);
  await page.click("#token-copy");
  await page.locator("#toast", { hasText: "copied" }).waitFor();
  await page.evaluate(() => { document.getElementById("toast").hidden = true; });
  await page.screenshot({ path: h.artifact("settings.png"), fullPage: true });
});

test("unpairing asks first, then the till shows it is not paired", async () => {
  await page.click("#unpair");
  await page.locator("#confirm[open]").waitFor();
  await page.click("#confirm-no");
  await page.locator("#confirm[open]").waitFor({ state: "detached" });
  assert.equal((await h.pos(agent, "GET", "/api/agent/health")).body.paired, true, "cancel keeps the pairing");

  await page.click("#unpair");
  await page.locator("#confirm[open]").waitFor();
  // A slow agent: a health request read before the unpairing is still on its way when the page
  // asks again after it. The page must show the answer read after its change (a stale "paired"
  // once hid the pairing form for good).
  await page.route("**/api/agent/health", async (route) => {
    await new Promise((r) => setTimeout(r, 1500));
    await route.continue().catch(() => { /* the page moved on; nothing to answer */ });
  });
  await page.evaluate(() => { window.Till.refreshHealth(); });
  await page.click("#confirm-yes");
  await page.locator("#paired", { hasText: "Not paired" }).waitFor();
  await page.unrouteAll({ behavior: "wait" });
  assert.equal((await h.pos(agent, "GET", "/api/agent/health")).body.paired, false);
  await page.locator("#store", { hasText: "Not paired" }).waitFor();
  await page.locator("#pair-form").waitFor();
});

test("pairing by creating a dynamic-QR device names the till", async () => {
  await page.check("#pm-create");
  assert.equal(await page.locator("#pair-pin").isVisible(), false);
  await page.fill("#pair-api-key", "sandbox-api-key");
  await page.fill("#pair-pos-name", "Front till");
  assert.equal(await page.locator("#pair-env").getAttribute("data-environment"), "sandbox", "the environment follows the agent's configuration");
  await page.click("#pair-submit");
  await page.locator("#paired", { hasText: /^Paired$/ }).waitFor({ timeout: 15000 });
  await page.locator("#store", { hasText: "Front till" }).waitFor();
  const health = (await h.pos(agent, "GET", "/api/agent/health")).body;
  assert.equal(health.paired, true);
  assert.equal(health.posName, "Front till");
  assert.equal(health.environment, "sandbox");
});

test("a wrong PIN is refused; the PIN can be changed", async () => {
  await page.click("text=Log out");
  await page.locator("#pin-login").waitFor();
  await page.fill("#login-pin", "0000");
  await page.click("#pin-login button[type=submit]");
  await page.locator("#pin-error", { hasText: /wrong/i }).waitFor();
  await page.fill("#login-pin", "4321");
  await page.click("#pin-login button[type=submit]");
  await page.locator("#pin-change").waitFor({ state: "attached" });
  await page.click("#pin-title");
  await page.fill("#pc-current", "4321");
  await page.fill("#pc-new", "98765");
  await page.fill("#pc-again", "98765");
  await page.click("#pin-change button[type=submit]");
  await page.locator("#toast", { hasText: "PIN changed" }).waitFor();
  const old = await h.pos(agent, "POST", "/api/agent/manager/login", { pin: "4321" });
  assert.equal(old.status, 401);
  const fresh = await h.pos(agent, "POST", "/api/agent/manager/login", { pin: "98765" });
  assert.equal(fresh.status, 200);
  assert.deepEqual(h.unexpectedErrors(page), []);
});
