//! End-to-end smoke test of the foundation: the real worker under `wrangler dev` answers its API,
//! serves the page with security headers, and the wasm module renders its readiness report.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startWorker, artifactsDir, TEST_SECRETS } from "../../sim/stack.mjs";
import { launchBrowser, openPage } from "../lib/browser.mjs";

const artifacts = artifactsDir();
let worker;
let browser;

before(async () => {
  worker = await startWorker({ logDir: artifacts, name: "foundation-worker" });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await worker?.stop();
});

test("health reports ok, the version and every setting by name only", async () => {
  const response = await fetch(`${worker.url}/api/v1/health`);
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /application\/json/);
  assert.equal(response.headers.get("cache-control"), "no-store");
  const text = await response.text();
  for (const value of Object.values(TEST_SECRETS)) {
    assert.ok(!text.includes(value), "health must not echo a configured value");
  }
  const health = JSON.parse(text);
  assert.equal(health.status, "ok", text);
  assert.equal(health.environment, "local");
  assert.match(health.version, /^\d+\.\d+\.\d+$/);
  assert.equal(Object.keys(health.config).length, 27);
  assert.ok(Object.values(health.config).every((state) => state === "present" || state === "default"), text);
});

test("unknown API paths are JSON 404 and wrong methods are 405 with Allow", async () => {
  const missing = await fetch(`${worker.url}/api/v1/no-such-thing`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");

  const wrongMethod = await fetch(`${worker.url}/api/v1/health`, { method: "POST" });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get("allow"), "GET");
  assert.equal((await wrongMethod.json()).error.code, "method_not_allowed");
});

test("the page is served with a strict content security policy", async () => {
  const response = await fetch(`${worker.url}/`);
  assert.equal(response.status, 200);
  const csp = response.headers.get("content-security-policy") ?? "";
  assert.match(csp, /default-src 'self'/);
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval'/);
  assert.match(csp, /frame-ancestors 'none'/);
  // connect-src: 'self' and the signaling origin of wrangler.toml's local TWILIO_SIGNALING_URL.
  const connect = csp.split(";").map((d) => d.trim()).find((d) => d.startsWith("connect-src"));
  assert.equal(connect, "connect-src 'self' ws://127.0.0.1:8788");
  const SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "permissions-policy": "microphone=(self), camera=(), geolocation=()",
    "cross-origin-opener-policy": "same-origin",
  };
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) assert.equal(response.headers.get(name), value, name);
  // The operators' page carries the same policy and headers.
  const admin = await fetch(`${worker.url}/admin.html`);
  assert.equal(admin.status, 200);
  assert.equal(admin.headers.get("content-security-policy"), csp);
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) assert.equal(admin.headers.get(name), value, `admin.html ${name}`);
  const wasm = await fetch(`${worker.url}/pkg/web_client_bg.wasm`);
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get("content-type"), "application/wasm");
});

test("the wasm module reports a granted microphone as ready", async () => {
  const context = await browser.newContext();
  await context.grantPermissions(["microphone"], { origin: worker.url });
  const { page, problems } = await openPage(context, worker.url);
  await page.waitForSelector("html[data-web-client=loaded]", { timeout: 30_000 });
  const readiness = page.locator("#readiness");
  assert.equal(await readiness.getAttribute("data-verdict"), "ready");
  assert.equal(await page.locator("#readiness li").count(), 4);
  assert.equal(await page.locator('#readiness li[data-check="webrtc"]').getAttribute("data-outcome"), "pass");
  assert.equal(await page.locator('#readiness li[data-check="microphone"]').getAttribute("data-outcome"), "pass");
  await page.waitForSelector("#service[data-status=ok]", { timeout: 10_000 });
  await page.screenshot({ path: join(artifacts, "foundation-ready.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await context.close();
});

test("without a microphone grant the report says the browser will ask", async () => {
  const promptingBrowser = await launchBrowser({ fakeMediaUi: false });
  const context = await promptingBrowser.newContext();
  const { page, problems } = await openPage(context, worker.url);
  await page.waitForSelector("html[data-web-client=loaded]", { timeout: 30_000 });
  assert.equal(await page.locator("#readiness").getAttribute("data-verdict"), "ready-after-prompt");
  assert.equal(await page.locator('#readiness li[data-check="microphone"]').getAttribute("data-outcome"), "warn");
  await page.screenshot({ path: join(artifacts, "foundation-prompt.png"), fullPage: true });
  assert.deepEqual(problems, []);
  await promptingBrowser.close();
});

test("deep health reaches every SQLite Durable Object", async () => {
  const response = await fetch(`${worker.url}/api/v1/health?deep=1`);
  const health = await response.json();
  assert.equal(response.status, 200, JSON.stringify(health));
  assert.deepEqual(health.storage, { NumberPool: "ok", CallLedger: "ok", Telemetry: "ok" });
});
