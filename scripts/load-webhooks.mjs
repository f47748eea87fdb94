//! Sustained webhook load on loopback: starts sim/medplum and the worker (`wrangler dev`), then for
//! N seconds places calls at a fixed rate as Twilio would (signed voice webhook, then the leg's
//! initiated/ringing/in-progress/completed callbacks), times every request, and checks afterwards
//! that each call has exactly one completed record. Prints p50/p95/p99; exits 1 on any error.
import { parseOptions, runMain, UsageError } from "./lib/ops.mjs";
import { startWorker, artifactsDir, freePort, TEST_SECRETS } from "../sim/stack.mjs";
import { startMedplumServer } from "../sim/medplum/server.mjs";
import { signedPost, newCallSid, rfc2822 } from "../tests/lib/twilio.mjs";

const USAGE = `Usage: node scripts/load-webhooks.mjs [--seconds 60] [--calls-per-second 8] [--json]

Each call is 5 signed requests (voice webhook + 4 status callbacks, in order); calls start at a
fixed rate whatever the latency (open loop), so a slow worker shows as latency, not as less load.`;
const OPTIONS = { seconds: "string", "calls-per-second": "string", json: "boolean", help: "boolean" };
const APPOINTMENTS = ["appt-mobile", "appt-landline", "appt-formatted", "appt-intl-prefix", "appt-dashes"];
const POOL = Array.from({ length: 40 }, (_, i) => `+4477009001${String(i).padStart(2, "0")}`);

const quantile = (sorted, q) => sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : NaN;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function placeCall(workerUrl, appointment, latencies, failures) {
  const parentSid = newCallSid();
  const childSid = newCallSid();
  const timed = async (what, send, ok) => {
    const started = performance.now();
    let response;
    try {
      response = await send();
      const body = await response.text();
      latencies.push(performance.now() - started);
      if (!ok(response, body)) failures.push(`${what}: ${response.status}`);
    } catch (error) {
      failures.push(`${what}: ${error.cause?.code ?? error.message}`);
    }
  };
  await timed("voice", () => signedPost(`${workerUrl}/api/v1/twilio/webhooks/voice`, {
    AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, CallSid: parentSid, CallStatus: "ringing", Direction: "inbound",
    From: "client:clinician-ada", To: "", AppointmentId: appointment,
  }), (r, body) => r.status === 200 && body.includes("<Dial"));
  const statuses = ["initiated", "ringing", "in-progress", "completed"];
  for (const [sequence, status] of statuses.entries()) {
    const params = {
      AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, CallSid: childSid, ParentCallSid: parentSid, CallStatus: status,
      SequenceNumber: String(sequence), Timestamp: rfc2822(), Direction: "outbound-dial",
    };
    if (status === "completed") params.CallDuration = "30";
    await timed(status, () => signedPost(`${workerUrl}/api/v1/twilio/webhooks/call-status?appointment=${appointment}`, params), (r) => r.status === 200);
  }
  return parentSid;
}

async function main(argv) {
  const options = parseOptions(argv, OPTIONS);
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  const seconds = Number(options.seconds ?? 60);
  const rate = Number(options["calls-per-second"] ?? 8);
  if (!(seconds > 0) || !(rate > 0)) throw new UsageError("--seconds and --calls-per-second must be positive numbers");

  const medplum = await startMedplumServer({ port: await freePort(), clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
  const worker = await startWorker({
    logDir: artifactsDir(),
    name: "load-worker",
    vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_CALLER_IDS: POOL.join(","), CALL_LIMITS_PER_HOUR: "clinician=1000000,patient=1000000" },
  });
  try {
    const latencies = [];
    const failures = [];
    const placed = new Map(APPOINTMENTS.map((a) => [a, []]));
    const pending = [];
    const started = performance.now();
    const total = Math.round(seconds * rate);
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / rate;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      const appointment = APPOINTMENTS[i % APPOINTMENTS.length];
      pending.push(placeCall(worker.url, appointment, latencies, failures).then((sid) => placed.get(appointment).push(sid)));
    }
    await Promise.all(pending);
    const elapsed = (performance.now() - started) / 1000;

    // Every call must have exactly one record, completed, in its appointment's ledger.
    const login = await (await fetch(`${medplum.url}/auth/dev-login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner: "clinician-ada" }) })).json();
    let recordProblems = 0;
    for (const [appointment, sids] of placed) {
      const { calls = [] } = await (await fetch(`${worker.url}/api/v1/appointments/${appointment}/call`, { headers: { authorization: `Bearer ${login.access_token}` } })).json();
      for (const sid of sids) {
        const records = calls.filter((c) => c.parentCallSid === sid);
        if (records.length !== 1 || records[0].status !== "completed") recordProblems++;
      }
    }
    const sorted = [...latencies].sort((a, b) => a - b);
    const result = {
      seconds: Number(elapsed.toFixed(1)),
      calls: total,
      requests: total * 5,
      requestsPerSecond: Number((latencies.length / elapsed).toFixed(1)),
      errors: failures.length,
      recordProblems,
      p50Ms: Number(quantile(sorted, 0.5).toFixed(1)),
      p95Ms: Number(quantile(sorted, 0.95).toFixed(1)),
      p99Ms: Number(quantile(sorted, 0.99).toFixed(1)),
      maxMs: Number((sorted.at(-1) ?? NaN).toFixed(1)),
    };
    if (options.json) console.log(JSON.stringify(result));
    else {
      console.log(`webhook load: ${result.calls} calls (${result.requests} signed requests) in ${result.seconds} s, ${result.requestsPerSecond} requests/s`);
      console.log(`latency ms: p50 ${result.p50Ms}  p95 ${result.p95Ms}  p99 ${result.p99Ms}  max ${result.maxMs}`);
      console.log(`errors: ${result.errors}; calls without exactly one completed record: ${result.recordProblems}`);
      for (const failure of [...new Set(failures)].slice(0, 5)) console.log(`  e.g. ${failure}`);
    }
    return result.errors === 0 && result.recordProblems === 0 ? 0 : 1;
  } finally {
    await worker.stop();
    await medplum.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
