//! The clinician's call panel end to end in Chromium (fake microphone) against wrangler dev,
//! sim/medplum and sim/twilio: every call state, mute measured at the callee, DTMF, outcomes
//! written to FHIR, recovery from a dropped signaling link, token refresh, the manual-dial
//! fallback, a patient calling back, a reload mid-call, and wire compatibility with the official
//! SDK's frames. Screenshots of every state go to tests/artifacts/<run>/panel-*.png.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startWorker, startTwilioSim, startTlsProxy, artifactsDir, freePort, TEST_SECRETS, REPO_ROOT } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { launchBrowser, openPage, CHROMIUM_ARGS } from "../lib/browser.mjs";
import { sleep, waitFor } from "../lib/wait.mjs";

const artifacts = artifactsDir();
const EXTENSION_URL = "https://clinician-calls.example/fhir/StructureDefinition/twilio-voice-call";
/** The shortest token the worker issues: the client refreshes it every 30 s during the suite. */
const TOKEN_TTL_SECONDS = 60;
let medplum;
let worker;
let twilio;
let browser;

before(async () => {
  medplum = await startMedplumServer({ port: await freePort(), clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
  const workerPort = await freePort();
  twilio = await startTwilioSim({ port: await freePort(), workerUrl: `http://127.0.0.1:${workerPort}`, timeScale: 0.2, logDir: artifacts, name: "panel-twilio-sim" });
  worker = await startWorker({
    port: workerPort,
    logDir: artifacts,
    name: "panel-worker",
    vars: {
      MEDPLUM_BASE_URL: medplum.url, TWILIO_API_BASE_URL: twilio.url, TWILIO_SIGNALING_URL: twilio.signalingUrl,
      TWILIO_CALLER_IDS: "+447700900001,+447700900002", PRACTICE_PHONE_NUMBER: "+442079460000",
      TWILIO_TOKEN_TTL_SECONDS: String(TOKEN_TTL_SECONDS),
    },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await worker?.stop();
  await twilio?.stop();
  await medplum?.close();
});



async function extensions(appointment) {
  const resource = await (await fetch(`${medplum.url}/__sim/resource/Appointment/${appointment}`)).json();
  return (resource.extension ?? []).filter((e) => e.url === EXTENSION_URL).map((e) =>
    Object.fromEntries(e.extension.map((p) => [p.url, p.valueString ?? p.valueCode ?? p.valueInteger ?? p.valueDateTime])));
}

const sim = async (path) => (await fetch(`${twilio.url}${path}`)).json();
const PANEL = "#call-area .call-panel";

/** Signs in on the page as `practitioner` and waits for today's appointments. */
async function signedInPage(practitioner = "clinician-ada", context) {
  const ctx = context ?? (await browser.newContext());
  const { page, problems } = await openPage(ctx, worker.url);
  await page.waitForSelector("#demo-sign-in:not([hidden])");
  await page.selectOption("#clinician", practitioner);
  await page.click("#sign-in");
  await page.waitForSelector("#appointments li[data-appointment-id] button");
  return { page, problems, context: ctx };
}

async function choose(page, appointment) {
  await page.click(`#appointments li[data-appointment-id="${appointment}"] button`);
  await page.waitForSelector(`${PANEL}:not([data-state="loading"])`);
}

const state = (page) => page.getAttribute(PANEL, "data-state");
const waitState = (page, wanted, timeout = 20_000) => page.waitForSelector(`${PANEL}[data-state="${wanted}"]`, { timeout });
const statusText = (page) => page.textContent(`${PANEL} .call-status`);
const shot = (page, name) => page.screenshot({ path: join(artifacts, `panel-${name}.png`), fullPage: true });

async function callNow(page) {
  await page.click(`${PANEL} [data-action="call"]:not([disabled]):not([hidden])`, { timeout: 20_000 });
}

/** The live call's parent sid from the panel's snapshot (`window.callClient`). */
async function liveCallSid(page) {
  return waitFor("the call's sid", () => page.evaluate(() => window.callClient?.snapshot()?.callSid ?? null));
}

test("answered call: connecting → ringing → connected, timer runs, mute measured at the callee, DTMF, ended → FHIR record", async () => {
  const { page, problems } = await signedInPage();
  await choose(page, "appt-mobile");
  await page.waitForSelector(`${PANEL} [data-action="call"]:not([disabled])`);
  assert.match(await statusText(page), /Ready to call/);
  await shot(page, "01-ready");
  // Every state the panel shows, however briefly, in order.
  await page.evaluate((selector) => {
    const panel = document.querySelector(selector);
    window.panelStates = [panel.dataset.state];
    new MutationObserver(() => {
      if (window.panelStates.at(-1) !== panel.dataset.state) window.panelStates.push(panel.dataset.state);
    }).observe(panel, { attributes: true, attributeFilter: ["data-state"] });
  }, PANEL);
  // Alt+C places the call (the keyboard shortcut the page offers).
  await page.keyboard.press("Alt+C");
  await waitState(page, "connected").catch(async (error) => {
    throw new Error(`${error.message}\nstates seen: ${await page.evaluate(() => window.panelStates.join(" → "))}`);
  });
  await shot(page, "03-connected");
  // Ringing lasts 0.4 s at the simulator's time scale: recorded above, however brief.
  assert.deepEqual(await page.evaluate(() => window.panelStates), ["idle", "connecting", "ringing", "connected"]);
  const callSid = await liveCallSid(page);
  const first = await page.textContent(`${PANEL} .call-timer`);
  await sleep(2_200);
  const later = await page.textContent(`${PANEL} .call-timer`);
  assert.match(later, /^\d\d:\d\d$/);
  assert.ok(later > first, `timer advances: ${first} → ${later}`);

  const media = async () => (await sim("/__sim/media")).media[callSid];
  await waitFor("the clinician's voice at the callee", async () => (await media())?.level > 0.05);
  // Alt+M mutes (the button unmutes below).
  await page.keyboard.press("Alt+M");
  await page.waitForSelector(`${PANEL} [data-action="mute"][aria-pressed="true"]`, { timeout: 5_000 });
  const muted = await waitFor("silence at the callee after mute", async () => { const m = await media(); return m?.level < 0.01 ? m : null; });
  assert.ok(muted.packetsIn > 50, "packets still flow while muted");
  await shot(page, "04-muted");
  await page.click(`${PANEL} [data-action="mute"]`);
  await waitFor("the clinician's voice again after unmute", async () => (await media())?.level > 0.05);

  await page.click(`${PANEL} [data-action="keypad"]`);
  for (const digit of ["1", "2", "#"]) await page.click(`${PANEL} [data-digit="${digit}"]`);
  // The keypad shows what was sent, as a phone does.
  await page.waitForSelector(`${PANEL} .call-keypad .keypad-digits:not([hidden]):has-text("Sent: 12#")`);
  await shot(page, "05-keypad");
  await waitFor("the digits at Twilio", async () => (await sim("/__sim/calls")).calls.some((c) => c.sid === callSid && c.digits === "12#"));

  // Alt+E ends the call.
  await page.keyboard.press("Alt+E");
  await waitState(page, "ended");
  assert.equal(await page.getAttribute(PANEL, "data-outcome"), "completed");
  assert.match(await statusText(page), /Call ended after/);
  await shot(page, "06-ended");
  const record = await waitFor("the completed record in FHIR", async () =>
    (await extensions("appt-mobile")).find((e) => e.parentCallSid === callSid && e.status === "completed"));
  assert.ok(Number(record.durationSeconds) >= 2, JSON.stringify(record));
  assert.equal(await page.locator("[data-remote-audio]").count(), 0, "media torn down");
  assert.deepEqual(problems, []);
  await page.close();
});

for (const [appointment, outcome, pattern] of [
  ["appt-landline", "busy", /busy/],
  ["appt-formatted", "no-answer", /did not answer/],
  ["appt-dashes", "failed", /could not be connected/],
]) {
  test(`${outcome}: the panel ends the call, says so, and offers the number to dial by hand`, async () => {
    const { page } = await signedInPage();
    await choose(page, appointment);
    await callNow(page);
    await waitState(page, "ended", 30_000);
    await waitFor(`outcome ${outcome}`, async () => (await page.getAttribute(PANEL, "data-outcome")) === outcome);
    assert.match(await statusText(page), pattern);
    await page.waitForSelector(`${PANEL} .call-fallback:not([hidden]) a.fallback-number[href^="tel:+44"]`);
    await shot(page, `07-${outcome}`);
    await waitFor(`the ${outcome} record in FHIR`, async () => (await extensions(appointment)).some((e) => e.status === outcome));
    await page.close();
  });
}

test("the patient hangs up: the panel ends the call as completed", async () => {
  const { page } = await signedInPage();
  await choose(page, "appt-intl-prefix");
  await callNow(page);
  await waitState(page, "connected");
  await waitState(page, "ended", 20_000);
  assert.equal(await page.getAttribute(PANEL, "data-outcome"), "completed");
  await shot(page, "08-patient-hung-up");
  await page.close();
});

test("signaling dropped mid-call: the client reconnects and the call carries on to a clean end", async () => {
  const { page } = await signedInPage();
  await choose(page, "appt-two-numbers");
  await callNow(page);
  await waitState(page, "connected");
  const callSid = await liveCallSid(page);
  const listensBefore = (await sim("/__sim/frames")).frames.filter((f) => f.direction === "client" && f.frame?.type === "listen").length;
  await fetch(`${twilio.url}/__sim/drop-signaling`, { method: "POST" });
  await waitFor("a new listen after the drop", async () =>
    (await sim("/__sim/frames")).frames.filter((f) => f.direction === "client" && f.frame?.type === "listen").length > listensBefore);
  await waitFor("the signaling check green again", async () => (await page.getAttribute(`${PANEL} [data-check="signaling"]`, "data-ok")) === "true");
  assert.equal(await state(page), "connected", "the call survived the drop");
  await shot(page, "09-after-signaling-drop");
  await page.click(`${PANEL} [data-action="end"]`);
  await waitState(page, "ended");
  await waitFor("the call over at Twilio", async () => (await sim("/__sim/calls")).calls.some((c) => c.sid === callSid && c.status === "completed"));
  await page.close();
});

test("the demo page says when the sign-in has expired, and signs out (ending a call only when told to)", async () => {
  const context = await browser.newContext();
  try {
    // A sign-in that runs out in 3 s: the page says so, and the numbers stay for dialing by hand.
    await context.route("**/api/v1/dev/sign-in", async (route) => {
      const response = await route.fetch();
      route.fulfill({ response, json: { ...(await response.json()), expires_in: 3 } });
    });
    const { page } = await signedInPage("clinician-ada", context);
    await page.waitForSelector("#session[data-state=expired]", { timeout: 15_000 });
    assert.match(await page.textContent("#session"), /sign-in has expired: sign in again/);
    assert.ok((await page.locator("#appointments .appointment-dial a[href^='tel:']").count()) > 0, "the numbers stay");
    await context.unroute("**/api/v1/dev/sign-in");

    // A sign-in the worker refuses as expired (401 token_expired) is said the same way.
    await context.route("**/api/v1/appointments", (route) => route.fulfill({
      status: 401, contentType: "application/json", body: JSON.stringify({ error: { code: "token_expired", message: "the access token has expired" } }),
    }));
    await page.click("#sign-in");
    await page.waitForSelector("#appointments-status[data-code=token_expired]");
    await page.waitForSelector("#session[data-state=expired]");
    assert.match(await page.textContent("#session"), /sign-in has expired: sign in again/);
    await context.unroute("**/api/v1/appointments");
    // Refused for another reason (ended elsewhere, not valid): not called "expired".
    await context.route("**/api/v1/appointments", (route) => route.fulfill({
      status: 401, contentType: "application/json", body: JSON.stringify({ error: { code: "invalid_credentials", message: "the access token is not valid" } }),
    }));
    await page.click("#sign-in");
    await page.waitForSelector("#appointments-status[data-code=invalid_credentials]");
    await page.waitForSelector("#session[data-state=expired]");
    assert.match(await page.textContent("#session"), /sign-in was not accepted: sign in again/);
    await context.unroute("**/api/v1/appointments");

    // Signing out with a call under way asks first; declined, the call carries on.
    await page.click("#sign-in");
    await page.waitForSelector("#session[data-state=token-ready]", { timeout: 15_000 });
    await choose(page, "appt-mobile"); // answers, and talks until someone hangs up
    await callNow(page);
    await waitState(page, "connected");
    const callSid = await liveCallSid(page);
    page.once("dialog", (dialog) => dialog.dismiss());
    await page.click("#sign-out");
    await sleep(500);
    assert.equal(await state(page), "connected", "declined: the call carries on");
    // Accepted, the call is ended at Twilio and the page forgets the clinician.
    page.once("dialog", (dialog) => dialog.accept());
    await page.click("#sign-out");
    await page.waitForSelector("#session[data-state=signed-out]");
    assert.equal((await page.textContent("#session")).trim(), "Signed out.");
    assert.equal(await page.locator("#appointments li").count(), 0);
    assert.equal(await page.locator(`${PANEL}`).count(), 0, "no panel once signed out");
    assert.ok(await page.locator("#sign-out").isHidden());
    await waitFor("the call over at Twilio", async () => (await sim("/__sim/calls")).calls.some((c) => c.sid === callSid && c.status === "completed"));
  } finally {
    await context.close();
  }
});

test("the panel's appointment time is the clinician's local time, as the list shows it", async () => {
  // Five hours behind UTC all year: a UTC time shown as written would be five hours out.
  const context = await browser.newContext({ timezoneId: "America/New_York", locale: "en-GB" });
  try {
    const { page } = await signedInPage("clinician-ada", context);
    await choose(page, "appt-mobile");
    const listed = (await page.textContent(`#appointments li[data-appointment-id="appt-mobile"] .appointment-time`)).trim();
    assert.match(listed, /^\d\d:\d\d$/);
    const start = await page.getAttribute(`#appointments li[data-appointment-id="appt-mobile"] .appointment-time`, "datetime");
    assert.notEqual(listed, new Date(start).toISOString().slice(11, 16), "the list is in New York time");
    await waitFor("the panel's appointment line", async () => (await page.textContent(`${PANEL} .call-appointment`)).startsWith(`${listed} · `));
  } finally {
    await context.close();
  }
});

test("the appointment failing to load leaves the number to dial by hand, and loads when it can", async () => {
  const context = await browser.newContext({ permissions: ["microphone", "clipboard-read", "clipboard-write"] });
  try {
    // Medplum down: every load of the appointment answers 503 until the route is lifted.
    const loads = { "appt-mobile": 0, "appt-landline": 0 };
    const failWith = (status, code, message) => (route) => {
      if (route.request().method() !== "GET") return route.continue();
      const appointment = new URL(route.request().url()).pathname.split("/")[4];
      loads[appointment] = (loads[appointment] ?? 0) + 1;
      return route.fulfill({ status, contentType: "application/json", body: JSON.stringify({ error: { code, message } }) });
    };
    const appointmentCall = "**/api/v1/appointments/*/call";
    await context.route(appointmentCall, failWith(503, "medplum_unavailable", "Medplum is not answering"));
    const { page } = await signedInPage("clinician-ada", context);
    await choose(page, "appt-mobile");
    await waitState(page, "unavailable");
    // The number the page's list had for this appointment, offered by the panel itself.
    await page.waitForSelector(`${PANEL} .call-fallback:not([hidden]) a.fallback-number[href="tel:+447700900123"]`);
    assert.doesNotMatch(await page.textContent(`${PANEL} .call-fallback`), /No number on record/);
    assert.match(await statusText(page), /Medplum is not answering.*Trying again/);
    // Copy number copies the number shown (the host page's here), and says so.
    await page.click(`${PANEL} [data-action="copy-number"]`);
    await page.waitForSelector(`${PANEL} .copy-status:has-text("Number copied.")`);
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), (await page.textContent(`${PANEL} a.fallback-number`)).trim());
    // A 503 may pass: the panel tries again by itself (after 2 s, then 4 s) ...
    await waitFor("a second load by the panel itself", async () => loads["appt-mobile"] >= 2);
    assert.equal(await state(page), "unavailable");
    // ... and once Medplum answers, the panel is ready to call without a reload.
    await context.unroute(appointmentCall);
    await waitState(page, "idle", 30_000);
    await page.waitForSelector(`${PANEL} [data-action="call"]:has-text("Call now"):not([disabled])`);

    // A refusal (404) is not tried again by itself; "Try again now" loads it when pressed.
    await context.route(appointmentCall, failWith(404, "not_found", "no such appointment"));
    await choose(page, "appt-landline");
    await waitState(page, "unavailable");
    assert.doesNotMatch(await statusText(page), /Trying again/);
    await sleep(4_500); // two automatic retries would have happened by now
    assert.equal(loads["appt-landline"], 1, "a refusal is not retried by itself");
    await context.unroute(appointmentCall);
    await context.route(appointmentCall, (route) => {
      const appointment = new URL(route.request().url()).pathname.split("/")[4];
      if (route.request().method() === "GET") loads[appointment] = (loads[appointment] ?? 0) + 1;
      return route.continue();
    });
    // Alt+C presses the button as it reads now: "Try again now" loads the appointment again (it
    // does not place a call for an appointment the panel could not load).
    await page.waitForSelector(`${PANEL} [data-action="call"]:has-text("Try again now")`);
    await page.keyboard.press("Alt+C");
    await waitFor("the appointment loaded again", async () => loads["appt-landline"] === 2);
    await waitState(page, "idle");
    assert.equal(loads["appt-landline"], 2);
  } finally {
    await context.close();
  }
});

test("manual fallback: microphone denied, worker unreachable, number refused by policy, no number on record", async () => {
  // Microphone denied: Chromium without the fake permission UI refuses getUserMedia.
  const denyingBrowser = await launchBrowser({ fakeMediaUi: false });
  try {
    const context = await denyingBrowser.newContext();
    const { page } = await signedInPage("clinician-ada", context);
    await context.clearPermissions();
    await choose(page, "appt-mobile");
    await page.waitForSelector(`${PANEL} [data-action="call"]:not([disabled])`).catch(() => {});
    if ((await state(page)) !== "fallback") {
      await callNow(page);
    }
    await page.waitForSelector(`${PANEL} .call-fallback:not([hidden]) a.fallback-number[href="tel:+447700900123"]`, { timeout: 20_000 });
    assert.match(await page.textContent(`${PANEL} .fallback-reason`), /microphone/i);
    await shot(page, "10-fallback-microphone-denied");
    // The panel reports the fallback (a code, nothing else) for the operators' figures.
    const { readFile } = await import("node:fs/promises");
    await waitFor("the fallback reported to the worker", async () =>
      (await readFile(worker.logPath, "utf8")).includes('{"event":"manual_fallback","reason":"microphone-denied"}'));
    // The outcome of the call dialled by hand is recorded through the call-end endpoint, once
    // even when Save is double-clicked while the first request is still on its way.
    // Minutes may have a decimal point: 2.5 minutes is 150 s.
    const manualRecords = async () => (await extensions("appt-mobile")).filter((e) => e.direction === "manual" && Number(e.durationSeconds) === 150).length;
    const before = await manualRecords();
    await context.route("**/api/v1/appointments/*/call/end", async (route) => { await sleep(400); await route.continue(); });
    await page.selectOption(`${PANEL} .manual-outcome select`, "completed");
    await page.fill(`${PANEL} .manual-outcome input[name="minutes"]`, "2.5");
    await page.dblclick(`${PANEL} .manual-outcome button[type="submit"]`);
    await page.waitForSelector(`${PANEL} .manual-outcome-status:has-text("Saving")`).catch(() => {});
    await page.waitForSelector(`${PANEL} .manual-outcome-status:has-text("saved")`);
    await waitFor("the manual record in FHIR", async () => (await manualRecords()) > before);
    await sleep(1500); // a second record would be written by now
    assert.equal(await manualRecords(), before + 1, "one record for one outcome");
    // A reply lost on its way back: the worker stored the outcome, the panel says it is not
    // saved, and Save again stores nothing more (the same key).
    await context.unroute("**/api/v1/appointments/*/call/end");
    const savedTwiceRecords = async () => (await extensions("appt-mobile")).filter((e) => e.direction === "manual" && Number(e.durationSeconds) === 180).length;
    const savedTwiceBefore = await savedTwiceRecords();
    let forwarded = 0;
    await context.route("**/api/v1/appointments/*/call/end", async (route) => {
      await route.fetch();
      forwarded += 1;
      await route.abort("connectionreset");
    });
    await page.selectOption(`${PANEL} .manual-outcome select`, "completed");
    await page.fill(`${PANEL} .manual-outcome input[name="minutes"]`, "3");
    await page.click(`${PANEL} .manual-outcome button[type="submit"]`);
    await page.waitForSelector(`${PANEL} .manual-outcome-status:has-text("Not saved")`);
    assert.equal(forwarded, 1);
    await context.unroute("**/api/v1/appointments/*/call/end");
    await page.click(`${PANEL} .manual-outcome button[type="submit"]`);
    await page.waitForSelector(`${PANEL} .manual-outcome-status:has-text("Outcome saved")`);
    await waitFor("the outcome saved twice in FHIR", async () => (await savedTwiceRecords()) > savedTwiceBefore);
    await sleep(1500); // a second record would be written by now
    assert.equal(await savedTwiceRecords(), savedTwiceBefore + 1, "one record for an outcome saved twice");
  } finally {
    await denyingBrowser.close();
  }

  // The worker unreachable for tokens: the panel falls back with the reason.
  {
    const context = await browser.newContext();
    await context.route("**/api/v1/twilio/access-token", (route) => route.abort());
    const { page } = await signedInPage("clinician-ada", context);
    await choose(page, "appt-mobile");
    await waitState(page, "fallback");
    assert.match(await page.textContent(`${PANEL} .fallback-reason`), /cannot be reached/);
    assert.equal(await page.getAttribute(`${PANEL} a.fallback-number`, "href"), "tel:+447700900123");
    await shot(page, "11-fallback-service-unreachable");
    await context.close();
  }

  // The dialing policy refuses the number (premium rate): no Call now, the number and the reason.
  const { page } = await signedInPage();
  await choose(page, "appt-premium");
  await waitState(page, "unavailable");
  assert.equal(await page.locator(`${PANEL} [data-action="call"]:visible`).count(), 0);
  assert.match(await page.textContent(`${PANEL} .fallback-reason`), /premium-rate|special/);
  await shot(page, "12-fallback-number-refused");
  await choose(page, "appt-no-phone");
  await waitState(page, "unavailable");
  assert.match(await page.textContent(`${PANEL} .fallback-reason`), /no phone number/i);
  await page.close();
});

test("Twilio refusing every fresh token (wrong credentials): the panel stops asking after two new tokens and offers the number with a plain reason", async () => {
  const setFaults = (faults) => fetch(`${twilio.url}/__sim/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(faults) });
  const listens = async () => (await sim("/__sim/frames")).frames.filter((f) => f.direction === "client" && f.frame?.type === "listen").length;
  await setFaults({ expireTokens: true });
  try {
    const before = await listens();
    const { page } = await signedInPage();
    await choose(page, "appt-landline");
    await waitState(page, "fallback", 30_000);
    assert.match(await statusText(page), /Twilio refused .*31205.*administrator/);
    await page.waitForSelector(`${PANEL} .call-fallback:not([hidden]) a.fallback-number[href^="tel:"]`);
    // The first token and two fresh ones, each refused; then no more (a loop would hammer the
    // worker and Twilio while the page stays open).
    const sent = (await listens()) - before;
    assert.equal(sent, 3, `${sent} listen frames`);
    await sleep(5_000);
    assert.equal((await listens()) - before, sent, "no token presented after giving up");
    await page.close();
  } finally {
    await setFaults({});
  }
});

test("End pressed while the worker is still answering: the call it recorded is ended at once, its line freed, and no window shows it live", async () => {
  const setFaults = (faults) => fetch(`${twilio.url}/__sim/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(faults) });
  const pool = async () => (await (await fetch(`${worker.url}/api/v1/admin/number-pool`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } })).json()).numbers;
  const leased = async () => (await pool()).filter((n) => n.lease).map((n) => n.lease.callSid);
  const before = await leased();
  // Twilio holds the worker's answer for 6 s: the call is recorded and its line leased, but
  // nothing is dialled yet when the clinician ends it.
  await setFaults({ holdVoiceAnswerMs: 6_000 });
  try {
    const { page } = await signedInPage();
    // (A patient of its own: appt-mobile's has had its hourly calls by the end of this file.)
    await choose(page, "appt-intl-prefix");
    await callNow(page);
    const [callSid] = await waitFor("the call's line leased", async () => {
      const fresh = (await leased()).filter((sid) => !before.includes(sid));
      return fresh.length ? fresh : null;
    });
    assert.equal(await state(page), "connecting");
    await page.click(`${PANEL} [data-action="end"]:has-text("Cancel call")`);
    await waitState(page, "ended");
    // The page ends on the server what the worker recorded: the line comes back now, not when
    // the ledger next asks Twilio (10 minutes here).
    await waitFor("the line given back", async () => !(await leased()).includes(callSid), 15_000);
    const login = await (await fetch(`${medplum.url}/auth/dev-login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner: "clinician-ada" }) })).json();
    const appointment = await (await fetch(`${worker.url}/api/v1/appointments/appt-intl-prefix/call`, { headers: { authorization: `Bearer ${login.access_token}` } })).json();
    assert.equal(appointment.live, null, "no call shown live in another window");
    const record = appointment.calls.find((c) => c.parentCallSid === callSid);
    assert.equal(record?.terminal, true, JSON.stringify(record));
    assert.match(record.clientCallId, /^TJS/, "the record carries the page's own id for the call");
    await page.close();
  } finally {
    await setFaults({});
  }
});

test("no free line: the call is refused, the panel says all lines are busy and offers the number", async () => {
  const admin = (path, method, body) => fetch(`${worker.url}/api/v1/admin/number-pool${path}`, {
    method, headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined,
  });
  const held = [];
  for (let i = 0; i < 2; i++) {
    const callSid = `CA${String(i).padStart(32, "f")}`;
    const response = await admin("/leases", "POST", { callSid, destination: "+447700900999" });
    assert.equal(response.status, 200, await response.text());
    held.push(callSid);
  }
  try {
    const { page } = await signedInPage();
    await choose(page, "appt-formatted");
    await callNow(page);
    await waitState(page, "ended");
    await waitFor("the refusal from the ledger", async () => (await page.getAttribute(PANEL, "data-outcome")) === "refused");
    assert.match(await statusText(page), /All lines are busy/);
    await page.waitForSelector(`${PANEL} .call-fallback:not([hidden]) a.fallback-number[href="tel:+447700900456"]`);
    await shot(page, "16-all-lines-busy");
    await page.close();
  } finally {
    for (const callSid of held) await admin(`/leases/${callSid}`, "DELETE");
  }
});

test("a silent microphone is flagged in plain words during the call", async () => {
  // Chromium's fake microphone reads a WAV file: one of pure silence (8 kHz, 16-bit, 10 s).
  const { writeFile } = await import("node:fs/promises");
  const samples = 8_000 * 10;
  const wav = Buffer.alloc(44 + samples * 2);
  wav.write("RIFF", 0); wav.writeUInt32LE(36 + samples * 2, 4); wav.write("WAVE", 8); wav.write("fmt ", 12);
  wav.writeUInt32LE(16, 16); wav.writeUInt16LE(1, 20); wav.writeUInt16LE(1, 22); wav.writeUInt32LE(8_000, 24);
  wav.writeUInt32LE(16_000, 28); wav.writeUInt16LE(2, 32); wav.writeUInt16LE(16, 34); wav.write("data", 36); wav.writeUInt32LE(samples * 2, 40);
  const silence = join(artifacts, "silence.wav");
  await writeFile(silence, wav);
  const { chromium } = await import("playwright-core");
  const silentBrowser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium", args: [...CHROMIUM_ARGS, `--use-file-for-fake-audio-capture=${silence}`] });
  try {
    const { page } = await signedInPage("clinician-ada", await silentBrowser.newContext());
    await choose(page, "appt-two-numbers");
    await callNow(page);
    await waitState(page, "connected");
    await page.waitForSelector(`${PANEL} .call-warning:not([hidden])`, { timeout: 20_000 });
    assert.match(await page.textContent(`${PANEL} .call-warning`), /microphone is sending silence/);
    assert.equal(await page.getAttribute(`${PANEL} .call-warning`, "role"), "status");
    await shot(page, "17-silent-microphone-warning");
    await page.click(`${PANEL} [data-action="end"]`);
    await waitState(page, "ended");
    assert.equal(await page.isHidden(`${PANEL} .call-warning`), true, "the warning goes with the call");
  } finally {
    await silentBrowser.close();
  }
});

test("a patient calling back rings in the panel; accepted, it connects with audio", async () => {
  const { page } = await signedInPage();
  await choose(page, "appt-mobile");
  await page.waitForSelector(`${PANEL} [data-action="call"]:not([disabled])`);
  // A recent outbound call makes the worker route the call-back to this clinician.
  await callNow(page);
  await waitState(page, "connected");
  await page.click(`${PANEL} [data-action="end"]`);
  await waitState(page, "ended");
  // The clinician moves on to another patient's appointment; the call-back names its own.
  await choose(page, "appt-landline");
  const response = await fetch(`${twilio.url}/__sim/inbound`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ from: "+447700900123", to: "+447700900001" }) });
  assert.equal(response.status, 200);
  await waitState(page, "incoming");
  await page.waitForSelector(`#appointments li[data-appointment-id="appt-mobile"] button[aria-current="true"]`);
  assert.equal(await page.evaluate(() => window.callClient?.snapshot()?.appointmentId), "appt-mobile", "the panel is the calling patient's");
  await shot(page, "13-incoming");
  // Media of the earlier calls stays in the simulator's report: the call-back's is the new entry.
  const before = new Set(Object.keys((await sim("/__sim/media")).media));
  // Alt+A accepts (the shortcut the button names).
  assert.equal(await page.getAttribute(`${PANEL} [data-action="accept"]`, "aria-keyshortcuts"), "Alt+A");
  await page.keyboard.press("Alt+A");
  await waitState(page, "connected");
  const callSid = await liveCallSid(page);
  await waitFor("audio on the call-back", async () =>
    Object.entries((await sim("/__sim/media")).media).some(([sid, m]) => !before.has(sid) && m.connected && m.level > 0.05));
  await shot(page, "14-incoming-connected");
  await page.click(`${PANEL} [data-action="end"]`);
  await waitState(page, "ended");
  assert.ok(callSid);
  await page.close();
});

test("a reload during a call shows the call's real state from the server and lets the clinician end it", async () => {
  const { page, context } = await signedInPage();
  await choose(page, "appt-mobile");
  await callNow(page);
  await waitState(page, "connected");
  const callSid = await liveCallSid(page);
  // A second page of the same clinician stands in for the reloaded one (a reload drops media).
  const { page: reloaded } = await signedInPage("clinician-ada", context);
  await choose(reloaded, "appt-mobile");
  await waitState(reloaded, "elsewhere");
  await shot(reloaded, "15-reloaded-elsewhere");
  await reloaded.click(`${PANEL} [data-action="end"]`);
  await waitState(reloaded, "ended");
  await waitState(page, "ended");
  await waitFor("the call ended at Twilio", async () => (await sim("/__sim/calls")).calls.some((c) => c.sid === callSid && c.status === "completed"));
  await page.close();
  await reloaded.close();
});

test("a clinic day's token: refreshed before expiry on the open link, and calls still connect", async () => {
  // Only this test's frames (an earlier test had tokens refused on purpose).
  const earlier = (await sim("/__sim/frames")).frames.length;
  const { page } = await signedInPage();
  await choose(page, "appt-mobile");
  await page.waitForSelector(`${PANEL} [data-action="call"]:not([disabled])`);
  const identity = await page.evaluate(() => window.callClient.snapshot().identity);
  assert.equal(identity, "clinician-ada");
  const listens = async () => (await sim("/__sim/frames")).frames.filter((f) => f.direction === "client" && f.frame?.type === "listen").length;
  const before = await listens();
  // The token lives 60 s and is refreshed at 30 s; after 65 s it has been replaced at least once.
  await sleep(65_000);
  assert.ok((await listens()) > before, "a fresh token was presented with listen");
  // Twilio's gateway says 31205 (the SDK's 20104) for an expired token.
  const errors = (await sim("/__sim/frames")).frames.slice(earlier).filter((f) => f.direction === "server" && f.frame?.type === "error" && [20104, 31205].includes(f.frame.payload?.error?.code));
  assert.equal(errors.length, 0, "the token never expired on the link");
  await callNow(page);
  await waitState(page, "connected");
  await page.click(`${PANEL} [data-action="end"]`);
  await waitState(page, "ended");
  await page.close();
});

test("wire compatibility: our frames for sign-in, register, invite, DTMF and hangup carry the official SDK's types and fields", async () => {
  const clientFrames = async () => (await sim("/__sim/frames")).frames.filter((f) => f.direction === "client").map((f) => f.frame).filter((f) => f && typeof f === "object");
  const shape = (frames) => Object.fromEntries(["listen", "register", "invite", "dtmf", "hangup"].map((type) => {
    const frame = frames.find((f) => f.type === type && !(type === "invite" && f.payload?.reconnect));
    return [type, frame ? { version: frame.version, keys: Object.keys(frame.payload).sort(), browserinfo: type === "listen" ? Object.keys(frame.payload.browserinfo ?? {}).sort() : undefined } : null];
  }));

  await fetch(`${twilio.url}/__sim/reset`, { method: "POST" });
  const { page } = await signedInPage();
  await choose(page, "appt-two-numbers");
  await callNow(page);
  await waitState(page, "connected");
  await page.evaluate(() => window.callClient.sendDigits("1"));
  await sleep(300);
  await page.click(`${PANEL} [data-action="end"]`);
  await waitState(page, "ended");
  const ours = shape(await clientFrames());
  await page.close();

  await fetch(`${twilio.url}/__sim/reset`, { method: "POST" });
  const tls = await startTlsProxy(Number(new URL(twilio.url).port));
  const { chromium } = await import("playwright-core");
  const sdkBrowser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium", args: [...CHROMIUM_ARGS, "--ignore-certificate-errors"] });
  try {
    const token = await (async () => {
      const login = await (await fetch(`${medplum.url}/auth/dev-login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner: "clinician-ada" }) })).json();
      return (await (await fetch(`${worker.url}/api/v1/twilio/access-token`, { method: "POST", headers: { authorization: `Bearer ${login.access_token}` } })).json()).token;
    })();
    const sdkPage = await (await sdkBrowser.newContext()).newPage();
    await sdkPage.goto(`${twilio.url}/healthcheck`);
    await sdkPage.addScriptTag({ path: join(REPO_ROOT, "node_modules", "@twilio", "voice-sdk", "dist", "twilio.min.js") });
    await sdkPage.evaluate(async ({ token, chunderw }) => {
      const within = (p, ms, what) => Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms))]);
      const device = new Twilio.Device(token, { chunderw, publishEvents: false, disableAudioContextSounds: true, logLevel: "error" });
      await within(device.register(), 20000, "register");
      const call = await within(device.connect({ params: { AppointmentId: "appt-two-numbers" } }), 20000, "connect");
      await within(new Promise((resolve) => call.on("accept", resolve)), 20000, "accept");
      await new Promise((r) => setTimeout(r, 800));
      call.sendDigits("1");
      await new Promise((r) => setTimeout(r, 300));
      const disconnected = new Promise((resolve) => call.on("disconnect", resolve));
      call.disconnect();
      await within(disconnected, 10000, "disconnect");
      device.destroy();
    }, { token, chunderw: `127.0.0.1:${tls.port}` });
  } finally {
    await sdkBrowser.close();
    await tls.close();
  }
  const sdk = shape(await clientFrames());
  const { writeFile } = await import("node:fs/promises");
  await writeFile(join(artifacts, "wire-compat.json"), JSON.stringify({ ours, sdk }, null, 2));
  for (const type of ["listen", "register", "invite", "dtmf", "hangup"]) {
    assert.ok(ours[type], `our client sent ${type}`);
    assert.ok(sdk[type], `the SDK sent ${type}`);
    assert.deepEqual(ours[type], sdk[type], `${type} frames match`);
  }
});

/** axe-core's violations on the page now, serious and critical only, as `rule: target` lines. */
async function accessibilityViolations(page) {
  if (!(await page.evaluate(() => typeof window.axe === "object"))) {
    await page.addScriptTag({ path: join(REPO_ROOT, "node_modules/axe-core/axe.min.js") });
  }
  const { violations } = await page.evaluate(() => window.axe.run(document, { resultTypes: ["violations"] }));
  return violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .flatMap((v) => v.nodes.map((n) => `${v.id}: ${n.target.join(" ")} (${v.help})`));
}

test("accessibility: axe finds no serious violation on the clinician page, idle, in a call, after it, and dialing by hand", async () => {
  // axe is injected as a script, which the page's CSP (rightly) refuses.
  const context = await browser.newContext({ bypassCSP: true });
  const { page } = await signedInPage("clinician-ada", context);
  const seen = {};
  await choose(page, "appt-mobile");
  await page.waitForSelector(`${PANEL} [data-action="call"]:not([disabled])`);
  seen.idle = await accessibilityViolations(page);
  await callNow(page);
  await waitState(page, "connected");
  await page.click(`${PANEL} [data-action="keypad"]`);
  seen.connected = await accessibilityViolations(page);
  await page.click(`${PANEL} [data-action="end"]`);
  await waitState(page, "ended");
  seen.ended = await accessibilityViolations(page);
  await choose(page, "appt-premium");
  await waitState(page, "unavailable");
  seen.manual = await accessibilityViolations(page);
  await context.close();
  assert.deepEqual(seen, { idle: [], connected: [], ended: [], manual: [] });
});
