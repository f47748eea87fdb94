//! Tests of scripts/secrets.mjs with a stand-in `wrangler` on PATH that records its arguments and
//! standard input: values travel on stdin only, bad or missing values set nothing, names not values print.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync, readFileSync, existsSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), "..", "secrets.mjs");
const hex = (seed) => seed.repeat(32).slice(0, 32);
/** A complete, well-shaped set of (fake) values. */
const VALUES = {
  MEDPLUM_CLIENT_ID: "0b1c2d3e-worker-client",
  MEDPLUM_CLIENT_SECRET: "s3cr3t-medplum-client-value-0001",
  TWILIO_ACCOUNT_SID: `AC${hex("a1")}`,
  TWILIO_AUTH_TOKEN: hex("b2"),
  TWILIO_API_KEY: `SK${hex("c3")}`,
  TWILIO_API_SECRET: "Zx9Zx9Zx9Zx9Zx9Zx9Zx9Zx9Zx9Zx9Zx",
  TWILIO_TWIML_APP_SID: `AP${hex("d4")}`,
  PROVISIONING_SECRET: hex("e5") + hex("f6"),
};
let dir;
let record;

before(() => {
  dir = mkdtempSync(join(tmpdir(), "secrets-test-"));
  record = join(dir, "calls.log");
  const fake = join(dir, "wrangler");
  // Records "args<TAB>stdin" per call; fails when FAIL_BULK is set.
  writeFileSync(fake, `#!/usr/bin/env bash\nvalue=$(cat)\nprintf '%s\\t%s\\n' "$*" "$value" >> "${record}"\n[ -z "\${FAIL_BULK:-}" ] || { echo "simulated failure" >&2; exit 1; }\n`);
  chmodSync(fake, 0o755);
});
after(() => rmSync(dir, { recursive: true, force: true }));

function run(args, { env = {}, stdin = "" } = {}) {
  rmSync(record, { force: true });
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [SCRIPT, ...args], { env: { PATH: `${dir}:${process.env.PATH}`, ...env } }, (error, stdout, stderr) => {
      const calls = existsSync(record) ? readFileSync(record, "utf8").trim().split("\n").map((l) => l.split("\t")) : [];
      resolve({ code: error ? error.code : 0, stdout, stderr, calls });
    });
    child.stdin.end(stdin);
  });
}

test("sets every given secret in one wrangler call, through its standard input, never its arguments", async () => {
  const { code, stdout, calls } = await run(["--env", "staging"], { env: VALUES });
  assert.equal(code, 0);
  assert.deepEqual(calls.map(([args]) => args), ["secret bulk --env staging"], "one call: one new version");
  assert.deepEqual(JSON.parse(calls[0][1]), VALUES);
  for (const value of Object.values(VALUES)) assert.ok(!stdout.includes(value), "a value was printed");
  assert.match(stdout, /8 secret\(s\) set in staging/);
});

test("a rotation's pair is set together: the new token and the one it replaces in one version", async () => {
  const stdin = `TWILIO_AUTH_TOKEN=${hex("77")}\nTWILIO_AUTH_TOKEN_PREVIOUS=${hex("b2")}\n`;
  const { code, calls } = await run(["--env", "production", "--only", "TWILIO_AUTH_TOKEN,TWILIO_AUTH_TOKEN_PREVIOUS"], { stdin });
  assert.equal(code, 0);
  assert.equal(calls.length, 1);
  assert.deepEqual(JSON.parse(calls[0][1]), { TWILIO_AUTH_TOKEN: hex("77"), TWILIO_AUTH_TOKEN_PREVIOUS: hex("b2") });
});

test("NAME=value lines on standard input take precedence over the environment", async () => {
  const stdin = `# from the password manager\nTWILIO_AUTH_TOKEN=${hex("77")}\n`;
  const { code, calls, stdout } = await run(["--env", "production", "--only", "TWILIO_AUTH_TOKEN"], { env: VALUES, stdin });
  assert.equal(code, 0);
  assert.deepEqual(calls, [["secret bulk --env production", JSON.stringify({ TWILIO_AUTH_TOKEN: hex("77") })]]);
  assert.match(stdout, /setting TWILIO_AUTH_TOKEN \(from standard input\) in production/);
});

