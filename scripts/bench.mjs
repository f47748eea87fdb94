//! One command for every benchmark, side by side with what users would pick instead (issue #11):
//! server primitives (our `shared` crate vs twilio-node vs twilio-python, plus callgrind
//! instruction counts), HTTP through `wrk` (wrangler dev vs a quickstart-style Node server), the
//! number pool under 1,000 concurrent leases, and the browser (sizes vs @twilio/voice-sdk, page
//! load, click-to-connected via scripts/bench-panel.mjs). Writes BENCHMARKS.md and docs/bench/*.svg.
//! Figures only: it fails when a benchmark cannot run (crash, a double lease, failed requests above
//! MAX_FAILURE_RATE), never because a figure is slow.
//! Usage: node scripts/bench.mjs [--quick] [--out DIR] [--only primitives,callgrind,sizes,http,panel]
//!        node scripts/bench.mjs --from docs/bench/results.json   (rewrites the report, runs nothing)
//!        with the repo's Node 22 on PATH (scripts/env.sh); `make bench` runs the full set so.
import { spawn, execFileSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from "node:fs";
import { gzipSync, constants as zlibConstants } from "node:zlib";
import { tmpdir, cpus, totalmem, release as kernelRelease } from "node:os";
import { join, relative } from "node:path";
import { randomBytes } from "node:crypto";
import twilio from "twilio";
import { startWorker, startMedplum, artifactsDir, freePort, TEST_SECRETS, REPO_ROOT, stopGroup } from "../sim/stack.mjs";
import { runWrk } from "./bench/wrk.mjs";
import { barChart, COLORS, short } from "./bench/svg.mjs";
import { wasmBreakdown } from "./bench/wasm-breakdown.mjs";

const args = process.argv.slice(2);
const KNOWN = new Set(["--quick", "--out", "--only", "--from", "--help"]);
const unknown = args.filter((a, i) => a.startsWith("--") && !KNOWN.has(a) && !["--out", "--only", "--from"].includes(args[i - 1]));
if (args.includes("--help") || unknown.length) {
  const usage = readFileSync(new URL(import.meta.url), "utf8").split("\n").filter((l) => l.startsWith("//! Usage") || l.startsWith("//!        ")).map((l) => l.slice(4));
  if (unknown.length) console.error(`unknown option: ${unknown.join(", ")}`);
  console.log(usage.join("\n"));
  process.exit(unknown.length ? 2 : 0);
}
// The repo's Node (scripts/env.sh puts node_modules' Node 22 first) runs every Node side: the
// baselines' figures depend on it (twilio-node's mint: 2,118 ops/s on Node 20.20.2, 17,247 on
// 22.23.3, same machine, same hour), so another Node would skew every ratio.
if (!args.includes("--from") && Number(process.versions.node.split(".")[0]) < 22) {
  console.error(`bench: this is Node ${process.version}, not the repo's Node 22: run \`make bench\` (or source scripts/env.sh first)`);
  process.exit(2);
}
const option = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const PREVIOUS = args.includes("--from") ? JSON.parse(readFileSync(args[args.indexOf("--from") + 1], "utf8")) : null;
const QUICK = PREVIOUS ? PREVIOUS.quick : args.includes("--quick");
const OUT = option("out", REPO_ROOT);
const FROM = option("from", null);
const ONLY = FROM ? [] : option("only", "primitives,callgrind,sizes,http,panel").split(",");

/** Failed HTTP requests (non-2xx answers, socket errors, timeouts) tolerated per run: 2 % (a loaded
 * machine sees the odd failed request; their statuses are reported). */
const MAX_FAILURE_RATE = 0.02;
/**
 * The pool for the HTTP and pool benchmarks: 100 of Ofcom's drama numbers, +447700900100 … 199
 * (a large practice: a lease chooses among every number, from the object's copy of the pool).
 */
const POOL = Array.from({ length: 100 }, (_, i) => `+447700900${100 + i}`);
const POOL_REQUESTS = 1000;
/** Appointments of clinician-ada in sim/medplum's fixtures that can be called (voice webhook). */
const APPOINTMENTS = ["appt-mobile", "appt-landline", "appt-formatted", "appt-dashes", "appt-two-numbers"];
const PATIENT_NUMBER = "+447700900123";
const SETTINGS = QUICK
  ? { passes: 1, rounds: 3, seconds: 0.2, callgrindOps: 200, wrkSeconds: 3, voiceBursts: 1, connections: 16, panelCalls: 3 }
  : { passes: 5, rounds: 3, seconds: 0.5, callgrindOps: 2000, wrkSeconds: 10, voiceBursts: 3, connections: 16, panelCalls: 20 };
const O3_ENV = { CARGO_PROFILE_RELEASE_OPT_LEVEL: "3", CARGO_TARGET_DIR: join(REPO_ROOT, "target", "bench-o3") };
const BENCH_VENV = process.env.BENCH_VENV ?? join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME, ".cache"), "clinician-calls", "bench-venv");

const log = (...parts) => console.log("[bench]", ...parts);
const results = PREVIOUS ?? { date: new Date().toISOString(), quick: QUICK, settings: SETTINGS };

/** Runs a command; resolves with stdout; rejects with the tail of stderr on a non-zero exit. */
function run(command, argv, { env, cwd = REPO_ROOT, echo = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, argv, { cwd, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => { out += c; if (echo) process.stdout.write(c); });
    child.stderr.on("data", (c) => { err += c; if (echo) process.stderr.write(c); });
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve({ stdout: out, stderr: err }) : reject(new Error(`${command} ${argv.join(" ")} exited ${code}: ${err.slice(-800)}`))));
  });
}
const version = (command, argv = ["--version"]) => {
  try { return execFileSync(command, argv, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }).split("\n")[0].trim(); } catch (e) { return (e.stdout || e.stderr || "").split("\n")[0].trim() || "unavailable"; }
};
const percentile = (values, p) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
};
const median = (values) => percentile(values, 50);

