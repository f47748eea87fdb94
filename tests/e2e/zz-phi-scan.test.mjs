//! Runs last: scans everything the product emitted during this e2e run (worker logs, what reached the local Datadog and Slack) for patient numbers and names.
//
// Inputs: every `worker.log` / `*-worker.log` and every `sinks-received.jsonl` under this run's
// artifacts directory (`artifactsDir()`: shared by all suites when scripts/test sets TEST_RUN_ID;
// its own, usually empty, directory when this file runs alone). Needles and matching rules are in
// tests/lib/phi.mjs; the first tests here check them.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { artifactsDir, REPO_ROOT } from "../../sim/stack.mjs";
import { DRAMA_NUMBERS, PATIENT_NAMES, PHONE_SCAN_PATTERNS } from "../../sim/medplum/fixtures.mjs";
import { scan, phoneDigitForms, DEFAULT_NEEDLES, MIN_DIGITS } from "../lib/phi.mjs";

const needles = (text) => scan(text).map((h) => h.needle);

// ---------------------------------------------------------------------------------------------
// The scanner itself.

test("phi: a patient number is caught in every common format", () => {
  for (const text of [
    "+44 7700 900123", "+447700900123", "447700900123", "07700900123", "07700 900123", "07700-900-123",
    "0044 7700 900123", "00447700900123", "+44 (0)7700 900123", "(07700) 900123", "7700900123", "700900123",
    "tel:+447700900123", "to=%2B447700900123&x=1", '{"to":"+447700900123"}', "number 07700 900 123 dialled",
  ]) {
    const hits = scan(`x ${text} y`);
    assert.equal(hits.length, 1, `${text}: ${JSON.stringify(hits)}`);
    assert.equal(hits[0].needle, 'patient-mobile phone "07700 900123"', text);
    assert.equal(hits[0].kind, "phone");
  }
});

test("phi: every fixture number, as stored and in the fixtures' scan patterns, is caught", () => {
  for (const text of [...DRAMA_NUMBERS, ...PHONE_SCAN_PATTERNS]) {
    assert.ok(scan(`logged ${text}.`).length >= 1, text);
  }
  assert.equal(scan("+1 202 555 0143")[0].needle, 'patient-international phone "+1 202 555 0143"');
  assert.equal(scan("(202) 555-0143")[0].needle, 'patient-international phone "+1 202 555 0143"');
  assert.equal(scan("+44 (0)7700 900456")[0].needle, 'patient-formatted phone "+44 (0)7700 900456"');
  assert.equal(scan("020 7946 0456")[0].needle, 'patient-two-numbers phone "020 7946 0456"');
  for (const form of DEFAULT_NEEDLES.phones.keys()) assert.ok(form.length >= MIN_DIGITS, form);
  assert.deepEqual(phoneDigitForms("0044 7700 900789").sort(), ["00447700900789", "07700900789", "447700900789", "700900789", "7700900789"]);
});

test("phi: SIDs, hashes, UUIDs, timestamps and longer digit runs holding the digits are not hits", () => {
  const clean = [
    "CA447700900123aa00000000000000000000000000", // a CallSid: CA + 32 hex with the number's digits inside
    "CA7700900123447700900123447700900123ffff",
    "actorId = 447700900123f52032fcfd4018421ace95e897b4fb28f08335eca8ee68f5aa9c",
    "[wrangler:info] DELETE /api/v1/admin/number-pool/leases/CA0126e523b22c81607854002b764d1a49 200 OK (7ms)",
    "request 44770090-0123-4770-0900-123447700900 done", // a UUID
    "2026-11-25T09:33:17.741Z", "2077-00-90T01:23:45.000Z", "scheduledTime = 1795589578.622s; currentTime = 1795589578.656061101s",
    '{"timestamp":1795597268021,"points":[{"timestamp":1795597268,"value":1}]}',
    "17700900123", "4477009001230", "447700900123447700900123", // the number inside longer digit runs
    "patientNumberMasked •••123", "•••900123", "900123", "7700 9001", // masked or too short
    "127.0.0.1:8790", "2026-11-25 09:00:00",
  ];
  for (const text of clean) assert.deepEqual(scan(text), [], text);
});

