//! End-to-end: the deployment tools against the local stack. scripts/twilio-setup.mjs configures
//! sim/twilio's REST resources and the worker's pool (dry run, idempotence, refusals); the worker
//! accepts webhooks signed with either token while the auth token rotates; scripts/smoke.mjs passes
//! against a healthy stack (one full call) and fails against a misconfigured one.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { startWorker, startTwilioSim, artifactsDir, freePort, TEST_SECRETS, REPO_ROOT } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { signedPost, newCallSid, rfc2822 } from "../lib/twilio.mjs";
import { runNodeScript } from "../lib/run-script.mjs";

const artifacts = artifactsDir();
const ACCOUNT_NUMBERS = ["+447700900001", "+447700900002", "+447700900003"];
const NEW_AUTH_TOKEN = "fake-twilio-auth-token-rotated";
let medplum;
let twilio;
let worker;

before(async () => {
  medplum = await startMedplumServer({ port: await freePort(), clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
  const workerPort = await freePort();
  twilio = await startTwilioSim({ port: await freePort(), workerUrl: `http://127.0.0.1:${workerPort}`, numbers: ACCOUNT_NUMBERS, timeScale: 0.2, logDir: artifacts, name: "deployment-twilio-sim" });
  // Mid-rotation: the worker already has the new token; Twilio (the simulator) still signs with the old one.
  worker = await startWorker({
    port: workerPort,
    logDir: artifacts,
    name: "deployment-worker",
    secrets: { ...TEST_SECRETS, TWILIO_AUTH_TOKEN: NEW_AUTH_TOKEN, TWILIO_AUTH_TOKEN_PREVIOUS: TEST_SECRETS.TWILIO_AUTH_TOKEN },
    vars: {
      MEDPLUM_BASE_URL: medplum.url, TWILIO_API_BASE_URL: twilio.url, TWILIO_SIGNALING_URL: twilio.signalingUrl,
      TWILIO_CALLER_IDS: ACCOUNT_NUMBERS.slice(0, 2).join(","), PRACTICE_PHONE_NUMBER: "+442079460000",
    },
  });
});

after(async () => {
  await worker?.stop();
  await twilio?.stop();
  await medplum?.close();
});

const runScript = (script, args, env = {}) => runNodeScript(join(REPO_ROOT, "scripts", script), args, { env });

const TWILIO_ENV = () => ({
  TWILIO_ACCOUNT_SID: TEST_SECRETS.TWILIO_ACCOUNT_SID,
  TWILIO_API_KEY: TEST_SECRETS.TWILIO_API_KEY,
  TWILIO_API_SECRET: TEST_SECRETS.TWILIO_API_SECRET,
  ADMIN_TOKEN: TEST_SECRETS.ADMIN_TOKEN,
});
const setupArgs = (...extra) => ["--worker-url", worker.url, "--twilio-api-base", twilio.url, "--env", "local", ...extra];

async function twilioState() {
  const authorization = `Basic ${Buffer.from(`${TEST_SECRETS.TWILIO_API_KEY}:${TEST_SECRETS.TWILIO_API_SECRET}`).toString("base64")}`;
  const base = `${twilio.url}/2010-04-01/Accounts/${TEST_SECRETS.TWILIO_ACCOUNT_SID}`;
  const get = async (path) => (await fetch(`${base}/${path}`, { headers: { authorization } })).json();
  return {
    applications: (await get("Applications.json")).applications,
    numbers: (await get("IncomingPhoneNumbers.json")).incoming_phone_numbers,
  };
}

async function activePool() {
  const response = await fetch(`${worker.url}/api/v1/admin/number-pool`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } });
  assert.equal(response.status, 200);
  return (await response.json()).numbers.filter((n) => n.status === "active").map((n) => n.number).sort();
}

function assertNoSecretsOrNumbers(output) {
  for (const secret of [TEST_SECRETS.TWILIO_API_SECRET, TEST_SECRETS.ADMIN_TOKEN, TEST_SECRETS.TWILIO_AUTH_TOKEN]) {
    assert.ok(!output.includes(secret), "a secret was printed");
  }
  for (const number of ACCOUNT_NUMBERS) assert.ok(!output.includes(number), "a full phone number was printed");
}

