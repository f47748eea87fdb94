//! End-to-end: the voice webhook, signed status callbacks, the per-appointment ledger, the call
//! extensions on the Medplum Appointment (through the outbox), and ending calls, through the real
//! worker under `wrangler dev` against the local Medplum.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { startWorker, artifactsDir, freePort, TEST_SECRETS } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { signedPost, newCallSid, startFakeTwilioRest } from "../lib/twilio.mjs";
import { sleep, waitFor as poll } from "../lib/wait.mjs";
import { callHelpers, lifecycle, callExtensions, POOL } from "../lib/calls.mjs";

const waitFor = (what, probe, timeoutMs = 30_000) => poll(what, probe, timeoutMs, 250);

const artifacts = artifactsDir();
let medplum;
let medplumPort;
let worker;
let rest;

async function startLocalMedplum() {
  return startMedplumServer({ port: medplumPort, clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
}

before(async () => {
  medplumPort = await freePort();
  medplum = await startLocalMedplum();
  rest = await startFakeTwilioRest();
  worker = await startWorker({
    logDir: artifacts,
    name: "call-core-worker",
    vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_API_BASE_URL: rest.url, TWILIO_CALLER_IDS: POOL.join(",") },
  });
});

after(async () => {
  await worker?.stop();
  await medplum?.close();
  await rest?.close();
});



const { webhook, voice, statusCallback, sendAll, appointment, waitForExtension } = callHelpers({
  workerUrl: () => worker.url,
  medplumUrl: () => medplum.url,
});

async function signIn(practitioner) {
  const response = await fetch(`${medplum.url}/auth/dev-login`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner }),
  });
  return (await response.json()).access_token;
}

async function callRecords(appointmentId, practitioner = "clinician-ada") {
  const response = await fetch(`${worker.url}/api/v1/appointments/${appointmentId}/call`, {
    headers: { authorization: `Bearer ${await signIn(practitioner)}` },
  });
  return { status: response.status, body: await response.json() };
}

const dialled = (twiml) => twiml.match(/<Number[^>]*>([^<]+)<\/Number>/)?.[1];
const callerId = (twiml) => twiml.match(/<Dial callerId="([^"]+)"/)?.[1];

test("the voice webhook asks Medplum about the clinician and the appointment in one round trip, not five requests one after another", async () => {
  // First in this file, so no earlier test's writes can be in flight beside it.
  const latency = async (ms) =>
    (await fetch(`${medplum.url}/__sim/latency`, ms === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ ms }) })).json();
  await latency(200);
  let placed;
  try {
    const started = performance.now();
    placed = await voice("appt-mobile");
    const elapsed = performance.now() - started;
    assert.match(placed.twiml, /<Dial/, placed.twiml);
    const { peakInFlight, fhirRequests } = await latency();
    // The Practitioner, its memberships with their policies, the Appointment with its Patient:
    // three FHIR requests, all in flight at once, so one round trip (five in turn before).
    assert.equal(fhirRequests, 3);
    assert.ok(peakInFlight >= 3, `requests in flight at once: ${peakInFlight}`);
    console.log(`voice webhook with 200 ms to Medplum: ${elapsed.toFixed(0)} ms, ${fhirRequests} FHIR requests, ${peakInFlight} at once`);
  } finally {
    await latency(0);
    // Ended before any leg was dialled, so that its line is free for the tests after this one.
    if (placed) {
      const ended = await fetch(`${worker.url}/api/v1/appointments/appt-mobile/call/end`, {
        method: "POST", headers: { authorization: `Bearer ${await signIn("clinician-ada")}`, "content-type": "application/json" },
        body: JSON.stringify({ callSid: placed.parentSid }),
      });
      assert.equal(ended.status, 200, await ended.text());
    }
  }
});

