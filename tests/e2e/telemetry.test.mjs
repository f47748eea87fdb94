//! End-to-end telemetry: call outcomes, token refusals, forged webhooks and manual fallbacks reach
//! the local Datadog sink as metrics and logs; alerts reach the local Slack sink, fire once,
//! deduplicate and resolve; a Datadog outage changes nothing for calls and loses no batch; the
//! admin statistics count the outcomes. Everything is checked for patient data.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startWorker, startSinks, artifactsDir, freePort, TEST_SECRETS, SINKS_DATADOG_API_KEY } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { signedPost, newCallSid, rfc2822 } from "../lib/twilio.mjs";
import { sleep, waitFor } from "../lib/wait.mjs";

const artifacts = artifactsDir();
const POOL = ["+447700900001", "+447700900002"];
/** Alert rules small enough to watch: 3 outcomes, half failed, in a 20 s window. */
const ALERT_RULES = "failure_rate=0.5,window_seconds=20,min_samples=3,dedupe_seconds=600,backlog_seconds=4,forged_burst=3";
let medplum;
let medplumPort;
let worker;
let sinks;

before(async () => {
  medplumPort = await freePort();
  medplum = await startLocalMedplum();
  sinks = await startSinks({ port: await freePort(), logDir: artifacts });
  worker = await startWorker({
    logDir: artifacts,
    name: "telemetry-worker",
    vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_CALLER_IDS: POOL.join(","), DATADOG_SITE: sinks.datadogUrl, ALERT_RULES },
    secrets: { ...TEST_SECRETS, DATADOG_API_KEY: SINKS_DATADOG_API_KEY, SLACK_WEBHOOK_URL: sinks.slackUrl },
  });
});

after(async () => {
  await worker?.stop();
  await sinks?.stop();
  await medplum?.close();
});

