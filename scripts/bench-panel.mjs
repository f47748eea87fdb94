//! Browser benchmark: the call panel against the local stack. Prints page load to ready, and
//! click-to-connected (median, p95) over N calls for our module and for the official
//! @twilio/voice-sdk against the same simulator, callee answering at once. Figures only: nothing
//! here asserts a timing. Usage: node scripts/bench-panel.mjs [--calls 20] [--json out.json]
import { join } from "node:path";
import { writeFile } from "node:fs/promises";
import { startWorker, startTwilioSim, startTlsProxy, artifactsDir, freePort, TEST_SECRETS, REPO_ROOT } from "../sim/stack.mjs";
import { startMedplumServer } from "../sim/medplum/server.mjs";
import { launchBrowser, CHROMIUM_ARGS } from "../tests/lib/browser.mjs";

const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const CALLS = Number(option("calls", "20"));
const JSON_OUT = option("json", null);
const NUMBER = "+447700900654"; // appt-two-numbers' mobile
const APPOINTMENT = "appt-two-numbers";

const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
};
const summary = (values) => ({ n: values.length, median: percentile(values, 50), p95: percentile(values, 95), min: Math.min(...values), max: Math.max(...values) });
const ms = (v) => `${v.toFixed(0)} ms`;

const artifacts = artifactsDir();
const medplum = await startMedplumServer({ port: await freePort(), clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
const workerPort = await freePort();
const twilio = await startTwilioSim({ port: await freePort(), workerUrl: `http://127.0.0.1:${workerPort}`, logDir: artifacts, name: "bench-twilio-sim" });
const worker = await startWorker({
  port: workerPort, logDir: artifacts, name: "bench-worker",
  vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_API_BASE_URL: twilio.url, TWILIO_SIGNALING_URL: twilio.signalingUrl, TWILIO_CALLER_IDS: "+447700900001,+447700900002", CALL_LIMITS_PER_HOUR: "clinician=1000,patient=1000" },
});
await fetch(`${twilio.url}/__sim/callees`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ number: NUMBER, script: { kind: "answer", after_ms: 0 } }) });
const browser = await launchBrowser();
const results = {};
try {
  // Our module: page load to ready, then click-to-connected per call.
  const page = await (await browser.newContext()).newPage();
  const loadStart = Date.now();
  await page.goto(worker.url);
  await page.waitForSelector("#demo-sign-in:not([hidden])");
  await page.click("#sign-in");
  await page.click(`#appointments li[data-appointment-id="${APPOINTMENT}"] button`);
  await page.waitForSelector(`#call-area .call-panel [data-action="call"]:not([disabled]):not([hidden])`, { timeout: 30_000 });
  results.pageLoadToReadyMs = Date.now() - loadStart;
  const ours = [];
  for (let i = 0; i < CALLS; i++) {
    await page.waitForSelector(`#call-area .call-panel [data-action="call"]:not([disabled]):not([hidden])`, { timeout: 30_000 });
    const elapsed = await page.evaluate(() => new Promise((resolve, reject) => {
      const panel = document.querySelector("#call-area .call-panel");
      const start = performance.now();
      const observer = new MutationObserver(() => {
        if (panel.dataset.state === "connected") { observer.disconnect(); resolve(performance.now() - start); }
      });
      observer.observe(panel, { attributes: true, attributeFilter: ["data-state"] });
      setTimeout(() => { observer.disconnect(); reject(new Error(`no connection; state ${panel.dataset.state}`)); }, 20_000);
      panel.querySelector('[data-action="call"]').click();
    }));
    ours.push(elapsed);
    await page.click(`#call-area .call-panel [data-action="end"]`);
    await page.waitForSelector(`#call-area .call-panel[data-state="ended"]`);
  }
  results.ours = summary(ours);

  // The official SDK against the same simulator (through a TLS front: it only speaks wss://).
  const tls = await startTlsProxy(Number(new URL(twilio.url).port));
  const sdkBrowser = await (await import("playwright-core")).chromium.launch({ executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium", args: [...CHROMIUM_ARGS, "--ignore-certificate-errors"] });
  try {
    const login = await (await fetch(`${medplum.url}/auth/dev-login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner: "clinician-ada" }) })).json();
    const token = (await (await fetch(`${worker.url}/api/v1/twilio/access-token`, { method: "POST", headers: { authorization: `Bearer ${login.access_token}` } })).json()).token;
    const sdkPage = await (await sdkBrowser.newContext()).newPage();
    await sdkPage.goto(`${twilio.url}/healthcheck`);
    await sdkPage.addScriptTag({ path: join(REPO_ROOT, "node_modules", "@twilio", "voice-sdk", "dist", "twilio.min.js") });
    const sdk = await sdkPage.evaluate(async ({ token, chunderw, calls, appointment }) => {
      const device = new Twilio.Device(token, { chunderw, publishEvents: false, disableAudioContextSounds: true, logLevel: "error" });
      await device.register();
      const times = [];
      for (let i = 0; i < calls; i++) {
        const start = performance.now();
        const call = await device.connect({ params: { AppointmentId: appointment } });
        await new Promise((resolve) => call.on("accept", resolve));
        times.push(performance.now() - start);
        const done = new Promise((resolve) => call.on("disconnect", resolve));
        call.disconnect();
        await done;
      }
      device.destroy();
      return times;
    }, { token, chunderw: `127.0.0.1:${tls.port}`, calls: CALLS, appointment: APPOINTMENT });
    results.sdk = summary(sdk);
  } finally {
    await sdkBrowser.close();
    await tls.close();
  }
} finally {
  await browser.close();
  await worker.stop();
  await twilio.stop();
  await medplum.close();
}
console.log(`== call panel (${CALLS} calls, callee answers at once, loopback) ==`);
console.log(`page load to ready (sign-in, token, signaling): ${ms(results.pageLoadToReadyMs)}`);
console.log(`click to connected, our module:     median ${ms(results.ours.median)}  p95 ${ms(results.ours.p95)}  (min ${ms(results.ours.min)}, max ${ms(results.ours.max)})`);
console.log(`connect() to accept, official SDK:  median ${ms(results.sdk.median)}  p95 ${ms(results.sdk.p95)}  (min ${ms(results.sdk.min)}, max ${ms(results.sdk.max)})`);
if (JSON_OUT) await writeFile(JSON_OUT, JSON.stringify({ date: new Date().toISOString(), calls: CALLS, ...results }, null, 2));