test("an answered call: TwiML dials the patient's number from the record, and the outcome lands on the Appointment once", async () => {
  const { parentSid, twiml } = await voice("appt-mobile", { extra: { To: "+447700900999" } });
  assert.equal(dialled(twiml), "+447700900123", "the number comes from the Patient, not the browser");
  assert.ok(POOL.includes(callerId(twiml)), twiml);
  assert.match(twiml, /answerOnBridge="true" timeout="30"/);
  assert.match(twiml, /statusCallback="[^"]+\/call-status\?appointment=appt-mobile#rc=3&amp;rp=all"/);
  assert.match(twiml, /statusCallbackEvent="initiated ringing answered completed"/);

  const childSid = newCallSid();
  await sendAll("appt-mobile", lifecycle(parentSid, childSid, "completed", 42));
  const [ext] = await waitForExtension("appt-mobile", (e) => e.callSid === childSid && e.status === "completed", "the completed call extension");
  assert.equal(ext.durationSeconds, 42);
  assert.equal(ext.parentCallSid, parentSid);
  assert.equal(ext.direction, "outbound-browser");
  assert.equal(ext.patientNumberMasked, "•••123");
  assert.equal(ext.callerId, callerId(twiml));
  assert.equal(ext.practitioner, "Practitioner/clinician-ada");
  assert.ok(ext.startedAt && ext.answeredAt && ext.endedAt);
  assert.equal(callExtensions(await appointment("appt-mobile")).filter((e) => e.callSid === childSid).length, 1);
  assert.ok(!JSON.stringify(await appointment("appt-mobile")).includes("+447700900123"), "never the full number in the record");

  const { status, body } = await callRecords("appt-mobile");
  assert.equal(status, 200);
  const record = body.calls.find((c) => c.parentCallSid === parentSid);
  assert.equal(record.status, "completed");
  assert.deepEqual(record.timeline.map((t) => t.status), ["initiated", "ringing", "in-progress", "completed"]);
  assert.equal(body.live, null);
  // The panel's entry comes with the records: the number it dialled, for dialing by hand too.
  assert.equal(body.appointment.id, "appt-mobile");
  assert.equal(body.appointment.patient.phone, dialled(twiml));
  assert.equal(body.appointment.patient.dialable, true);

  // The same signed voice request sent again after the call (a captured one, replayed) gets no
  // line and no patient's number, and changes nothing.
  const replay = await voice("appt-mobile", { parentSid, extra: { To: "+447700900999" } });
  assert.equal(dialled(replay.twiml), undefined, replay.twiml);
  assert.match(replay.twiml, /already been placed/);
  assert.match(replay.twiml, /<Hangup\/>/);
  const again = await callRecords("appt-mobile");
  assert.deepEqual(again.body.calls.find((c) => c.parentCallSid === parentSid), record, "the record is unchanged");
  const pool = await (await fetch(`${worker.url}/api/v1/admin/number-pool`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } })).json();
  assert.ok(!JSON.stringify(pool.numbers).includes(parentSid), "no line is held for it");
});

test("busy, no-answer and failed calls are recorded with their outcome", async () => {
  for (const [appointmentId, outcome] of [["appt-landline", "busy"], ["appt-formatted", "no-answer"], ["appt-dashes", "failed"]]) {
    const { parentSid, twiml } = await voice(appointmentId);
    assert.ok(dialled(twiml), twiml);
    const childSid = newCallSid();
    await sendAll(appointmentId, lifecycle(parentSid, childSid, outcome));
    const [ext] = await waitForExtension(appointmentId, (e) => e.callSid === childSid && e.status === outcome, `${outcome} extension`);
    assert.equal(ext.durationSeconds, 0);
    assert.equal(ext.answeredAt, undefined);
  }
});

test("duplicated and shuffled callbacks converge to the in-order record", async () => {
  const { parentSid } = await voice("appt-intl-prefix");
  const childSid = newCallSid();
  const events = lifecycle(parentSid, childSid, "completed", 77);
  const shuffled = [events[3], events[1], events[3], events[0], events[2], events[1], events[0], events[3]];
  await sendAll("appt-intl-prefix", shuffled);
  const [ext] = await waitForExtension("appt-intl-prefix", (e) => e.callSid === childSid && e.status === "completed", "converged record");
  assert.equal(ext.durationSeconds, 77);
  assert.equal(ext.sequenceNumber, 3);
  // A late ringing never regresses it.
  await sendAll("appt-intl-prefix", [{ ...events[1], sequence: 1 }]);
  await sleep(1500);
  const after = callExtensions(await appointment("appt-intl-prefix")).filter((e) => e.callSid === childSid);
  assert.equal(after.length, 1);
  assert.equal(after[0].status, "completed");
  const { body } = await callRecords("appt-intl-prefix");
  const record = body.calls.find((c) => c.parentCallSid === parentSid);
  assert.ok(record, `the call among ${body.calls.length} record(s)`);
  assert.deepEqual(record.timeline.map((t) => t.status), ["initiated", "ringing", "in-progress", "completed"]);
});

