//! End-to-end: the admin call statistics (`GET /api/v1/admin/call-stats`) and the operator page www/admin.html that draws them, in Chromium under the page's CSP, at full width and at 320 px.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startWorker, artifactsDir, freePort, TEST_SECRETS } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { signedPost, newCallSid, rfc2822 } from "../lib/twilio.mjs";
import { launchBrowser, openPage } from "../lib/browser.mjs";
import { waitFor } from "../lib/wait.mjs";

const artifacts = artifactsDir();
const POOL = ["+447700900001", "+447700900002"];
/** The calls placed: appointment, outcome, talk time (completed only). */
const CALLS = [
  ["appt-mobile", "completed", 95],
  ["appt-landline", "busy"],
  ["appt-formatted", "no-answer"],
  ["appt-dashes", "completed", 40],
];
let medplum;
let worker;
let browser;
/** The caller IDs the voice webhook chose, one per call placed. */
const callerIds = [];

before(async () => {
  medplum = await startMedplumServer({ port: await freePort(), clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
  worker = await startWorker({
    logDir: artifacts,
    name: "admin-stats-worker",
    vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_CALLER_IDS: POOL.join(",") },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await medplum?.close();
});

const STATS = () => `${worker.url}/api/v1/admin/call-stats`;
const webhook = (name) => `${worker.url}/api/v1/twilio/webhooks/${name}`;

async function stats(token = TEST_SECRETS.ADMIN_TOKEN) {
  return fetch(STATS(), { headers: token ? { authorization: `Bearer ${token}` } : {} });
}

/** One browser call to `appointment`, reported by Twilio through to `outcome`. */
async function call(appointment, outcome, talkSeconds) {
  const parentSid = newCallSid();
  const childSid = newCallSid();
  const voice = await signedPost(webhook("voice"), {
    AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, ApiVersion: "2010-04-01", CallSid: parentSid,
    CallStatus: "ringing", Direction: "inbound", From: "client:clinician-ada", To: "", AppointmentId: appointment,
  });
  assert.equal(voice.status, 200);
  const twiml = await voice.text();
  const callerId = twiml.match(/<Dial callerId="([^"]+)"/)?.[1];
  assert.ok(callerId, `the call was dialled: ${twiml}`);
  callerIds.push(callerId);
  const t0 = Date.now() - 120_000;
  const at = (s) => new Date(t0 + s * 1000);
  const events = [["initiated", 0, at(0)], ["ringing", 1, at(1)]];
  if (outcome === "completed") events.push(["in-progress", 2, at(5)], ["completed", 3, at(5 + talkSeconds)]);
  else events.push([outcome, 2, at(20)]);
  for (const [status, sequence, when] of events) {
    const params = {
      AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, CallSid: childSid, ParentCallSid: parentSid, CallStatus: status,
      SequenceNumber: String(sequence), Timestamp: rfc2822(when), CallbackSource: "call-progress-events",
      Direction: "outbound-dial", From: callerId, To: "+447700900123",
    };
    if (status === "completed") params.CallDuration = String(talkSeconds);
    const response = await signedPost(`${webhook("call-status")}?appointment=${appointment}`, params);
    assert.equal(response.status, 200, await response.text());
  }
}

/** A fresh page on admin.html that also records CSP violations (in `window.cspViolations`). */
async function adminPage(viewport = { width: 1100, height: 900 }) {
  const context = await browser.newContext({ viewport });
  await context.addInitScript(() => {
    window.cspViolations = [];
    document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  const { page, problems } = await openPage(context, `${worker.url}/admin.html`);
  await page.getByRole("heading", { level: 1, name: "Call statistics" }).waitFor();
  return { context, page, problems };
}

/** Types the token and submits with the keyboard; waits for the status to settle. */
async function submitToken(page, token) {
  const input = page.getByLabel("Admin token", { exact: true });
  await input.fill(token);
  await input.press("Enter");
  await page.locator('#stats-status:not([data-state="loading"])').waitFor();
  return page.locator("#stats-status").innerText();
}

async function assertClean(page, problems) {
  assert.deepEqual(await page.evaluate(() => window.cspViolations), [], "no CSP violations");
  assert.deepEqual(problems, [], "no console errors");
  assert.ok(!page.url().includes(TEST_SECRETS.ADMIN_TOKEN), "the token is never in the URL");
  const stored = await page.evaluate(() => localStorage.length + sessionStorage.length + document.cookie.length);
  assert.equal(stored, 0, "nothing kept in storage or cookies");
}

test("the statistics need the admin token and have overall, per-number and per-day parts", async () => {
  const none = await stats(null);
  assert.equal(none.status, 401);
  assert.match(none.headers.get("content-type") ?? "", /application\/json/);
  assert.equal(typeof (await none.json()).error?.code, "string");
  assert.equal((await stats("not-the-admin-token")).status, 401);
  const ok = await stats();
  assert.equal(ok.status, 200);
  const body = await ok.json();
  assert.equal(typeof body.overall, "object");
  assert.ok(Array.isArray(body.perNumber));
  assert.ok(Array.isArray(body.perDay));
  assert.equal(body.overall.calls, 0, "a fresh worker has no calls yet");
  assert.equal(body.overall.answerRate, null);
});

test("before any call the page says that no calls are recorded yet", async () => {
  const { context, page, problems } = await adminPage();
  const csp = await page.evaluate(async () => (await fetch(location.href)).headers.get("content-security-policy"));
  assert.match(csp ?? "", /script-src 'self'/, "served under the page CSP");
  assert.equal(await submitToken(page, TEST_SECRETS.ADMIN_TOKEN), "No calls recorded yet.");
  assert.ok(await page.locator("#stats-empty").isVisible());
  assert.equal(await page.locator("#charts").isVisible(), false);
  await assertClean(page, problems);
  await context.close();
});

test("the page shows the figures and one bar per day and per number, at full width and at 320 px", async () => {
  for (const [appointment, outcome, talk] of CALLS) await call(appointment, outcome, talk);
  const body = await waitFor("the calls in the statistics", async () => {
    const current = await (await stats()).json();
    return current.overall?.calls >= CALLS.length ? current : null;
  }, 30_000, 250);
  assert.equal(body.overall.calls, CALLS.length);
  assert.equal(body.overall.answered, 2);
  assert.equal(body.overall.answerRate, 0.5);
  assert.equal(body.overall.medianDurationSeconds, 67, "median of 95 s and 40 s");
  assert.equal(body.overall.outcomes.busy, 1);
  assert.equal(body.overall.outcomes["no-answer"], 1);
  assert.equal(body.perDay.length, 1, "all today");
  assert.deepEqual(body.perNumber.map((n) => n.poolNumber).sort(), [...new Set(callerIds)].sort());

  const { context, page, problems } = await adminPage();
  const status = await submitToken(page, TEST_SECRETS.ADMIN_TOKEN);
  assert.match(status, /^Statistics loaded: 4 calls, 50% answered\.$/);
  assert.equal(await page.locator("#figure-calls").innerText(), "4");
  assert.equal(await page.locator("#figure-answered").innerText(), "2");
  assert.equal(await page.locator("#figure-answer-rate").innerText(), "50%");
  assert.equal(await page.locator('#figure-median [aria-hidden="true"]').innerText(), "1:07");
  assert.equal(await page.locator("#figure-median .visually-hidden").textContent(), "1 minute 7 seconds");
  assert.equal(await page.getByLabel("Admin token", { exact: true }).inputValue(), "", "the input is cleared once accepted");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "overview-title", "focus moves to the results");

  // The charts: one bar group per day and per number, labelled, with segments by outcome.
  const perDay = page.locator("svg#chart-per-day");
  const perNumber = page.locator("svg#chart-per-number");
  assert.equal(await perDay.locator("g.bar").count(), body.perDay.length);
  assert.equal(await perNumber.locator("g.bar").count(), body.perNumber.length);
  assert.equal(await perDay.getAttribute("role"), "img");
  assert.equal(await perDay.getAttribute("aria-labelledby"), "chart-per-day-title");
  assert.equal(await perDay.locator("title#chart-per-day-title").textContent(), "Calls per day, split by outcome");
  assert.deepEqual(
    (await perDay.locator("g.bar rect.seg").evaluateAll((rects) => rects.map((r) => r.dataset.outcome))),
    ["completed", "busy", "no-answer"],
    "segments in legend order",
  );
  for (const number of body.perNumber) {
    assert.equal(await perNumber.locator(`g.bar[data-key="${number.poolNumber}"]`).count(), 1, number.poolNumber);
  }
  // The table equivalents carry the same numbers for screen readers.
  assert.equal(await page.locator("#per-day-table tbody tr").count(), body.perDay.length);
  assert.equal(await page.locator("#per-number-table tbody tr").count(), body.perNumber.length);
  const dayRow = await page.locator("#per-day-table tbody tr").first().locator("td").allTextContents();
  assert.deepEqual(dayRow.slice(0, 3), ["4", "2", "50%"]);
  assert.equal(await page.getByRole("table", { name: "Calls per day, by outcome" }).count(), 1);
  // The legend says each outcome's pattern in words.
  assert.match(await page.locator(".legend").innerText(), /Busy: diagonal stripes/);
  // The table can be shown from the keyboard.
  const toggle = page.locator(".chart-section").first().locator(".table-toggle");
  await toggle.focus();
  await page.keyboard.press("Enter");
  assert.equal(await toggle.getAttribute("aria-pressed"), "true");
  assert.ok((await page.locator("#per-day-table").boundingBox()).width > 100, "the table is visible once asked for");
  await page.keyboard.press("Enter");
  await page.screenshot({ path: join(artifacts, "admin-stats.png"), fullPage: true });

  await page.setViewportSize({ width: 320, height: 900 });
  await page.waitForFunction(() => document.querySelector("#chart-per-day .bar-summary")?.getAttribute("dy") !== null);
  // With a table shown too: a wide table scrolls inside its own box, never the page.
  await toggle.click();
  assert.equal(await page.locator(".chart-section").first().locator(".table-wrap").getAttribute("tabindex"), "0", "the shown table can be scrolled from the keyboard");
  const overflow = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth }));
  assert.ok(overflow.scroll <= 320, `no horizontal scroll at 320 px: ${JSON.stringify(overflow)}`);
  const textFits = await page.evaluate(() => {
    const svg = document.getElementById("chart-per-number");
    const width = svg.getBoundingClientRect().width;
    return [...svg.querySelectorAll("text")].every((t) => t.getBBox().width <= width);
  });
  assert.ok(textFits, "every bar label fits the chart at 320 px");
  await page.screenshot({ path: join(artifacts, "admin-stats-320.png"), fullPage: true });
  await assertClean(page, problems);
  await context.close();
});

