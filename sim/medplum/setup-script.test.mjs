//! Tests of scripts/medplum-setup.mjs and the signup-hook Bot against an in-process sim/medplum and a recording stand-in for the worker (node --test sim/medplum/setup-script.test.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";
import { startMedplumServer } from "./server.mjs";
import { runNodeScript } from "../../tests/lib/run-script.mjs";
import { PROJECT_ID, policies } from "./fixtures.mjs";
import { BOT_NAME, CLIENT_NAME, POLICY_NAME, POLICY_RESOURCES, SECRET_NAMES } from "../../scripts/medplum-setup.mjs";

const SCRIPT = fileURLToPath(new URL("../../scripts/medplum-setup.mjs", import.meta.url));
const BOT_SOURCE = fileURLToPath(new URL("../../medplum/bots/provision-twilio-identity.cjs", import.meta.url));
const ADMIN_ID = "setup-admin-client";
const ADMIN_SECRET = "fake-setup-admin-secret";
const PROVISIONING_SECRET = "fake-provisioning-secret-for-setup-test";
const IDENTITY_PATH = /^\/api\/v1\/clinicians\/([^/]+)\/twilio-identity$/;

let sim;
let worker;
/** Requests the stand-in worker received: {method, path, authorization}. */
let workerRequests = [];
/** How the stand-in worker answers provisioning: [status, body]. */
let workerAnswer = [201, { status: "created" }];