function machine() {
  const os = readFileSync("/etc/os-release", "utf8").match(/^PRETTY_NAME="?([^"\n]*)"?/m)?.[1] ?? "unknown";
  const pkg = (name) => JSON.parse(readFileSync(join(REPO_ROOT, "node_modules", name, "package.json"), "utf8")).version;
  return {
    cpu: cpus()[0]?.model ?? "unknown",
    cores: cpus().length,
    ramGiB: totalmem() / 2 ** 30,
    os: `${os}, Linux ${kernelRelease()}`,
    tools: {
      rustc: version("rustc").replace(/^rustc /, ""),
      node: process.version,
      wrangler: pkg("wrangler"),
      wrk: version("wrk", ["-v"]).replace(/ Copyright.*/, "").replace(/^wrk /, ""),
      valgrind: version("valgrind").replace(/^valgrind-/, ""),
      python: version(join(BENCH_VENV, "bin", "python"), ["--version"]).replace(/^Python /, ""),
      chromium: version(process.env.CHROMIUM_BIN ?? "/usr/bin/chromium").replace(/^Chromium /, "").replace(/ built on.*/, ""),
      "twilio (npm)": pkg("twilio"),
      "@twilio/voice-sdk (npm)": pkg("@twilio/voice-sdk"),
    },
  };
}

// ---------------------------------------------------------------------------------------------
// 1. Primitives: ops/s for minting and verifying, three implementations in one run. The run is
// cut into passes (ours, twilio-node, twilio-python, one after another, then again), and each
// ratio is the median of the per-pass ratios: a slow minute on a shared machine then slows both
// sides of one pass instead of one side of the whole comparison.
/** Each of our operations and the alternatives' operation it is compared with (a verifier keyed
 * per request is still compared with their one verify). */
const THEIR_OPERATION = { mint: "mint", verify: "verify", verifyOneShot: "verify" };

async function primitives() {
  const flags = ["--rounds", String(SETTINGS.rounds), "--seconds", String(SETTINGS.seconds)];
  const python = join(BENCH_VENV, "bin", "python");
  if (!existsSync(python)) throw new Error(`no ${python}: run scripts/setup (it installs scripts/bench/requirements.txt there)`);
  const json = async (command, argv, options) => JSON.parse((await run(command, argv, options)).stdout);
  const passes = [];
  for (let pass = 1; pass <= SETTINGS.passes; pass++) {
    log(`primitives, pass ${pass} of ${SETTINGS.passes}: ours as shipped (shared, SHA and base64 at opt-level 3, the rest z)${QUICK ? "" : ", ours with every crate at opt-level 3 (target/bench-o3)"}, twilio-node, twilio-python`);
    const rust = await json("cargo", ["run", "-q", "--release", "-p", "shared", "--example", "token_mint_bench", "--", "--json", ...flags]);
    // Every crate built for speed (opt-level 3; serde_json too), as a native server build would
    // be; its own target directory so the shipped profile's artifacts are left alone.
    const rustO3 = QUICK ? undefined : await json("nice", ["cargo", "run", "-q", "--release", "-p", "shared", "--example", "token_mint_bench", "--", "--json", ...flags], { env: O3_ENV });
    const node = await json(process.execPath, [join(REPO_ROOT, "scripts", "bench", "primitives.mjs"), ...flags]);
    const py = await json(python, [join(REPO_ROOT, "scripts", "bench", "primitives.py"), ...flags]);
    passes.push({ rust, rustO3, node, python: py });
  }
  const implementations = QUICK ? ["rust", "node", "python"] : ["rust", "rustO3", "node", "python"];
  results.primitives = { passes: passes.length, ...Object.fromEntries(implementations.map((impl) => [impl, pooledPasses(passes.map((pass) => pass[impl]))])) };
  results.primitives.ratios = Object.fromEntries(implementations.filter((impl) => impl.startsWith("rust")).map((impl) => [impl, Object.fromEntries(
    Object.entries(THEIR_OPERATION).filter(([ours]) => passes[0][impl][ours]).map(([ours, theirs]) => [ours, {
      node: median(passes.map((pass) => pass[impl][ours].opsPerSec / pass.node[theirs].opsPerSec)),
      python: median(passes.map((pass) => pass[impl][ours].opsPerSec / pass.python[theirs].opsPerSec)),
    }]),
  )]));
  const r = results.primitives;
  for (const op of ["mint", "verify"]) {
    if (r.rustO3) log(`  ${op}: ours with every crate at opt-level 3 ${short(r.rustO3[op].opsPerSec)} ops/s (${r.ratios.rustO3[op].node.toFixed(1)}× twilio-node)`);
    log(`  ${op}: ours ${short(r.rust[op].opsPerSec)} ops/s, twilio-node ${short(r.node[op].opsPerSec)} ops/s (${r.ratios.rust[op].node.toFixed(1)}×), twilio-python ${short(r.python[op].opsPerSec)} ops/s (${r.ratios.rust[op].python.toFixed(1)}×)`);
  }
}

/** One implementation's passes as one figure per operation: the median of every round of every
 * pass. Keeps the per-pass medians too, and any non-figure field (version) of the first pass. */
function pooledPasses(perPass) {
  const pooled = { ...perPass[0] };
  for (const [op, figure] of Object.entries(perPass[0])) {
    if (!figure?.roundsNsPerOp) continue;
    const rounds = perPass.flatMap((pass) => pass[op].roundsNsPerOp);
    const nsPerOp = median(rounds);
    pooled[op] = { nsPerOp, opsPerSec: 1e9 / nsPerOp, roundsNsPerOp: rounds, passNsPerOp: perPass.map((pass) => pass[op].nsPerOp) };
  }
  return pooled;
}

// 2. Instruction counts (valgrind callgrind): (N operations − 0 operations) / N.
async function callgrind() {
  const variants = [["shipped", join(REPO_ROOT, "target", "release", "examples", "token_mint_bench")]];
  await run("cargo", ["build", "-q", "--release", "-p", "shared", "--example", "token_mint_bench"]);
  if (!QUICK) {
    await run("nice", ["cargo", "build", "-q", "--release", "-p", "shared", "--example", "token_mint_bench"], { env: O3_ENV });
    variants.push(["o3", join(O3_ENV.CARGO_TARGET_DIR, "release", "examples", "token_mint_bench")]);
  }
  const collected = async (binary, only, iterations) => {
    const { stderr } = await run("valgrind", ["--tool=callgrind", "--callgrind-out-file=/dev/null", binary, "--only", only, "--iterations", String(iterations)]);
    const match = stderr.match(/Collected\s*:\s*(\d+)/);
    if (!match) throw new Error("callgrind printed no 'Collected' line");
    return Number(match[1]);
  };
  const n = SETTINGS.callgrindOps;
  results.callgrind = { iterations: n };
  for (const [variant, binary] of variants) {
    const base = await collected(binary, "none", 0);
    const counts = {};
    for (const op of ["mint", "verify"]) {
      counts[op] = Math.round((await collected(binary, op, n) - base) / n);
      log(`callgrind (${variant}): ${op} ${counts[op].toLocaleString("en-GB")} instructions/op`);
    }
    if (variant === "shipped") Object.assign(results.callgrind, counts);
    else results.callgrind[variant] = counts;
  }
}

