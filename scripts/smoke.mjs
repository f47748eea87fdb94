//! The deployment smoke test: given an environment's base URL, checks health and configuration, the
//! page's security headers, that unsigned or forged webhooks and credential-less requests are refused,
//! and (with a test clinician's credentials) places one full call from headless Chromium.
import { parseOptions, runMain, UsageError, baseUrl } from "./lib/ops.mjs";

const USAGE = `Usage: node scripts/smoke.mjs --base-url <https://…> [--full-call] [--timeout-seconds N]

Checks, against a running worker (staging, production or the local stack):
  health          GET /api/v1/health is 200, status "ok", no setting missing or invalid
  page            GET / is 200 with Content-Security-Policy, nosniff and frame protection
  webhooks        unsigned and forged Twilio webhooks are refused (403), never 5xx
  token           POST /api/v1/twilio/access-token without or with a bad bearer is 401
  admin           the admin API without the admin token is 401 (or off: 503 not_configured
                  when ADMIN_TOKEN is not set)
  full call       (--full-call) a call placed by the product's browser module for a test
                  appointment connects, is ended, and its record reaches the appointment

Environment for --full-call (never files, never arguments):
  SMOKE_CLINICIAN_TOKEN   a Medplum access token of a test clinician with videocall_own_manage
  SMOKE_APPOINTMENT_ID    a test appointment of that clinician whose patient number answers
  CHROMIUM_BIN            default /usr/bin/chromium

Prints one line per check; exit 0 when all pass, 1 when any fails, 2 on bad arguments.`;

const OPTIONS = { "base-url": "string", "full-call": "boolean", "timeout-seconds": "string", help: "boolean" };

/** One check: its name and an async function that throws an Error saying what was wrong. */
const checks = [];
const check = (name, run) => checks.push({ name, run });

function expectStatus(response, wanted, what) {
  if (response.status >= 500) throw new Error(`${what} answered ${response.status} (a server error)`);
  if (response.status !== wanted) throw new Error(`${what} answered ${response.status}, expected ${wanted}`);
}

async function expectErrorShape(response, what) {
  const body = await response.json().catch(() => null);
  if (typeof body?.error?.code !== "string" || typeof body?.error?.message !== "string") {
    throw new Error(`${what}: the body is not the documented {error: {code, message}}`);
  }
  return body.error.code;
}

function defineChecks(base, fullCall) {
  check("health", async () => {
    const response = await fetch(`${base}/api/v1/health`, { headers: { accept: "application/json" } });
    expectStatus(response, 200, "GET /api/v1/health");
    const health = await response.json();
    if (health.problems?.length) throw new Error(`settings missing or invalid: ${health.problems.join(", ")}`);
    if (health.status !== "ok") throw new Error(`status is ${health.status}`);
    return `ok (${health.environment ?? "no environment"}, version ${health.version})`;
  });
  check("page", async () => {
    const response = await fetch(`${base}/`);
    expectStatus(response, 200, "GET /");
    const csp = response.headers.get("content-security-policy") ?? "";
    if (!csp.includes("default-src") || !csp.includes("connect-src")) throw new Error("no Content-Security-Policy with default-src and connect-src");
    if (response.headers.get("x-content-type-options") !== "nosniff") throw new Error("no X-Content-Type-Options: nosniff");
    if (!csp.includes("frame-ancestors") && !response.headers.get("x-frame-options")) throw new Error("no frame protection");
    return "security headers present";
  });
  for (const hook of ["voice", "call-status", "inbound"]) {
    check(`webhook ${hook} unsigned`, async () => {
      const response = await fetch(`${base}/api/v1/twilio/webhooks/${hook}?appointment=smoke-test`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: "CallSid=CA00000000000000000000000000000000&CallStatus=completed",
      });
      expectStatus(response, 403, `unsigned POST …/webhooks/${hook}`);
      return `refused (${await expectErrorShape(response, hook)})`;
    });
  }
  check("webhook forged signature", async () => {
    const response = await fetch(`${base}/api/v1/twilio/webhooks/call-status?appointment=smoke-test`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "x-twilio-signature": "bm90IGEgc2lnbmF0dXJlIGF0IGFsbA==" },
      body: "CallSid=CA00000000000000000000000000000000&CallStatus=completed",
    });
    expectStatus(response, 403, "forged POST …/webhooks/call-status");
    return `refused (${await expectErrorShape(response, "forged")})`;
  });
  check("token without clinician", async () => {
    const none = await fetch(`${base}/api/v1/twilio/access-token`, { method: "POST" });
    expectStatus(none, 401, "POST /api/v1/twilio/access-token without a bearer");
    const bad = await fetch(`${base}/api/v1/twilio/access-token`, { method: "POST", headers: { authorization: "Bearer not-a-medplum-token" } });
    expectStatus(bad, 401, "POST /api/v1/twilio/access-token with a malformed bearer");
    return `refused (${await expectErrorShape(bad, "token")})`;
  });
  check("admin without admin token", async () => {
    const response = await fetch(`${base}/api/v1/admin/number-pool`);
    // ADMIN_TOKEN is optional: without it the admin API is off (503 not_configured), not open.
    if (response.status === 503 && (await expectErrorShape(response, "admin")) === "not_configured") return "off (ADMIN_TOKEN not set)";
    expectStatus(response, 401, "GET /api/v1/admin/number-pool without a bearer");
    return "refused";
  });
  if (fullCall) check("full call", () => placeOneCall(base));
}

