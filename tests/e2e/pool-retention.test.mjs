//! End-to-end: the number pool forgets. Its call log (which pool number called which patient) and
//! its remembered numbers are deleted once older than anything reads them (30 days); the test ages
//! the persisted Durable Object rows between two runs of the worker, as 31 days would. What it
//! keeps is which CallSids took a line, so a replayed voice request stays refused.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { startWorker, artifactsDir, freePort, TEST_SECRETS } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { signedPost, newCallSid } from "../lib/twilio.mjs";
import { callHelpers } from "../lib/calls.mjs";

const artifacts = artifactsDir();
const POOL = ["+447700900001", "+447700900002"];
const PRACTICE = "+442079460000";
const DAY_MS = 24 * 60 * 60 * 1000;
let medplum;
let worker;
let workerPort;
let persistDir;

const startOurWorker = () =>
  startWorker({
    port: workerPort,
    persistDir,
    logDir: artifacts,
    name: "pool-retention-worker",
    vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_CALLER_IDS: POOL.join(","), PRACTICE_PHONE_NUMBER: PRACTICE },
  });

before(async () => {
  medplum = await startMedplumServer({ port: await freePort(), clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
  workerPort = await freePort();
  persistDir = mkdtempSync(join(tmpdir(), "pool-retention-state-"));
  worker = await startOurWorker();
});

after(async () => {
  await worker?.stop();
  await medplum?.close();
  if (persistDir) rmSync(persistDir, { recursive: true, force: true });
});

const { voice, statusCallback } = callHelpers({ workerUrl: () => worker.url, medplumUrl: () => medplum.url });

/** The NumberPool object's SQLite database in wrangler's state (read while the worker is stopped). */
function poolDatabase() {
  const files = [];
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith(".sqlite")) files.push(path);
    }
  };
  walk(persistDir);
  const pools = files.filter((file) => {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      return db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'pool_call_log'").get() !== undefined;
    } finally {
      db.close();
    }
  });
  assert.equal(pools.length, 1, `one NumberPool database among ${files.length} object databases`);
  return new DatabaseSync(pools[0]);
}

/** The call log's and the stickiness table's rows, as [patient number, pool number] pairs. */
function remembered(db) {
  return {
    calls: db.prepare("SELECT patient_number, pool_number FROM pool_call_log ORDER BY at_ms").all().map((r) => [r.patient_number, r.pool_number]),
    sticky: db.prepare("SELECT e164 FROM patient_stickiness").all().map((r) => r.e164),
  };
}

/** Places a call for `appointment` and ends it; returns the caller ID it was given. */
async function callAndHangUp(appointment) {
  const { parentSid, twiml } = await voice(appointment);
  const callerId = twiml.match(/callerId="([^"]+)"/)?.[1];
  assert.ok(callerId, `a caller ID for ${appointment}`);
  const ended = await statusCallback(appointment, { parentSid, childSid: newCallSid(), status: "completed", sequence: 3, duration: 10 });
  assert.equal(ended.status, 200);
  return callerId;
}

/** Starts the worker, places and ends a call for `appointment`, and stops the worker again (its
 * rows can then be read): the caller ID the call was given and the worker's log. */
async function callInOwnRun(appointment) {
  worker = await startOurWorker();
  const callerId = await callAndHangUp(appointment);
  const { logPath } = worker;
  await worker.stop();
  worker = undefined;
  return { callerId, logPath };
}

const callBack = async (from, to) => (await signedPost(`${worker.url}/api/v1/twilio/webhooks/inbound`, {
  CallSid: newCallSid(), From: from, To: to, Direction: "inbound", CallStatus: "ringing",
})).text();

test("call-log and stickiness rows older than 30 days are deleted by the next lease; newer ones stay", async () => {
  const firstCallerId = await callAndHangUp("appt-mobile");
  await worker.stop();
  worker = undefined;

  let db = poolDatabase();
  const before = remembered(db);
  assert.equal(before.calls.length, 1, "the call is in the pool's log");
  assert.deepEqual(before.sticky, [firstCallerId], "and its caller ID is remembered for the patient");
  const [[patientNumber]] = before.calls;
  // 31 days pass.
  db.prepare("UPDATE pool_call_log SET at_ms = at_ms - ?").run(31 * DAY_MS);
  db.prepare("UPDATE patient_stickiness SET last_called_ms = last_called_ms - ?").run(31 * DAY_MS);
  db.close();

  worker = await startOurWorker();
  // The patient calling back after those days reaches the practice, not the clinician.
  assert.match(await callBack(patientNumber, firstCallerId), new RegExp(`<Number>\\${PRACTICE}</Number>`));
  // Another patient's call takes a lease, which deletes what has expired.
  const secondCallerId = await callAndHangUp("appt-landline");
  await worker.stop();
  worker = undefined;

  db = poolDatabase();
  const after = remembered(db);
  db.close();
  assert.equal(after.calls.length, 1, "only the new call is left in the log");
  assert.notEqual(after.calls[0][0], patientNumber, "the first patient's number is gone from the log");
  assert.equal(after.calls[0][1], secondCallerId);
  assert.deepEqual(after.sticky, [secondCallerId], "only the new patient's number is remembered");

  // Within the 30 days nothing is deleted: a third call leaves both recent calls in the log.
  await callInOwnRun("appt-formatted");
  db = poolDatabase();
  assert.equal(remembered(db).calls.length, 2, "calls within 30 days stay");
  db.close();
});