// 3. Browser bundle sizes, raw and gzip -9, next to the official SDK (measured here, same run).
function sizes() {
  const measure = (path) => {
    const bytes = readFileSync(join(REPO_ROOT, path));
    return { path, raw: bytes.length, gzip: gzipSync(bytes, { level: zlibConstants.Z_BEST_COMPRESSION }).length };
  };
  const wasm = measure("www/pkg/web_client_bg.wasm");
  const glue = measure("www/pkg/web_client.js");
  const sdk = measure("node_modules/@twilio/voice-sdk/dist/twilio.min.js");
  // Where the bytes go: rustc's module (before wasm-bindgen and wasm-opt) still has its names.
  const unprocessed = join(REPO_ROOT, "target", "wasm32-unknown-unknown", "browser", "web_client.wasm");
  const { codeBytes, dataBytes, crates } = wasmBreakdown(readFileSync(unprocessed));
  const shown = crates.slice(0, 12);
  const rest = crates.slice(12).reduce((sum, [, bytes]) => sum + bytes, 0);
  const breakdown = { path: relative(REPO_ROOT, unprocessed), codeBytes, dataBytes, crates: rest ? [...shown, [`${crates.length - 12} others`, rest]] : shown };
  results.sizes = { wasm, glue, total: { raw: wasm.raw + glue.raw, gzip: wasm.gzip + glue.gzip }, sdk, goalGzip: 25 * 1024, breakdown };
  log(`sizes: web-client wasm+glue ${short(results.sizes.total.gzip)} B gzip; @twilio/voice-sdk ${short(sdk.gzip)} B gzip`);
}

// 4. HTTP (wrk) and the number pool, on one wrangler dev and one quickstart-style Node server.
/**
 * wrangler.toml with absolute paths, no [build] and the token limit raised, serving a copy of
 * edge-worker/build (so a rebuild elsewhere cannot restart the worker mid-run).
 */
function benchWranglerConfig(dir) {
  cpSync(join(REPO_ROOT, "edge-worker", "build"), join(dir, "build"), { recursive: true });
  let toml = readFileSync(join(REPO_ROOT, "wrangler.toml"), "utf8");
  const replace = (from, to) => {
    if (!from.test(toml)) throw new Error(`wrangler.toml changed: ${from} not found; update benchWranglerConfig in scripts/bench.mjs`);
    toml = toml.replace(from, to);
  };
  replace(/^main = "edge-worker\/build\/([^"]+)"/m, (_, p) => `main = ${JSON.stringify(join(dir, "build", p))}`);
  replace(/^directory = "([^"]+)"/m, (_, p) => `directory = ${JSON.stringify(join(REPO_ROOT, p))}`);
  replace(/^\[build\]\n(?:(?!\[)[^\n]*\n)*/m, "");
  replace(/simple = \{ limit = \d+, period = 60 \}/, "simple = { limit = 100000000, period = 60 }");
  const path = join(dir, "wrangler.bench.toml");
  writeFileSync(path, `# Temporary copy of wrangler.toml for scripts/bench.mjs: token rate limit raised, no [build].\n${toml}`);
  return path;
}

const newCallSid = () => `CA${randomBytes(16).toString("hex")}`;
function voiceRequests(url, count) {
  return Array.from({ length: count }, (_, i) => {
    const params = { CallSid: newCallSid(), AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, From: "client:clinician-ada", To: PATIENT_NUMBER, Direction: "inbound", CallStatus: "ringing", AppointmentId: APPOINTMENTS[i % APPOINTMENTS.length] };
    return { headers: { "Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": twilio.getExpectedTwilioSignature(TEST_SECRETS.TWILIO_AUTH_TOKEN, url, params) }, body: new URLSearchParams(params).toString() };
  });
}

function checkFailures(label, r) {
  log(`  ${label}: ${short(r.rps)} req/s, p50 ${r.p50Ms.toFixed(1)} ms, p99 ${r.p99Ms.toFixed(1)} ms, ${r.requests} requests, ${r.non2xx} non-2xx${r.non2xx ? ` (${Object.entries(r.byStatus ?? {}).filter(([, n]) => n).map(([k, n]) => `${k}: ${n}`).join(", ")})` : ""}, ${r.socketErrors} socket errors`);
  if (r.failureRate > MAX_FAILURE_RATE) throw new Error(`${label}: ${(r.failureRate * 100).toFixed(2)} % of requests failed (non-2xx ${r.non2xx}, socket errors ${r.socketErrors}); at most ${MAX_FAILURE_RATE * 100} % is tolerated`);
}

