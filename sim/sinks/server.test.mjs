//! Tests for sim/sinks (node --test sim/sinks/server.test.mjs): Datadog key check and bodies (plain, gzip, deflate), Slack, inspection, reset, faults, the JSONL record, the CLI.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, existsSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync, deflateSync } from "node:zlib";
import { startSinkServer, JSONL_NAME } from "./server.mjs";
import { SINKS_DATADOG_API_KEY, freePort } from "../stack.mjs";

const SERVER_PATH = fileURLToPath(new URL("./server.mjs", import.meta.url));
const KEY = SINKS_DATADOG_API_KEY;

let sinks;
let logDir;
let logLines;

before(async () => {
  logDir = mkdtempSync(join(tmpdir(), "sinks-test-"));
  logLines = [];
  sinks = await startSinkServer({ logDir, log: (line) => logLines.push(line) });
});

after(async () => {
  await sinks?.close();
  rmSync(logDir, { recursive: true, force: true });
});

const SERIES = {
  series: [
    { metric: "clinician_calls.call.outcome", type: 1, points: [{ timestamp: 1_795_000_000, value: 1 }], tags: ["env:local", "status:completed"] },
    { metric: "clinician_calls.outbox.backlog_age_seconds", type: 3, points: [{ timestamp: 1_795_000_000, value: 42 }], tags: ["env:local"], unit: "second" },
  ],
};
const DISTRIBUTIONS = {
  series: [
    { metric: "clinician_calls.call.duration_seconds", type: "distribution", points: [[1_795_000_000, [42, 185]]], tags: ["env:local"] },
  ],
};
const LOGS = [
  { ddsource: "cloudflare-worker", ddtags: "env:local", hostname: "clinician-calls", message: "call_outcome {}", service: "clinician-calls", status: "info" },
];

