//! The local demo: starts the whole local stack on 127.0.0.1, prints the URL, stops everything on Ctrl-C.
import { join } from "node:path";
import { startWorker, startMedplum, startTwilioSim, startSinks, artifactsDir, REPO_ROOT, TEST_SECRETS, SINKS_DATADOG_API_KEY } from "../sim/stack.mjs";

const port = Number(process.env.DEMO_PORT ?? 8787);
const logDir = artifactsDir();
console.log("Starting the local stack (the first start builds the worker; this can take a minute)…");
const medplumPort = Number(process.env.DEMO_MEDPLUM_PORT ?? 8103);
const twilioPort = Number(process.env.DEMO_TWILIO_PORT ?? 8788);
const sinksPort = Number(process.env.DEMO_SINKS_PORT ?? 8790);
let worker;
let medplum;
let twilio;
let sinks;
try {
  medplum = await startMedplum({ port: medplumPort, logDir, name: "demo-medplum" });
  twilio = await startTwilioSim({ port: twilioPort, workerUrl: `http://127.0.0.1:${port}`, logDir, name: "demo-twilio" });
  // Local Datadog and Slack (sim/sinks): the worker's telemetry lands there, never on the network.
  sinks = await startSinks({ port: sinksPort, logDir, name: "demo-sinks" });
  worker = await startWorker({
    port,
    logDir,
    name: "demo-worker",
    vars: {
      MEDPLUM_BASE_URL: medplum.url,
      TWILIO_API_BASE_URL: twilio.url,
      TWILIO_SIGNALING_URL: twilio.signalingUrl,
      TWILIO_CALLER_IDS: "+447700900001,+447700900002",
      DATADOG_SITE: sinks.datadogUrl,
    },
    secrets: { ...TEST_SECRETS, DATADOG_API_KEY: SINKS_DATADOG_API_KEY, SLACK_WEBHOOK_URL: sinks.slackUrl },
    persistDir: join(REPO_ROOT, ".wrangler", "demo-state"),
  });
} catch (error) {
  console.error(`The demo could not start: ${error.message}`);
  await sinks?.stop();
  await twilio?.stop();
  await medplum?.stop();
  process.exit(1);
}

console.log(`
  Clinician page:  ${worker.url}/
  Health:          ${worker.url}/api/v1/health?deep=1
  Local Medplum:   ${medplum.url}/fhir/R4/  (sign in as a seeded clinician from the page)
  Local Twilio:    ${twilio.url}/__sim/calls  (signaling at ws://127.0.0.1:${twilioPort}/signal)
  Local Slack:     ${sinks.url}/__sinks/slack  (alerts the worker posted)
  Local Datadog:   ${sinks.url}/__sinks/datadog/series  and  ${sinks.url}/__sinks/datadog/logs
  Logs:            ${logDir}

Press Ctrl-C to stop (everything started here is stopped with it).`);

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping the local stack…`);
  await worker.stop();
  await twilio.stop();
  await medplum.stop();
  await sinks.stop();
  console.log("Stopped.");
  process.exit(0);
}
process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));
for (const [label, service] of [["wrangler dev", worker], ["sim/medplum", medplum], ["sim/twilio", twilio], ["sim/sinks", sinks]]) {
  service.child.once("exit", async (code) => {
    if (!stopping) {
      console.error(`${label} exited unexpectedly (${code}); see ${service.logPath}`);
      await shutdown("exit");
    }
  });
}
