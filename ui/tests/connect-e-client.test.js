// The sandbox's Connect-E client.js in Debian's chromium: keyed entry with the three test cards
// (including the 3-D Secure modal), a repeat payment with only the CV2, and the rejections of
// executePayment(). It runs the real `till-sandbox` binary and a one-page merchant site on
// ephemeral ports; outcomes are checked against the simulator's REST API and ground truth.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const path = require("node:path");
const fs = require("node:fs");
const readline = require("node:readline");
const { spawn } = require("node:child_process");
const h = require("./lib/harness");

const SANDBOX_BIN = process.env.TILL_SANDBOX_BIN || path.join(h.REPO, "target", "debug", "till-sandbox");

let site;
let siteUrl;
let browser;
let ce = {};
let n = 0;

function startSandbox() {
  if (!fs.existsSync(SANDBOX_BIN)) throw new Error(SANDBOX_BIN + " is missing: build it with `cargo build -p till-sandbox`");
  const child = spawn(SANDBOX_BIN, ["--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "ignore"] });
  const lines = readline.createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("till-sandbox did not start")), 30000);
    const seen = {};
    lines.on("line", (line) => {
      const i = line.indexOf("=");
      if (i > 0) seen[line.slice(0, i)] = line.slice(i + 1);
      if (seen.connect_e_url && seen.connect_e_control_url && seen.connect_e_api_key && seen.connect_e_merchant_url) {
        clearTimeout(timer);
        resolve({ child, ...seen });
      }
    });
    child.on("exit", (code) => reject(new Error("till-sandbox exited with " + code)));
  });
}

/** The merchant's checkout page: loads client.js from the provider's web host. */
function page(token, recurring) {
  const cls = recurring ? "ConnectERecurringPayment" : "ConnectE";
  return `<!doctype html><html><head><meta charset="utf-8"><title>Checkout</title></head><body>
<div id="card"></div><ul id="errors"></ul><button id="pay">Pay</button><pre id="out"></pre>
<script src="${ce.connect_e_url}/assets/js/client.js"></script>
<script>
  const show = (errs) => { document.getElementById("errors").innerHTML = errs.map((e) => "<li>" + e + "</li>").join(""); };
  const form = new Connect.${cls}({ paymentDetails: { paymentToken: ${JSON.stringify(token)} }, containerId: "card",
    onIframeLoaded: () => document.body.dataset.loaded = "1" }, show);
  document.getElementById("pay").onclick = () => form.executePayment({ userEmailAddress: "a@example.com" }).then(
    (r) => { document.getElementById("out").textContent = JSON.stringify(r); },
    (e) => { document.getElementById("out").textContent = "REJECTED " + JSON.stringify(e); });
</script></body></html>`;
}