async function http() {
  const artifacts = artifactsDir();
  const dir = mkdtempSync(join(tmpdir(), "bench-http-"));
  process.env.WRANGLER_LOG_LEVEL = process.env.WRANGLER_LOG_LEVEL ?? "warn";
  let medplum;
  let worker;
  let quickstart;
  try {
    medplum = await startMedplum({ logDir: artifacts, name: "bench-medplum" });
    worker = await startWorker({
      config: benchWranglerConfig(dir), logDir: artifacts, name: "bench-http-worker",
      vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_CALLER_IDS: POOL.join(","), CALL_LIMITS_PER_HOUR: "clinician=100000000,patient=100000000" },
    });
    const qsPort = await freePort();
    quickstart = spawn(process.execPath, [join(REPO_ROOT, "scripts", "bench", "quickstart-server.mjs"), "--port", String(qsPort)], { detached: true, stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((resolve, reject) => { quickstart.stdout.once("data", resolve); quickstart.once("exit", (c) => reject(new Error(`quickstart server exited ${c}`))); });
    const servers = { ours: worker.url, node: `http://127.0.0.1:${qsPort}` };

    const login = await (await fetch(`${medplum.url}/auth/dev-login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner: "clinician-ada" }) })).json();
    const bearer = `Bearer ${login.access_token}`;
    const admin = (path, { method = "GET", body } = {}) => fetch(`${worker.url}/api/v1/admin/number-pool${path}`, {
      method, headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, "content-type": "application/json" }, body: body ? JSON.stringify(body) : undefined,
    });

    // Number pool: 1,000 concurrent lease requests (the e2e's admin endpoint), then all released.
    log(`pool: ${POOL_REQUESTS} concurrent lease requests, pool of ${POOL.length}`);
    const poolState = await (await admin("")).json();
    const active = poolState.numbers.filter((n) => n.status === "active" && !n.lease).length;
    const sids = Array.from({ length: POOL_REQUESTS }, newCallSid);
    const started = performance.now();
    const answers = await Promise.all(sids.map(async (callSid) => {
      const t0 = performance.now();
      const response = await admin("/leases", { method: "POST", body: { callSid, destination: PATIENT_NUMBER } });
      const body = await response.json();
      return { callSid, status: response.status, number: body.number, ms: performance.now() - t0 };
    }));
    const seconds = (performance.now() - started) / 1000;
    const granted = answers.filter((a) => a.status === 200);
    const refused = answers.filter((a) => a.status === 409).length;
    const doubleLeases = granted.length - new Set(granted.map((a) => a.number)).size;
    const other = answers.length - granted.length - refused;
    results.pool = {
      requests: POOL_REQUESTS, poolSize: active, granted: granted.length, refused, other, doubleLeases, seconds,
      answeredPerSec: POOL_REQUESTS / seconds, leasesPerSec: granted.length / seconds,
      p50Ms: median(answers.map((a) => a.ms)), p99Ms: percentile(answers.map((a) => a.ms), 99),
    };
    log(`  ${granted.length} granted, ${refused} refused, ${doubleLeases} double leases, ${short(results.pool.leasesPerSec)} leases/s, p99 ${results.pool.p99Ms.toFixed(0)} ms`);
    if (doubleLeases !== 0) throw new Error(`pool: ${doubleLeases} numbers leased twice`);
    if (other !== 0) throw new Error(`pool: ${other} answers were neither 200 nor 409`);
    if (granted.length !== Math.min(active, POOL_REQUESTS)) throw new Error(`pool: ${granted.length} granted, expected ${Math.min(active, POOL_REQUESTS)}`);
    // Ten at a time, or all at once for the releaser that keeps up with wrk: in batches of ten
    // against a worker under load, a freed line came back after wrk had taken the pool's
    // hundred (refused as no line free, the harness's limit, not the worker's).
    const releaseAll = async (callSids, batch = 10) => {
      for (let i = 0; i < callSids.length; i += batch) {
        await Promise.all(callSids.slice(i, i + batch).map(async (sid) => {
          const response = await admin(`/leases/${sid}`, { method: "DELETE" });
          if (!response.ok) throw new Error(`pool: releasing a lease answered ${response.status}`);
          await response.arrayBuffer();
        }));
      }
    };
    await releaseAll(granted.map((a) => a.callSid));
    const stillLeased = (await (await admin("")).json()).numbers.filter((n) => n.lease).length;
    if (stillLeased !== 0) throw new Error(`pool: ${stillLeased} leases left after releasing all`);

    // Warm-up (JIT, first Medplum reads, identity provisioning): not measured.
    for (const [name, base] of Object.entries(servers)) {
      const token = await fetch(`${base}/api/v1/twilio/access-token`, { method: "POST", headers: { authorization: bearer } });
      if (token.status !== 200) throw new Error(`${name}: warm-up token request answered ${token.status}`);
      for (const request of voiceRequests(`${base}/api/v1/twilio/webhooks/voice`, 5)) {
        const answer = await fetch(`${base}/api/v1/twilio/webhooks/voice`, { method: "POST", headers: request.headers, body: request.body });
        if (!(await answer.text()).includes("<Dial")) throw new Error(`${name}: warm-up voice webhook did not dial (${answer.status})`);
      }
    }
    await releaseAll(((await (await admin("")).json()).numbers.filter((n) => n.lease).map((n) => n.lease.callSid)));

    const wrkOptions = { connections: SETTINGS.connections, threads: 2 };
    results.http = { connections: SETTINGS.connections, threads: 2, seconds: SETTINGS.wrkSeconds, poolSize: POOL.length };
    // Voice: every request a new signed CallSid, so ours leases a number per call. In production
    // the call's status callback gives it back; here a releaser frees every lease it sees while
    // wrk runs (admin API, on the same worker: extra load on our side only), like very short calls.
    for (const name of ["ours", "node"]) {
      const url = `${servers[name]}/api/v1/twilio/webhooks/voice`;
      let releasing = name === "ours";
      let released = 0;
      const releaser = (async () => {
        while (releasing) {
          const leased = (await (await admin("")).json()).numbers.filter((n) => n.lease).map((n) => n.lease.callSid);
          await releaseAll(leased, POOL.length);
          released += leased.length;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      })();
      let r;
      try {
        r = await runWrk({ url, requests: voiceRequests(url, 20_000), ...wrkOptions, seconds: SETTINGS.wrkSeconds });
      } finally {
        releasing = false;
        await releaser;
      }
      if (name === "ours") {
        if (r.wrapped > 0) throw new Error("voice: wrk used more than the 20,000 prepared calls; prepare more");
        await releaseAll((await (await admin("")).json()).numbers.filter((n) => n.lease).map((n) => n.lease.callSid));
        r.releasedDuringRun = released;
      }
      r.notDialled = r.requests - r.non2xx - r.dialled;
      checkFailures(`voice webhook, ${name}`, r);
      if (r.notDialled / r.requests > MAX_FAILURE_RATE) throw new Error(`voice webhook, ${name}: ${r.notDialled} answers did not dial (refusals); at most ${MAX_FAILURE_RATE * 100} % tolerated`);
      results.http[`voice_${name}`] = r;
    }
    // The floor: wrangler dev answering GET /api/v1/health (no Medplum, no Durable Object).
    const floor = await runWrk({ url: `${worker.url}/api/v1/health`, method: "GET", requests: [{ headers: {}, body: "" }], ...wrkOptions, seconds: Math.min(5, SETTINGS.wrkSeconds) });
    checkFailures("health (wrangler dev floor), ours", floor);
    results.http.health_ours = floor;
    for (const name of ["ours", "node"]) {
      const url = `${servers[name]}/api/v1/twilio/access-token`;
      const r = await runWrk({ url, requests: [{ headers: { Authorization: bearer }, body: "" }], ...wrkOptions, seconds: SETTINGS.wrkSeconds });
      checkFailures(`access token, ${name}`, r);
      results.http[`token_${name}`] = r;
    }
  } finally {
    if (quickstart) await stopGroup(quickstart);
    await worker?.stop();
    await medplum?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

// 5. Browser: page load to ready and click-to-connected, ours and the official SDK (bench-panel).
async function panel() {
  const dir = mkdtempSync(join(tmpdir(), "bench-panel-"));
  try {
    const out = join(dir, "panel.json");
    log(`panel: ${SETTINGS.panelCalls} calls each (scripts/bench-panel.mjs)`);
    await run(process.execPath, [join(REPO_ROOT, "scripts", "bench-panel.mjs"), "--calls", String(SETTINGS.panelCalls), "--json", out], { echo: true });
    results.panel = JSON.parse(readFileSync(out, "utf8"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Report: BENCHMARKS.md and the charts.
const f0 = (v) => Math.round(v).toLocaleString("en-GB");
const f1 = (v) => v.toFixed(1);
const kb = (bytes) => `${(bytes / 1024).toFixed(1)} KB`;
/** a/b as "6.9×", or for a small a as "0.0055× (1/182)" so a slower figure never reads as 0.0×. */
const times = (r) => (r >= 0.95 ? `${r.toFixed(1)}×` : `${r.toPrecision(2)}× (1/${1 / r >= 10 ? f0(1 / r) : (1 / r).toFixed(1)})`);
const ratio = (a, b) => times(a / b);
/** Our browser code's gzip size over the SDK's, to two decimals (1.03× must not read as 1.0×),
 * or three when two would round a size that differs from the SDK's to 1.00×. */
const sizeRatio = (s) => {
  const value = s.total.gzip / s.sdk.gzip;
  const twoDecimals = value.toFixed(2);
  return `${twoDecimals === "1.00" && s.total.gzip !== s.sdk.gzip ? value.toFixed(3) : twoDecimals}×`;
};
/** Ours (`impl`: "rust" or "rustO3") against `against` ("node" or "python") on operation `ours`:
 * the median of the per-pass ratios (results written before passes existed: the plain ratio). */
const primitiveRatio = (p, impl, ours, against) =>
  p.ratios?.[impl]?.[ours]?.[against] ?? p[impl][ours].opsPerSec / p[against][THEIR_OPERATION[ours]].opsPerSec;

function charts(dir) {
  const files = [];
  const write = (name, svg) => { writeFileSync(join(dir, name), svg); files.push(name); };
  const p = results.primitives;
  if (p) {
    write("primitives.svg", barChart({
      title: "Server primitives: operations per second (higher is better)", subtitle: "one core each, same inputs, same run", unit: "ops/s", log: true,
      rows: [["access-token mint", "mint"], ["webhook signature verify", "verify"]].map(([label, op]) => ({
        label, bars: [
          { name: "ours (Rust shared, as shipped)", value: p.rust[op].opsPerSec, color: COLORS.ours },
          ...(p.rustO3 ? [{ name: "ours (every crate opt-level 3)", value: p.rustO3[op].opsPerSec, color: "#5fb394" }] : []),
          { name: `twilio-node ${p.node.version}`, value: p.node[op].opsPerSec, color: COLORS.node },
          { name: `twilio-python ${p.python.version}`, value: p.python[op].opsPerSec, color: COLORS.python },
        ],
      })),
    }));
  }
  const h = results.http;
  if (h) {
    const rows = [["voice webhook", "voice"], ["access token", "token"]];
    write("http-throughput.svg", barChart({
      title: "HTTP on loopback (wrk): requests per second (higher is better)", subtitle: `${h.connections} connections; ours: wrangler dev + sim/medplum; baseline: quickstart-style Node server`, unit: "req/s",
      rows: rows.map(([label, k]) => ({ label, bars: [
        { name: "ours (wrangler dev)", value: h[`${k}_ours`].rps, color: COLORS.ours },
        { name: "twilio-node quickstart", value: h[`${k}_node`].rps, color: COLORS.node },
      ] })),
    }));
    write("http-latency.svg", barChart({
      title: "HTTP on loopback (wrk): latency, p50 and p99 (lower is better)", subtitle: `${h.connections} connections, same run`, unit: "ms",
      rows: rows.flatMap(([label, k]) => ["p50", "p99"].map((q) => ({ label: `${label} ${q}`, bars: [
        { name: "ours", value: h[`${k}_ours`][`${q}Ms`], color: COLORS.ours },
        { name: "twilio-node quickstart", value: h[`${k}_node`][`${q}Ms`], color: COLORS.node },
      ] }))),
    }));
  }
  const s = results.sizes;
  if (s) {
    write("sizes.svg", barChart({
      title: "Browser code shipped, gzip -9 (lower is better)", subtitle: "web-client wasm + JS glue vs @twilio/voice-sdk dist/twilio.min.js; goal ≤ 25 KB",
      rows: [
        { label: "ours (wasm + glue)", bars: [{ name: "gzip", value: s.total.gzip / 1024, color: COLORS.ours, text: kb(s.total.gzip) }, { name: "raw", value: s.total.raw / 1024, color: "#9cc9b9", text: kb(s.total.raw) }] },
        { label: "@twilio/voice-sdk", bars: [{ name: "gzip", value: s.sdk.gzip / 1024, color: COLORS.sdk, text: kb(s.sdk.gzip) }, { name: "raw", value: s.sdk.raw / 1024, color: "#e3b09a", text: kb(s.sdk.raw) }] },
        { label: "goal", bars: [{ name: "gzip", value: 25, color: COLORS.other, text: "25.0 KB" }] },
      ],
    }));
  }
  const pn = results.panel;
  if (pn) {
    write("panel.svg", barChart({
      title: "Click to connected against sim/twilio (lower is better)", subtitle: `${pn.calls} calls each, callee answers at once, headless Chromium, loopback`, unit: "ms",
      rows: [
        { label: "median", bars: [{ name: "ours", value: pn.ours.median, color: COLORS.ours }, { name: "official SDK", value: pn.sdk.median, color: COLORS.sdk }] },
        { label: "p95", bars: [{ name: "ours", value: pn.ours.p95, color: COLORS.ours }, { name: "official SDK", value: pn.sdk.p95, color: COLORS.sdk }] },
      ],
    }));
  }
  return files;
}

function markdown(chartFiles, chartDir) {
  const m = results.machine;
  const lines = [];
  const push = (...l) => lines.push(...l);
  const img = (name, alt) => chartFiles.includes(name) && push(`![${alt}](${relative(OUT, join(chartDir, name))})`, "");
  push(
    "<!-- Benchmarks side by side with what users would pick instead (issue #11). Written by `node scripts/bench.mjs`; do not edit by hand. -->",
    "# Benchmarks",
    "",
    `Measured ${results.date.slice(0, 16).replace("T", " ")} UTC${QUICK ? " (**--quick**: short runs, figures only)" : ""} by \`node scripts/bench.mjs\`. Every comparison below was measured in the same run on the same machine; the machine is shared with other builds, so absolute figures are noisy and the **ratios** are the thing to read. Nothing here is asserted: the run fails only when a benchmark cannot run (crash, a double lease, more than ${MAX_FAILURE_RATE * 100} % failed requests).`,
    "",
    "## Summary",
    "",
    "| benchmark | ours | alternative | ratio | goal |",
    "|---|---|---|---|---|",
  );
  const p = results.primitives;
  if (p) {
    for (const [label, op, goal] of [["access-token mint, ops/s", "mint", "≥ 10× twilio-node"], ["webhook signature verify, ops/s", "verify", "≥ 10× twilio-node"]]) {
      const r = primitiveRatio(p, "rust", op, "node");
      push(`| ${label} (as shipped) | ${f0(p.rust[op].opsPerSec)} | twilio-node ${f0(p.node[op].opsPerSec)} · twilio-python ${f0(p.python[op].opsPerSec)} | ${r.toFixed(1)}× node · ${times(primitiveRatio(p, "rust", op, "python"))} python | ${goal}: ${r >= 10 ? "**met**" : "**not met**"} |`);
      if (p.rustO3) {
        const r3 = primitiveRatio(p, "rustO3", op, "node");
        push(`| ${label} (every crate opt-level 3) | ${f0(p.rustO3[op].opsPerSec)} | (same run) | ${r3.toFixed(1)}× node · ${times(primitiveRatio(p, "rustO3", op, "python"))} python | ${goal}: ${r3 >= 10 ? "**met**" : "**not met**"} |`);
      }
    }
  }
  const h = results.http;
  if (h) {
    for (const [label, k] of [["voice webhook (wrk)", "voice"], ["access token (wrk)", "token"]]) {
      const o = h[`${k}_ours`];
      const n = h[`${k}_node`];
      push(`| ${label}, req/s · p50 · p99 | ${f0(o.rps)} · ${f1(o.p50Ms)} ms · ${f1(o.p99Ms)} ms | quickstart Node ${f0(n.rps)} · ${f1(n.p50Ms)} ms · ${f1(n.p99Ms)} ms | ${ratio(o.rps, n.rps)} throughput | figures only |`);
    }
  }
  const pool = results.pool;
  if (pool) push(`| number pool, ${pool.requests} concurrent leases | ${pool.answeredPerSec ? `${f0(pool.answeredPerSec)} answers/s (${pool.granted} granted: ${f0(pool.leasesPerSec)} leases/s)` : `${f0(pool.leasesPerSec)} leases/s`} · p99 ${f0(pool.p99Ms)} ms · **${pool.doubleLeases} double leases** | — | — | 0 double leases: ${pool.doubleLeases === 0 ? "**met**" : "**not met**"} |`);
  const s = results.sizes;
  if (s) push(`| browser code, gzip (raw) | ${kb(s.total.gzip)} (${kb(s.total.raw)}) | @twilio/voice-sdk ${kb(s.sdk.gzip)} (${kb(s.sdk.raw)}) | ${sizeRatio(s)} | ≤ 25 KB gzip: ${s.total.gzip <= s.goalGzip ? "**met**" : "**not met**"} |`);
  const pn = results.panel;
  if (pn) {
    push(`| page load to ready | ${f0(pn.pageLoadToReadyMs)} ms | — | — | figures only |`);
    push(`| click to connected, median · p95 (${pn.calls} calls) | ${f0(pn.ours.median)} ms · ${f0(pn.ours.p95)} ms | official SDK ${f0(pn.sdk.median)} ms · ${f0(pn.sdk.p95)} ms | ${ratio(pn.ours.median, pn.sdk.median)} median | figures only |`);
  }
  if (results.callgrind) push(`| instructions per op (callgrind, as shipped${results.callgrind.o3 ? " / every crate opt-level 3" : ""}) | mint ${f0(results.callgrind.mint)}${results.callgrind.o3 ? ` / ${f0(results.callgrind.o3.mint)}` : ""} · verify ${f0(results.callgrind.verify)}${results.callgrind.o3 ? ` / ${f0(results.callgrind.o3.verify)}` : ""} | — | — | figures only |`);
  push("");

  push("## Machine", "", `- CPU: ${m.cpu}, ${m.cores} cores; RAM ${m.ramGiB.toFixed(1)} GiB`, `- OS: ${m.os}`, `- Tools: ${Object.entries(m.tools).map(([k, v]) => `${k} ${v}`).join("; ")}`, "");

  if (p) {
    push(
      "## Server primitives",
      "",
      `Per operation, one thread, in one run: our \`shared\` crate (\`shared/examples/token_mint_bench.rs\`, the workspace release profile as shipped — LTO, \`opt-level = 3\` for \`shared\`, \`sha1\`, \`sha2\` and \`base64\`, \`"z"\` for the rest), twilio-node ${p.node.version} (\`scripts/bench/primitives.mjs\`, Node ${m.tools.node}) and twilio-python ${p.python.version} (\`scripts/bench/primitives.py\`, ${p.python.python ? `Python ${p.python.python}` : "Python"}, pinned in \`scripts/bench/requirements.txt\`). ${p.passes > 1 ? `The run is cut into ${p.passes} passes, each running all of them one after another (${SETTINGS.rounds} rounds of about ${SETTINGS.seconds} s each after calibration); each ns/op and ops/s figure is the median of every round, and each **ratio is the median of the ${p.passes} per-pass ratios**, so a slow stretch of a shared machine weighs on both sides of a comparison.` : `Each figure is the median of ${SETTINGS.rounds} rounds of about ${SETTINGS.seconds} s after calibration.`}`,
      "",
      "- **Mint**: an HS256 Twilio access token for `clinician-ada` with a Voice grant (outgoing TwiML app, incoming allowed), TTL 3600 s — `shared::access_token::mint` vs `new AccessToken(…)` + `VoiceGrant` + `toJwt()` vs `AccessToken(…)` + `VoiceGrant` + `to_jwt()`.",
      "- **Verify**: `X-Twilio-Signature` (HMAC-SHA1) of a status callback with 8 form parameters and a query string — `shared::webhook_signature::WebhookVerifier::verify_form` (made once, as the worker keeps one verifier per isolate: keyed with the auth token, and holding the hash state after the first 64-byte block of the worker's call-status URLs, `{base}/api/v1/twilio/webhooks/call-status?appointment=`, which every such callback shares; the row below it keys for every request and keeps no URL state) vs `twilio.validateRequest` vs `RequestValidator.validate`. All three also try the URL with the default port added/removed, as Twilio documents.",
      "",
      "| operation | ours ns/op (as shipped) | ours ns/op (every crate opt-level 3) | twilio-node ns/op | twilio-python ns/op | ours (shipped / all 3) vs node | ours (shipped / all 3) vs python |",
      "|---|---|---|---|---|---|---|",
      ...[["mint", "mint"], ["verify", "verify"], ["verify, keyed for this request only", "verifyOneShot"]].filter(([, ours]) => p.rust[ours]).map(([label, ours]) => {
        const theirs = THEIR_OPERATION[ours];
        const o3 = p.rustO3?.[ours];
        return `| ${label} | ${f0(p.rust[ours].nsPerOp)} | ${o3 ? f0(o3.nsPerOp) : "not run (--quick)"} | ${f0(p.node[theirs].nsPerOp)} | ${f0(p.python[theirs].nsPerOp)} | ${times(primitiveRatio(p, "rust", ours, "node"))}${o3 ? ` / ${times(primitiveRatio(p, "rustO3", ours, "node"))}` : ""} | ${times(primitiveRatio(p, "rust", ours, "python"))}${o3 ? ` / ${times(primitiveRatio(p, "rustO3", ours, "python"))}` : ""} |`;
      }),
      "",
      "The release profile builds small wasm (opt-level z) except for the server's hot paths (`shared`, SHA-1, SHA-256, base64 at opt-level 3; the browser module uses the `browser` profile, all z). In production these functions run as wasm inside the worker, so neither native figure is the deployed cost, and the ratio to twilio-node (which is what a Node server would run) is the figure to read.",
      "",
    );
    if (p.passes > 1) push(`Per-pass ratios to twilio-node, as shipped (the spread is the machine's noise): ${["mint", "verify"].map((op) => `${op} ${p.rust[op].passNsPerOp.map((ours, pass) => `${(p.node[op].passNsPerOp[pass] / ours).toFixed(1)}×`).join(", ")}`).join("; ")}.`, "");
    if (results.callgrind) push(`Instruction counts (\`valgrind --tool=callgrind\`, (${results.callgrind.iterations} operations − 0 operations) / ${results.callgrind.iterations}, same binary): as shipped **mint ${f0(results.callgrind.mint)}**, **verify ${f0(results.callgrind.verify)}** instructions per operation${results.callgrind.o3 ? `; every crate at opt-level 3 mint ${f0(results.callgrind.o3.mint)}, verify ${f0(results.callgrind.o3.verify)}` : ""}. These are repeatable where the timings are not.`, "");
    img("primitives.svg", "operations per second, ours vs twilio-node vs twilio-python");
  }

  if (h) {
    const t = (k) => h[k];
    push(
      "## HTTP (wrk, loopback)",
      "",
      `\`wrk -t ${h.threads} -c ${h.connections}\` on 127.0.0.1 against both servers in the same run, one after the other (\`scripts/bench/wrk.mjs\` replays prepared requests from a generated Lua script and counts status codes and <Dial> answers). wrk, the servers and sim/medplum share the ${m.cores} cores.`,
      "",
      "What each side does per request:",
      "",
      `- **Ours**: \`wrangler dev\` (local workerd, \`--log-level warn\`) serving the release build of \`edge-worker\`, from a temporary copy of wrangler.toml whose per-clinician token limit (\`[[ratelimits]]\`, 20/min in the real file) is raised to 100,000,000/min, with \`CALL_LIMITS_PER_HOUR\` raised likewise and a pool of ${h.poolSize} drama numbers (\`TWILIO_CALLER_IDS\`).`,
      "  - `POST /api/v1/twilio/webhooks/voice`: verify the signature, read the Practitioner, the Appointment and the Patient from sim/medplum (HTTP, another process), apply the dial policy, lease a caller ID from the NumberPool Durable Object (SQLite: hourly-limit counts, load and store the pool, call log, stickiness), write the attempt to the appointment's CallLedger Durable Object, answer `<Dial callerId answerOnBridge timeout action><Number statusCallback…>`.",
      "  - `POST /api/v1/twilio/access-token`: verify the clinician's Medplum RS256 access token (JWKS from sim/medplum) and ask sim/medplum whether the sign-in still stands (`/auth/me`), the rate limiter, read the Practitioner and check its Twilio identity in sim/medplum, mint the token, answer JSON with the signaling URL.",
      "- **Baseline** (`scripts/bench/quickstart-server.mjs`): what Twilio's Voice JavaScript SDK quickstart for Node does, with npm `twilio` on node:http (lighter than the quickstart's Express): the token route mints `AccessToken` + `VoiceGrant` for a fixed identity and checks **no** sign-in; the voice route checks the signature with `twilio.validateRequest` and answers `<Dial callerId><Number>To</Number></Dial>` — no patient lookup, no pool, no record, no state.",
      "",
      `Voice requests are the same shape for both (a new signed \`CallSid\` each, \`From=client:clinician-ada\`, \`To\` a drama number, one of ${APPOINTMENTS.length} appointments; 20,000 prepared, ours never reuses one). Ours leases a number per call; in production the call's status callback releases it, so while wrk runs the harness releases every lease it finds through the admin API (${f0(t("voice_ours").releasedDuringRun ?? 0)} releases this run — extra load on our worker and its NumberPool object, not on the baseline). The stateless baseline cycles through the same kind of prepared requests. Each run lasts ${h.seconds} s; the token run sends the same bearer token to both.`,
      "",
      "| endpoint | server | requests | req/s | p50 | p99 | max | non-2xx | socket errors | answers without <Dial> |",
      "|---|---|---|---|---|---|---|---|---|---|",
      ...[["voice", "voice_ours", "ours"], ["voice", "voice_node", "quickstart Node"], ["access token", "token_ours", "ours"], ["access token", "token_node", "quickstart Node"]].map(([ep, k, who]) => {
        const r = t(k);
        return `| ${ep} | ${who} | ${f0(r.requests)} | ${f0(r.rps)} | ${f1(r.p50Ms)} ms | ${f1(r.p99Ms)} ms | ${f0(r.maxMs)} ms | ${r.non2xx}${r.non2xx && r.byStatus ? ` (${Object.entries(r.byStatus).filter(([, n]) => n).map(([k, n]) => `${k}: ${n}`).join(", ")})` : ""} | ${r.socketErrors} | ${ep === "voice" ? r.requests - r.non2xx - r.dialled : "—"} |`;
      }),
      "",
      ...(h.health_ours ? [`For scale, the floor of \`wrangler dev\` itself on this machine: \`GET /api/v1/health\` (no Medplum, no Durable Object) ${f0(h.health_ours.rps)} req/s, p50 ${f1(h.health_ours.p50Ms)} ms, p99 ${f1(h.health_ours.p99Ms)} ms. Compare the number-pool figures below (the NumberPool object alone, no Medplum): leasing is serialised in one Durable Object, and every voice call takes a lease.`, ""] : []),
      `Tolerated failures: at most ${MAX_FAILURE_RATE * 100} % of requests non-2xx or socket errors per run, and for the voice webhook at most ${MAX_FAILURE_RATE * 100} % of answers without <Dial> (a refusal); more fails the run.`,
      "",
    );
    img("http-throughput.svg", "requests per second, ours vs quickstart Node");
    img("http-latency.svg", "p50 and p99 latency, ours vs quickstart Node");
  }
  if (pool) {
    push(
      "## Number pool",
      "",
      `${pool.requests} concurrent \`POST /api/v1/admin/number-pool/leases\` (the endpoint tests/e2e/number-pool.test.mjs uses), each a distinct CallSid, through \`wrangler dev\` to the NumberPool Durable Object, with ${pool.poolSize} free numbers: **${pool.granted} granted, ${pool.refused} refused (409), ${pool.doubleLeases} double leases**, in ${pool.seconds.toFixed(2)} s — ${pool.answeredPerSec ? `${f0(pool.answeredPerSec)} answers/s, ` : ""}${f0(pool.leasesPerSec)} leases/s (grants over the whole run's time); per-request latency p50 ${f0(pool.p50Ms)} ms, p99 ${f0(pool.p99Ms)} ms (all requests were in flight at once, so p99 ≈ the time to serve the whole queue). The object keeps the pool in memory (it is the table's only writer), so a lease reads no pool rows and writes back only the one it changes, plus its call-log row.`,
      "",
    );
  }
  if (s) {
    push(
      "## Browser",
      "",
      "| file | raw | gzip -9 |",
      "|---|---|---|",
      `| www/pkg/web_client_bg.wasm (wasm-opt -Oz) | ${kb(s.wasm.raw)} | ${kb(s.wasm.gzip)} |`,
      `| www/pkg/web_client.js (glue, esbuild --minify) | ${kb(s.glue.raw)} | ${kb(s.glue.gzip)} |`,
      `| **web-client total** | **${kb(s.total.raw)}** | **${kb(s.total.gzip)}** |`,
      `| @twilio/voice-sdk ${m.tools["@twilio/voice-sdk (npm)"]} dist/twilio.min.js | ${kb(s.sdk.raw)} | ${kb(s.sdk.gzip)} |`,
      "",
      `Goal ≤ 25 KB gzip: ${s.total.gzip <= s.goalGzip ? "met" : `**not met** — ours is ${kb(s.total.gzip)}, ${sizeRatio(s)} the official SDK's ${kb(s.sdk.gzip)}`}. (Measured in this run with zlib level 9, the same as \`scripts/sizes\`.)`,
      "",
    );
    if (s.breakdown) {
      const b = s.breakdown;
      push(
        `Where the bytes go, in proportion: the function bodies of the module rustc emits (\`${b.path}\`, before wasm-bindgen and wasm-opt: ${kb(b.codeBytes)} of function bodies, wasm-bindgen's type descriptors left out as it removes them, and ${kb(b.dataBytes)} of data — strings and tables), summed by the crate each function's symbol names (\`scripts/bench/wasm-breakdown.mjs\`):`,
        "",
        "| crate | code |",
        "|---|---|",
        ...b.crates.map(([crate, bytes]) => `| ${crate} | ${kb(bytes)} |`),
        "",
      );
    }
    img("sizes.svg", "browser code size, ours vs the official SDK");
  }
  if (pn) {
    push(
      "### Call panel",
      "",
      `\`scripts/bench-panel.mjs --calls ${pn.calls}\` in headless Chromium against sim/twilio (callee answers at once), loopback: page load to ready (sign-in, token, signaling) **${f0(pn.pageLoadToReadyMs)} ms**; click to connected, our module median **${f0(pn.ours.median)} ms**, p95 **${f0(pn.ours.p95)} ms** (min ${f0(pn.ours.min)}, max ${f0(pn.ours.max)}); the official SDK's \`device.connect()\` to \`accept\` against the same simulator (through a TLS front, as it speaks only wss://) median **${f0(pn.sdk.median)} ms**, p95 **${f0(pn.sdk.p95)} ms** (min ${f0(pn.sdk.min)}, max ${f0(pn.sdk.max)}).`,
      "",
    );
    img("panel.svg", "click to connected, ours vs the official SDK");
  }
  const missing = ["primitives", "callgrind", "sizes", "http", "panel"].filter((x) => !ONLY.includes(x) && !results[{ http: "http", panel: "panel", sizes: "sizes", callgrind: "callgrind", primitives: "primitives" }[x]]);
  if (missing.length) push(`Not run this time (--only): ${missing.join(", ")}.`, "");
  push("## Reproduce", "", "```sh", "bash scripts/setup --browser   # wrk, valgrind, Chromium, the twilio-python virtualenv", "bash scripts/build", "make bench                      # node scripts/bench.mjs on the repo's Node 22: about 5 minutes; --quick for the CI version", "```", "");
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
const started = Date.now();
results.machine ??= machine();
if (ONLY.includes("primitives")) await primitives();
if (ONLY.includes("callgrind")) await callgrind();
if (ONLY.includes("sizes")) sizes();
if (ONLY.includes("http")) await http();
if (ONLY.includes("panel")) await panel();
const chartDir = join(OUT, "docs", "bench");
mkdirSync(chartDir, { recursive: true });
const chartFiles = charts(chartDir);
writeFileSync(join(OUT, "BENCHMARKS.md"), markdown(chartFiles, chartDir));
writeFileSync(join(chartDir, "results.json"), JSON.stringify(results, null, 2) + "\n");
log(`wrote ${join(OUT, "BENCHMARKS.md")} and ${chartFiles.length} charts in ${chartDir} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