/** Places, ends and finds the record of one call through the product's own browser module. */
async function placeOneCall(base) {
  const token = process.env.SMOKE_CLINICIAN_TOKEN?.trim();
  const appointment = process.env.SMOKE_APPOINTMENT_ID?.trim();
  if (!token || !appointment) throw new Error("SMOKE_CLINICIAN_TOKEN and SMOKE_APPOINTMENT_ID must be set for --full-call");
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_BIN || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--allow-loopback-in-peer-connection"],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`${base}/`);
    // The token goes in as an argument of the page function: never in a URL, never printed.
    const call = await page.evaluate(async ({ token, appointment }) => {
      const wc = await import("/pkg/web_client.js");
      await wc.default();
      const client = new wc.CallClient({ apiBase: "", sessionToken: () => token });
      const holder = document.createElement("div");
      document.body.append(holder);
      await client.start();
      await client.mount(holder, appointment);
      const until = (wanted, ms) => new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`not ${wanted} within ${ms} ms (state ${client.snapshot().state}, reason ${client.snapshot().reason ?? "none"})`)), ms);
        const look = () => {
          const snapshot = client.snapshot();
          if (wanted.includes(snapshot.state)) { clearTimeout(timer); resolve(snapshot); return true; }
          return false;
        };
        if (!look()) client.on("change", look);
      });
      // Press Call now as a clinician would, once the panel offers it (token, signaling, microphone ready).
      const button = await new Promise((resolve, reject) => {
        const started = Date.now();
        const look = () => {
          const found = holder.querySelector('[data-action="call"]:not([disabled]):not([hidden])');
          if (found) resolve(found);
          else if (Date.now() - started > 30000) reject(new Error(`Call now was not offered within 30 s (state ${client.snapshot().state}, reason ${client.snapshot().reason ?? "none"})`));
          else setTimeout(look, 100);
        };
        look();
      });
      button.click();
      const connected = await until(["connected"], 45000);
      await new Promise((resolve) => setTimeout(resolve, 2000));
      client.hangup();
      const ended = await until(["ended", "idle"], 20000);
      return { callSid: connected.callSid, duration: ended.durationSeconds };
    }, { token, appointment });
    const deadline = Date.now() + 60_000;
    let last = "no record yet";
    while (Date.now() < deadline) {
      const response = await fetch(`${base}/api/v1/appointments/${encodeURIComponent(appointment)}/call`, { headers: { authorization: `Bearer ${token}` } });
      if (response.ok) {
        const { calls = [] } = await response.json();
        const record = calls.find((c) => c.parentCallSid === call.callSid || c.callSid === call.callSid);
        if (record?.status === "completed" && record.fhirPending === false) {
          return `connected, ended after ${record.durationSeconds} s, record ${record.status} and written to the appointment`;
        }
        last = record ? `record ${record.status}${record.fhirPending ? ", not yet written to the appointment" : ""}` : `no record of this call among ${calls.length}`;
      } else {
        last = `GET …/call answered ${response.status}`;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    throw new Error(`the call's record did not reach "completed" (${last})`);
  } finally {
    await browser.close();
  }
}

async function main(argv) {
  const options = parseOptions(argv, OPTIONS);
  if (options.help) {
    console.log(USAGE);
    return 0;
  }
  if (!options["base-url"]) throw new UsageError("--base-url is required (see --help)");
  const base = baseUrl(options["base-url"], "--base-url");
  const limitMs = 1000 * Number(options["timeout-seconds"] ?? 180);
  if (!(limitMs > 0)) throw new UsageError("--timeout-seconds must be a positive number");
  defineChecks(base, Boolean(options["full-call"]));
  let failed = 0;
  for (const { name, run } of checks) {
    const started = Date.now();
    let timer;
    try {
      const detail = await Promise.race([
        run(),
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${limitMs / 1000} s`)), limitMs); }),
      ]);
      console.log(`PASS  ${name.padEnd(28)} ${detail}  (${Date.now() - started} ms)`);
    } catch (error) {
      failed++;
      console.log(`FAIL  ${name.padEnd(28)} ${error.message}`);
    } finally {
      clearTimeout(timer);
    }
  }
  console.log(failed ? `${failed} of ${checks.length} checks failed` : `all ${checks.length} checks passed`);
  return failed ? 1 : 0;
}

if (import.meta.url === `file://${process.argv[1]}`) runMain(main);