test("a call whose end only the Dial action reports: recorded once, and Twilio retrying that action moves nothing", async () => {
  const { parentSid } = await voice("appt-intl-prefix");
  const childSid = newCallSid();
  await sendAll("appt-intl-prefix", lifecycle(parentSid, childSid, "completed", 0).slice(0, 1));
  const dialAction = () => signedPost(`${webhook("dial-complete")}?appointment=appt-intl-prefix`, {
    AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, CallSid: parentSid, CallStatus: "in-progress",
    DialCallSid: childSid, DialCallStatus: "completed", DialCallDuration: "31", Direction: "inbound",
  });
  const first = await dialAction();
  assert.equal(first.status, 200);
  assert.match(await first.text(), /<Hangup\/>/);
  const [ext] = await waitForExtension("appt-intl-prefix", (e) => e.callSid === childSid && e.status === "completed", "the record ended by the Dial action");
  assert.equal(ext.durationSeconds, 31);
  const recordOf = async () => (await callRecords("appt-intl-prefix")).body.calls.find((c) => c.parentCallSid === parentSid);
  const before = await recordOf();
  // The action is stamped on arrival (it carries no timestamp): a retry a second later used to be
  // a second, later "completed".
  await sleep(1100);
  assert.equal((await dialAction()).status, 200);
  await sleep(1500);
  assert.deepEqual(await recordOf(), before, "the retried action changes nothing");
  const after = callExtensions(await appointment("appt-intl-prefix")).filter((e) => e.callSid === childSid);
  assert.deepEqual(after, [ext], "the Appointment keeps one record, with its first end");
});

test("forged and mutated signatures are refused with 403 and change nothing", async () => {
  const before = JSON.stringify(await callRecords("appt-two-numbers"));
  const forged = await signedPost(webhook("voice"), { CallSid: newCallSid(), From: "client:clinician-ada", AppointmentId: "appt-two-numbers" }, { signature: "bm90IGEgc2lnbmF0dXJl" });
  assert.equal(forged.status, 403);
  assert.equal((await forged.json()).error.code, "invalid_signature");
  const wrongToken = await signedPost(webhook("voice"), { CallSid: newCallSid(), From: "client:clinician-ada", AppointmentId: "appt-two-numbers" }, { authToken: "not-the-auth-token" });
  assert.equal(wrongToken.status, 403);
  const unsigned = await fetch(webhook("voice"), { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "CallSid=CA1&AppointmentId=appt-two-numbers" });
  assert.equal(unsigned.status, 403);

  // Sign one body, send another.
  const url = `${webhook("call-status")}?appointment=appt-two-numbers`;
  const params = { CallSid: newCallSid(), CallStatus: "completed", SequenceNumber: "3", CallDuration: "5" };
  const { default: twilio } = await import("twilio");
  const signature = twilio.getExpectedTwilioSignature(TEST_SECRETS.TWILIO_AUTH_TOKEN, url, params);
  const mutated = await signedPost(url, { ...params, CallDuration: "500" }, { signature });
  assert.equal(mutated.status, 403);
  // Replayed to another URL (another appointment).
  const replayed = await signedPost(`${webhook("call-status")}?appointment=appt-mobile`, params, { signature });
  assert.equal(replayed.status, 403);
  assert.equal(JSON.stringify(await callRecords("appt-two-numbers")), before, "nothing was written");
  assert.deepEqual(callExtensions(await appointment("appt-two-numbers")), []);
});