test("twilio-setup refuses bad arguments and missing credentials, changing nothing", async () => {
  const before = await twilioState();
  const noCredentials = await runScript("twilio-setup.mjs", setupArgs("--all-numbers"), {});
  assert.equal(noCredentials.code, 2);
  assert.match(noCredentials.stderr, /TWILIO_ACCOUNT_SID is not set/);

  const noSecret = await runScript("twilio-setup.mjs", setupArgs("--all-numbers"), { ...TWILIO_ENV(), TWILIO_API_SECRET: "" });
  assert.equal(noSecret.code, 2);
  assert.match(noSecret.stderr, /TWILIO_API_SECRET is not set/);

  const malformed = await runScript("twilio-setup.mjs", setupArgs("--numbers", "07700900001"), TWILIO_ENV());
  assert.equal(malformed.code, 2);
  assert.match(malformed.stderr, /E\.164/);

  const notOurs = await runScript("twilio-setup.mjs", setupArgs("--numbers", "+447700900001,+447700900999"), TWILIO_ENV());
  assert.equal(notOurs.code, 2);
  assert.match(notOurs.stderr, /1 of the chosen numbers are not in this Twilio account.*nothing was changed/);
  assertNoSecretsOrNumbers(notOurs.stdout + notOurs.stderr);

  const wrongSecret = await runScript("twilio-setup.mjs", setupArgs("--all-numbers"), { ...TWILIO_ENV(), TWILIO_API_SECRET: "fake-wrong-secret" });
  assert.equal(wrongSecret.code, 1);
  assert.match(wrongSecret.stderr, /answered 401: Authenticate/);
  assertNoSecretsOrNumbers(wrongSecret.stdout + wrongSecret.stderr);

  const plainHttp = await runScript("twilio-setup.mjs", ["--worker-url", "http://calls.example.org", "--all-numbers"], TWILIO_ENV());
  assert.equal(plainHttp.code, 2);
  assert.match(plainHttp.stderr, /must be https/);

  assert.deepEqual(await twilioState(), before);
  assert.deepEqual(await activePool(), ACCOUNT_NUMBERS.slice(0, 2));
});

test("twilio-setup --dry-run prints the exact writes and sends none", async () => {
  const before = await twilioState();
  const run = await runScript("twilio-setup.mjs", setupArgs("--all-numbers", "--dry-run"), TWILIO_ENV());
  assert.equal(run.code, 0, run.stderr);
  const out = run.stdout;
  assert.match(out, /dry run: 5 request\(s\) would be sent/);
  assert.ok(out.includes(`POST ${twilio.url}/2010-04-01/Accounts/${TEST_SECRETS.TWILIO_ACCOUNT_SID}/Applications.json`));
  assert.ok(out.includes(`VoiceUrl=${worker.url}/api/v1/twilio/webhooks/voice`));
  for (const number of before.numbers) assert.ok(out.includes(`/IncomingPhoneNumbers/${number.sid}.json`), "every number is updated");
  assert.ok(out.includes(`VoiceUrl=${worker.url}/api/v1/twilio/webhooks/inbound`));
  assert.ok(out.includes(`StatusCallback=${worker.url}/api/v1/twilio/webhooks/call-status`));
  assert.ok(out.includes(`POST ${worker.url}/api/v1/admin/number-pool`), "the missing pool number is added");
  assert.match(out, /unchanged: pool \+•+001/);
  assertNoSecretsOrNumbers(out + run.stderr);
  assert.deepEqual(await twilioState(), before, "nothing changed at Twilio");
  assert.deepEqual(await activePool(), ACCOUNT_NUMBERS.slice(0, 2), "nothing changed in the pool");
});

test("twilio-setup configures the app, every number and the pool, and a second run changes nothing", async () => {
  const first = await runScript("twilio-setup.mjs", setupArgs("--all-numbers"), TWILIO_ENV());
  assert.equal(first.code, 0, first.stderr);
  assertNoSecretsOrNumbers(first.stdout + first.stderr);
  const { applications, numbers } = await twilioState();
  assert.equal(applications.length, 1);
  assert.equal(applications[0].friendly_name, "Clinician calls (local)");
  assert.equal(applications[0].voice_url, `${worker.url}/api/v1/twilio/webhooks/voice`);
  assert.equal(applications[0].voice_method, "POST");
  assert.match(first.stdout, new RegExp(`created: TwiML App ${applications[0].sid}`));
  assert.match(first.stdout, new RegExp(`set TWILIO_TWIML_APP_SID=${applications[0].sid} in \\.dev\\.vars\\n`));
  assert.doesNotMatch(first.stdout, /wrangler secret put/, "secrets go through scripts/secrets.mjs");
  for (const number of numbers) {
    assert.equal(number.voice_url, `${worker.url}/api/v1/twilio/webhooks/inbound`);
    assert.equal(number.status_callback, `${worker.url}/api/v1/twilio/webhooks/call-status`);
    assert.equal(number.voice_application_sid, null);
  }
  assert.deepEqual(await activePool(), ACCOUNT_NUMBERS);

  const second = await runScript("twilio-setup.mjs", setupArgs("--all-numbers"), TWILIO_ENV());
  assert.equal(second.code, 0, second.stderr);
  assert.equal((second.stdout.match(/^unchanged: /gm) ?? []).length, 1 + 2 * ACCOUNT_NUMBERS.length);
  assert.doesNotMatch(second.stdout, /^(created|updated|configured|added)/m);
  assert.deepEqual((await twilioState()).applications, applications, "no second app");

  // A moved worker URL updates the same app rather than creating another.
  const moved = await runScript("twilio-setup.mjs", ["--worker-url", "http://localhost:9", "--twilio-api-base", twilio.url, "--env", "local", "--all-numbers", "--skip-pool"], { ...TWILIO_ENV(), ADMIN_TOKEN: "" });
  assert.equal(moved.code, 0, moved.stderr);
  assert.match(moved.stdout, new RegExp(`updated: TwiML App ${applications[0].sid}`));
  assert.equal((await twilioState()).applications.length, 1);
  const restored = await runScript("twilio-setup.mjs", setupArgs("--all-numbers"), TWILIO_ENV());
  assert.equal(restored.code, 0, restored.stderr);
});