test("phi: pool caller IDs and other drama numbers are not patient data", () => {
  for (const text of ["+447700900001", "+447700900002", "+447700900003", "+447700900099", "+447700900999", "07700 900555", "+442079460000", "pool_number:+447700900001"]) {
    assert.deepEqual(scan(text), [], text);
  }
});

test("phi: patient names, full (any case, any spacing) and family alone (as a word, capitalised)", () => {
  for (const name of PATIENT_NAMES) {
    assert.deepEqual(needles(`hello ${name}!`).length, 1, name);
    assert.equal(scan(name.toUpperCase()).length, 1, name);
  }
  assert.deepEqual(needles("Test  Patient\tMobile"), ['patient-mobile name "Test Patient Mobile"']);
  assert.deepEqual(needles("calling Twonumbers now"), ['patient-two-numbers family name "Twonumbers"']);
  assert.deepEqual(needles('"family":"Intlprefix"'), ['patient-intl-prefix family name "Intlprefix"']);
  for (const text of ["appt-mobile", "patient-two-numbers", "PremiumRate", "premium-rate", "use: mobile", "Dr Ada Example", "Test Patient", "international"]) {
    assert.deepEqual(scan(text), [], text);
  }
});

test("phi: hits carry line, column and the matched text", () => {
  const hits = scan("first line\n  {\"to\":\"+447700900123\"}\nthird Test Patient Dashes");
  assert.deepEqual(hits, [
    { line: 2, column: 10, kind: "phone", needle: 'patient-mobile phone "07700 900123"', match: "+447700900123" },
    { line: 3, column: 7, kind: "name", needle: 'patient-dashes name "Test Patient Dashes"', match: "Test Patient Dashes" },
  ]);
});

// ---------------------------------------------------------------------------------------------
// The scan of this run's output.

const SCANNED = /(^|-)worker\.log$|^sinks-received\.jsonl$/;

function filesToScan(dir) {
  const found = [];
  const walk = (current) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const path = join(current, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && SCANNED.test(entry.name)) found.push(path);
    }
  };
  walk(dir);
  return found.sort();
}

test("no patient number or name in what the worker logged or sent to Datadog and Slack during this run", (t) => {
  const dir = artifactsDir();
  const files = filesToScan(dir);
  const hits = [];
  let bytes = 0;
  for (const file of files) {
    const text = readFileSync(file, "utf8");
    bytes += text.length;
    for (const hit of scan(text)) hits.push({ file: relative(REPO_ROOT, file), ...hit });
  }
  const summary = `PHI scan: ${files.length} file(s), ${bytes} bytes under ${relative(REPO_ROOT, dir)}` +
    (files.length === 0 ? " (nothing to scan: run it after other e2e suites with the same TEST_RUN_ID)" : "");
  t.diagnostic(summary);
  for (const file of files) t.diagnostic(`  scanned ${relative(REPO_ROOT, file)}`);
  console.log(summary);
  if (process.env.E2E_WHOLE_RUN) {
    // After every suite (scripts/test): a scan of nothing would pass, so there must be something.
    assert.ok(files.some((f) => /worker\.log$/.test(f)), `no worker log to scan under ${dir}`);
    assert.ok(files.some((f) => f.endsWith("sinks-received.jsonl")), `no Datadog/Slack sink record to scan under ${dir}`);
  }
  if (hits.length > 0) {
    const shown = hits.slice(0, 40).map((h) => `  ${h.file}:${h.line}:${h.column}  ${h.needle}  matched ${JSON.stringify(h.match)}`);
    if (hits.length > shown.length) shown.push(`  … and ${hits.length - shown.length} more`);
    assert.fail(`patient data found ${hits.length} time(s):\n${shown.join("\n")}`);
  }
});