test("refused calls say why, hang up, and leave a machine-readable reason for the panel", async () => {
  const cases = [
    ["appt-premium", "client:clinician-ada", "number_blocked"],
    ["appt-no-phone", "client:clinician-ada", "number_missing"],
    ["appt-international", "client:clinician-ada", "country_not_allowed"],
    ["appt-in-person", "client:clinician-ada", "not_a_phone_appointment"],
    ["appt-bob", "client:clinician-ada", "not_your_appointment"],
    ["appt-bob", "client:clinician-bob", "permission_missing"],
    ["appt-mobile", "+447700900555", "not_a_clinician"],
  ];
  for (const [appointmentId, from, code] of cases) {
    const { parentSid, twiml } = await voice(appointmentId, { from });
    assert.doesNotMatch(twiml, /<Dial/, `${code}: no dial`);
    assert.match(twiml, /<Say language="en-GB">[^<]+<\/Say><Hangup\/><\/Response>$/, twiml);
    assert.doesNotMatch(twiml, /[0-9]{4}/, "no numbers spoken");
    const reader = appointmentId === "appt-bob" ? "clinician-bob" : "clinician-ada";
    const { body } = await callRecords(appointmentId, reader);
    const record = body.calls.find((c) => c.parentCallSid === parentSid);
    assert.equal(record?.status, "refused", `${code}: ${JSON.stringify(body)}`);
    assert.equal(record.refusedCode, code);
  }
  assert.deepEqual(callExtensions(await appointment("appt-premium")), [], "refusals place no call on the Appointment");
});

test("when every pool number is in a call, the next call is refused as no line free until one ends", async () => {
  const first = await voice("appt-two-numbers");
  const second = await voice("appt-landline");
  assert.notEqual(callerId(first.twiml), callerId(second.twiml), "two live calls never share a number");
  const third = await voice("appt-mobile");
  assert.doesNotMatch(third.twiml, /<Dial/);
  const { body } = await callRecords("appt-mobile");
  assert.equal(body.calls.find((c) => c.parentCallSid === third.parentSid).refusedCode, "no_line_free");
  // The first call ends: its number is free again.
  await sendAll("appt-two-numbers", lifecycle(first.parentSid, newCallSid(), "busy"));
  const fourth = await voice("appt-mobile");
  assert.equal(callerId(fourth.twiml), callerId(first.twiml));
  await sendAll("appt-landline", lifecycle(second.parentSid, newCallSid(), "no-answer"));
  await sendAll("appt-mobile", lifecycle(fourth.parentSid, newCallSid(), "failed"));
});

test("two calls on one appointment become two extensions, and concurrent edits to the Appointment survive", async () => {
  const token = await signIn("clinician-ada");
  const editor = (async () => {
    for (let i = 0; i < 100; i++) {
      const current = await (await fetch(`${medplum.url}/fhir/R4/Appointment/appt-two-numbers`, { headers: { authorization: `Bearer ${token}` } })).json();
      const response = await fetch(`${medplum.url}/fhir/R4/Appointment/appt-two-numbers`, {
        method: "PUT",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/fhir+json", "if-match": `W/"${current.meta.versionId}"` },
        body: JSON.stringify({ ...current, comment: "rescheduled note kept" }),
      });
      if (response.ok) return;
      await sleep(20);
    }
    throw new Error("the concurrent edit never landed");
  })();
  const sids = [];
  for (let i = 0; i < 2; i++) {
    const { parentSid } = await voice("appt-two-numbers");
    const childSid = newCallSid();
    sids.push(childSid);
    await sendAll("appt-two-numbers", lifecycle(parentSid, childSid, "completed", 10 + i));
  }
  await editor;
  await waitFor("both extensions", async () => {
    const exts = callExtensions(await appointment("appt-two-numbers"));
    return sids.every((sid) => exts.some((e) => e.callSid === sid && e.status === "completed")) ? exts : null;
  });
  const final = await appointment("appt-two-numbers");
  assert.equal(final.comment, "rescheduled note kept");
  assert.equal(callExtensions(final).filter((e) => sids.includes(e.callSid)).length, 2);
});

