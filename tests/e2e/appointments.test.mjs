//! End-to-end: the call panel's appointment list (`GET /api/v1/appointments?date=`), the panel
//! entry in `GET /api/v1/appointments/{id}/call`, the signaling URL handed out with the calling
//! token, and the page's per-environment Content-Security-Policy, through the real worker under
//! `wrangler dev` against the local Medplum (sim/medplum).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startWorker, artifactsDir, freePort, TEST_SECRETS } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { appointments as FIXTURE_APPOINTMENTS, appointmentPeriod, seedDate, PHONE_SCAN_PATTERNS, PATIENT_NAMES } from "../../sim/medplum/fixtures.mjs";

const artifacts = artifactsDir();
let medplum;
let worker;
let signalingPort;
let signalingUrl;

before(async () => {
  medplum = await startMedplumServer({ port: await freePort(), clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
  // As a test running sim/twilio on a free port would: the worker is told where signaling is.
  signalingPort = await freePort();
  signalingUrl = `ws://127.0.0.1:${signalingPort}/signal`;
  worker = await startWorker({
    logDir: artifacts,
    name: "appointments-worker",
    vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_SIGNALING_URL: signalingUrl },
  });
});

after(async () => {
  await worker?.stop();
  await medplum?.close();
});

async function signIn(practitioner) {
  const response = await fetch(`${medplum.url}/auth/dev-login`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner }),
  });
  assert.equal(response.status, 200);
  return (await response.json()).access_token;
}

