//! End-to-end faults on the local stack: Medplum unreachable in the middle of a day of calls (every
//! record reaches its Appointment exactly once afterwards, none lost, none doubled), and the worker
//! restarted mid-call with its Durable Object state persisted (the ledger carries on consistently),
//! and callbacks lost altogether (the lease expires and frees the number).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startWorker, artifactsDir, freePort, TEST_SECRETS } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { newCallSid, signedPost } from "../lib/twilio.mjs";
import { sleep, waitFor } from "../lib/wait.mjs";
import { callHelpers, lifecycle, callExtensions } from "../lib/calls.mjs";
import { startSwitchableProxy } from "../lib/outage.mjs";

const artifacts = artifactsDir();
/** Enough caller IDs for every call of the outage to be in progress at once. */
const POOL = Array.from({ length: 14 }, (_, i) => `+4477009000${String(i + 1).padStart(2, "0")}`);
const APPOINTMENTS = ["appt-mobile", "appt-landline", "appt-formatted", "appt-intl-prefix", "appt-dashes"];
let medplum;
let medplumPath;
let worker;
let workerPort;
let persistDir;

async function startOurWorker() {
  return startWorker({
    port: workerPort,
    persistDir,
    logDir: artifacts,
    name: "faults-worker",
    vars: { MEDPLUM_BASE_URL: medplumPath.url, TWILIO_CALLER_IDS: POOL.join(","), CALL_LIMITS_PER_HOUR: "clinician=100,patient=20" },
  });
}

before(async () => {
  const medplumPort = await freePort();
  // The worker reaches Medplum through a proxy that the test can switch off; Medplum keeps its data.
  medplumPath = await startSwitchableProxy(medplumPort);
  medplum = await startMedplumServer({
    port: medplumPort, issuer: `${medplumPath.url}/`,
    clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET,
  });
  workerPort = await freePort();
  persistDir = mkdtempSync(join(tmpdir(), "faults-state-"));
  worker = await startOurWorker();
});

after(async () => {
  await worker?.stop();
  await medplumPath?.close();
  await medplum?.close();
  if (persistDir) rmSync(persistDir, { recursive: true, force: true });
});

const { webhook, voice, sendAll, appointment } = callHelpers({ workerUrl: () => worker.url, medplumUrl: () => medplum.url });

/** Today's clock time `hh:mm` as epoch ms, for callbacks spread over a working day. */
const atClock = (hours, minutes) => {
  const d = new Date();
  d.setUTCHours(hours, minutes, 0, 0);
  return d.getTime();
};

async function extensionsByCallSid() {
  const all = new Map();
  for (const id of APPOINTMENTS) {
    for (const ext of callExtensions(await appointment(id))) {
      all.set(ext.callSid, [...(all.get(ext.callSid) ?? []), { ...ext, appointment: id }]);
    }
  }
  return all;
}