test("the clinician ends a live call through Twilio's REST API; a failing API is retried", async () => {
  const token = await signIn("clinician-ada");
  const end = (body) => fetch(`${worker.url}/api/v1/appointments/appt-formatted/call/end`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body),
  });
  const { parentSid } = await voice("appt-formatted");
  const childSid = newCallSid();
  await sendAll("appt-formatted", lifecycle(parentSid, childSid, "completed").slice(0, 3));
  const live = await callRecords("appt-formatted");
  assert.equal(live.body.live?.parentCallSid, parentSid, "the live call is reported");

  const response = await end({ callSid: parentSid });
  assert.equal(response.status, 200, await response.clone().text());
  const hangup = rest.requests.find((r) => r.path === `/2010-04-01/Accounts/${TEST_SECRETS.TWILIO_ACCOUNT_SID}/Calls/${parentSid}.json`);
  assert.ok(hangup, JSON.stringify(rest.requests));
  assert.equal(hangup.body, "Status=completed");
  assert.equal(hangup.authorization, `Basic ${Buffer.from(`${TEST_SECRETS.TWILIO_API_KEY}:${TEST_SECRETS.TWILIO_API_SECRET}`).toString("base64")}`);
  await sendAll("appt-formatted", lifecycle(parentSid, childSid, "completed").slice(3));
  const [ext] = await waitForExtension("appt-formatted", (e) => e.callSid === childSid && e.status === "completed" && e.endedBy === "clinician", "endedBy clinician");
  assert.equal(ext.durationSeconds, 42);
  const again = await end({ callSid: parentSid });
  assert.equal(again.status, 200, "ending an ended call is idempotent");

  // Twilio's API down: the intent is recorded (202) and retried until it succeeds.
  const second = await voice("appt-formatted");
  await sendAll("appt-formatted", lifecycle(second.parentSid, newCallSid(), "completed").slice(0, 3));
  rest.state.failing = true;
  const pending = await end({ callSid: second.parentSid });
  assert.equal(pending.status, 202);
  assert.equal((await pending.json()).hangupPending, true);
  rest.state.failing = false;
  await waitFor("the retried hangup", async () =>
    rest.requests.some((r) => r.path.includes(second.parentSid) && !r.failed));

  assert.equal((await end({ callSid: newCallSid() })).status, 404);
  assert.equal((await end({})).status, 400);
});

test("a call ended before its patient was dialled is closed, and ending a finished call changes nothing", async () => {
  const token = await signIn("clinician-ada");
  const end = (body) => fetch(`${worker.url}/api/v1/appointments/appt-dashes/call/end`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify(body),
  });
  // End pressed while the voice webhook was still answering: Twilio never runs the <Dial>, so
  // no status callback will ever come for this call.
  const { parentSid } = await voice("appt-dashes");
  assert.equal((await callRecords("appt-dashes")).body.live?.parentCallSid, parentSid, "live until ended");
  const response = await end({ callSid: parentSid });
  assert.equal(response.status, 200, await response.clone().text());
  const { record } = await response.json();
  assert.equal(record.status, "canceled");
  assert.equal(record.terminal, true);
  assert.equal(record.endedBy, "clinician");
  assert.equal((await callRecords("appt-dashes")).body.live, null, "no longer live");
  const [ext] = await waitForExtension("appt-dashes", (e) => e.callSid === parentSid && e.status === "canceled", "the closed call on the Appointment");
  assert.equal(ext.endedBy, "clinician");
  // Twilio had dialled after all (End raced the <Dial>): the patient's leg reports late. The
  // call's extension is updated in place, not written a second time beside the first.
  const lateChild = newCallSid();
  await sendAll("appt-dashes", lifecycle(parentSid, lateChild, "completed", 7));
  await waitForExtension("appt-dashes", (e) => e.callSid === lateChild && e.status === "completed", "the late leg's outcome");
  const forCall = callExtensions(await appointment("appt-dashes")).filter((e) => e.callSid === parentSid || e.parentCallSid === parentSid);
  assert.equal(forCall.length, 1, JSON.stringify(forCall));

  // The patient hung up first: End changes nothing (no hang-up sent, not "ended by clinician").
  const second = await voice("appt-dashes");
  const childSid = newCallSid();
  await sendAll("appt-dashes", lifecycle(second.parentSid, childSid, "completed", 12));
  const hangupsBefore = rest.requests.length;
  const late = await end({ callSid: second.parentSid });
  assert.equal(late.status, 200, await late.clone().text());
  assert.equal((await late.json()).record.endedBy, null);
  assert.equal(rest.requests.length, hangupsBefore, "no hang-up for a finished call");
  const calls = (await callRecords("appt-dashes")).body.calls;
  assert.equal(calls.find((c) => c.parentCallSid === second.parentSid)?.endedBy, null);

  // Twilio's API down when End is pressed: the call is closed once the retried hang-up succeeds.
  const third = await voice("appt-dashes");
  rest.state.failing = true;
  const pending = await end({ callSid: third.parentSid });
  assert.equal(pending.status, 202);
  assert.equal((await pending.json()).record.terminal, false, "not closed before Twilio confirms");
  rest.state.failing = false;
  await waitForExtension("appt-dashes", (e) => e.callSid === third.parentSid && e.status === "canceled", "the call closed after the retried hang-up");
  assert.equal((await callRecords("appt-dashes")).body.live, null);
});

