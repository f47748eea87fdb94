//! End-to-end: the shared number pool (admin API with audit, retiring, LRU and stickiness, no
//! double lease under 1,000 concurrent requests), misuse limits, and patients calling back.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, artifactsDir, freePort, TEST_SECRETS } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { signedPost, newCallSid, rfc2822 } from "../lib/twilio.mjs";

const artifacts = artifactsDir();
const POOL = ["+447700900001", "+447700900002"];
const PRACTICE = "+442079460000";
let medplum;
let worker;

before(async () => {
  medplum = await startMedplumServer({ port: await freePort(), clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
  worker = await startWorker({
    logDir: artifacts,
    name: "number-pool-worker",
    vars: {
      MEDPLUM_BASE_URL: medplum.url,
      TWILIO_CALLER_IDS: POOL.join(","),
      CALL_LIMITS_PER_HOUR: "clinician=5,patient=2",
      PRACTICE_PHONE_NUMBER: PRACTICE,
    },
  });
});

after(async () => {
  await worker?.stop();
  await medplum?.close();
});

const admin = (path, { method = "GET", body, token = TEST_SECRETS.ADMIN_TOKEN } = {}) =>
  fetch(`${worker.url}/api/v1/admin/number-pool${path}`, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), "content-type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });

async function voice(appointment) {
  const parentSid = newCallSid();
  const response = await signedPost(`${worker.url}/api/v1/twilio/webhooks/voice`, {
    CallSid: parentSid, From: "client:clinician-ada", To: "", Direction: "inbound", AppointmentId: appointment,
  });
  const twiml = await response.text();
  return { parentSid, twiml, callerId: twiml.match(/callerId="([^"]+)"/)?.[1] };
}

async function finish(appointment, parentSid, status = "completed") {
  const response = await signedPost(`${worker.url}/api/v1/twilio/webhooks/call-status?appointment=${appointment}`, {
    CallSid: newCallSid(), ParentCallSid: parentSid, CallStatus: status, SequenceNumber: "3", Timestamp: rfc2822(), CallDuration: "10",
  });
  assert.equal(response.status, 200);
}

async function signIn(practitioner) {
  const response = await fetch(`${medplum.url}/auth/dev-login`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner }),
  });
  return (await response.json()).access_token;
}

async function records(appointment) {
  const response = await fetch(`${worker.url}/api/v1/appointments/${appointment}/call`, { headers: { authorization: `Bearer ${await signIn("clinician-ada")}` } });
  return (await response.json()).calls;
}

test("the admin API needs the admin token, validates numbers, and audits every change", async () => {
  assert.equal((await admin("", { token: null })).status, 401);
  assert.equal((await admin("", { token: "not-the-admin-token" })).status, 401);
  const listed = await (await admin("")).json();
  assert.deepEqual(listed.numbers.map((n) => n.number).sort(), POOL);
  assert.ok(listed.audit.every((entry) => entry.actor === "config" && entry.action === "add"));

  const bad = await admin("", { method: "POST", body: { number: "07700 900003" } });
  assert.equal(bad.status, 400);
  assert.equal((await admin("", { method: "POST", body: { number: "+447700900003" } })).status, 200);
  const after = await (await admin("")).json();
  assert.ok(after.numbers.some((n) => n.number === "+447700900003" && n.status === "active"));
  assert.deepEqual(after.audit.at(-1).actor, "admin");
  assert.deepEqual(after.audit.at(-1).action, "add");
});

test("retiring a leased number waits for its call to end, and a retired number is never chosen", async () => {
  const callSid = newCallSid();
  // Lease until the third number is the one held.
  const held = [];
  for (let i = 0; i < 3; i++) {
    const sid = i === 2 ? callSid : newCallSid();
    const leased = await (await admin("/leases", { method: "POST", body: { callSid: sid, destination: "+447700900123" } })).json();
    held.push([sid, leased.number]);
  }
  const [, third] = held[2];
  const retire = await (await admin("", { method: "DELETE", body: { number: third } })).json();
  assert.equal(retire.numbers.find((n) => n.number === third).status, "retiring");
  for (const [sid] of held) await admin(`/leases/${sid}`, { method: "DELETE" });
  const list = await (await admin("")).json();
  assert.equal(list.numbers.find((n) => n.number === third).status, "retired");
  assert.equal(list.audit.at(-1).action, "retire-after-lease");
  for (let i = 0; i < 4; i++) {
    const sid = newCallSid();
    const leased = await (await admin("/leases", { method: "POST", body: { callSid: sid, destination: "+447700900123" } })).json();
    assert.notEqual(leased.number, third);
    await admin(`/leases/${sid}`, { method: "DELETE" });
  }
});

