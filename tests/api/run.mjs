//! Checks docs/openapi.json against the running worker (scripts/api-check): starts sim/medplum, the worker under `wrangler dev` and sim/twilio, signs a clinician in, runs schemathesis with the description, stops the stack, and fails on any finding or on a credential or patient detail in its logs.
//
// Usage: node tests/api/run.mjs [--max-examples N] [extra schemathesis `run` options…]
// Needs schemathesis in $API_CHECK_VENV (scripts/setup installs it from tests/api/requirements.txt).
// Logs land in tests/artifacts/<run>/api-check/: schemathesis.log (its output) and the stack's
// logs. Credentials reach schemathesis through the environment only (tests/api/schemathesis.toml
// reads them), never on a command line. Schemathesis masks them in its output and prints the
// responses of failing cases, so this script blanks secrets and the seeded patients' numbers and
// names in what it relays, then checks that none of them ended up in any log of the run.
import { spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { artifactsDir, freePort, REPO_ROOT, startMedplum, startTwilioSim, startWorker, TEST_SECRETS } from "../../sim/stack.mjs";
import { scan, scanLine } from "../lib/phi.mjs";

const SPEC = join(REPO_ROOT, "docs", "openapi.json");
const CONFIG = join(REPO_ROOT, "tests", "api", "schemathesis.toml");
const HOOKS = join(REPO_ROOT, "tests", "api", "twilio_signing.py");
/** Pool caller IDs (Ofcom drama numbers), so a signed voice webhook can get as far as a `<Dial>`. */
const CALLER_IDS = ["+447700900001", "+447700900002"];

function parseArgs(argv) {
  let maxExamples = process.env.API_CHECK_MAX_EXAMPLES;
  const extra = [];
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i] === "--max-examples") maxExamples = argv[++i];
    else extra.push(argv[i]);
  }
  return { maxExamples, extra };
}

function schemathesisBin() {
  const venv = process.env.API_CHECK_VENV;
  const bin = venv && join(venv, "bin", "schemathesis");
  if (!bin || !existsSync(bin)) {
    throw new Error(`schemathesis is not installed${venv ? ` in ${venv}` : " (API_CHECK_VENV is unset: source scripts/env.sh)"}: run scripts/setup`);
  }
  return bin;
}