test("a manually dialled call's outcome is recorded on the Appointment", async () => {
  const token = await signIn("clinician-ada");
  const response = await fetch(`${worker.url}/api/v1/appointments/appt-dashes/call/end`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ manual: { outcome: "completed", durationSeconds: 95 } }),
  });
  assert.equal(response.status, 201, await response.clone().text());
  const [ext] = await waitForExtension("appt-dashes", (e) => e.direction === "manual", "manual call extension");
  assert.equal(ext.durationSeconds, 95);
  assert.equal(ext.endedBy, "clinician");
  // Its start and answer are the call's, 95 s before it ended, not the moment it was saved.
  assert.equal((Date.parse(ext.endedAt) - Date.parse(ext.startedAt)) / 1000, 95);
  assert.equal(ext.answeredAt, ext.startedAt);
  // Two outcomes saved at once (a double click) are two records, neither refused.
  const both = await Promise.all([30, 31].map((durationSeconds) => fetch(`${worker.url}/api/v1/appointments/appt-dashes/call/end`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ manual: { outcome: "completed", durationSeconds } }),
  })));
  assert.deepEqual(both.map((r) => r.status), [201, 201]);
  await waitForExtension("appt-dashes", (e) => e.direction === "manual" && e.durationSeconds === 31, "the second");
  await waitForExtension("appt-dashes", (e) => e.direction === "manual" && e.durationSeconds === 30, "the first");
  const bad = await fetch(`${worker.url}/api/v1/appointments/appt-dashes/call/end`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ manual: { outcome: "ringing" } }),
  });
  assert.equal(bad.status, 400);
  // The same outcome sent again with its key (its first reply lost) is stored once and answered
  // with the first record; a malformed key is refused.
  const keyed = (key, durationSeconds = 47) => fetch(`${worker.url}/api/v1/appointments/appt-dashes/call/end`, {
    method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ manual: { outcome: "busy", durationSeconds, key } }),
  });
  const first = await keyed("TJS0f8e2a3c-5b1d-4e7f-9a2b-3c4d5e6f7a8b");
  const again = await keyed("TJS0f8e2a3c-5b1d-4e7f-9a2b-3c4d5e6f7a8b");
  assert.deepEqual([first.status, again.status], [201, 201]);
  const [a, b] = [(await first.json()).record, (await again.json()).record];
  assert.equal(b.callSid, a.callSid, "the first record, not a second");
  await waitForExtension("appt-dashes", (e) => e.callSid === a.callSid, "the keyed outcome");
  const ledger = (await callRecords("appt-dashes")).body.calls;
  assert.equal(ledger.filter((c) => c.callSid === a.callSid).length, 1);
  assert.equal((await keyed("TJS bad key")).status, 400);
});

test("only the appointment's clinicians read or end its calls", async () => {
  assert.equal((await callRecords("appt-mobile", "clinician-cy")).status, 403);
  assert.equal((await fetch(`${worker.url}/api/v1/appointments/appt-mobile/call`)).status, 401);
  assert.equal((await callRecords("no-such-appointment")).status, 404);
  const end = await fetch(`${worker.url}/api/v1/appointments/appt-mobile/call/end`, {
    method: "POST", headers: { authorization: `Bearer ${await signIn("clinician-cy")}`, "content-type": "application/json" },
    body: JSON.stringify({ manual: { outcome: "completed" } }),
  });
  assert.equal(end.status, 403);
});