test("a missing or malformed value sets nothing and names every problem", async () => {
  const { code, stderr, calls } = await run(["--env", "staging"], { env: { ...VALUES, TWILIO_ACCOUNT_SID: "AC123", PROVISIONING_SECRET: "" } });
  assert.equal(code, 2);
  assert.deepEqual(calls, []);
  assert.match(stderr, /nothing was set/);
  assert.match(stderr, /TWILIO_ACCOUNT_SID does not look right/);
  assert.match(stderr, /PROVISIONING_SECRET is not given/);
  assert.ok(!stderr.includes("AC123"), "the bad value is not echoed");
});

test("production refuses test-looking values; unknown names and environments are refused", async () => {
  const fake = await run(["--env", "production"], { env: { ...VALUES, MEDPLUM_CLIENT_SECRET: "fake-medplum-client-secret-value" } });
  assert.equal(fake.code, 2);
  assert.match(fake.stderr, /MEDPLUM_CLIENT_SECRET looks like a test value/);
  assert.deepEqual(fake.calls, []);
  const unknown = await run(["--env", "staging"], { env: VALUES, stdin: "NOT_A_SECRET=x\n" });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /not a secret of the worker: NOT_A_SECRET/);
  const local = await run(["--env", "local"], { env: VALUES });
  assert.equal(local.code, 2);
  assert.match(local.stderr, /staging or production/);
});

test("production needs a telemetry salt of its own; staging may use the derived one", async () => {
  const production = await run(["--env", "production", "--dry-run"], { env: { ...VALUES, MEDPLUM_CLIENT_SECRET: "s3cr3t-medplum-client-value-0002" } });
  assert.equal(production.code, 2);
  assert.match(production.stderr, /TELEMETRY_SALT is not given/);
  const salted = await run(["--env", "production", "--dry-run"], { env: { ...VALUES, MEDPLUM_CLIENT_SECRET: "s3cr3t-medplum-client-value-0002", TELEMETRY_SALT: hex("5a") } });
  assert.equal(salted.code, 0, salted.stderr);
  assert.equal((await run(["--env", "staging", "--dry-run"], { env: VALUES })).code, 0);
});

test("--dry-run checks and lists, and calls wrangler not at all", async () => {
  const { code, stdout, calls } = await run(["--env", "staging", "--dry-run"], { env: { ...VALUES, ADMIN_TOKEN: hex("9a") } });
  assert.equal(code, 0);
  assert.deepEqual(calls, []);
  assert.match(stdout, /would set ADMIN_TOKEN \(from environment\) in staging/);
  assert.equal((stdout.match(/^would set /gm) ?? []).length, 9);
});

test("a wrangler failure stops with its message and a non-zero exit", async () => {
  const { code, stderr } = await run(["--env", "staging"], { env: { ...VALUES, FAIL_BULK: "1" } });
  assert.equal(code, 1);
  assert.match(stderr, /wrangler secret bulk failed \(exit 1\): simulated failure\nnone of them was set/);
});

test("--list names every secret the worker reads", async () => {
  const { code, stdout } = await run(["--list"]);
  assert.equal(code, 0);
  const config = readFileSync(join(dirname(SCRIPT), "..", "edge-worker", "src", "config.rs"), "utf8");
  for (const line of stdout.trim().split("\n")) {
    const name = line.split(/\s+/)[0];
    assert.ok(config.includes(`"${name}"`), `${name} is a setting of the worker`);
  }
  assert.equal(stdout.trim().split("\n").length, 13);
});

test("docs/OPERATIONS.md's secrets table lists exactly the script's secrets", async () => {
  const { SECRETS } = await import("../secrets.mjs");
  const doc = readFileSync(join(dirname(SCRIPT), "..", "docs", "OPERATIONS.md"), "utf8");
  const section = doc.slice(doc.indexOf("## Secrets"), doc.indexOf("## First deploy"));
  const documented = [...section.matchAll(/^\| `([A-Z_]+)` \|/gm)].map((m) => m[1]);
  assert.deepEqual(documented.sort(), SECRETS.map((s) => s.name).sort());
});