const startLocalMedplum = () => startMedplumServer({ port: medplumPort, clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
const webhook = (name) => `${worker.url}/api/v1/twilio/webhooks/${name}`;
const sink = async (path) => (await (await fetch(`${sinks.url}/__sinks/${path}`)).json()).received;
const series = async () => (await sink("datadog/series")).flatMap((r) => r.body.series ?? []);
const distributions = async () => (await sink("datadog/distributions")).flatMap((r) => r.body.series ?? []);
const slack = async () => (await sink("slack")).map((r) => r.body.text);
const tagged = (s, tag) => (s.tags ?? []).includes(tag);

/** One browser call to `appointment` that ends with `status`, as Twilio would report it;
 * `beforeEnd` runs between the call's start and its final callback. */
async function callEndingWith(appointment, status, duration = 0, beforeEnd = async () => {}) {
  const parentSid = newCallSid();
  const childSid = newCallSid();
  const voice = await signedPost(webhook("voice"), {
    AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, ApiVersion: "2010-04-01", CallSid: parentSid, CallStatus: "ringing",
    Direction: "inbound", From: "client:clinician-ada", To: "", AppointmentId: appointment,
  });
  assert.equal(voice.status, 200);
  assert.match(await voice.text(), /<Dial/);
  const callback = (callStatus, sequence, extra = {}) => signedPost(`${webhook("call-status")}?appointment=${appointment}`, {
    AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, CallSid: childSid, ParentCallSid: parentSid, CallStatus: callStatus,
    SequenceNumber: String(sequence), Timestamp: rfc2822(), CallbackSource: "call-progress-events",
    Direction: "outbound-dial", From: POOL[0], To: "+447700900123", ...extra,
  });
  assert.equal((await callback("initiated", 0)).status, 200);
  await beforeEnd();
  const final = await callback(status, 1, duration ? { CallDuration: String(duration) } : {});
  assert.equal(final.status, 200);
  return parentSid;
}

async function clinicianBearer(practitioner = "clinician-ada") {
  const response = await fetch(`${medplum.url}/auth/dev-login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner }) });
  return (await response.json()).access_token;
}

test("call outcomes become Datadog metrics and logs; a failure-rate alert fires once, deduplicates and resolves", async () => {
  await callEndingWith("appt-mobile", "completed", 42);
  const outcome = await waitFor("the outcome metric", async () =>
    (await series()).find((s) => s.metric === "clinician_calls.call.outcome" && tagged(s, "status:completed")), 20_000);
  assert.ok(tagged(outcome, "env:local"));
  assert.ok(tagged(outcome, "duration_bucket:under-1m"));
  assert.ok(outcome.tags.some((t) => /^clinician:[0-9a-f]{12}$/.test(t)), outcome.tags.join(","));
  assert.ok(outcome.tags.some((t) => /^pool_number_ending:00\d\d$/.test(t)), outcome.tags.join(","));
  assert.ok(!outcome.tags.some((t) => t.includes("+44")), "no whole pool number in a tag");
  const logs = await waitFor("the outcome log", async () => (await sink("datadog/logs")).flatMap((r) => [].concat(r.body)).find((l) => l.event?.kind === "call-outcome"));
  assert.equal(logs.service, "clinician-calls");
  // The exact duration is a distribution point (every call of a second kept), not a gauge.
  const duration = await waitFor("the duration distribution", async () =>
    (await distributions()).find((s) => s.metric === "clinician_calls.call.duration_seconds" && tagged(s, "status:completed")), 20_000);
  assert.equal(duration.type, "distribution");
  assert.deepEqual(duration.points[0][1], [42]);
  assert.ok(!(await series()).some((s) => s.metric === "clinician_calls.call.duration_seconds"));

  for (const appointment of ["appt-landline", "appt-formatted", "appt-dashes"]) {
    await callEndingWith(appointment, "busy");
  }
  // Three outcomes (the minimum), two of them busy: 66% ≥ 50%.
  const fired = await waitFor("the failure-rate alert in Slack", async () => (await slack()).find((t) => /Call failure rate \d+% over the last 20 s/.test(t) && !/Resolved/.test(t)), 20_000);
  assert.match(fired, /^:rotating_light: \[local\] Call failure rate (66|75)%/);
  // More failures while it fires: deduplicated, no second message for the same rule.
  await callEndingWith("appt-two-numbers", "no-answer");
  await new Promise((r) => setTimeout(r, 4_000));
  const overall = (await slack()).filter((t) => /Call failure rate/.test(t) && !/pool number/.test(t) && !/Resolved/.test(t));
  assert.equal(overall.length, 1, overall.join("\n"));
  // The per-number alert names the pool number the operator can find, by its last four digits.
  const perNumber = (await slack()).find((t) => /Call failure rate .* on the pool number ending/.test(t) && !/Resolved/.test(t));
  assert.match(perNumber ?? "", /on the pool number ending 000[12]\.$/);
  // The window (20 s) empties; the alarm re-evaluates and sends "Resolved".
  const resolved = await waitFor("the resolved message", async () => (await slack()).find((t) => /Resolved: Call failure rate/.test(t)), 45_000);
  assert.match(resolved, /^:white_check_mark: \[local\] Resolved/);
});

test("forged webhooks, token refusals and manual fallbacks are counted; a forged burst alerts", async () => {
  for (let i = 0; i < 3; i++) {
    const response = await signedPost(webhook("voice"), { CallSid: newCallSid(), AppointmentId: "appt-mobile" }, { signature: "forged" });
    assert.equal(response.status, 403);
  }
  await waitFor("the forged-webhook alert", async () => (await slack()).some((t) => /bad Twilio signatures/.test(t)), 20_000);
  await waitFor("the signature metric", async () => (await series()).some((s) => s.metric === "clinician_calls.webhook.signature_rejected" && tagged(s, "route:voice")));

  const refused = await fetch(`${worker.url}/api/v1/twilio/access-token`, { method: "POST", headers: { authorization: `Bearer ${await clinicianBearer("clinician-bob")}` } });
  assert.equal(refused.status, 403);
  await waitFor("the token refusal metric", async () => (await series()).some((s) => s.metric === "clinician_calls.token.refused" && tagged(s, "reason:permission_missing")));

  const report = await fetch(`${worker.url}/api/v1/telemetry/manual-fallback`, {
    method: "POST", headers: { authorization: `Bearer ${await clinicianBearer()}`, "content-type": "application/json" },
    body: JSON.stringify({ reason: "microphone-denied" }),
  });
  assert.equal(report.status, 202);
  const smuggled = await fetch(`${worker.url}/api/v1/telemetry/manual-fallback`, {
    method: "POST", headers: { authorization: `Bearer ${await clinicianBearer()}`, "content-type": "application/json" },
    body: JSON.stringify({ reason: "patient 07700 900123" }),
  });
  assert.equal(smuggled.status, 202);
  await waitFor("the fallback metrics", async () => {
    const all = await series();
    return all.some((s) => s.metric === "clinician_calls.manual_fallback" && tagged(s, "reason:microphone-denied"))
      && all.some((s) => s.metric === "clinician_calls.manual_fallback" && tagged(s, "reason:other"));
  });
  const unauthenticated = await fetch(`${worker.url}/api/v1/telemetry/manual-fallback`, { method: "POST", body: "{}" });
  assert.equal(unauthenticated.status, 401);
});

test("a Datadog outage never touches a call, and the batch arrives once Datadog is back", async () => {
  await fetch(`${sinks.url}/__sinks/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ failDatadog: true }) });
  const before = (await series()).length;
  const started = Date.now();
  // callEndingWith asserts every webhook was answered 200 while Datadog failed.
  const parentSid = await callEndingWith("appt-intl-prefix", "completed", 7);
  await new Promise((r) => setTimeout(r, 3_000));
  assert.equal((await series()).length, before, "nothing accepted while Datadog fails");
  await fetch(`${sinks.url}/__sinks/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  await waitFor("the held batch after recovery", async () =>
    (await series()).some((s) => s.metric === "clinician_calls.call.outcome" && tagged(s, "duration_bucket:under-1m") && s.points?.[0]?.timestamp >= Math.floor(started / 1000) - 1), 60_000);
  assert.ok(parentSid);
});

test("one Datadog intake down: the others get each event once, and the one down gets it when back", async () => {
  const setFaults = (faults) => fetch(`${sinks.url}/__sinks/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(faults) });
  await setFaults({ failIntakes: ["logs"] });
  const started = Math.floor(Date.now() / 1000) - 1;
  await callEndingWith("appt-landline", "completed", 31);
  const mine = (s) => s.points?.[0]?.[1]?.includes?.(31) && s.points[0][0] >= started;
  await waitFor("the duration while logs are down", async () => (await distributions()).some(mine), 30_000);
  // Several flushes while logs stay down: series and distributions are not sent the batch again.
  await new Promise((r) => setTimeout(r, 6_000));
  await setFaults({});
  await waitFor("the held logs once back", async () =>
    (await sink("datadog/logs")).flatMap((r) => [].concat(r.body)).some((l) => l.event?.kind === "call-outcome" && l.event?.durationSeconds === 31), 30_000);
  assert.equal((await distributions()).filter(mine).length, 1, "the duration was sent once");
  const outcomes = (await series()).filter((s) => s.metric === "clinician_calls.call.outcome" && s.points?.[0]?.timestamp >= started && tagged(s, "status:completed"));
  assert.equal(outcomes.length, 1, JSON.stringify(outcomes));
});

