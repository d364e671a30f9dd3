// Test harness of the browser tests: the real `till-agent run --sandbox` on an ephemeral loopback
// port, Debian's chromium driven by playwright-core, and small helpers (POS calls, the sandbox's
// control API, zbarimg, pdftotext, screenshots).
"use strict";

const { spawn, execFileSync } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");
const readline = require("node:readline");
const { chromium } = require("playwright-core");

const REPO = path.resolve(__dirname, "..", "..", "..");
const UI_DIR = path.join(REPO, "ui");
const ARTIFACTS = path.join(REPO, "target", "test-artifacts", "ui");
const SCREENSHOTS = path.join(REPO, "docs", "screenshots");
const AGENT_BIN = process.env.TILL_AGENT_BIN || path.join(REPO, "target", "debug", "till-agent");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** Waits until `fn()` returns a truthy value (polling), or throws after `ms`. */
async function until(fn, ms, what) {
  const deadline = Date.now() + (ms || 10000);
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error("timed out waiting for " + (what || "a condition") + (last ? ": " + last.message : ""));
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Starts `till-agent run --sandbox` with its own data directory and an empty config file;
 * `opts.env` adds environment variables (e.g. `TZ`).
 * Resolves {url, api, control, dir, stop()} once its stdout has named both addresses.
 */
async function startAgent(name, opts) {
  if (!fs.existsSync(AGENT_BIN)) {
    throw new Error(AGENT_BIN + " is missing: build it first with `cargo build -p till-agent`");
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "till-ui-" + (name || "test") + "-"));
  const config = path.join(dir, "none.toml");
  fs.writeFileSync(config, "");
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("TILL_AGENT_")) env[k] = v;
  env.RUST_LOG = env.RUST_LOG || "info";
  Object.assign(env, (opts && opts.env) || {});
  const stderr = fs.openSync(path.join(dir, "agent.stderr"), "w");
  const child = spawn(AGENT_BIN, ["run", "--sandbox", "--listen", "127.0.0.1:0", "--data-dir", dir, "--config", config], {
    stdio: ["ignore", "pipe", stderr],
    env,
  });
  const info = { dir, config, child, url: null, api: null, control: null };
  const lines = readline.createInterface({ input: child.stdout });
  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("till-agent did not start in 60 s; see " + dir + "/agent.stderr")), 60000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error("till-agent exited with " + code + "; see " + dir + "/agent.stderr"));
    });
    lines.on("line", (line) => {
      let m;
      if ((m = /^till-agent listening on (http:\/\/\S+)/.exec(line))) info.url = m[1];
      if ((m = /^sandbox SensePass API:\s*(\S+)/.exec(line))) info.api = m[1];
      if ((m = /^sandbox control API:\s*(\S+)/.exec(line))) info.control = m[1].replace(/\/+$/, "");
      if (info.url && info.control) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  await ready;
  child.removeAllListeners("exit");
  // Stops the agent and deletes its data directory (kept with UI_TESTS_KEEP=1, for its logs).
  info.stop = async () => {
    if (child.exitCode === null) {
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await gone;
      clearTimeout(t);
    }
    if (process.env.UI_TESTS_KEEP !== "1") fs.rmSync(dir, { recursive: true, force: true });
  };
  await until(async () => (await fetch(info.url + "/api/agent/health")).ok, 20000, "the agent's health");
  return info;
}

const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png" };

/**
 * UI_TESTS_PROXY=1: serves ui/ from the working tree and forwards /api/ to the agent, so UI work
 * needs no agent rebuild (an agent that embeds ui/ at build time serves the files it was built
 * with). The forwarded requests carry the agent's own Origin, as its pages would.
 */
function startProxy(agent) {
  const http = require("node:http");
  const target = new URL(agent.url);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url, "http://x");
    if (url.pathname.startsWith("/api/")) {
      const headers = Object.assign({}, req.headers, { host: target.host });
      if (headers.origin) headers.origin = target.origin;
      delete headers.referer;
      const up = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers }, (r) => {
        res.writeHead(r.statusCode, r.headers);
        r.pipe(res);
      });
      up.on("error", () => { res.writeHead(502); res.end(); });
      req.pipe(up);
      res.on("close", () => up.destroy());
      return;
    }
    const name = url.pathname === "/" ? "index.html" : path.basename(url.pathname);
    const file = path.join(UI_DIR, name);
    if (!fs.existsSync(file) || !fs.statSync(file).isFile()) { res.writeHead(404); res.end("not found"); return; }
    res.writeHead(200, { "Content-Type": TYPES[path.extname(name)] || "application/octet-stream", "Cache-Control": "no-store" });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => {
    agent.proxy = server;
    const stop = agent.stop;
    agent.stop = async () => { server.closeAllConnections(); server.close(); await stop(); };
    resolve("http://127.0.0.1:" + server.address().port + "/");
  }));
}

/** The UI's address: the agent serves ui/ itself at `/` (or the test proxy, see startProxy). */
async function uiUrl(agent) {
  if (process.env.UI_TESTS_PROXY === "1") return startProxy(agent);
  const res = await fetch(agent.url + "/", { headers: { Accept: "text/html" } });
  const text = await res.text();
  if (!res.ok || !text.includes("<title>Till Agent</title>")) {
    throw new Error("the agent does not serve the UI at / (HTTP " + res.status + ")");
  }
  return agent.url + "/";
}

