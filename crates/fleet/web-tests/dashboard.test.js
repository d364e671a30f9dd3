// The fleet dashboard in Debian's chromium (playwright-core from ui/tests, never a downloaded
// browser), against a real till-fleet on a real PostgreSQL that tests/fleet.rs started and
// filled: FLEET_URL, FLEET_TOKEN. Writes target/test-artifacts/fleet/dashboard.png, and
// docs/screenshots/fleet-dashboard.png with UPDATE_SCREENSHOTS=1.
"use strict";

const { test } = require("node:test");
const assert = require("node:assert");
const path = require("node:path");
const fs = require("node:fs");

const REPO = path.resolve(__dirname, "../../..");
const { chromium } = require(require.resolve("playwright-core", { paths: [path.join(REPO, "ui/tests")] }));
const FLEET_URL = process.env.FLEET_URL;
const TOKEN = process.env.FLEET_TOKEN;
const ARTIFACTS = path.join(REPO, "target/test-artifacts/fleet");

test("the dashboard shows stores, tills, day totals, pending refunds and finds payments", async () => {
  assert.ok(FLEET_URL && TOKEN, "FLEET_URL and FLEET_TOKEN are set by tests/fleet.rs");
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = [];
    page.on("pageerror", (e) => errors.push(String(e)));
    await page.goto(FLEET_URL);

    // A wrong token is refused and the data stays hidden.
    await page.fill("#token", "not-the-token-at-all");
    await page.click("#login button");
    await page.waitForSelector("#error:not([hidden])");
    assert.match(await page.textContent("#error"), /not accepted/);
    assert.ok(await page.isHidden("#main"));

    await page.fill("#token", TOKEN);
    await page.click("#login button");
    await page.waitForSelector("#tills tbody tr:nth-child(3)");
    const tills = await page.$$eval("#tills tbody tr", (rows) => rows.map((r) => [...r.children].map((c) => c.textContent.trim())));
    assert.deepStrictEqual(tills.map((r) => [r[0], r[1], r[2]]), [
      ["North", "Till 1", "online"],
      ["North", "Till 2", "offline"],
      ["South", "Till 1", "online"],
    ]);
    assert.match(await page.textContent("#summary"), /3 tills, 2 online/);

    await page.waitForSelector("#totals tfoot tr");
    const foot = await page.textContent("#totals tfoot");
    assert.match(foot, /Chain total \(GBP\)/);
    assert.match(foot, /45\.00 GBP/, "12.50 + 20.00 + 12.50 captured");
    const declines = await page.$$eval("#totals tbody tr", (rows) => rows.map((r) => r.children[6].textContent));
    assert.ok(declines.includes("1"), "the decline is counted");

    await page.waitForSelector("#refunds tbody tr td:nth-child(3)");
    assert.match(await page.textContent("#refunds tbody"), /refund/);

    await page.selectOption("#search-by", "last_four");
    await page.fill("#search-value", "4242");
    await page.click("#search button");
    await page.waitForSelector("#results tbody tr td:nth-child(2)");
    const found = await page.$$eval("#results tbody tr", (rows) => rows.map((r) => r.children[2].textContent));
    assert.deepStrictEqual(found, ["S-1"]);

    await page.fill("#code-store", "East");
    await page.click("#code-form button");
    await page.waitForFunction(() => document.querySelector("#code").textContent.includes("store East"));
    assert.match(await page.textContent("#code"), /^[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4} /);

    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard.png"), fullPage: true });
    if (process.env.UPDATE_SCREENSHOTS) {
      fs.copyFileSync(path.join(ARTIFACTS, "dashboard.png"), path.join(REPO, "docs/screenshots/fleet-dashboard.png"));
    }
    assert.deepStrictEqual(errors, []);
  } finally {
    await browser.close();
  }
});