test("Medplum unreachable during a day of calls: every record is written once afterwards, none lost or doubled", async () => {
  const outcomes = ["completed", "completed", "busy", "completed", "no-answer", "completed", "failed"];
  const calls = Array.from({ length: 20 }, (_, i) => ({
    appointment: APPOINTMENTS[i % APPOINTMENTS.length],
    childSid: newCallSid(),
    outcome: outcomes[i % outcomes.length],
    duration: 30 + i,
    startedAt: atClock(9 + Math.floor(i / 3), (i % 3) * 20),
  }));
  // Morning: eight calls, each placed and ended while Medplum is up.
  for (const call of calls.slice(0, 8)) {
    call.parentSid = (await voice(call.appointment)).parentSid;
    await sendAll(call.appointment, lifecycle(call.parentSid, call.childSid, call.outcome, call.duration, call.startedAt));
  }
  // Twelve calls are placed and ringing (in progress when answered) when Medplum becomes unreachable.
  const inFlight = calls.slice(8);
  for (const call of inFlight) {
    call.parentSid = (await voice(call.appointment)).parentSid;
    const events = lifecycle(call.parentSid, call.childSid, call.outcome, call.duration, call.startedAt);
    call.rest = events.slice(2);
    await sendAll(call.appointment, events.slice(0, 2));
  }
  medplumPath.down();
  // While it is down: every call ends, and every callback is still accepted (stored in the ledger).
  for (const call of inFlight) await sendAll(call.appointment, call.rest);
  // A call attempted during the outage cannot read its appointment: it is refused, and records nothing.
  const attempt = await signedPost(webhook("voice"), { CallSid: newCallSid(), From: "client:clinician-ada", To: "", Direction: "inbound", CallStatus: "ringing", AppointmentId: "appt-mobile" });
  assert.equal(attempt.status, 200);
  assert.match(await attempt.text(), /<Say[^>]*>The call service is temporarily unavailable\. The patient&apos;s number is shown on your screen\.[^<]*<\/Say><Hangup\/>/);
  // Long enough for the outbox's backoff (2, 4, 8, 16 s, then every 30 s) to reach its cap: the
  // state any longer outage is in, where each further minute only adds two failed attempts.
  await sleep(32_000);
  // Their progress up to ringing was written before the outage; no outcome got through during it.
  const during = await extensionsByCallSid();
  for (const call of inFlight) {
    assert.deepEqual((during.get(call.childSid) ?? []).map((e) => e.status).filter((s) => s !== "initiated" && s !== "ringing"), [], "no outcome reached Medplum while it was down");
  }
  medplumPath.up();

  // Back up: the outbox drains on its own.
  await waitFor("every outcome on its appointment", async () => {
    const written = await extensionsByCallSid();
    return calls.every((call) => written.get(call.childSid)?.some((e) => e.status === call.outcome)) ? written : null;
  }, 120_000, 1000);
  await sleep(3000); // a late duplicate would show by now
  const written = await extensionsByCallSid();
  for (const call of calls) {
    const found = written.get(call.childSid) ?? [];
    assert.equal(found.length, 1, `call ${call.childSid.slice(0, 6)}… written exactly once`);
    assert.equal(found[0].appointment, call.appointment);
    assert.equal(found[0].status, call.outcome);
    if (call.outcome === "completed") assert.equal(found[0].durationSeconds, call.duration);
  }
  assert.equal([...written.values()].flat().length, calls.length, "no record that was not a call");
  console.log(`outage: ${inFlight.length} of ${calls.length} calls ended while Medplum was unreachable; all ${calls.length} records written once`);
});

