// The sandbox's Acquired Components script (acquired.js) in Debian's chromium: a customer pays a
// payment session with the 3-D Secure challenge card, picks the result in the emulator and is
// sent on, by form POST, to the session's redirect URL with the signed outcome. It runs the real
// `till-sandbox` binary and a one-page merchant site on ephemeral ports; the outcome is checked
// with the redirect hash (computed here, independently) and the simulator's ground truth.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const path = require("node:path");
const fs = require("node:fs");
const crypto = require("node:crypto");
const readline = require("node:readline");
const { spawn } = require("node:child_process");
const h = require("./lib/harness");

const SANDBOX_BIN = process.env.TILL_SANDBOX_BIN || path.join(h.REPO, "target", "debug", "till-sandbox");

let site;
let siteUrl;
let browser;
let aq = {};
let n = 0;
const returns = [];

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
      if (seen.acquired_url && seen.acquired_components_url && seen.acquired_control_url && seen.acquired_app_id && seen.acquired_app_key) {
        clearTimeout(timer);
        resolve({ child, ...seen });
      }
    });
    child.on("exit", (code) => reject(new Error("till-sandbox exited with " + code)));
  });
}

/** The customer-facing checkout: loads acquired.js from the Components host. */
function page(session) {
  return `<!doctype html><html><head><meta charset="utf-8"><title>Checkout</title></head><body style="font:16px sans-serif">
<h1>Pay £12.50</h1><div id="payment-component"></div><button id="pay">Pay</button><pre id="out"></pre>
<script src="${aq.acquired_components_url}"></script>
<script>
  const acquired = new Acquired("sandbox-public-key");
  const components = acquired.components({ session: ${JSON.stringify(session)} });
  components.create("payment", { style: { base: { color: "#111" } } }).mount("#payment-component");
  document.body.dataset.loaded = "1";
  document.getElementById("pay").onclick = () => acquired.confirmPayment({ components }).then(
    (r) => { document.getElementById("out").textContent = JSON.stringify(r); },
    (e) => { document.getElementById("out").textContent = "REJECTED " + JSON.stringify(e); });
</script></body></html>`;
}

async function api(method, p, body, token) {
  const r = await fetch(aq.acquired_url + p, {
    method,
    headers: Object.assign({ "Content-Type": "application/json" }, token ? { Authorization: "Bearer " + token } : {}),
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json().catch(() => null) };
}

async function session(amount) {
  n += 1;
  const login = await api("POST", "/login", { app_id: aq.acquired_app_id, app_key: aq.acquired_app_key });
  assert.equal(login.status, 200);
  const orderId = "JS-" + Date.now() + "-" + n;
  const r = await api("POST", "/payment-sessions", {
    transaction: { order_id: orderId, amount, currency: "gbp", capture: true },
    tds: { is_active: true, challenge_preference: "no_preference", redirect_url: siteUrl + "/return" },
    payment_methods: ["card"],
  }, login.body.access_token);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return { id: r.body.session_id, orderId };
}

const sha256 = (s) => crypto.createHash("sha256").update(s).digest("hex");

before(async () => {
  aq = await startSandbox();
  site = http.createServer((req, res) => {
    const u = new URL(req.url, "http://x");
    if (req.method === "POST" && u.pathname === "/return") {
      let body = "";
      req.on("data", (c) => { body += c; });
      req.on("end", () => {
        const fields = Object.fromEntries(new URLSearchParams(body));
        returns.push(fields);
        res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
        res.end(`<!doctype html><html><body style="font:16px sans-serif"><h1 id="done">Payment ${fields.status}</h1><pre>${JSON.stringify(fields, null, 1).replace(/</g, "&lt;")}</pre></body></html>`);
      });
      return;
    }
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end(page(u.searchParams.get("session")));
  });
  await new Promise((r) => site.listen(0, "127.0.0.1", r));
  siteUrl = "http://127.0.0.1:" + site.address().port;
  browser = await h.launchBrowser();
});

after(async () => {
  if (browser) await browser.close();
  if (site) site.close();
  if (aq.child) aq.child.kill("SIGTERM");
});

test("the challenge card: the customer authenticates and returns with a signed outcome", async () => {
  const s = await session(12.5);
  const p = await h.newPage(browser);
  await p.goto(siteUrl + "/checkout?session=" + encodeURIComponent(s.id));
  await p.waitForFunction(() => document.body.dataset.loaded === "1");
  await p.fill("#acquired-card-number", "4000 0159 7961 2025");
  await p.fill("#acquired-expiry", "12/30");
  await p.fill("#acquired-cvv", "123");
  await p.fill("#acquired-name", "A Customer");
  await p.click("#pay");
  await p.locator("#acquired-tds").waitFor();
  let state = await (await fetch(aq.acquired_control_url + "/state")).json();
  assert.equal(state.transactions[0].status, "tds_pending", "authenticating while the emulator is open");
  await p.screenshot({ path: h.artifact("acquired-3ds-challenge.png") });
  await p.click("#acquired-tds-success");
  await p.locator("#done").waitFor();
  assert.equal(await p.locator("#done").textContent(), "Payment success");
  await p.screenshot({ path: h.artifact("acquired-components.png") });
  const r = returns.at(-1);
  assert.equal(r.order_id, s.orderId);
  assert.equal(r.status, "success");
  const hash = sha256(sha256(r.status + r.transaction_id + r.order_id + r.timestamp) + aq.acquired_app_key);
  assert.equal(r.hash, hash, "the redirect is signed with the app key (§5)");
  state = await (await fetch(aq.acquired_control_url + "/state")).json();
  const tx = state.transactions.find((t) => t.transactionId === r.transaction_id);
  assert.equal(tx.status, "success");
  assert.equal(tx.amountMinor, 1250);
  assert.equal(tx.capturedMinor, 1250);
  assert.equal(tx.cardNumber, "400001******2025");
  assert.ok(!JSON.stringify(state).includes("4000015979612025"), "no full card number in the ground truth");
});

test("an expired session rejects the card and charges nothing", async () => {
  const s = await session(3);
  const r = await fetch(aq.acquired_control_url + "/clock", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ advanceSeconds: 601 }) });
  assert.equal(r.status, 200);
  const p = await h.newPage(browser);
  await p.goto(siteUrl + "/checkout?session=" + encodeURIComponent(s.id));
  await p.waitForFunction(() => document.body.dataset.loaded === "1");
  await p.fill("#acquired-card-number", "4111111111111111");
  await p.fill("#acquired-expiry", "12/30");
  await p.fill("#acquired-cvv", "123");
  await p.click("#pay");
  await p.waitForFunction(() => document.getElementById("out").textContent.length > 0);
  const text = await p.locator("#out").textContent();
  assert.ok(text.startsWith("REJECTED "), text);
  const e = JSON.parse(text.slice(9));
  assert.equal(e.invalid_parameters[0].parameter, "session_id");
  const state = await (await fetch(aq.acquired_control_url + "/state")).json();
  assert.equal(state.transactions.filter((t) => t.orderId === s.orderId).length, 0);
});
