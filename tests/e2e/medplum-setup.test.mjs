//! End-to-end: scripts/medplum-setup.mjs against the local Medplum, then the real worker (under `wrangler dev`, with the ClientApplication the script created) provisions new clinicians through the signup-hook Bot.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { startMedplum, startWorker, artifactsDir, freePort, TEST_SECRETS } from "../../sim/stack.mjs";
import { CLIENT_NAME, POLICY_NAME } from "../../scripts/medplum-setup.mjs";
import { runNodeScript } from "../lib/run-script.mjs";

const SCRIPT = fileURLToPath(new URL("../../scripts/medplum-setup.mjs", import.meta.url));
const IDENTITY_SYSTEM = "http://twilio.com/voice/identity";
const artifacts = artifactsDir();
/** The seeded worker client is a project admin: it plays the operator's admin client here. */
const ADMIN_ENV = {
  MEDPLUM_ADMIN_CLIENT_ID: TEST_SECRETS.MEDPLUM_CLIENT_ID,
  MEDPLUM_ADMIN_CLIENT_SECRET: TEST_SECRETS.MEDPLUM_CLIENT_SECRET,
};

let medplum;
let worker;
let workerUrl;
let setupOutput;
let workerClient;
let adminToken;

function runScript(args, env) {
  return runNodeScript(SCRIPT, args, { env });
}