async function api(method, p, body) {
  const r = await fetch(ce.connect_e_url + p, {
    method,
    headers: { Authorization: "Bearer " + ce.connect_e_api_key, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await r.text();
  return { status: r.status, body: text ? (() => { try { return JSON.parse(text); } catch { return text; } })() : null };
}

async function token(extra) {
  n += 1;
  const r = await api("POST", "/v1/access-tokens", Object.assign({
    merchantUrl: ce.connect_e_merchant_url, currencyCode: "826", amount: "1250", transactionType: "SALE",
    orderId: "JS-" + Date.now() + "-" + n, transactionSource: "MOTO",
  }, extra || {}));
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.id;
}

async function open(tok, recurring) {
  const p = await h.newPage(browser);
  await p.goto(siteUrl + "/checkout?token=" + encodeURIComponent(tok) + (recurring ? "&recurring=1" : ""));
  await p.waitForFunction(() => document.body.dataset.loaded === "1");
  return p;
}

async function pay(p, card) {
  await p.fill("#connect-e-card-number", card);
  await p.fill("#connect-e-expiry", "12/30");
  await p.fill("#connect-e-cv2", "020");
  await p.fill("#connect-e-name", "A Customer");
  await p.click("#pay");
}

async function result(p) {
  await p.waitForFunction(() => document.getElementById("out").textContent.length > 0);
  const text = await p.locator("#out").textContent();
  return text.startsWith("REJECTED ") ? { rejected: JSON.parse(text.slice(9)) } : JSON.parse(text);
}

before(async () => {
  ce = await startSandbox();
  site = http.createServer((req, res) => {
    const u = new URL(req.url, "http://x");
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(page(u.searchParams.get("token"), u.searchParams.get("recurring") === "1"));
  });
  await new Promise((r) => site.listen(0, "127.0.0.1", r));
  siteUrl = "http://127.0.0.1:" + site.address().port;
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (site) site.close();
  if (ce.child) ce.child.kill("SIGTERM");
});

test("the approving card pays, and the REST API confirms it", async () => {
  const tok = await token();
  const p = await open(tok);
  await pay(p, "5200 0000 0000 0056");
  const r = await result(p);
  assert.equal(r.statusCode, 0);
  assert.match(r.authCode, /^\d{6}$/);
  const details = await api("GET", "/v1/payments/" + tok);
  assert.equal(details.body.statusCode, 0);
  assert.equal(details.body.cardNumber, "520000******0056");
  assert.deepEqual(h.unexpectedErrors(p), []);
  await p.screenshot({ path: h.artifact("connect-e-client.png") });
});

test("the 3-D Secure card shows the modal, then approves", async () => {
  const tok = await token();
  const p = await open(tok);
  await pay(p, "4456530000001096");
  await p.locator("#connect-e-3ds").waitFor();
  assert.equal((await api("GET", "/v1/payments/" + tok)).body.statusCode, 3, "authorizing while the modal is open");
  await p.screenshot({ path: h.artifact("connect-e-3ds.png") });
  await p.click("#connect-e-3ds-complete");
  const r = await result(p);
  assert.equal(r.statusCode, 0);
  assert.equal(await p.locator("#connect-e-3ds").count(), 0);
  assert.equal((await api("GET", "/v1/payments/" + tok)).body.statusCode, 0);
});

test("the declining card declines; a used token rejects", async () => {
  const tok = await token();
  const p = await open(tok);
  await pay(p, "4456530000001013");
  assert.equal((await result(p)).statusCode, 5);
  // the same page again: the token is single use
  await p.evaluate(() => { document.getElementById("out").textContent = ""; });
  await p.click("#pay");
  const again = await result(p);
  assert.equal(again.rejected.statusCode, 401);
  assert.match(await p.locator("#errors").textContent(), /already used/);
});

test("missing and invalid fields are named and nothing is charged", async () => {
  const tok = await token();
  const p = await open(tok);
  await p.click("#pay");
  assert.equal((await result(p)).rejected.statusCode, 400);
  assert.match(await p.locator("#errors").textContent(), /Card number is required/);
  await p.evaluate(() => { document.getElementById("out").textContent = ""; });
  await p.fill("#connect-e-card-number", "1234");
  await p.fill("#connect-e-expiry", "13/30");
  await p.fill("#connect-e-cv2", "1");
  await p.click("#pay");
  const r = await result(p);
  assert.equal(r.rejected.statusCode, 400);
  for (const f of ["cardNumber", "expiryDate", "cv2"]) assert.match(r.rejected.message, new RegExp(f));
  assert.equal((await api("GET", "/v1/payments/" + tok)).status, 404, "the token is still unused");
});

test("a repeat payment asks only for the CV2", async () => {
  const first = await token();
  const p1 = await open(first);
  await pay(p1, "5200000000000056");
  assert.equal((await result(p1)).statusCode, 0);
  const xref = (await api("GET", "/v1/payments/" + first)).body.crossReference;
  const tok = await token({ crossReference: xref, amount: "500" });
  const p = await open(tok, true);
  assert.equal(await p.locator("#connect-e-card-number").count(), 0);
  assert.equal(await p.locator("#connect-e-cv2").count(), 1);
  await p.fill("#connect-e-cv2", "020");
  await p.click("#pay");
  assert.equal((await result(p)).statusCode, 0);
  const state = await (await fetch(ce.connect_e_control_url + "/state")).json();
  const repeat = state.payments.find((x) => x.token === tok);
  assert.equal(repeat.cv2Only, true);
  assert.equal(repeat.cardNumber, "520000******0056");
  assert.ok(!JSON.stringify(state).includes("5200000000000056"), "no full card number in the ground truth");
});