async function listAppointments(bearer, query = "") {
  const response = await fetch(`${worker.url}/api/v1/appointments${query}`, {
    headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

const refusal = (code) => ({ code, message: MESSAGES[code] });
// The panel's wording, from shared::call_refusal::CallRefusal::display.
const MESSAGES = {
  country_not_allowed: "Browser calls to this country are not enabled. Dial the patient by hand.",
  number_blocked: "The number is in a premium-rate or special range, which the browser never dials.",
  number_missing: "The patient has no phone number on record.",
};

/** What the list must say for each of clinician-ada's phone appointments (fixtures.mjs), in start order. */
const ADA = [
  ["mobile", "Test Patient Mobile", "+447700900123", "07700 900123", null],
  ["landline", "Test Patient Landline", "+442079460123", "020 7946 0123", null],
  ["formatted", "Test Patient Formatted", "+447700900456", "+44 (0)7700 900456", null],
  ["intlPrefix", "Test Patient Intlprefix", "+447700900789", "0044 7700 900789", null],
  ["dashes", "Test Patient Dashes", "+447700900321", "07700-900-321", null],
  ["international", "Test Patient International", "+12025550143", "+1 202 555 0143", "country_not_allowed"],
  ["premium", "Test Patient Premium", "+449098790000", "09098 790000", "number_blocked"],
  ["noPhone", "Test Patient Nophone", null, null, "number_missing"],
  ["twoNumbers", "Test Patient Twonumbers", "+447700900654", "07700 900654", null],
];

function expectedEntry([key, name, phone, phoneAsRecorded, refusalCode], date) {
  const fixture = FIXTURE_APPOINTMENTS[key];
  const { start, end } = appointmentPeriod(fixture, date);
  return {
    id: fixture.id, start, end, status: "booked", description: "Telephone appointment",
    patient: {
      id: `patient-${fixture.id.slice("appt-".length)}`, name, phone, phoneAsRecorded,
      dialable: refusalCode === null, refusal: refusalCode === null ? null : refusal(refusalCode),
    },
    callable: true,
  };
}

test("a clinician's list holds their phone appointments of the day, in order, with E.164 numbers and dialable flags", async () => {
  await fetch(`${medplum.url}/__sim/reset`, { method: "POST" });
  const date = seedDate();
  const { status, headers, body } = await listAppointments(await signIn("clinician-ada"), `?date=${date}`);
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(headers.get("cache-control"), "no-store");
  assert.equal(body.date, date);
  assert.deepEqual(body.appointments, ADA.map((row) => expectedEntry(row, date)));
  const ids = body.appointments.map((a) => a.id);
  assert.ok(!ids.includes("appt-bob"), "another clinician's appointment is not listed");
  assert.ok(!ids.includes("appt-in-person"), "an in-person appointment is not listed");
});

test("another clinician sees only their own appointment; another day is empty", async () => {
  const date = seedDate();
  const bob = await listAppointments(await signIn("clinician-bob"), `?date=${date}`);
  assert.equal(bob.status, 200, JSON.stringify(bob.body));
  assert.deepEqual(bob.body.appointments.map((a) => a.id), ["appt-bob"]);
  assert.equal(bob.body.appointments[0].patient.phone, "+442079460123");
  assert.equal(bob.body.appointments[0].patient.dialable, true);

  const cy = await listAppointments(await signIn("clinician-cy"), `?date=${date}`);
  assert.deepEqual(cy.body, { date, appointments: [] });

  const tomorrow = new Date(Date.parse(`${date}T00:00:00Z`) + 86_400_000).toISOString().slice(0, 10);
  const ada = await listAppointments(await signIn("clinician-ada"), `?date=${tomorrow}`);
  assert.deepEqual(ada.body, { date: tomorrow, appointments: [] });
});

test("without a date the list is today's (UTC)", async () => {
  await fetch(`${medplum.url}/__sim/reset`, { method: "POST" });
  const { status, body } = await listAppointments(await signIn("clinician-ada"));
  assert.equal(status, 200, JSON.stringify(body));
  assert.equal(body.date, seedDate());
  assert.equal(body.appointments.length, ADA.length);
});

test("no bearer is 401, a bad token is 401, a malformed date is 400", async () => {
  const missing = await listAppointments(null, `?date=${seedDate()}`);
  assert.equal(missing.status, 401);
  assert.equal(missing.body.error.code, "missing_credentials");
  assert.equal(missing.headers.get("www-authenticate"), "Bearer");

  const invalid = await listAppointments("not-a-jwt");
  assert.equal(invalid.status, 401);
  assert.equal(invalid.body.error.code, "invalid_credentials");

  const bearer = await signIn("clinician-ada");
  for (const date of ["2026-02-30", "25-11-2026", "today", "", "2026-11-25T00:00:00Z"]) {
    const { status, body } = await listAppointments(bearer, `?date=${encodeURIComponent(date)}`);
    assert.equal(status, 400, `${date}: ${JSON.stringify(body)}`);
    assert.equal(body.error.code, "bad_request");
    assert.match(body.error.message, /YYYY-MM-DD/);
  }
  const wrongMethod = await fetch(`${worker.url}/api/v1/appointments`, { method: "POST" });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.get("allow"), "GET");
});

test("an appointment's call view carries the same entry, for dialing by hand", async () => {
  await fetch(`${medplum.url}/__sim/reset`, { method: "POST" });
  const date = seedDate();
  const bearer = await signIn("clinician-ada");
  const list = (await listAppointments(bearer, `?date=${date}`)).body.appointments;
  for (const id of ["appt-mobile", "appt-premium", "appt-no-phone", "appt-international"]) {
    const response = await fetch(`${worker.url}/api/v1/appointments/${id}/call`, { headers: { authorization: `Bearer ${bearer}` } });
    const body = await response.json();
    assert.equal(response.status, 200, JSON.stringify(body));
    assert.equal(body.appointmentId, id);
    assert.deepEqual(body.calls, []);
    assert.equal(body.live, null);
    assert.deepEqual(body.appointment, list.find((a) => a.id === id), id);
  }
  // Not a participant: still 403, and nothing about the patient.
  const bob = await fetch(`${worker.url}/api/v1/appointments/appt-mobile/call`, { headers: { authorization: `Bearer ${await signIn("clinician-bob")}` } });
  assert.equal(bob.status, 403);
  const text = await bob.text();
  assert.ok(!text.includes("900123") && !text.includes("Test Patient"), text);
});

test("the calling token comes with the configured signaling URL", async () => {
  await fetch(`${medplum.url}/__sim/reset`, { method: "POST" });
  const response = await fetch(`${worker.url}/api/v1/twilio/access-token`, { method: "POST", headers: { authorization: `Bearer ${await signIn("clinician-ada")}` } });
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(body.signalingUrl, signalingUrl);
  const health = await (await fetch(`${worker.url}/api/v1/health`)).json();
  assert.equal(health.config.TWILIO_SIGNALING_URL, "present");
});

test("the page's CSP lets it reach the signaling origin and nothing else beyond 'self'", async () => {
  const page = await fetch(`${worker.url}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get("content-type"), /text\/html/);
  const csp = page.headers.get("content-security-policy");
  const connect = csp.split(";").map((d) => d.trim()).find((d) => d.startsWith("connect-src"));
  assert.equal(connect, `connect-src 'self' ws://127.0.0.1:${signalingPort}`);
  assert.match(csp, /default-src 'self'; script-src 'self' 'wasm-unsafe-eval'/);
  // The other security headers still come from www/_headers.
  assert.equal(page.headers.get("x-content-type-options"), "nosniff");
  assert.equal(page.headers.get("permissions-policy"), "microphone=(self), camera=(), geolocation=()");
  assert.equal(page.headers.get("cross-origin-opener-policy"), "same-origin");
  // A revalidated page keeps the environment's policy (a 304's headers replace the cached ones).
  const etag = page.headers.get("etag");
  assert.ok(etag, "the page carries an ETag");
  await page.text();
  const revalidated = await fetch(`${worker.url}/`, { headers: { "if-none-match": etag } });
  assert.equal(revalidated.status, 304);
  assert.equal(revalidated.headers.get("content-security-policy"), csp);
  // Other assets pass through unchanged; a missing one is the API's JSON 404.
  const wasm = await fetch(`${worker.url}/pkg/web_client_bg.wasm`);
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get("content-type"), "application/wasm");
  await wasm.arrayBuffer();
  const missing = await fetch(`${worker.url}/no-such-page`);
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error.code, "not_found");

  // In Chromium: a WebSocket to the signaling origin is allowed, one to any other origin is blocked.
  const { launchBrowser, openPage } = await import("../lib/browser.mjs");
  const browser = await launchBrowser();
  try {
    const { page: tab } = await openPage(await browser.newContext(), worker.url);
    const otherPort = await freePort();
    const violations = await tab.evaluate(async ({ allowed, blocked }) => {
      const seen = [];
      document.addEventListener("securitypolicyviolation", (e) => seen.push({ directive: e.effectiveDirective, uri: e.blockedURI }));
      const attempt = (url) => new Promise((resolve) => {
        try {
          const socket = new WebSocket(url);
          socket.onerror = socket.onclose = () => resolve();
          socket.onopen = () => { socket.close(); resolve(); };
        } catch {
          resolve();
        }
      });
      await attempt(allowed);
      await attempt(blocked);
      await new Promise((r) => setTimeout(r, 200));
      return seen;
    }, { allowed: signalingUrl, blocked: `ws://127.0.0.1:${otherPort}/signal` });
    assert.deepEqual(violations.map((v) => v.directive), ["connect-src"], JSON.stringify(violations));
    assert.match(violations[0].uri, new RegExp(`^ws://127\\.0\\.0\\.1:${otherPort}`));
  } finally {
    await browser.close();
  }
});

test("the worker's log holds no patient number or name", async () => {
  const log = readFileSync(worker.logPath, "utf8");
  for (const pattern of [...PHONE_SCAN_PATTERNS, ...PATIENT_NAMES]) {
    assert.ok(!log.includes(pattern), `the worker log contains ${JSON.stringify(pattern)}`);
  }
});