test("a number's own status callback (no appointment) is acknowledged; a malformed appointment is refused", async () => {
  const url = `${worker.url}/api/v1/twilio/webhooks/call-status`;
  const params = { CallSid: newCallSid(), CallStatus: "completed", SequenceNumber: "2", Timestamp: rfc2822(), CallDuration: "12", Direction: "inbound" };
  const plain = await signedPost(url, params);
  assert.equal(plain.status, 200);
  assert.match(await plain.text(), /<Response\s*\/>|<Response><\/Response>/);
  const malformed = await signedPost(`${url}?appointment=${encodeURIComponent("bad id!")}`, params);
  assert.equal(malformed.status, 400);
  assert.equal((await malformed.json()).error.code, "bad_request");
  const unsigned = await fetch(url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(params) });
  assert.equal(unsigned.status, 403);
});

test("while the auth token rotates, webhooks signed with the new or the previous token are accepted, others refused", async () => {
  // Another clinician's appointment, so that these calls never look live to the smoke test's clinician.
  const url = `${worker.url}/api/v1/twilio/webhooks/call-status?appointment=appt-bob`;
  const event = () => ({ CallSid: newCallSid(), ParentCallSid: newCallSid(), CallStatus: "busy", SequenceNumber: "1", Timestamp: rfc2822() });
  assert.equal((await signedPost(url, event(), { authToken: NEW_AUTH_TOKEN })).status, 200, "new token");
  assert.equal((await signedPost(url, event(), { authToken: TEST_SECRETS.TWILIO_AUTH_TOKEN })).status, 200, "previous token");
  const other = await signedPost(url, event(), { authToken: "fake-some-other-token" });
  assert.equal(other.status, 403);
  assert.equal((await other.json()).error.code, "invalid_signature");
});

test("the smoke test passes against the local stack, with one full call", async () => {
  const login = await (await fetch(`${medplum.url}/auth/dev-login`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner: "clinician-ada" }),
  })).json();
  const run = await runScript("smoke.mjs", ["--base-url", worker.url, "--full-call"], {
    SMOKE_CLINICIAN_TOKEN: login.access_token, SMOKE_APPOINTMENT_ID: "appt-mobile", CHROMIUM_BIN: process.env.CHROMIUM_BIN ?? "",
  });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /^PASS {2}health /m);
  assert.match(run.stdout, /^PASS {2}full call .*record completed/m);
  assert.match(run.stdout, /all 9 checks passed/);
  assert.ok(!run.stdout.includes(login.access_token), "the token is not printed");
});

test("the smoke test fails, naming the problem, against a worker missing a secret", async () => {
  const broken = await startWorker({
    logDir: artifacts,
    name: "deployment-broken-worker",
    // ADMIN_TOKEN is optional: its absence turns the admin API off, which is no failure.
    secrets: { ...TEST_SECRETS, PROVISIONING_SECRET: null, ADMIN_TOKEN: null },
    vars: { MEDPLUM_BASE_URL: medplum.url },
  });
  try {
    const run = await runScript("smoke.mjs", ["--base-url", broken.url], {});
    assert.equal(run.code, 1);
    assert.match(run.stdout, /^FAIL {2}health .*PROVISIONING_SECRET/m);
    assert.match(run.stdout, /^PASS {2}webhook call-status unsigned /m);
    assert.match(run.stdout, /^PASS {2}admin without admin token .*off \(ADMIN_TOKEN not set\)/m);
    assert.match(run.stdout, /1 of 8 checks failed/);
  } finally {
    await broken.stop();
  }
});