test("a deletion that fails is logged and the call still gets its caller ID; nothing else is lost", async () => {
  if (worker) {
    // Run on its own (--test-name-pattern): the log needs a call in it first.
    await callAndHangUp("appt-formatted");
    await worker.stop();
    worker = undefined;
  }
  let db = poolDatabase();
  const callsBefore = remembered(db).calls.length;
  assert.ok(callsBefore > 0, "the calls of the test before are in the log");
  // 31 more days pass, and the database refuses to delete from the call log.
  db.prepare("UPDATE pool_call_log SET at_ms = at_ms - ?").run(31 * DAY_MS);
  db.prepare("UPDATE patient_stickiness SET last_called_ms = last_called_ms - ?").run(31 * DAY_MS);
  db.exec("CREATE TRIGGER refuse_deletes BEFORE DELETE ON pool_call_log BEGIN SELECT RAISE(ABORT, 'deletes refused'); END");
  db.close();

  const { callerId, logPath } = await callInOwnRun("appt-mobile");
  assert.ok(POOL.includes(callerId), "the lease went ahead");

  const failures = readFileSync(logPath, "utf8").split("\n").filter((line) => line.includes("pool_prune_failed"));
  assert.equal(failures.length, 1, "the failed deletion is logged once");
  assert.match(failures[0], /"table":"pool_call_log"/);
  assert.doesNotMatch(failures[0], /\+?447700900\d{3}/, "with no phone number in it");
  db = poolDatabase();
  const kept = remembered(db);
  assert.equal(kept.calls.length, callsBefore + 1, "the old calls are kept and the new call is logged");
  assert.deepEqual(kept.sticky, [callerId], "the other table's expired rows were still deleted");
  db.exec("DROP TRIGGER refuse_deletes");
  db.close();

  // The next run of the worker deletes what the failed one could not.
  await callInOwnRun("appt-landline");
  db = poolDatabase();
  assert.equal(remembered(db).calls.length, 2, "only this test's two recent calls are left");
  db.close();
});

test("a voice request replayed after the call log forgot its call still gets no line and no number", async () => {
  if (worker) {
    await worker.stop();
    worker = undefined;
  }
  worker = await startOurWorker();
  const { parentSid, twiml } = await voice("appt-mobile");
  const callerId = twiml.match(/callerId="([^"]+)"/)?.[1];
  assert.ok(callerId, twiml);
  const ended = await statusCallback("appt-mobile", { parentSid, childSid: newCallSid(), status: "completed", sequence: 3, duration: 10 });
  assert.equal(ended.status, 200);
  await worker.stop();
  worker = undefined;

  let db = poolDatabase();
  // A database from a version without `placed_calls` (the call log alone knew the CallSid);
  // then 31 days pass.
  db.exec("DROP TABLE placed_calls");
  db.prepare("UPDATE pool_call_log SET at_ms = at_ms - ?").run(31 * DAY_MS);
  db.prepare("UPDATE patient_stickiness SET last_called_ms = last_called_ms - ?").run(31 * DAY_MS);
  db.close();

  worker = await startOurWorker();
  // Another call's lease deletes the expired call-log rows, the replayed call's among them.
  await callAndHangUp("appt-landline");
  const replay = await voice("appt-mobile", { parentSid });
  assert.doesNotMatch(replay.twiml, /<Dial|<Number/, replay.twiml);
  assert.match(replay.twiml, /already been placed/);
  assert.doesNotMatch(replay.twiml, /7700900/, "no patient's number in the answer");
  await worker.stop();
  worker = undefined;

  db = poolDatabase();
  const logged = db.prepare("SELECT COUNT(*) AS n FROM pool_call_log WHERE call_sid = ?").get(parentSid).n;
  const placed = db.prepare("SELECT COUNT(*) AS n FROM placed_calls WHERE call_sid = ?").get(parentSid).n;
  const columns = db.prepare("SELECT name FROM pragma_table_info('placed_calls')").all().map((c) => c.name);
  db.close();
  assert.equal(logged, 0, "the call log has forgotten the call");
  assert.equal(placed, 1, "placed_calls (copied from the log before its rows went) still knows it");
  assert.deepEqual(columns, ["call_sid", "at_ms"], "and holds no number");
});