async function post(path, body, { headers = {}, raw } = {}) {
  const response = await fetch(`${sinks.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: raw ?? JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, type: response.headers.get("content-type"), text, json: () => JSON.parse(text) };
}
const get = async (path) => (await fetch(`${sinks.url}${path}`)).json();
const withKey = { "dd-api-key": KEY };

test("the URLs handed to the worker", () => {
  assert.match(sinks.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(sinks.datadogUrl, `${sinks.url}/datadog`);
  assert.equal(sinks.slackUrl, `${sinks.url}/slack/T000/B000/XXXX`);
});

test("Datadog without the right DD-API-KEY is 403 Forbidden and records nothing", async () => {
  await post("/__sinks/reset");
  for (const headers of [{}, { "dd-api-key": "wrong" }]) {
    for (const path of ["/datadog/api/v2/series", "/datadog/api/v2/logs"]) {
      const response = await post(path, path.endsWith("series") ? SERIES : LOGS, { headers });
      assert.equal(response.status, 403, path);
      assert.deepEqual(response.json(), { errors: ["Forbidden"] });
    }
  }
  const series = await get("/__sinks/datadog/series");
  assert.deepEqual(series.received, []);
  assert.equal(series.refused, 2);
});

test("series: 202 {errors: []}, recorded with its content type, never the key", async () => {
  await post("/__sinks/reset");
  const response = await post("/datadog/api/v2/series", SERIES, { headers: withKey });
  assert.equal(response.status, 202);
  assert.deepEqual(response.json(), { errors: [] });
  const { received } = await get("/__sinks/datadog/series");
  assert.equal(received.length, 1);
  assert.deepEqual(received[0].body, SERIES);
  assert.deepEqual(received[0].headers, { "content-type": "application/json" });
  assert.ok(!Number.isNaN(Date.parse(received[0].at)));
  assert.ok(!JSON.stringify(received).includes(KEY), "the API key is never echoed");
});

test("distribution points: 202 {status: ok}, every value kept as sent", async () => {
  await post("/__sinks/reset");
  const response = await post("/datadog/api/v1/distribution_points", DISTRIBUTIONS, { headers: withKey });
  assert.equal(response.status, 202);
  assert.deepEqual(response.json(), { status: "ok" });
  assert.equal((await post("/datadog/api/v1/distribution_points", DISTRIBUTIONS, { headers: {} })).status, 403);
  const { received, refused } = await get("/__sinks/datadog/distributions");
  assert.deepEqual(received.map((r) => r.body), [DISTRIBUTIONS]);
  assert.equal(refused, 1);
});

test("logs: 202 {}, an array or a single object", async () => {
  await post("/__sinks/reset");
  const many = await post("/datadog/api/v2/logs", LOGS, { headers: withKey });
  assert.equal(many.status, 202);
  assert.deepEqual(many.json(), {});
  const one = await post("/datadog/api/v2/logs", LOGS[0], { headers: withKey });
  assert.equal(one.status, 202);
  const { received } = await get("/__sinks/datadog/logs");
  assert.deepEqual(received.map((r) => r.body), [LOGS, LOGS[0]]);
});

test("gzip and deflate bodies are decompressed", async () => {
  await post("/__sinks/reset");
  const json = JSON.stringify(SERIES);
  const gz = await post("/datadog/api/v2/series", null, { headers: { ...withKey, "content-encoding": "gzip" }, raw: gzipSync(json) });
  assert.equal(gz.status, 202, gz.text);
  const df = await post("/datadog/api/v2/logs", null, { headers: { ...withKey, "content-encoding": "deflate" }, raw: deflateSync(JSON.stringify(LOGS)) });
  assert.equal(df.status, 202, df.text);
  assert.deepEqual((await get("/__sinks/datadog/series")).received.map((r) => r.body), [SERIES]);
  assert.deepEqual((await get("/__sinks/datadog/logs")).received.map((r) => r.body), [LOGS]);
  const broken = await post("/datadog/api/v2/series", null, { headers: { ...withKey, "content-encoding": "gzip" }, raw: "not gzip" });
  assert.equal(broken.status, 400);
});

test("malformed Datadog bodies are 400 with a reason", async () => {
  const bad = [
    ["/datadog/api/v2/series", "{not json"],
    ["/datadog/api/v2/series", JSON.stringify({ metrics: [] })],
    ["/datadog/api/v2/series", JSON.stringify({ series: [] })],
    ["/datadog/api/v2/series", JSON.stringify({ series: [{ metric: "m", points: [{ timestamp: "now", value: 1 }] }] })],
    ["/datadog/api/v2/series", JSON.stringify({ series: [{ metric: "m", type: "count", points: [{ timestamp: 1, value: 1 }] }] })],
    ["/datadog/api/v2/series", JSON.stringify({ series: [{ metric: "m", points: [{ timestamp: 1, value: 1 }], tags: "env:local" }] })],
    ["/datadog/api/v1/distribution_points", JSON.stringify({ series: [] })],
    ["/datadog/api/v1/distribution_points", JSON.stringify({ series: [{ metric: "m", points: [{ timestamp: 1, value: 1 }] }] })],
    ["/datadog/api/v1/distribution_points", JSON.stringify({ series: [{ metric: "m", points: [[1, []]] }] })],
    ["/datadog/api/v1/distribution_points", JSON.stringify({ series: [{ metric: "m", type: 3, points: [[1, [2]]] }] })],
    ["/datadog/api/v2/logs", "[1, 2]"],
    ["/datadog/api/v2/logs", "[]"],
    ["/datadog/api/v2/logs", JSON.stringify([{ message: 42 }])],
  ];
  for (const [path, raw] of bad) {
    const response = await post(path, null, { headers: withKey, raw });
    assert.equal(response.status, 400, `${path} ${raw}: ${response.text}`);
    assert.equal(response.json().errors.length, 1);
  }
});

test("Slack: 200 ok as text, 400 no_text without text or blocks, 400 invalid_payload for non-JSON", async () => {
  await post("/__sinks/reset");
  const ok = await post("/slack/T000/B000/XXXX", { text: ":rotating_light: [local] alert" });
  assert.equal(ok.status, 200);
  assert.equal(ok.text, "ok");
  assert.match(ok.type, /^text\/plain/);
  const blocks = await post("/slack/T000/B000/XXXX", { blocks: [{ type: "section", text: { type: "mrkdwn", text: "x" } }] });
  assert.equal(blocks.status, 200);
  const empty = await post("/slack/T000/B000/XXXX", { username: "x" });
  assert.equal(empty.status, 400);
  assert.equal(empty.text, "no_text");
  const garbage = await post("/slack/T000/B000/XXXX", null, { raw: "text=hello" });
  assert.equal(garbage.status, 400);
  assert.equal(garbage.text, "invalid_payload");
  const { received, refused } = await get("/__sinks/slack");
  assert.deepEqual(received.map((r) => r.body.text ?? "blocks"), [":rotating_light: [local] alert", "blocks"]);
  assert.equal(refused, 2);
  assert.equal((await fetch(`${sinks.url}/slack`, { method: "POST", body: "{}" })).status, 404);
});

test("faults: Datadog and Slack answer 500 until cleared with {}", async () => {
  await post("/__sinks/reset");
  assert.deepEqual((await post("/__sinks/faults", { failDatadog: true })).json(), { failDatadog: true, failSlack: false, failIntakes: [] });
  assert.equal((await post("/datadog/api/v2/series", SERIES, { headers: withKey })).status, 500);
  assert.equal((await post("/datadog/api/v2/logs", LOGS, { headers: withKey })).status, 500);
  assert.equal((await post("/slack/T000/B000/XXXX", { text: "still up" })).status, 200);
  await post("/__sinks/faults", { failSlack: true });
  assert.equal((await post("/slack/T000/B000/XXXX", { text: "down" })).status, 500);
  assert.equal((await post("/datadog/api/v2/series", SERIES, { headers: withKey })).status, 202, "only the named sink fails");
  // One intake down, the others up.
  assert.deepEqual((await post("/__sinks/faults", { failIntakes: ["logs", "nonsense"] })).json(), { failDatadog: false, failSlack: false, failIntakes: ["logs"] });
  assert.equal((await post("/datadog/api/v2/logs", LOGS, { headers: withKey })).status, 500);
  assert.equal((await post("/datadog/api/v1/distribution_points", DISTRIBUTIONS, { headers: withKey })).status, 202);
  assert.deepEqual((await post("/__sinks/faults", {})).json(), { failDatadog: false, failSlack: false, failIntakes: [] });
  assert.equal((await post("/slack/T000/B000/XXXX", { text: "back" })).status, 200);
  assert.deepEqual((await get("/__sinks/slack")).received.map((r) => r.body.text), ["still up", "back"]);
  assert.deepEqual((await get("/__sinks/datadog/series")).received.length, 1);
  assert.equal((await post("/__sinks/faults", null, { raw: "[" })).status, 400);
});

test("reset empties every list and clears faults; captured() reads the same records", async () => {
  await post("/__sinks/faults", { failDatadog: true, failSlack: true });
  await post("/__sinks/reset");
  assert.equal((await post("/datadog/api/v2/series", SERIES, { headers: withKey })).status, 202);
  assert.equal((await post("/slack/T000/B000/XXXX", { text: "one" })).status, 200);
  const captured = sinks.captured();
  assert.deepEqual(captured.series.map((r) => r.body), [SERIES]);
  assert.deepEqual(captured.logs, []);
  assert.deepEqual(captured.slack.map((r) => r.body), [{ text: "one" }]);
  await post("/__sinks/reset");
  for (const path of ["/__sinks/datadog/series", "/__sinks/datadog/logs", "/__sinks/slack"]) {
    assert.deepEqual(await get(path), { received: [], refused: 0 }, path);
  }
});

test("every received payload is one line of sinks-received.jsonl, refused ones are not", () => {
  const lines = readFileSync(join(logDir, JSONL_NAME), "utf8").trimEnd().split("\n").map((l) => JSON.parse(l));
  assert.ok(lines.length >= 10, `${lines.length} lines`);
  assert.deepEqual(new Set(lines.map((l) => l.sink)), new Set(["datadog.series", "datadog.distributions", "datadog.logs", "slack"]));
  for (const line of lines) {
    assert.deepEqual(Object.keys(line), ["at", "sink", "body"]);
    assert.ok(!Number.isNaN(Date.parse(line.at)));
  }
  assert.ok(!lines.some((l) => l.body?.text === "down"), "a payload answered 500 was not received");
  assert.ok(!readFileSync(join(logDir, JSONL_NAME), "utf8").includes(KEY));
});

test("unknown routes are 404, wrong methods 405; the log names routes, never bodies or the webhook path", async () => {
  assert.equal((await fetch(`${sinks.url}/datadog/api/v1/series`, { method: "POST", body: "{}" })).status, 404);
  const wrong = await fetch(`${sinks.url}/datadog/api/v2/series`);
  assert.equal(wrong.status, 405);
  assert.equal(wrong.headers.get("allow"), "POST");
  assert.equal((await fetch(`${sinks.url}/__sinks/slack`, { method: "DELETE" })).status, 405);
  assert.deepEqual(await get("/healthcheck"), { ok: true });
  assert.ok(logLines.includes("sinks POST /datadog/api/v2/series 202"), logLines.join("\n"));
  assert.ok(logLines.includes("sinks POST /slack/… 200"), logLines.join("\n"));
  assert.ok(!logLines.some((l) => l.includes("T000") || l.includes("alert")));
});

test("a custom API key is the only one accepted", async () => {
  const other = await startSinkServer({ apiKey: "another-key" });
  try {
    const call = (key) => fetch(`${other.datadogUrl}/api/v2/series`, { method: "POST", headers: { "dd-api-key": key }, body: JSON.stringify(SERIES) });
    assert.equal((await call(KEY)).status, 403);
    assert.equal((await call("another-key")).status, 202);
    assert.equal(other.jsonlPath, undefined, "no logDir, no file");
  } finally {
    await other.close();
  }
});

test("runs standalone: SINKS_PORT, SINKS_LOG_DIR; SIGTERM stops it", async () => {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "sinks-cli-"));
  const child = spawn(process.execPath, [SERVER_PATH], { env: { ...process.env, SINKS_PORT: String(port), SINKS_LOG_DIR: dir }, stdio: ["ignore", "pipe", "inherit"] });
  try {
    let output = "";
    child.stdout.on("data", (chunk) => { output += chunk; });
    const deadline = Date.now() + 10_000;
    while (!output.includes("listening") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.match(output, new RegExp(`sinks listening on http://127\\.0\\.0\\.1:${port}`));
    const response = await fetch(`http://127.0.0.1:${port}/slack/T1/B1/x`, { method: "POST", body: JSON.stringify({ text: "hi" }) });
    assert.equal(response.status, 200);
    assert.ok(existsSync(join(dir, JSONL_NAME)));
  } finally {
    child.kill("SIGTERM");
    const [code] = await once(child, "exit");
    assert.equal(code, 0);
    rmSync(dir, { recursive: true, force: true });
  }
});