test("Medplum down during a call: callbacks are still accepted, and the record appears exactly once after", async () => {
  const { parentSid } = await voice("appt-landline");
  const childSid = newCallSid();
  const retries = () => readFileSync(worker.logPath, "utf8").split("fhir_write_retry").length - 1;
  const retriesBefore = retries();
  await medplum.close();
  await sendAll("appt-landline", lifecycle(parentSid, childSid, "completed", 33));
  await waitFor("a write that failed while Medplum was down", async () => retries() > retriesBefore, 30_000);
  medplum = await startLocalMedplum(); // fresh fixtures: the record must be written anew
  const found = await waitForExtension("appt-landline", (e) => e.callSid === childSid, "the record after the outage");
  assert.equal(found.length, 1);
  assert.equal(found[0].status, "completed");
  assert.equal(found[0].durationSeconds, 33);
  await sleep(2500);
  assert.equal(callExtensions(await appointment("appt-landline")).filter((e) => e.callSid === childSid).length, 1, "never written twice");
});

/** Reads Server-Sent Events from a fetch response, one `{event, data}` at a time. */
function sseReader(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  // The next event; the keep-alives the worker sends every 25 s are passed over unless asked for.
  return async function next(timeoutMs = 15_000, { keepAlive = false } = {}) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (!buffer.includes("\n\n")) {
        const chunk = await Promise.race([reader.read(), sleep(Math.max(0, deadline - Date.now())).then(() => "timeout")]);
        if (chunk === "timeout") throw new Error("no event in time");
        if (chunk.done) throw new Error("stream ended");
        buffer += decoder.decode(chunk.value, { stream: true });
      }
      const end = buffer.indexOf("\n\n");
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = frame.match(/^event: (.*)$/m)?.[1];
      const data = JSON.parse(frame.match(/^data: (.*)$/m)?.[1] ?? "null");
      if (event !== "alive" || keepAlive) return { event, data };
    }
  };
}

test("the ledger pushes each call's progress to the appointment's clinician as it happens, and says it is alive when nothing does", async () => {
  const url = `${worker.url}/api/v1/appointments/appt-two-numbers/call/events`;
  assert.equal((await fetch(url)).status, 401);
  assert.equal((await fetch(url, { headers: { authorization: `Bearer ${await signIn("clinician-cy")}` } })).status, 403);

  const controller = new AbortController();
  const response = await fetch(url, { headers: { authorization: `Bearer ${await signIn("clinician-ada")}` }, signal: controller.signal });
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /text\/event-stream/);
  const next = sseReader(response);
  const snapshot = await next();
  assert.equal(snapshot.event, "snapshot");
  assert.ok(Array.isArray(snapshot.data.calls));

  const { parentSid } = await voice("appt-two-numbers");
  const placed = await next();
  assert.equal(placed.event, "call");
  assert.equal(placed.data.parentCallSid, parentSid);
  assert.equal(placed.data.status, "initiated");

  const childSid = newCallSid();
  const seen = [];
  for (const callback of lifecycle(parentSid, childSid, "busy")) {
    await sendAll("appt-two-numbers", [callback]);
    const update = await next();
    assert.equal(update.data.parentCallSid, parentSid);
    seen.push(update.data.status);
  }
  assert.deepEqual(seen, ["initiated", "ringing", "busy"]);
  // A repeated callback changes nothing, so nothing is pushed; the next real change is.
  await sendAll("appt-two-numbers", [lifecycle(parentSid, childSid, "busy")[2]]);
  const manual = await fetch(`${worker.url}/api/v1/appointments/appt-two-numbers/call/end`, {
    method: "POST", headers: { authorization: `Bearer ${await signIn("clinician-ada")}`, "content-type": "application/json" },
    body: JSON.stringify({ manual: { outcome: "completed", durationSeconds: 60 } }),
  });
  assert.equal(manual.status, 201);
  const afterRepeat = await next();
  assert.equal(afterRepeat.data.direction, "manual", "the repeat pushed nothing; the manual record is next");
  // Nothing changes now: the stream still says it is alive, so a page can tell a quiet
  // appointment from a dead connection.
  const quiet = await next(40_000, { keepAlive: true });
  assert.deepEqual(quiet, { event: "alive", data: {} });
  controller.abort();
});