test("pool exhaustion and a FHIR backlog (Medplum down) alert, and the backlog resolves once Medplum is back", async () => {
  const admin = (path, method, body) => fetch(`${worker.url}/api/v1/admin/number-pool${path}`, {
    method, headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined,
  });
  const held = [newCallSid(), newCallSid()];
  for (const callSid of held) assert.equal((await admin("/leases", "POST", { callSid, destination: "+447700900999" })).status, 200);
  const refused = await signedPost(webhook("voice"), {
    AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, ApiVersion: "2010-04-01", CallSid: newCallSid(), CallStatus: "ringing",
    Direction: "inbound", From: "client:clinician-ada", To: "", AppointmentId: "appt-mobile",
  });
  assert.match(await refused.text(), /All lines are busy/);
  for (const callSid of held) await admin(`/leases/${callSid}`, "DELETE");
  await waitFor("the pool-exhausted alert", async () => (await slack()).some((t) => /ran out of free lines/.test(t)), 20_000);
  await waitFor("the exhaustion metric", async () => (await series()).some((s) => s.metric === "clinician_calls.pool.exhausted"));

  // Medplum goes down after the call starts: its record cannot be written and waits in the outbox.
  await callEndingWith("appt-mobile", "completed", 12, async () => { await medplum.close(); });
  const backlog = await waitFor("the backlog alert", async () => (await slack()).find((t) => /Call records are waiting to reach Medplum/.test(t) && !/Resolved/.test(t)), 30_000);
  assert.match(backlog, /^:rotating_light: \[local\]/);
  assert.ok((await series()).some((s) => s.metric === "clinician_calls.outbox.retry"));
  medplum = await startLocalMedplum();
  await waitFor("the record written and the backlog resolved", async () => (await slack()).some((t) => /Resolved: Call records are waiting/.test(t)), 60_000);
  assert.ok((await series()).some((s) => s.metric === "clinician_calls.outbox.written"));
});