test("a lease is taken only under a call SID, the name it can be released by", async () => {
  const refused = await admin("/leases", { method: "POST", body: { callSid: "diag-1", destination: "+447700900123" } });
  assert.equal(refused.status, 400);
  assert.match((await refused.json()).error.message, /call SID/);
  const list = await (await admin("")).json();
  assert.ok(!JSON.stringify(list.numbers).includes("diag-1"), "nothing leased");
});

test("1,000 concurrent lease requests never lease a number twice", async () => {
  for (let i = 10; i < 20; i++) await admin("", { method: "POST", body: { number: `+4477009000${i}` } });
  const active = (await (await admin("")).json()).numbers.filter((n) => n.status === "active").length;
  const sids = Array.from({ length: 1000 }, newCallSid);
  const started = performance.now();
  const answers = await Promise.all(sids.map(async (callSid) => {
    const response = await admin("/leases", { method: "POST", body: { callSid, destination: "+447700900123" } });
    return { callSid, status: response.status, body: await response.json() };
  }));
  const seconds = (performance.now() - started) / 1000;
  const granted = answers.filter((a) => a.status === 200);
  const refused = answers.filter((a) => a.status === 409);
  assert.equal(granted.length + refused.length, 1000, "every request answered 200 or 409");
  assert.equal(granted.length, active, "every active number leased exactly once");
  assert.equal(new Set(granted.map((a) => a.body.number)).size, granted.length, "no number leased twice");
  console.log(`pool: 1000 concurrent lease requests in ${seconds.toFixed(2)} s (${Math.round(1000 / seconds)} leases/s through wrangler dev), ${granted.length} granted, 0 double leases`);
  await Promise.all(granted.map((a) => admin(`/leases/${a.callSid}`, { method: "DELETE" })));
  const released = (await (await admin("")).json()).numbers.filter((n) => n.lease);
  assert.deepEqual(released, []);
});

test("a patient's sticky number is reused, and the hourly limits refuse with plain codes", async () => {
  const first = await voice("appt-mobile");
  assert.ok(first.callerId, first.twiml);
  await finish("appt-mobile", first.parentSid);
  const second = await voice("appt-mobile");
  assert.equal(second.callerId, first.callerId, "the number that last called the patient");
  await finish("appt-mobile", second.parentSid);
  const third = await voice("appt-mobile");
  assert.doesNotMatch(third.twiml, /<Dial/);
  assert.equal((await records("appt-mobile")).find((r) => r.parentCallSid === third.parentSid).refusedCode, "patient_limit_reached");
  // Clinician limit (5 an hour): two calls so far; three more to other patients, then refused.
  for (const appointment of ["appt-landline", "appt-formatted", "appt-dashes"]) {
    const call = await voice(appointment);
    assert.match(call.twiml, /<Dial/, appointment);
    await finish(appointment, call.parentSid, "busy");
  }
  const over = await voice("appt-intl-prefix");
  assert.doesNotMatch(over.twiml, /<Dial/);
  assert.equal((await records("appt-intl-prefix")).find((r) => r.parentCallSid === over.parentSid).refusedCode, "clinician_limit_reached");
});