/** Debian's chromium, headless; never a downloaded browser. `extraArgs`: more command-line flags. */
async function launchBrowser(extraArgs) {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"].concat(extraArgs || []),
  });
}

/** A 1024×768 page in US English, logging the page's console errors to the test output. */
async function newPage(browser, opts) {
  const context = await browser.newContext(Object.assign({
    viewport: { width: 1024, height: 768 },
    locale: "en-US",
    timezoneId: "UTC",
    acceptDownloads: true,
  }, opts || {}));
  const page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.errors = [];
  page.on("pageerror", (e) => page.errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") page.errors.push("console: " + m.text()); });
  return page;
}

/**
 * The page's errors that point at a bug: uncaught exceptions and console errors, less the
 * browser's own report of an HTTP error status the UI expected and handled (a wrong PIN's 401).
 */
function unexpectedErrors(page) {
  return page.errors.filter((e) => !/Failed to load resource: the server responded with a status of (401|404|409|422)/.test(e)
    && !/ERR_CONNECTION|net::ERR_/.test(e));
}

/** A JSON call to the agent, as the POS would make it. */
async function pos(agent, method, p, body, headers) {
  const res = await fetch(agent.url + p, {
    method,
    headers: Object.assign({ "Content-Type": "application/json", Accept: "application/json" }, headers || {}),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch (_) { json = text; }
  return { status: res.status, body: json };
}

/** A call to the sandbox's control API (customer actions, faults). */
async function control(agent, method, p, body) {
  const res = await fetch(agent.control + p, {
    method,
    headers: { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error("control " + method + " " + p + " → " + res.status + " " + text);
  return text ? JSON.parse(text) : null;
}

/** Decodes the QR codes in a PNG with zbarimg; returns the decoded strings. */
function decodeQr(file) {
  const out = execFileSync("zbarimg", ["--raw", "-q", file], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  return out.split("\n").map((s) => s.trim()).filter(Boolean);
}

/** The text of a PDF, by pdftotext. */
function pdfText(file) {
  return execFileSync("pdftotext", ["-layout", file, "-"], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Renders the first page of a PDF to `png` (100 dpi) with pdftoppm. */
function pdfToPng(file, png) {
  const prefix = png.replace(/\.png$/, "");
  execFileSync("pdftoppm", ["-png", "-r", "100", "-f", "1", "-l", "1", "-singlefile", file, prefix], { stdio: ["ignore", "pipe", "pipe"] });
  return prefix + ".png";
}

/** Copies an artefact to docs/screenshots/ when UPDATE_SCREENSHOTS=1. */
function publish(file, name) {
  if (process.env.UPDATE_SCREENSHOTS === "1") {
    fs.mkdirSync(SCREENSHOTS, { recursive: true });
    fs.copyFileSync(file, path.join(SCREENSHOTS, name));
  }
}

/** target/test-artifacts/ui/<name>, its folder created. */
function artifact(name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  return path.join(ARTIFACTS, name);
}

/** A POS cart: 2 × 4.50 + 1 × 3.50 = 12.50. */
function cart(orderId, extra) {
  return Object.assign({
    amount: 1250,
    currency: "EUR",
    isCent: true,
    posData: { orderId },
    products: [
      { name: "Flat white", amount: 450, quantity: 2, vat: 0, discount: 0 },
      { name: "Almond croissant", amount: 350, quantity: 1, vat: 0, discount: 0 },
    ],
  }, extra || {});
}

/**
 * Sets the manager PIN the way a till's owner does: `till-agent manager set-pin --sandbox`, with
 * the PIN on stdin (the page cannot set the first PIN).
 */
function setPin(agent, pin) {
  execFileSync(AGENT_BIN, ["manager", "set-pin", "--sandbox", "--data-dir", agent.dir, "--config", agent.config], {
    input: pin + "\n",
    env: Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("TILL_AGENT_"))),
    stdio: ["pipe", "ignore", "inherit"],
  });
}

/** Logs in on the PIN gate shown in `page`. */
async function loginOnPage(page, pin) {
  await page.locator("#pin-login").waitFor();
  await page.fill("#login-pin", pin);
  await page.click("#pin-login button[type=submit]");
}

/**
 * Opens the manager console and logs in, first setting the manager PIN the way a till's owner
 * does (once per agent, through the CLI). Leaves the page on the manager console.
 */
async function managerLogin(agent, page, base, pin) {
  pin = pin || "1111";
  if (agent.managerPin !== pin) {
    setPin(agent, pin);
    agent.managerPin = pin;
  }
  await page.goto(base + "#/manager");
  const login = page.locator("#pin-login, #logout");
  await login.first().waitFor();
  if (!(await page.locator("#logout").count())) {
    await page.fill("#login-pin", pin);
    await page.click("#pin-login button[type=submit]");
  }
  await page.locator("#logout").waitFor();
}

module.exports = {
  setPin, loginOnPage, managerLogin,
  REPO, UI_DIR, ARTIFACTS, until, unexpectedErrors, startAgent, uiUrl, launchBrowser, newPage, pos, control,
  decodeQr, pdfText, pdfToPng, publish, artifact, cart,
};