before(async () => {
  sim = await startMedplumServer({ clientId: ADMIN_ID, clientSecret: ADMIN_SECRET });
  const server = createServer((req, res) => {
    workerRequests.push({ method: req.method, path: req.url, authorization: req.headers.authorization });
    const match = IDENTITY_PATH.exec(req.url ?? "");
    const [status, body] = match ? workerAnswer : [404, { error: { code: "not_found", message: "no such endpoint" } }];
    const payload = JSON.stringify(match && status < 300 ? { practitionerId: match[1], identity: match[1], ...body } : body);
    res.writeHead(status, { "content-type": "application/json" });
    res.end(payload);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  worker = { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => server.close(r)) };
});

after(async () => {
  await sim?.close();
  await worker?.close();
});

// ---------------------------------------------------------------------------------------------
// Helpers.

const CREDENTIALS = {
  MEDPLUM_ADMIN_CLIENT_ID: ADMIN_ID,
  MEDPLUM_ADMIN_CLIENT_SECRET: ADMIN_SECRET,
  PROVISIONING_SECRET,
};

/** Runs the script as the operator would; the environment holds only PATH and `env`. */
function runScript(args, { env = CREDENTIALS, stdin } = {}) {
  return runNodeScript(SCRIPT, args, { env, stdin });
}

const setupArgs = (extra = []) => ["--base-url", sim.url, "--worker-url", worker.url, ...extra];

let adminToken;
async function fhir(method, path, body) {
  if (!adminToken) {
    const response = await fetch(`${sim.url}/oauth2/token`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ grant_type: "client_credentials", client_id: ADMIN_ID, client_secret: ADMIN_SECRET }),
    });
    adminToken = (await response.json()).access_token;
  }
  const response = await fetch(`${sim.url}/fhir/R4/${path}`, {
    method,
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/fhir+json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

const searchAll = async (query) => ((await fhir("GET", query)).body.entry ?? []).map((e) => e.resource);
const stored = async (type, id) => (await fetch(`${sim.url}/__sim/resource/${type}/${id}`)).json();
const projectSecrets = async () => Object.fromEntries(((await stored("Project", PROJECT_ID)).secret ?? []).map((s) => [s.name, s.valueString]));
const botRuns = async () => (await (await fetch(`${sim.url}/__sim/bot-runs`)).json()).runs;

/** Everything the set-up manages, by name, as stored. */
async function managed() {
  const [policy] = (await searchAll(`AccessPolicy?name=${POLICY_NAME}`)).filter((p) => p.name === POLICY_NAME);
  const [client] = (await searchAll(`ClientApplication?name=${encodeURIComponent(CLIENT_NAME)}`)).filter((c) => c.name === CLIENT_NAME);
  const [bot] = (await searchAll(`Bot?name=${encodeURIComponent(BOT_NAME)}`)).filter((b) => b.name === BOT_NAME);
  const subscriptions = bot ? await searchAll(`Subscription?url=${encodeURIComponent(`Bot/${bot.id}`)}`) : [];
  const memberships = client ? await searchAll(`ProjectMembership?profile=ClientApplication/${client.id}`) : [];
  return { policy, client, bot, subscriptions, clientMembership: memberships[0] };
}

/** No secret in `text`: not the admin client's, the provisioning secret, nor the worker client's. */
async function assertNoSecrets(text, label) {
  assert.ok(!text.includes(ADMIN_SECRET), `${label}: the admin client secret is not printed`);
  assert.ok(!text.includes(PROVISIONING_SECRET), `${label}: the provisioning secret is not printed`);
  const { client } = await managed();
  if (client) assert.ok(!text.includes(client.secret), `${label}: the worker client's secret is not printed`);
}

/** A clinician as Medplum's invite makes one: a Practitioner, then a ProjectMembership naming policies. */
async function newClinician(family, grant) {
  const practitioner = await fhir("POST", "Practitioner", { resourceType: "Practitioner", name: [{ given: ["Test"], family }] });
  assert.equal(practitioner.status, 201);
  const membership = await fhir("POST", "ProjectMembership", {
    resourceType: "ProjectMembership",
    project: { reference: `Project/${PROJECT_ID}` },
    user: { reference: `User/user-${practitioner.body.id}` },
    profile: { reference: `Practitioner/${practitioner.body.id}` },
    ...grant,
  });
  assert.equal(membership.status, 201);
  return { practitionerId: practitioner.body.id, membership: membership.body };
}

// ---------------------------------------------------------------------------------------------
// Usage and credentials.

test("--help explains the options and the environment, exit 0", async () => {
  const { code, stdout } = await runScript(["--help"], { env: {} });
  assert.equal(code, 0);
  for (const word of ["--base-url", "--worker-url", "--dry-run", "MEDPLUM_ADMIN_CLIENT_ID", "MEDPLUM_ADMIN_CLIENT_SECRET", "PROVISIONING_SECRET"]) {
    assert.ok(stdout.includes(word), `--help mentions ${word}`);
  }
});

test("missing credentials: exit 2, every missing variable named, nothing changed", async () => {
  const before = await sim.counts();
  const none = await runScript(setupArgs(), { env: {} });
  assert.equal(none.code, 2);
  for (const name of ["MEDPLUM_ADMIN_CLIENT_ID", "MEDPLUM_ADMIN_CLIENT_SECRET", "PROVISIONING_SECRET"]) {
    assert.ok(none.stderr.includes(name), `names ${name}: ${none.stderr}`);
  }
  const noProvisioning = await runScript(setupArgs(), { env: { MEDPLUM_ADMIN_CLIENT_ID: ADMIN_ID, MEDPLUM_ADMIN_CLIENT_SECRET: ADMIN_SECRET } });
  assert.equal(noProvisioning.code, 2);
  assert.match(noProvisioning.stderr, /PROVISIONING_SECRET/);
  assert.doesNotMatch(noProvisioning.stderr, /MEDPLUM_ADMIN_CLIENT_ID/);
  const emptyStdin = await runScript(setupArgs(["--provisioning-secret-stdin"]), { env: { ...CREDENTIALS, PROVISIONING_SECRET: "" }, stdin: "" });
  assert.equal(emptyStdin.code, 2);
  assert.match(emptyStdin.stderr, /PROVISIONING_SECRET/);
  assert.deepEqual(await sim.counts(), before);
});

test("credentials on the command line are refused; bad URLs are refused", async () => {
  const argv = await runScript([...setupArgs(), "--client-secret", ADMIN_SECRET]);
  assert.equal(argv.code, 2);
  assert.match(argv.stderr, /Unknown option --client-secret/);
  assert.ok(!argv.stderr.includes(ADMIN_SECRET));
  const plainHttp = await runScript(["--base-url", sim.url, "--worker-url", "http://calls.example.org"]);
  assert.equal(plainHttp.code, 2);
  assert.match(plainHttp.stderr, /--worker-url must be https/);
  const withQuery = await runScript(["--base-url", `${sim.url}/?token=x`, "--worker-url", worker.url]);
  assert.equal(withQuery.code, 2);
});

// ---------------------------------------------------------------------------------------------
// Dry run, first run, second run.

test("--dry-run prints the requests with secrets masked and changes nothing", async () => {
  // Start from a project without the policy, as a fresh Medplum project is.
  assert.equal((await fhir("DELETE", `AccessPolicy/${policies.videocallOwnManage.id}`)).status, 200);
  const before = await sim.counts();
  const { code, stdout, stderr } = await runScript(setupArgs(["--dry-run"]));
  assert.equal(code, 0, stderr);
  assert.deepEqual(await sim.counts(), before, "the dry run created and changed nothing");
  assert.deepEqual(await projectSecrets(), {});

  for (const request of [
    `POST ${sim.url}/fhir/R4/AccessPolicy  (NOT SENT: dry run)`,
    `POST ${sim.url}/admin/projects/${PROJECT_ID}/client  (NOT SENT: dry run)`,
    `POST ${sim.url}/admin/projects/${PROJECT_ID}/secrets  (NOT SENT: dry run)`,
    `POST ${sim.url}/admin/projects/${PROJECT_ID}/bot  (NOT SENT: dry run)`,
    `POST ${sim.url}/fhir/R4/Bot/<id of the new Bot>/$deploy  (NOT SENT: dry run)`,
    `POST ${sim.url}/fhir/R4/Subscription  (NOT SENT: dry run)`,
    `GET ${sim.url}/fhir/R4/AccessPolicy?name=videocall_own_manage  (read, sent)`,
  ]) {
    assert.ok(stdout.includes(request), `prints ${request}`);
  }
  assert.match(stdout, /"name": "CLINICIAN_CALLS_PROVISIONING_SECRET",\s*"valueString": "\*{8}"/);
  assert.match(stdout, /client_secret=\*{8}/);
  assert.match(stdout, /"criteria": "ProjectMembership\?access-policy=AccessPolicy\/<id of the new AccessPolicy>"/);
  await assertNoSecrets(stdout + stderr, "dry run");
});

let firstIds;

test("first run creates the policy, the admin client, the secrets, the deployed Bot and its Subscription", async () => {
  const before = await sim.counts();
  const { code, stdout, stderr } = await runScript(setupArgs());
  assert.equal(code, 0, stderr);
  await assertNoSecrets(stdout + stderr, "first run");

  const { policy, client, bot, subscriptions, clientMembership } = await managed();
  assert.ok(policy && client && bot, "policy, client and bot exist");
  assert.deepEqual(policy.resource, POLICY_RESOURCES);
  assert.deepEqual(POLICY_RESOURCES, policies.videocallOwnManage.resource, "the script's policy is the one the sim seeds");
  assert.equal(clientMembership.admin, true, "the worker's client is a project admin (it reads ProjectMembership)");
  assert.deepEqual(await projectSecrets(), {
    [SECRET_NAMES.workerUrl]: worker.url,
    [SECRET_NAMES.provisioningSecret]: PROVISIONING_SECRET,
    [SECRET_NAMES.policyId]: policy.id,
  });
  const source = readFileSync(BOT_SOURCE, "utf8");
  const hash = createHash("sha256").update(source).digest("hex");
  assert.equal(bot.executableCode.title, `provision-twilio-identity.${hash.slice(0, 16)}.js`);
  const binary = await stored("Binary", bot.executableCode.url.split("/")[1]);
  assert.equal(Buffer.from(binary.data, "base64").toString("utf8"), source, "the repo's bot code is what is deployed");
  assert.equal(subscriptions.length, 1);
  const [subscription] = subscriptions;
  assert.equal(subscription.status, "active");
  assert.equal(subscription.criteria, `ProjectMembership?access-policy=AccessPolicy/${policy.id}`);
  assert.deepEqual(subscription.channel, { type: "rest-hook", endpoint: `Bot/${bot.id}` });
  assert.deepEqual(subscription.extension.map((e) => e.valueCode), ["create", "update"]);

  const after = await sim.counts();
  assert.equal(after.AccessPolicy, before.AccessPolicy + 1);
  assert.equal(after.ClientApplication, before.ClientApplication + 1);
  assert.equal(after.Bot, 1);
  assert.equal(after.Subscription, 1);
  assert.equal(after.ProjectMembership, before.ProjectMembership + 2, "one for the client, one for the bot");

  // The operator is told the id and how to read the secret, not the secret.
  assert.ok(stdout.includes(`{ echo 'MEDPLUM_CLIENT_ID=${client.id}'; node scripts/medplum-setup.mjs`));
  assert.ok(stdout.includes("--print-client-secret; } | node scripts/secrets.mjs --env <staging|production> --only MEDPLUM_CLIENT_ID,MEDPLUM_CLIENT_SECRET"));
  assert.ok(!stdout.includes("wrangler secret put"), "never a wrangler command without an environment");
  firstIds = { policy: policy.id, client: client.id, bot: bot.id, subscription: subscription.id };
});

test("second run creates nothing new: same ids, same counts, everything unchanged", async () => {
  const before = await sim.counts();
  const { code, stdout, stderr } = await runScript(setupArgs());
  assert.equal(code, 0, stderr);
  assert.deepEqual(await sim.counts(), before);
  const { policy, client, bot, subscriptions } = await managed();
  assert.deepEqual({ policy: policy.id, client: client.id, bot: bot.id, subscription: subscriptions[0].id }, firstIds);
  const summary = stdout.split("\n").filter((line) => /^ {2}(AccessPolicy|ClientApplication|Project secrets|Bot|Subscription)/.test(line));
  assert.equal(summary.length, 5);
  for (const line of summary) assert.match(line, /unchanged$/);
  await assertNoSecrets(stdout + stderr, "second run");
});

test("a dry run after set-up prints only reads and 'unchanged'", async () => {
  const before = await sim.counts();
  const { code, stdout } = await runScript(setupArgs(["--dry-run"]));
  assert.equal(code, 0);
  assert.doesNotMatch(stdout, /\(NOT SENT: dry run\)/);
  assert.match(stdout, /\(read, sent\)/);
  assert.deepEqual(await sim.counts(), before);
});

test("a new provisioning secret from standard input and a new worker URL update the project secrets only", async () => {
  const newSecret = "fake-rotated-provisioning-secret";
  const newUrl = `${worker.url}/base`;
  const before = await sim.counts();
  const { code, stdout, stderr } = await runScript(
    ["--base-url", sim.url, "--worker-url", `${newUrl}/`, "--provisioning-secret-stdin"],
    { env: { MEDPLUM_ADMIN_CLIENT_ID: ADMIN_ID, MEDPLUM_ADMIN_CLIENT_SECRET: ADMIN_SECRET }, stdin: `${newSecret}\n` },
  );
  assert.equal(code, 0, stderr);
  assert.ok(!stdout.includes(newSecret));
  assert.match(stdout, /Project secrets CLINICIAN_CALLS_\* \(read by the Bot\)\s+updated/);
  const secrets = await projectSecrets();
  assert.equal(secrets[SECRET_NAMES.provisioningSecret], newSecret);
  assert.equal(secrets[SECRET_NAMES.workerUrl], newUrl, "trailing slash removed");
  assert.deepEqual(await sim.counts(), before);
  // Back to the test's values.
  assert.equal((await runScript(setupArgs())).code, 0);
  assert.equal((await projectSecrets())[SECRET_NAMES.provisioningSecret], PROVISIONING_SECRET);
});

test("--print-client-secret prints exactly the worker client's secret as secrets.mjs reads it, nothing else", async () => {
  const { code, stdout } = await runScript(["--base-url", sim.url, "--print-client-secret"]);
  assert.equal(code, 0);
  const { client } = await managed();
  assert.equal(stdout, `MEDPLUM_CLIENT_SECRET=${client.secret}\n`);
  const combined = await runScript(["--base-url", sim.url, "--print-client-secret", "--dry-run"]);
  assert.equal(combined.code, 2);
});

test("another project than the admin client's, or a project without bots: exit 1, nothing changed", async () => {
  const before = await sim.counts();
  const other = await runScript(setupArgs(["--project", "another-project"]));
  assert.equal(other.code, 1);
  assert.match(other.stderr, /--project another-project is not the admin client's project/);

  const project = await stored("Project", PROJECT_ID);
  const { features, ...withoutBots } = project;
  await fhir("PUT", `Project/${PROJECT_ID}`, withoutBots);
  try {
    const disabled = await runScript(setupArgs());
    assert.equal(disabled.code, 1);
    assert.match(disabled.stderr, /Bots are not enabled for project/);
  } finally {
    await fhir("PUT", `Project/${PROJECT_ID}`, { ...(await stored("Project", PROJECT_ID)), features });
  }
  assert.deepEqual(await sim.counts(), before);
});

test("wrong admin credentials: exit 1 naming the variables, nothing printed of the secret", async () => {
  const { code, stderr, stdout } = await runScript(setupArgs(), {
    env: { ...CREDENTIALS, MEDPLUM_ADMIN_CLIENT_SECRET: "fake-wrong-secret" },
  });
  assert.equal(code, 1);
  assert.match(stderr, /MEDPLUM_ADMIN_CLIENT_ID \/ MEDPLUM_ADMIN_CLIENT_SECRET/);
  assert.ok(!(stdout + stderr).includes("fake-wrong-secret"));
});

// ---------------------------------------------------------------------------------------------
// The signup hook, through the sim's subscription → bot → (stand-in) worker.

test("a membership granting videocall_own_manage makes the Bot call the worker's provisioning endpoint", async () => {
  workerRequests = [];
  workerAnswer = [201, { status: "created" }];
  const { policy, bot } = await managed();
  const viaAccess = await newClinician("Access", { access: [{ policy: { reference: `AccessPolicy/${policy.id}` } }] });
  const viaAccessPolicy = await newClinician("Direct", { accessPolicy: { reference: `AccessPolicy/${policy.id}` } });
  const runs = (await botRuns()).filter((run) => run.bot === `Bot/${bot.id}`);

  assert.deepEqual(
    workerRequests.map((r) => r.path).sort(),
    [viaAccess, viaAccessPolicy].map((c) => `/api/v1/clinicians/${c.practitionerId}/twilio-identity`).sort(),
  );
  for (const request of workerRequests) {
    assert.equal(request.method, "POST");
    assert.equal(request.authorization, `Bearer ${PROVISIONING_SECRET}`);
  }
  assert.equal(runs.length, 2);
  for (const run of runs) {
    assert.equal(run.success, true, run.logResult);
    assert.equal(run.returnValue.status, "created");
    assert.ok(!run.logResult.includes(PROVISIONING_SECRET), "the bot does not log the secret");
  }
});

test("memberships without the policy, or not for a Practitioner, do not call the worker", async () => {
  workerRequests = [];
  const before = (await botRuns()).length;
  await newClinician("Readonly", { accessPolicy: { reference: `AccessPolicy/${policies.readOnly.id}` } });
  await newClinician("Nopolicy", {});
  const { bot } = await managed();
  // A Bot's own membership (no policy) is created by the admin API too.
  await fetch(`${sim.url}/admin/projects/${PROJECT_ID}/bot`, {
    method: "POST",
    headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "Unrelated bot" }),
  });
  const runs = (await botRuns()).slice(before).filter((run) => run.bot === `Bot/${bot.id}`);
  assert.deepEqual(runs, [], "the Subscription's criteria did not match");
  assert.deepEqual(workerRequests, []);
});

test("granting the policy later (a membership update) provisions; the Bot also re-checks the policy itself", async () => {
  workerRequests = [];
  const { policy, bot } = await managed();
  const later = await newClinician("Later", {});
  const updated = await fhir("PUT", `ProjectMembership/${later.membership.id}`, {
    ...later.membership,
    access: [{ policy: { reference: `AccessPolicy/${policy.id}` } }],
  });
  assert.equal(updated.status, 200);
  await botRuns();
  assert.deepEqual(workerRequests.map((r) => r.path), [`/api/v1/clinicians/${later.practitionerId}/twilio-identity`]);

  // Run the bot directly on a membership the criteria would not pass: it skips it.
  const { handler } = await import("../../medplum/bots/provision-twilio-identity.cjs");
  const secrets = Object.fromEntries(
    Object.entries(await projectSecrets()).map(([name, valueString]) => [name, { name, valueString }]),
  );
  workerRequests = [];
  const skipped = await handler(undefined, {
    bot: { reference: `Bot/${bot.id}` },
    input: { resourceType: "ProjectMembership", profile: { reference: "Practitioner/x" }, accessPolicy: { reference: "AccessPolicy/other" } },
    secrets,
  });
  assert.deepEqual(skipped, { status: "skipped", reason: "no-videocall-permission", practitionerId: "x" });
  const notPractitioner = await handler(undefined, {
    input: { resourceType: "ProjectMembership", profile: { reference: "Patient/y" }, accessPolicy: { reference: `AccessPolicy/${policy.id}` } },
    secrets,
  });
  assert.equal(notPractitioner.reason, "not-a-practitioner");
  await assert.rejects(
    handler(undefined, { input: { resourceType: "ProjectMembership", profile: { reference: "Practitioner/z" } }, secrets: {} }),
    /Project secret CLINICIAN_CALLS_POLICY_ID is not set/,
  );
  assert.deepEqual(workerRequests, []);
});

test("a worker refusal is a failed Bot execution naming the status, without the secret", async () => {
  workerRequests = [];
  workerAnswer = [403, { error: { code: "permission_missing", message: "no" } }];
  try {
    const { policy, bot } = await managed();
    const refused = await newClinician("Refused", { access: [{ policy: { reference: `AccessPolicy/${policy.id}` } }] });
    const run = (await botRuns()).filter((r) => r.bot === `Bot/${bot.id}` && r.resource === `ProjectMembership/${refused.membership.id}`)[0];
    assert.equal(run.success, false);
    assert.match(run.logResult, /HTTP 403 \(permission_missing\)/);
    assert.ok(!run.logResult.includes(PROVISIONING_SECRET));
    assert.equal(workerRequests.length, 1);
  } finally {
    workerAnswer = [201, { status: "created" }];
  }
});