test("a long call whose last write fails once is no backlog: the age counts from the change, not the call's start", async () => {
  const outageAlerts = async () => (await slack()).filter((t) => /Call records are waiting to reach Medplum/.test(t) && !/Resolved/.test(t)).length;
  const before = await outageAlerts();
  const retries = async () => (await series()).filter((s) => s.metric === "clinician_calls.outbox.retry").length;
  const retriesBefore = await retries();
  const startedAt = Math.floor(Date.now() / 1000);
  // The call lasts longer than the backlog limit (4 s here); only its final write fails, once.
  const parentSid = await callEndingWith("appt-formatted", "completed", 9, async () => {
    await sleep(6_000);
    const failing = await fetch(`${medplum.url}/__sim/fail-writes`, {
      method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ reference: "Appointment/appt-formatted", count: 1 }),
    });
    assert.equal(failing.status, 200);
  });
  await waitFor("the record written on the retry", async () => {
    const stored = await (await fetch(`${medplum.url}/__sim/resource/Appointment/appt-formatted`)).json();
    return JSON.stringify(stored).includes(parentSid) && /"completed"/.test(JSON.stringify(stored));
  }, 30_000);
  await waitFor("the retry counted", async () => (await retries()) > retriesBefore, 20_000);
  assert.equal(await outageAlerts(), before, "no backlog alert for a write that waited 2 s");
  const ages = (await series()).filter((s) => s.metric === "clinician_calls.outbox.backlog_age_seconds")
    .flatMap((s) => s.points.filter((p) => p.timestamp >= startedAt).map((p) => p.value));
  // The write waited about 2 s: an age of 30 s or more would be counted from something else.
  assert.ok(ages.length > 0 && Math.max(...ages) < 30, `backlog ages since the call started: ${ages}`);
});

