//! The local demo: starts the whole local stack on 127.0.0.1, prints the URL, stops everything on Ctrl-C.
import { join } from "node:path";
import { startWorker, artifactsDir, REPO_ROOT } from "../sim/stack.mjs";

const port = Number(process.env.DEMO_PORT ?? 8787);
const logDir = artifactsDir();
console.log("Starting the local stack (the first start builds the worker; this can take a minute)…");
let worker;
try {
  worker = await startWorker({
    port,
    logDir,
    name: "demo-worker",
    persistDir: join(REPO_ROOT, ".wrangler", "demo-state"),
  });
} catch (error) {
  console.error(`The demo could not start: ${error.message}`);
  process.exit(1);
}

console.log(`
  Clinician page:  ${worker.url}/
  Health:          ${worker.url}/api/v1/health?deep=1
  Logs:            ${logDir}

Press Ctrl-C to stop (everything started here is stopped with it).`);

let stopping = false;
async function shutdown(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`\n${signal}: stopping the local stack…`);
  await worker.stop();
  console.log("Stopped.");
  process.exit(0);
}
process.on("SIGINT", () => shutdown("SIGINT"));
process.on("SIGTERM", () => shutdown("SIGTERM"));
worker.child.once("exit", (code) => {
  if (!stopping) {
    console.error(`wrangler dev exited unexpectedly (${code}); see ${worker.logPath}`);
    process.exit(1);
  }
});
