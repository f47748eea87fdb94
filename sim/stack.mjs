//! Starts and stops the local stack for the demo and the tests: `wrangler dev` on free loopback ports,
//! each in its own process group (so stopping it leaves no workerd/esbuild behind), logs per run.
import { spawn } from "node:child_process";
import { createServer, connect as tcpConnect } from "node:net";
import { createServer as createTlsServer } from "node:tls";
import { mkdirSync, mkdtempSync, writeFileSync, createWriteStream, rmSync, existsSync, statSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");

/** Fake secrets matching the simulators; the same names as .dev.vars.example. */
/**
 * The Datadog API key sim/sinks accepts. Not in TEST_SECRETS: only a worker that is also given
 * `DATADOG_SITE` (the sinks) gets it, so no test worker ever posts to a real Datadog.
 */
export const SINKS_DATADOG_API_KEY = "fake-datadog-api-key";

export const TEST_SECRETS = {
  MEDPLUM_CLIENT_ID: "clinician-calls-worker",
  MEDPLUM_CLIENT_SECRET: "fake-medplum-client-secret",
  TWILIO_ACCOUNT_SID: "AC00000000000000000000000000000001",
  TWILIO_AUTH_TOKEN: "fake-twilio-auth-token",
  TWILIO_API_KEY: "SK00000000000000000000000000000001",
  TWILIO_API_SECRET: "fake-twilio-api-secret",
  TWILIO_TWIML_APP_SID: "AP00000000000000000000000000000001",
  PROVISIONING_SECRET: "fake-provisioning-secret",
  ADMIN_TOKEN: "fake-admin-token",
};

/** A directory for this run's logs and screenshots: tests/artifacts/<run>/. */
export function artifactsDir() {
  const run = process.env.TEST_RUN_ID ?? new Date().toISOString().replace(/[:.]/g, "-");
  const dir = join(REPO_ROOT, "tests", "artifacts", run);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `url` until it answers 200 or `timeoutMs` passes; rejects with the log's tail then. */
async function waitForOk(url, timeoutMs, child, describe) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${describe} exited with ${child.exitCode}`);
    try {
      const response = await fetch(url);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(250);
  }
  throw new Error(`${describe} did not become ready at ${url} within ${timeoutMs} ms`);
}

/** Waits until the log, from byte `from` on, contains `text`; throws if the child exits first. */
async function waitForLog(logPath, from, text, timeoutMs, child, describe) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (existsSync(logPath) && readFileSync(logPath).subarray(from).toString("utf8").includes(text)) return;
    if (child.exitCode !== null) throw new Error(`${describe} exited with ${child.exitCode} (is its port taken by another process?)`);
    await sleep(250);
  }
  throw new Error(`${describe} never logged "${text}": another process may be answering on its port`);
}

/** A child process in its own process group, logged to `logPath`. */
function spawnGroup(command, args, { logPath, env, cwd = REPO_ROOT }) {
  const log = createWriteStream(logPath, { flags: "a" });
  const child = spawn(command, args, {
    cwd,
    env: { ...process.env, ...env },
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout.pipe(log);
  child.stderr.pipe(log);
  return child;
}

/** Stops a process group: TERM, then KILL after `graceMs`. */
export async function stopGroup(child, graceMs = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    process.kill(-child.pid, "SIGTERM");
  } catch {
    return;
  }
  const timer = sleep(graceMs).then(() => "timeout");
  if ((await Promise.race([exited, timer])) === "timeout") {
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    await exited;
  }
}

/** Starts sim/medplum as a child process on `port` (free by default). Returns {url, stop, logPath, child}. */
export async function startMedplum({ port, logDir = artifactsDir(), name = "medplum" } = {}) {
  const medplumPort = port ?? (await freePort());
  const logPath = join(logDir, `${name}.log`);
  const child = spawnGroup(
    process.execPath,
    [
      join(REPO_ROOT, "sim", "medplum", "server.mjs"),
      "--port", String(medplumPort),
      "--client-id", TEST_SECRETS.MEDPLUM_CLIENT_ID,
      "--client-secret", TEST_SECRETS.MEDPLUM_CLIENT_SECRET,
    ],
    { logPath },
  );
  const url = `http://127.0.0.1:${medplumPort}`;
  try {
    await waitForOk(`${url}/healthcheck`, 30_000, child, "sim/medplum");
  } catch (error) {
    await stopGroup(child);
    throw new Error(`${error.message}; see ${logPath}`);
  }
  return { url, stop: () => stopGroup(child), logPath, child };
}

/**
 * Starts sim/twilio (built by scripts/build into target/debug/twilio-sim) on `port`, sending its
 * webhooks to `workerUrl`. `timeScale` shortens every scripted delay (tests use 0.2).
 */
export async function startTwilioSim({ port, workerUrl, numbers = ["+447700900001", "+447700900002"], timeScale = 1, logDir = artifactsDir(), name = "twilio-sim" } = {}) {
  const simPort = port ?? (await freePort());
  const logPath = join(logDir, `${name}.log`);
  const child = spawnGroup(join(REPO_ROOT, "target", "debug", "twilio-sim"), [], {
    logPath,
    env: {
      TWILIO_SIM_PORT: String(simPort),
      TWILIO_SIM_VOICE_URL: `${workerUrl}/api/v1/twilio/webhooks/voice`,
      TWILIO_SIM_INBOUND_URL: `${workerUrl}/api/v1/twilio/webhooks/inbound`,
      TWILIO_SIM_NUMBERS: numbers.join(","),
      TWILIO_SIM_TIME_SCALE: String(timeScale),
      TWILIO_ACCOUNT_SID: TEST_SECRETS.TWILIO_ACCOUNT_SID,
      TWILIO_AUTH_TOKEN: TEST_SECRETS.TWILIO_AUTH_TOKEN,
      TWILIO_API_KEY: TEST_SECRETS.TWILIO_API_KEY,
      TWILIO_API_SECRET: TEST_SECRETS.TWILIO_API_SECRET,
    },
  });
  const url = `http://127.0.0.1:${simPort}`;
  try {
    await waitForOk(`${url}/healthcheck`, 30_000, child, "sim/twilio");
  } catch (error) {
    await stopGroup(child);
    throw new Error(`${error.message}; see ${logPath}`);
  }
  return { url, signalingUrl: `ws://127.0.0.1:${simPort}/signal`, stop: () => stopGroup(child), logPath, child };
}

/**
 * Starts sim/sinks (local Datadog + Slack that record what they receive) as a child process on
 * `port` (free by default). Received payloads are appended to `${logDir}/sinks-received.jsonl`.
 * Returns {url, datadogUrl, slackUrl, stop, logPath, child, captured(), reset(), setFaults()};
 * the last three call the sinks' `/__sinks/` API (async). Pass `datadogUrl` to the worker as the
 * `DATADOG_SITE` var and `slackUrl` as the `SLACK_WEBHOOK_URL` secret.
 */
export async function startSinks({ port, apiKey = SINKS_DATADOG_API_KEY, logDir = artifactsDir(), name = "sinks" } = {}) {
  const sinksPort = port ?? (await freePort());
  const logPath = join(logDir, `${name}.log`);
  const child = spawnGroup(process.execPath, [join(REPO_ROOT, "sim", "sinks", "server.mjs")], {
    logPath,
    env: { SINKS_PORT: String(sinksPort), SINKS_LOG_DIR: logDir, SINKS_DATADOG_API_KEY: apiKey },
  });
  const url = `http://127.0.0.1:${sinksPort}`;
  try {
    await waitForOk(`${url}/healthcheck`, 30_000, child, "sim/sinks");
  } catch (error) {
    await stopGroup(child);
    throw new Error(`${error.message}; see ${logPath}`);
  }
  const getJson = async (path) => (await fetch(`${url}${path}`)).json();
  const post = async (path, body) => (await fetch(`${url}${path}`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body ?? {}),
  })).json();
  return {
    url,
    datadogUrl: `${url}/datadog`,
    slackUrl: `${url}/slack/T000/B000/XXXX`,
    stop: () => stopGroup(child),
    logPath,
    child,
    captured: async () => {
      const [series, distributions, logs, slack] = await Promise.all(
        ["/__sinks/datadog/series", "/__sinks/datadog/distributions", "/__sinks/datadog/logs", "/__sinks/slack"].map(getJson),
      );
      return { series: series.received, distributions: distributions.received, logs: logs.received, slack: slack.received };
    },
    reset: () => post("/__sinks/reset"),
    setFaults: (faults) => post("/__sinks/faults", faults),
  };
}