async function clinicianToken(medplumUrl) {
  const response = await fetch(`${medplumUrl}/auth/dev-login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ practitioner: "clinician-ada" }),
  });
  if (response.status !== 200) throw new Error(`sim/medplum dev sign-in answered ${response.status}`);
  return (await response.json()).access_token;
}

/**
 * A line with every secret and every fixture patient's number or name blanked: schemathesis
 * prints the responses of failing cases, and some carry the seeded patients' details.
 */
function redactLine(line, secrets) {
  let out = line;
  for (const value of secrets) if (value) out = out.split(value).join("[secret]");
  for (const hit of scanLine(out).reverse()) {
    const start = hit.column - 1;
    out = `${out.slice(0, start)}[patient ${hit.kind}]${out.slice(start + hit.match.length)}`;
  }
  return out;
}

/** Runs schemathesis, its output (redacted) to the console and to `logPath`; resolves with its exit code. */
function runSchemathesis(bin, args, env, logPath, secrets) {
  return new Promise((resolve, reject) => {
    const log = createWriteStream(logPath);
    const child = spawn(bin, args, { cwd: REPO_ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let pending = "";
    const emit = (text) => {
      const clean = text.split("\n").map((line) => redactLine(line, secrets)).join("\n");
      process.stdout.write(clean);
      log.write(clean);
    };
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding("utf8");
      stream.on("data", (chunk) => {
        pending += chunk;
        const end = pending.lastIndexOf("\n") + 1;
        if (end > 0) {
          emit(pending.slice(0, end));
          pending = pending.slice(end);
        }
      });
    }
    child.once("error", reject);
    child.once("close", (code, signal) => {
      if (pending) emit(pending);
      log.end(() => resolve(code ?? (signal ? 128 : 1)));
    });
  });
}

/** Every file under `dir`, recursively. */
function filesUnder(dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/** Credentials and patient details found in the files this run wrote: [] when clean. */
function leaks(dir, secrets) {
  const found = [];
  for (const path of filesUnder(dir)) {
    const text = readFileSync(path, "utf8");
    const where = relative(REPO_ROOT, path);
    for (const [name, value] of Object.entries(secrets)) {
      if (value && text.includes(value)) found.push(`${where}: the ${name}`);
    }
    for (const hit of scan(text)) found.push(`${where}: ${hit.kind} (${hit.needle})`);
  }
  return found;
}

async function main() {
  const { maxExamples, extra } = parseArgs(process.argv.slice(2));
  const bin = schemathesisBin();
  const logDir = join(artifactsDir(), "api-check");
  mkdirSync(logDir, { recursive: true });
  const stack = [];
  let exitCode = 1;
  let clinician;
  try {
    const medplum = await startMedplum({ logDir, name: "medplum" });
    stack.push(medplum);
    const workerPort = await freePort();
    const twilioPort = await freePort();
    const worker = await startWorker({
      port: workerPort,
      logDir,
      name: "worker",
      vars: {
        MEDPLUM_BASE_URL: medplum.url,
        TWILIO_API_BASE_URL: `http://127.0.0.1:${twilioPort}`,
        TWILIO_SIGNALING_URL: `ws://127.0.0.1:${twilioPort}/signal`,
        TWILIO_CALLER_IDS: CALLER_IDS.join(","),
      },
    });
    stack.push(worker);
    // After the worker: its wrangler build is what builds target/debug/twilio-sim.
    stack.push(await startTwilioSim({ port: twilioPort, workerUrl: worker.url, numbers: CALLER_IDS, logDir, name: "twilio-sim" }));
    clinician = await clinicianToken(medplum.url);

    const args = [
      "--config-file", CONFIG,
      "run", SPEC,
      "--url", worker.url,
      "--no-color",
      ...(maxExamples ? ["--max-examples", String(maxExamples)] : []),
      ...extra,
    ];
    const started = Date.now();
    const credentials = {
      API_CHECK_CLINICIAN_TOKEN: clinician,
      API_CHECK_PROVISIONING_SECRET: TEST_SECRETS.PROVISIONING_SECRET,
      API_CHECK_ADMIN_TOKEN: TEST_SECRETS.ADMIN_TOKEN,
      API_CHECK_TWILIO_AUTH_TOKEN: TEST_SECRETS.TWILIO_AUTH_TOKEN,
    };
    exitCode = await runSchemathesis(
      bin,
      args,
      { ...credentials, API_CHECK_BASE_URL: worker.url, SCHEMATHESIS_HOOKS: HOOKS, PYTHONDONTWRITEBYTECODE: "1" },
      join(logDir, "schemathesis.log"),
      Object.values(credentials),
    );
    console.log(`api-check: schemathesis exited ${exitCode} after ${Math.round((Date.now() - started) / 1000)} s`);
  } finally {
    for (const part of stack.reverse()) await part.stop();
  }
  const found = leaks(logDir, {
    "clinician token": clinician,
    "provisioning secret": TEST_SECRETS.PROVISIONING_SECRET,
    "admin token": TEST_SECRETS.ADMIN_TOKEN,
    "Twilio auth token": TEST_SECRETS.TWILIO_AUTH_TOKEN,
  });
  if (found.length > 0) {
    console.error(`api-check: the logs carry what they must not:\n  ${found.join("\n  ")}`);
    exitCode = exitCode || 1;
  }
  console.log(`api-check: logs in ${relative(REPO_ROOT, logDir)}`);
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(`api-check: ${error.message}`);
    process.exit(1);
  },
);