async function medplumApi(method, path, body, contentType = "application/fhir+json") {
  if (!adminToken) {
    const response = await fetch(`${medplum.url}/oauth2/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: ADMIN_ENV.MEDPLUM_ADMIN_CLIENT_ID, client_secret: ADMIN_ENV.MEDPLUM_ADMIN_CLIENT_SECRET }),
    });
    adminToken = (await response.json()).access_token;
  }
  const response = await fetch(`${medplum.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, "content-type": contentType },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

const setupArgs = () => ["--base-url", medplum.url, "--worker-url", workerUrl];
const setupEnv = () => ({ ...ADMIN_ENV, PROVISIONING_SECRET: TEST_SECRETS.PROVISIONING_SECRET });
const practitioner = async (id) => (await fetch(`${medplum.url}/__sim/resource/Practitioner/${id}`)).json();
const identities = (resource) => (resource.identifier ?? []).filter((i) => i.system === IDENTITY_SYSTEM);
/** Waits until every bot run under way (and what it caused) has finished; returns all runs. */
const botRuns = async () => (await (await fetch(`${medplum.url}/__sim/bot-runs`)).json()).runs;

async function policyId(name) {
  const { body } = await medplumApi("GET", `/fhir/R4/AccessPolicy?name=${name}`);
  return body.entry.map((e) => e.resource).find((p) => p.name === name).id;
}

/** Signs a clinician up the way Medplum does: the project admin's invite (User, Practitioner, ProjectMembership). */
async function invite(family, grant) {
  const response = await medplumApi(
    "POST",
    "/admin/projects/clinician-calls-demo/invite",
    { resourceType: "Practitioner", firstName: "Test", lastName: family, email: `${family.toLowerCase()}@example.org`, sendEmail: false, ...grant },
    "application/json",
  );
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return { practitionerId: response.body.profile.reference.split("/")[1], membership: response.body };
}

before(async () => {
  medplum = await startMedplum({ logDir: artifacts, name: "medplum-setup-medplum" });
  const workerPort = await freePort();
  workerUrl = `http://127.0.0.1:${workerPort}`;

  setupOutput = await runScript(setupArgs(), setupEnv());
  assert.equal(setupOutput.code, 0, setupOutput.stderr);
  const id = /echo 'MEDPLUM_CLIENT_ID=([^']+)'/.exec(setupOutput.stdout)?.[1];
  assert.ok(id, "the set-up prints the worker client's id");
  const secret = await runScript(["--base-url", medplum.url, "--print-client-secret"], ADMIN_ENV);
  assert.equal(secret.code, 0, secret.stderr);
  // The NAME=value line scripts/secrets.mjs reads.
  const line = /^MEDPLUM_CLIENT_SECRET=(\S+)\n$/.exec(secret.stdout);
  assert.ok(line, "the secret is printed as one MEDPLUM_CLIENT_SECRET=… line");
  workerClient = { id, secret: line[1] };

  // The worker runs with the ClientApplication the script created, as an operator would configure it.
  worker = await startWorker({
    port: workerPort,
    logDir: artifacts,
    name: "medplum-setup-worker",
    vars: { MEDPLUM_BASE_URL: medplum.url },
    secrets: { ...TEST_SECRETS, MEDPLUM_CLIENT_ID: workerClient.id, MEDPLUM_CLIENT_SECRET: workerClient.secret },
  });
});

after(async () => {
  await worker?.stop();
  await medplum?.stop();
});

test("the set-up created the worker's own admin client and printed no secret", async () => {
  assert.notEqual(workerClient.id, TEST_SECRETS.MEDPLUM_CLIENT_ID);
  assert.match(workerClient.secret, /^[0-9a-f]{64}$/);
  const output = setupOutput.stdout + setupOutput.stderr;
  for (const secret of [workerClient.secret, TEST_SECRETS.PROVISIONING_SECRET, TEST_SECRETS.MEDPLUM_CLIENT_SECRET]) {
    assert.ok(!output.includes(secret), "no secret in the set-up's output");
  }
  const { body } = await medplumApi("GET", `/fhir/R4/ClientApplication/${workerClient.id}`);
  assert.equal(body.name, CLIENT_NAME);
});

test("a clinician invited with videocall_own_manage gets their Twilio identity via Bot → worker", async () => {
  const granted = await invite("Provisioned", { access: [{ policy: { reference: `AccessPolicy/${await policyId(POLICY_NAME)}` } }] });
  const runs = (await botRuns()).filter((run) => run.resource === `ProjectMembership/${granted.membership.id}`);
  assert.equal(runs.length, 1);
  assert.equal(runs[0].success, true, runs[0].logResult);
  assert.equal(runs[0].returnValue.status, "created", "the worker answered 201 created");
  assert.deepEqual(identities(await practitioner(granted.practitionerId)), [
    { system: IDENTITY_SYSTEM, value: granted.practitionerId },
  ]);
});

test("a clinician created through FHIR with the policy as accessPolicy is provisioned too", async () => {
  const created = await medplumApi("POST", "/fhir/R4/Practitioner", { resourceType: "Practitioner", name: [{ given: ["Test"], family: "Direct" }] });
  assert.equal(created.status, 201);
  const id = created.body.id;
  const membership = await medplumApi("POST", "/fhir/R4/ProjectMembership", {
    resourceType: "ProjectMembership",
    project: { reference: "Project/clinician-calls-demo" },
    user: { reference: `User/user-${id}` },
    profile: { reference: `Practitioner/${id}` },
    accessPolicy: { reference: `AccessPolicy/${await policyId(POLICY_NAME)}` },
  });
  assert.equal(membership.status, 201);
  await botRuns();
  assert.deepEqual(identities(await practitioner(id)), [{ system: IDENTITY_SYSTEM, value: id }]);
});

test("a clinician without the policy is not provisioned", async () => {
  const readOnly = await invite("Readonly", { accessPolicy: { reference: `AccessPolicy/${await policyId("read_only")}` } });
  const runs = (await botRuns()).filter((run) => run.resource === `ProjectMembership/${readOnly.membership.id}`);
  assert.deepEqual(runs, [], "the Subscription did not run the Bot");
  const stored = await practitioner(readOnly.practitionerId);
  assert.deepEqual(identities(stored), []);
});

test("a second set-up changes nothing; a membership update re-runs the hook and the worker answers already-provisioned", async () => {
  const again = await runScript(setupArgs(), setupEnv());
  assert.equal(again.code, 0, again.stderr);
  assert.doesNotMatch(again.stdout, /\b(created|updated)\b/);

  const granted = await invite("Twice", { access: [{ policy: { reference: `AccessPolicy/${await policyId(POLICY_NAME)}` } }] });
  await botRuns();
  const updated = await medplumApi("PUT", `/fhir/R4/ProjectMembership/${granted.membership.id}`, { ...granted.membership, userName: "twice" });
  assert.equal(updated.status, 200);
  const runs = (await botRuns()).filter((run) => run.resource === `ProjectMembership/${granted.membership.id}`);
  assert.deepEqual(runs.map((run) => [run.interaction, run.success, run.returnValue?.status]), [
    ["create", true, "created"],
    ["update", true, "already-provisioned"],
  ]);
  assert.equal(identities(await practitioner(granted.practitionerId)).length, 1, "exactly one identifier");
});