test("Medplum hanging (accepting, never answering): a clinician's request is answered 503, not left waiting, and works again after", async () => {
  const login = await (await fetch(`${medplum.url}/auth/dev-login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner: "clinician-ada" }) })).json();
  // The test's own guard: without the worker's deadline on Medplum, the answer never comes.
  const list = () => fetch(`${worker.url}/api/v1/appointments`, { headers: { authorization: `Bearer ${login.access_token}` }, signal: AbortSignal.timeout(90_000) });
  assert.equal((await list()).status, 200);
  medplumPath.stall();
  try {
    const stalled = await list();
    assert.equal(stalled.status, 503);
    assert.equal((await stalled.json()).error.code, "medplum_unavailable");
    assert.equal(stalled.headers.get("retry-after"), "30");
  } finally {
    medplumPath.up();
  }
  assert.equal((await list()).status, 200);
});

test("the worker restarted mid-call keeps the call's ledger: the call ends, is recorded once, and frees its number", async () => {
  const { parentSid } = await voice("appt-dashes");
  const childSid = newCallSid();
  const events = lifecycle(parentSid, childSid, "completed", 64);
  await sendAll("appt-dashes", events.slice(0, 3)); // initiated, ringing, in-progress

  await worker.stop();
  worker = await startOurWorker();
  // same port (webhook URLs unchanged), same persisted state
  const admin = { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` };
  const leased = async () => (await (await fetch(`${worker.url}/api/v1/admin/number-pool`, { headers: admin })).json())
    .numbers.filter((n) => n.lease?.callSid === parentSid);
  assert.equal((await leased()).length, 1, "the call's lease survived the restart");

  await sendAll("appt-dashes", events.slice(3)); // completed
  const [found] = await waitFor("the record after the restart", async () => {
    const list = callExtensions(await appointment("appt-dashes")).filter((e) => e.callSid === childSid);
    return list.some((e) => e.status === "completed") ? list : null;
  }, 30_000, 250);
  assert.equal(found.status, "completed");
  assert.equal(found.durationSeconds, 64);
  const login = await (await fetch(`${medplum.url}/auth/dev-login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner: "clinician-ada" }) })).json();
  const { calls } = await (await fetch(`${worker.url}/api/v1/appointments/appt-dashes/call`, { headers: { authorization: `Bearer ${login.access_token}` } })).json();
  const record = calls.filter((c) => c.parentCallSid === parentSid);
  assert.equal(record.length, 1, "one record for the call");
  assert.equal(record[0].status, "completed");
  assert.deepEqual(record[0].timeline.map((t) => t.status), ["initiated", "ringing", "in-progress", "completed"]);
  assert.equal((await leased()).length, 0, "the number was freed");
  await sleep(2500);
  assert.equal(callExtensions(await appointment("appt-dashes")).filter((e) => e.callSid === childSid).length, 1, "written once");
});

test("callbacks lost: a call that never reports its end frees its number when the lease expires, and a retiring number is retired", async () => {
  const leaseSeconds = 5;
  const small = await startWorker({
    logDir: artifacts,
    name: "faults-lease-worker",
    vars: { MEDPLUM_BASE_URL: medplumPath.url, TWILIO_CALLER_IDS: "+447700900001,+447700900002", POOL_LEASE_SECONDS: String(leaseSeconds), CALL_LIMITS_PER_HOUR: "clinician=100,patient=20" },
  });
  try {
    const calls = callHelpers({ workerUrl: () => small.url, medplumUrl: () => medplum.url });
    const dials = (twiml) => /<Dial/.test(twiml);
    // Two calls take both lines, and Twilio's callbacks for them never arrive.
    const first = await calls.voice("appt-mobile");
    const second = await calls.voice("appt-landline");
    assert.ok(dials(first.twiml) && dials(second.twiml));
    const leasedAt = Date.now();
    const refused = await calls.voice("appt-formatted");
    assert.ok(!dials(refused.twiml), "no line is free while both leases hold");
    assert.match(refused.twiml, /<Say/);
    // An operator retires one of the busy numbers: it waits for its call to end.
    const pool = async (init = {}) => (await fetch(`${small.url}/api/v1/admin/number-pool`, {
      ...init,
      headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, "content-type": "application/json" },
    })).json();
    const retiredNumber = "+447700900001";
    const retiring = await pool({ method: "DELETE", body: JSON.stringify({ number: retiredNumber }) });
    assert.equal(retiring.numbers.find((n) => n.number === retiredNumber).status, "retiring");
    // Once the leases expire, the numbers are chosen again, and the retiring number, whose
    // call's release never came, is retired (not left "retiring" for good).
    await sleep(Math.max(0, leasedAt + leaseSeconds * 1000 + 500 - Date.now()));
    const settled = await pool();
    assert.equal(settled.numbers.find((n) => n.number === retiredNumber).status, "retired");
    assert.equal(settled.numbers.find((n) => n.number === retiredNumber).lease, null);
    assert.deepEqual(
      settled.audit.filter((a) => a.detail === retiredNumber).map((a) => [a.actor, a.action]).slice(-2),
      [["admin", "retire-after-lease"], ["pool", "retired-at-lease-end"]],
    );
    const afterExpiry = await calls.voice("appt-formatted");
    assert.ok(dials(afterExpiry.twiml), "an expired lease frees its number");
    const health = await (await fetch(`${small.url}/api/v1/health`)).json();
    assert.equal(health.config.POOL_LEASE_SECONDS, "present");
  } finally {
    await small.stop();
  }
});