test("a record Medplum refuses is alerted as refused, not as an outage: kept in the ledger, not pressed on every few seconds", async () => {
  const refuseWrites = (refuse) => fetch(`${medplum.url}/__sim/refuse-writes`, {
    method: "POST", headers: { "content-type": "application/json" },
    body: JSON.stringify({ reference: "Appointment/appt-dashes", refuse, diagnostics: "Constraint app-3 failed" }),
  });
  assert.equal((await refuseWrites(true)).status, 200);
  const outageAlerts = async () => (await slack()).filter((t) => /Call records are waiting to reach Medplum/.test(t) && !/Resolved/.test(t)).length;
  const outageAlertsBefore = await outageAlerts();
  const parentSid = await callEndingWith("appt-dashes", "completed", 21);
  const alert = await waitFor("the refused-records alert", async () => (await slack()).find((t) => /^:rotating_light: .*Medplum refused 1 call record/.test(t)), 30_000);
  assert.match(alert, /kept in the call ledger and retried hourly/);
  assert.ok(!/\+44|7700/.test(alert), alert);
  const refusals = async () => (await series()).filter((s) => s.metric === "clinician_calls.outbox.refused")
    .reduce((sum, s) => sum + s.points.reduce((n, point) => n + (point.value ?? 0), 0), 0);
  await waitFor("the refusal metric", async () => (await refusals()) > 0, 20_000);
  assert.ok((await series()).some((s) => s.metric === "clinician_calls.outbox.refused" && tagged(s, "reason:write-refused")));
  // Medplum answered, and said no: the outbox waits an hour instead of retrying on its 2-30 s backoff.
  const counted = await refusals();
  await new Promise((resolve) => setTimeout(resolve, 9_000));
  assert.equal(await refusals(), counted, "no retry within seconds");
  assert.ok(counted <= 2, `one refusal per change of the record (initiated, completed), got ${counted}`);
  assert.equal(await outageAlerts(), outageAlertsBefore, "no backlog (outage) alert for a refusal");
  // The record is kept, whole, in the call ledger.
  const records = await (await fetch(`${worker.url}/api/v1/appointments/appt-dashes/call`, { headers: { authorization: `Bearer ${await clinicianBearer()}` } })).json();
  const record = records.calls.find((c) => c.parentCallSid === parentSid);
  assert.equal(record?.status, "completed");
  assert.equal(record.durationSeconds, 21);
  const stored = await (await fetch(`${medplum.url}/__sim/resource/Appointment/appt-dashes`)).json();
  assert.ok(!JSON.stringify(stored).includes(parentSid), "Medplum's copy is unchanged");
  // Operators find it without a clinician's sign-in: the log names the appointment, and the admin
  // token reads its ledger (Medplum not needed).
  const { readFile } = await import("node:fs/promises");
  const log = await readFile(worker.logPath, "utf8");
  const refusedLines = log.split("\n").filter((l) => l.includes('"fhir_record_refused"')).map((l) => JSON.parse(l.slice(l.indexOf("{"))));
  assert.ok(refusedLines.some((l) => l.appointment === "appt-dashes" && l.reason === "write-refused"), JSON.stringify(refusedLines));
  const adminRead = (token) => fetch(`${worker.url}/api/v1/admin/appointments/appt-dashes/calls`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  assert.equal((await adminRead()).status, 401);
  assert.equal((await adminRead("not-the-admin-token")).status, 401);
  const ledger = await (await adminRead(TEST_SECRETS.ADMIN_TOKEN)).json();
  assert.equal(ledger.appointmentId, "appt-dashes");
  const pending = ledger.calls.find((c) => c.parentCallSid === parentSid);
  assert.equal(pending?.fhirPending, true, JSON.stringify(pending));
  assert.equal(pending.status, "completed");
  await refuseWrites(false);
});

test("the admin statistics count outcomes per number and per day", async () => {
  const unauthorised = await fetch(`${worker.url}/api/v1/admin/call-stats`);
  assert.equal(unauthorised.status, 401);
  const callStats = async () => (await fetch(`${worker.url}/api/v1/admin/call-stats`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } })).json();
  // Whatever earlier tests left: this test's own two answered calls are what it counts.
  const before = await callStats();
  const count = (stats, status) => stats.overall?.outcomes?.[status] ?? 0;
  await callEndingWith("appt-mobile", "completed", 30);
  await callEndingWith("appt-landline", "completed", 90);
  const stats = await waitFor("the statistics", async () => {
    const body = await callStats();
    return (body.overall?.calls ?? 0) >= (before.overall?.calls ?? 0) + 2 ? body : null;
  });
  assert.equal(stats.overall.calls, (before.overall?.calls ?? 0) + 2);
  assert.equal(count(stats, "completed"), count(before, "completed") + 2);
  assert.equal(count(stats, "busy"), count(before, "busy"));
  assert.equal(stats.overall.answered, (before.overall?.answered ?? 0) + 2);
  const sum = (rows) => rows.reduce((total, row) => total + row.calls, 0);
  assert.equal(sum(stats.perDay), stats.overall.calls, "every call in one day's row");
  assert.equal(sum(stats.perNumber), stats.overall.calls, "every call in one number's row");
  assert.ok(stats.perNumber.every((n) => /^\+4477009000\d\d$|^none$/.test(n.poolNumber)));
});