test("a wrong token is not accepted, and forgetting the token hides the statistics", async () => {
  const { context, page, problems } = await adminPage();
  assert.equal(await submitToken(page, "not-the-admin-token"), "That admin token was not accepted.");
  assert.equal(await page.locator("#stats").isVisible(), false);
  assert.equal(await page.getByLabel("Admin token", { exact: true }).getAttribute("aria-invalid"), "true");
  // The reason is tied to the field: a screen reader reads it with the field.
  assert.equal(await page.getByLabel("Admin token", { exact: true }).getAttribute("aria-describedby"), "token-hint stats-status");
  assert.equal(await page.evaluate(() => document.activeElement?.id), "admin-token", "focus stays on the token to retype it");
  assert.match(await submitToken(page, TEST_SECRETS.ADMIN_TOKEN), /^Statistics loaded/);
  await page.getByRole("button", { name: "Forget the token" }).click();
  assert.equal(await page.locator("#stats").isVisible(), false);
  assert.match(await page.locator("#stats-status").innerText(), /forgotten/);
  // The refused attempt logs a 401 for the API request; nothing else may be logged.
  const unexpected = problems.filter((p) => !/status of 401/.test(p));
  assert.deepEqual(unexpected, [], "no other console errors");
  assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
  await context.close();
});

test("an unavailable service shows its message, and an unreachable one says so", async () => {
  const { context, page, problems } = await adminPage();
  await page.route("**/api/v1/admin/call-stats", (route) => route.fulfill({
    status: 503, contentType: "application/json",
    body: JSON.stringify({ error: { code: "storage_unavailable", message: "Call records are unavailable right now; try again shortly" } }),
  }));
  assert.equal(await submitToken(page, TEST_SECRETS.ADMIN_TOKEN), "Call records are unavailable right now; try again shortly");
  await page.unroute("**/api/v1/admin/call-stats");
  await page.route("**/api/v1/admin/call-stats", (route) => route.abort("connectionrefused"));
  assert.equal(await submitToken(page, TEST_SECRETS.ADMIN_TOKEN), "The call service cannot be reached.");
  const unexpected = problems.filter((p) => !/status of 503|net::ERR_CONNECTION_REFUSED|Failed to fetch/.test(p));
  assert.deepEqual(unexpected, [], "no other console errors");
  assert.deepEqual(await page.evaluate(() => window.cspViolations), []);
  await context.close();
});