/**
 * A TLS front for a plain local port (self-signed certificate for 127.0.0.1), so clients that
 * insist on `wss://` (the official Twilio SDK) can reach sim/twilio. Returns {port, close}.
 */
export async function startTlsProxy(targetPort) {
  const { default: selfsigned } = await import("selfsigned");
  const pems = await selfsigned.generate([{ name: "commonName", value: "127.0.0.1" }], {
    days: 1,
    keySize: 2048,
    extensions: [{ name: "subjectAltName", altNames: [{ type: 7, ip: "127.0.0.1" }] }],
  });
  const open = new Set();
  const server = createTlsServer({ key: pems.private, cert: pems.cert }, (tlsSocket) => {
    const upstream = tcpConnect(targetPort, "127.0.0.1");
    tlsSocket.pipe(upstream).pipe(tlsSocket);
    const pair = { tlsSocket, upstream };
    open.add(pair);
    // Either side ending ends both, so no half-open pair keeps the server from closing.
    const closeBoth = () => { tlsSocket.destroy(); upstream.destroy(); open.delete(pair); };
    for (const socket of [tlsSocket, upstream]) {
      socket.on("error", closeBoth);
      socket.on("close", closeBoth);
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = () => new Promise((resolve) => {
    for (const { tlsSocket, upstream } of open) { tlsSocket.destroy(); upstream.destroy(); }
    open.clear();
    server.close(resolve);
  });
  return { port: server.address().port, close };
}

/**
 * Starts `wrangler dev` for the repo's worker. Returns {url, stop, logPath}.
 * `vars` override [vars]; `secrets` default to TEST_SECRETS (pass null entries to omit one);
 * state lives in a fresh temporary directory unless `persistDir` is given; `config` is another
 * wrangler.toml (scripts/bench.mjs: a copy with the token rate limit raised).
 */
export async function startWorker({
  vars = {},
  secrets = TEST_SECRETS,
  port,
  logDir = artifactsDir(),
  name = "worker",
  persistDir,
  config,
} = {}) {
  const workerPort = port ?? (await freePort());
  const inspectorPort = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), "clinician-calls-state-"));
  const envFile = join(stateDir, "test.env");
  writeFileSync(
    envFile,
    Object.entries(secrets)
      .filter(([, value]) => value !== null && value !== undefined)
      .map(([key, value]) => `${key}=${value}`)
      .join("\n") + "\n",
  );
  const url = `http://127.0.0.1:${workerPort}`;
  const varArgs = Object.entries({ PUBLIC_BASE_URL: url, ...vars }).flatMap(([k, v]) => ["--var", `${k}:${v}`]);
  const logPath = join(logDir, `${name}.log`);
  const logStart = existsSync(logPath) ? statSync(logPath).size : 0;
  const logLevel = process.env.WRANGLER_LOG_LEVEL ?? "log";
  const child = spawnGroup(
    "wrangler",
    [
      "dev", ...(config ? ["--config", config] : []), "--ip", "127.0.0.1", "--port", String(workerPort),
      "--inspector-port", String(inspectorPort),
      "--persist-to", persistDir ?? join(stateDir, "persist"),
      "--env-file", envFile,
      "--show-interactive-dev-session=false",
      "--log-level", logLevel,
      ...varArgs,
    ],
    { logPath },
  );
  const stop = async () => {
    await stopGroup(child);
    rmSync(stateDir, { recursive: true, force: true });
  };
  try {
    await waitForOk(`${url}/api/v1/health`, 180_000, child, "wrangler dev");
    // A health answer proves only that something serves the port: make sure it is this wrangler
    // (two runs on one machine can be handed the same free port). Its "Ready on" line is an info
    // line, so quieter log levels (the benchmarks use "warn") skip the check.
    if (["log", "info", "debug"].includes(logLevel)) {
      await waitForLog(logPath, logStart, `Ready on ${url}`, 30_000, child, "wrangler dev");
    }
  } catch (error) {
    await stop();
    throw new Error(`${error.message}; see ${logPath}`);
  }
  return { url, stop, logPath, child };
}