test("a patient calling the number back rings the clinician who called; otherwise the practice", async () => {
  const [mobileCall] = (await records("appt-mobile")).filter((r) => r.callerId).slice(-1);
  const poolNumber = mobileCall.callerId;
  const inboundSid = newCallSid();
  const inbound = await signedPost(`${worker.url}/api/v1/twilio/webhooks/inbound`, {
    CallSid: inboundSid, From: "+447700900123", To: poolNumber, Direction: "inbound", CallStatus: "ringing",
  });
  assert.equal(inbound.status, 200);
  const twiml = await inbound.text();
  assert.match(twiml, /<Client[^>]*><Identity>clinician-ada<\/Identity><Parameter name="AppointmentId" value="appt-mobile"\/><\/Client>/, twiml);
  assert.match(twiml, /inbound-complete\?appointment=appt-mobile/);
  const record = (await records("appt-mobile")).find((r) => r.parentCallSid === inboundSid);
  assert.equal(record.direction, "inbound");
  assert.equal(record.patientNumberMasked, "•••123");

  const missed = await signedPost(`${worker.url}/api/v1/twilio/webhooks/inbound-complete?appointment=appt-mobile`, {
    CallSid: inboundSid, DialCallStatus: "no-answer", DialCallSid: newCallSid(),
  });
  assert.match(await missed.text(), new RegExp(`<Number>\\${PRACTICE}</Number>`));
  // The practice's <Dial> has its own action: a practice that does not answer is said so,
  // rather than the call ending in silence.
  const missedTwiml = await (await signedPost(`${worker.url}/api/v1/twilio/webhooks/inbound-complete?appointment=appt-mobile`, {
    CallSid: inboundSid, DialCallStatus: "no-answer", DialCallSid: newCallSid(),
  })).text();
  assert.match(missedTwiml, /<Dial[^>]* action="[^"]+\/api\/v1\/twilio\/webhooks\/practice-complete#rc=3&amp;rp=all"/, missedTwiml);
  const practiceDone = (DialCallStatus) => signedPost(`${worker.url}/api/v1/twilio/webhooks/practice-complete`, { CallSid: inboundSid, DialCallStatus, DialCallSid: newCallSid() });
  const unanswered = await (await practiceDone("no-answer")).text();
  assert.match(unanswered, /<Say[^>]*>The practice could not take your call\.[^<]*<\/Say><Hangup\/><\/Response>$/, unanswered);
  assert.match(await (await practiceDone("completed")).text(), /<Response><Hangup\/><\/Response>$/);
  assert.equal((await signedPost(`${worker.url}/api/v1/twilio/webhooks/practice-complete`, { CallSid: inboundSid, DialCallStatus: "busy" }, { signature: "Zm9yZ2Vk" })).status, 403);
  // The clinician's leg reported nothing of its own: the Dial action's outcome is the record's.
  const missedRecord = (await records("appt-mobile")).find((r) => r.parentCallSid === inboundSid);
  assert.equal(missedRecord.status, "no-answer");
  assert.equal(missedRecord.terminal, true);

  // A call-back leg's callback that arrives before (or without) the call's own record, say the
  // ledger was unreachable when the call came in, is still filed as inbound.
  assert.match(twiml, /call-status\?appointment=appt-mobile&amp;direction=inbound/);
  const orphanSid = newCallSid();
  const orphan = await signedPost(`${worker.url}/api/v1/twilio/webhooks/call-status?appointment=appt-mobile&direction=inbound`, {
    CallSid: newCallSid(), ParentCallSid: orphanSid, CallStatus: "ringing", SequenceNumber: "1", Timestamp: new Date().toUTCString(),
  });
  assert.equal(orphan.status, 200);
  assert.equal((await records("appt-mobile")).find((r) => r.parentCallSid === orphanSid)?.direction, "inbound");

  const stranger = await signedPost(`${worker.url}/api/v1/twilio/webhooks/inbound`, {
    CallSid: newCallSid(), From: "+447700900777", To: poolNumber, Direction: "inbound",
  });
  assert.match(await stranger.text(), new RegExp(`<Number>\\${PRACTICE}</Number>`));
  const forged = await signedPost(`${worker.url}/api/v1/twilio/webhooks/inbound`, { CallSid: newCallSid(), From: "+447700900123", To: poolNumber }, { signature: "Zm9yZ2Vk" });
  assert.equal(forged.status, 403);
});
