//! Tests for sim/medplum's project admin routes, Bot $deploy and subscription-triggered bots (node --test sim/medplum/admin.test.mjs).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startMedplumServer } from "./server.mjs";
import { PROJECT_ID, policies, practitioners } from "./fixtures.mjs";

const CLIENT_ID = "test-admin-client";
const CLIENT_SECRET = "fake-test-admin-secret";
const SUPPORTED_INTERACTION = "https://medplum.com/fhir/StructureDefinition/subscription-supported-interaction";

let sim;

before(async () => {
  sim = await startMedplumServer({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
});

after(async () => {
  await sim?.close();
});

// ---------------------------------------------------------------------------------------------
// Helpers.

async function tokenFor(clientId, clientSecret) {
  const response = await fetch(`${sim.url}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "client_credentials", client_id: clientId, client_secret: clientSecret }),
  });
  return { status: response.status, body: await response.json() };
}

let adminToken;
async function admin() {
  adminToken ??= (await tokenFor(CLIENT_ID, CLIENT_SECRET)).body.access_token;
  return adminToken;
}

async function call(method, path, { body, token, contentType = "application/json" } = {}) {
  const headers = {};
  if (token !== null) headers.authorization = `Bearer ${token ?? (await admin())}`;
  if (body !== undefined) headers["content-type"] = contentType;
  const response = await fetch(`${sim.url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

async function clinicianToken(practitioner = practitioners.ada.id) {
  const response = await fetch(`${sim.url}/auth/dev-login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ practitioner }),
  });
  return (await response.json()).access_token;
}

const stored = async (type, id) => (await fetch(`${sim.url}/__sim/resource/${type}/${id}`)).json();
const search = async (query) => ((await call("GET", `/fhir/R4/${query}`)).body.entry ?? []).map((e) => e.resource);
const issueTexts = (outcome) => outcome.issue.map((i) => i.details?.text);

/** Creates a Bot through the admin API and deploys `code` to it. */
async function deployedBot(name, code) {
  const created = await call("POST", `/admin/projects/${PROJECT_ID}/bot`, { body: { name } });
  assert.equal(created.status, 201);
  const deployed = await call("POST", `/fhir/R4/Bot/${created.body.id}/$deploy`, { body: { code, filename: `${name}.js` } });
  assert.equal(deployed.status, 200, JSON.stringify(deployed.body));
  return created.body;
}

async function subscribe(botId, criteria, interactions = ["create"]) {
  const response = await call("POST", "/fhir/R4/Subscription", {
    contentType: "application/fhir+json",
    body: {
      resourceType: "Subscription",
      status: "active",
      reason: "test",
      criteria,
      channel: { type: "rest-hook", endpoint: `Bot/${botId}` },
      extension: interactions.map((valueCode) => ({ url: SUPPORTED_INTERACTION, valueCode })),
    },
  });
  assert.equal(response.status, 201);
  return response.body;
}

async function runsOf(botId) {
  const response = await fetch(`${sim.url}/__sim/bot-runs`);
  assert.equal(response.status, 200);
  return (await response.json()).runs.filter((run) => run.bot === `Bot/${botId}`);
}

// ---------------------------------------------------------------------------------------------
// Authentication and authorisation of /admin/projects.

test("admin routes need a token (401) of a project admin (403 for a clinician)", async () => {
  const anonymous = await call("POST", `/admin/projects/${PROJECT_ID}/client`, { body: { name: "x" }, token: null });
  assert.equal(anonymous.status, 401);
  assert.equal(anonymous.body.resourceType, "OperationOutcome");

  const clinician = await call("POST", `/admin/projects/${PROJECT_ID}/client`, {
    body: { name: "x" },
    token: await clinicianToken(),
  });
  assert.equal(clinician.status, 403);
  assert.equal(clinician.body.issue[0].code, "forbidden");
  assert.equal((await search("ClientApplication?name=x")).length, 0, "nothing was created");
});

// ---------------------------------------------------------------------------------------------
// POST /admin/projects/{projectId}/client

test("POST /admin/projects/{p}/client creates a ClientApplication with a secret and a membership it can sign in with", async () => {
  const response = await call("POST", `/admin/projects/${PROJECT_ID}/client`, {
    body: { name: "Reporting client", description: "for a test" },
  });
  assert.equal(response.status, 201);
  const client = response.body;
  assert.equal(client.resourceType, "ClientApplication");
  assert.equal(client.name, "Reporting client");
  assert.equal(client.description, "for a test");
  assert.match(client.secret, /^[0-9a-f]{64}$/, "a 32-byte hex secret, as Medplum's generateSecret(32)");
  assert.match(client.id, /^[0-9a-f-]{36}$/);

  const [membership] = await search(`ProjectMembership?profile=ClientApplication/${client.id}`);
  assert.equal(membership.project.reference, `Project/${PROJECT_ID}`);
  assert.equal(membership.user.reference, `ClientApplication/${client.id}`);
  assert.equal(membership.admin, undefined, "not an admin until made one");

  const token = await tokenFor(client.id, client.secret);
  assert.equal(token.status, 200);
  assert.equal(token.body.profile.reference, `ClientApplication/${client.id}`);
});

test("POST /admin/projects/{p}/client without a name is 400 'Client name is required'", async () => {
  const before = await sim.counts();
  const response = await call("POST", `/admin/projects/${PROJECT_ID}/client`, { body: { description: "no name" } });
  assert.equal(response.status, 400);
  assert.deepEqual(issueTexts(response.body), ["Client name is required"]);
  assert.deepEqual(await sim.counts(), before);
});

// ---------------------------------------------------------------------------------------------
// GET /admin/projects/{p}, secrets, members

test("GET /admin/projects/{p} and POST .../secrets replace the project's secrets as a whole", async () => {
  const first = await call("POST", `/admin/projects/${PROJECT_ID}/secrets`, {
    body: [{ name: "A", valueString: "fake-a" }, { name: "B", valueString: "fake-b" }],
  });
  assert.equal(first.status, 200);
  assert.equal(first.body.resourceType, "Project");
  const second = await call("POST", `/admin/projects/${PROJECT_ID}/secrets`, { body: [{ name: "B", valueString: "fake-b2" }] });
  assert.equal(second.status, 200);
  const details = await call("GET", `/admin/projects/${PROJECT_ID}`);
  assert.equal(details.status, 200);
  assert.equal(details.body.project.id, PROJECT_ID);
  assert.deepEqual(details.body.project.secret, [{ name: "B", valueString: "fake-b2" }]);
  assert.equal((await call("POST", `/admin/projects/${PROJECT_ID}/secrets`, { body: { name: "not an array" } })).status, 400);
  await call("POST", `/admin/projects/${PROJECT_ID}/secrets`, { body: [] });
});

test("GET/POST /admin/projects/{p}/members/{id} read and update a membership of the project only", async () => {
  const id = practitioners.bob.membershipId;
  const read = await call("GET", `/admin/projects/${PROJECT_ID}/members/${id}`);
  assert.equal(read.status, 200);
  assert.equal(read.body.profile.reference, `Practitioner/${practitioners.bob.id}`);

  const updated = await call("POST", `/admin/projects/${PROJECT_ID}/members/${id}`, { body: { ...read.body, admin: true } });
  assert.equal(updated.status, 200);
  assert.equal((await stored("ProjectMembership", id)).admin, true);

  const wrongId = await call("POST", `/admin/projects/${PROJECT_ID}/members/${id}`, { body: { ...read.body, id: "other" } });
  assert.equal(wrongId.status, 403);
  assert.equal((await call("GET", `/admin/projects/${PROJECT_ID}/members/no-such-membership`)).status, 404);
  const restored = await call("POST", `/admin/projects/${PROJECT_ID}/members/${id}`, { body: read.body });
  assert.equal(restored.status, 200);
  assert.equal((await stored("ProjectMembership", id)).admin, undefined);
});

// ---------------------------------------------------------------------------------------------
// POST /admin/projects/{p}/invite

test("POST /admin/projects/{p}/invite creates User, Practitioner and ProjectMembership (409 when invited twice)", async () => {
  const request = {
    resourceType: "Practitioner",
    firstName: "Dee",
    lastName: "Invitee",
    email: "Dee.Invitee@example.org",
    access: [{ policy: { reference: `AccessPolicy/${policies.videocallOwnManage.id}` } }],
  };
  const response = await call("POST", `/admin/projects/${PROJECT_ID}/invite`, { body: request });
  assert.equal(response.status, 200);
  const membership = response.body;
  assert.equal(membership.resourceType, "ProjectMembership");
  assert.deepEqual(membership.access, request.access);
  const [type, id] = membership.profile.reference.split("/");
  assert.equal(type, "Practitioner");
  const practitioner = await stored("Practitioner", id);
  assert.deepEqual(practitioner.name, [{ given: ["Dee"], family: "Invitee" }]);
  assert.deepEqual(practitioner.telecom, [{ system: "email", use: "work", value: "dee.invitee@example.org" }]);
  const user = await stored("User", membership.user.reference.split("/")[1]);
  assert.equal(user.email, "dee.invitee@example.org");

  const again = await call("POST", `/admin/projects/${PROJECT_ID}/invite`, { body: request });
  assert.equal(again.status, 409);
  const upsert = await call("POST", `/admin/projects/${PROJECT_ID}/invite`, {
    body: { ...request, upsert: true, access: undefined, accessPolicy: { reference: `AccessPolicy/${policies.readOnly.id}` } },
  });
  assert.equal(upsert.status, 200);
  assert.equal(upsert.body.id, membership.id, "upsert updates the same membership");
  assert.equal(upsert.body.accessPolicy.reference, `AccessPolicy/${policies.readOnly.id}`);

  const invalid = await call("POST", `/admin/projects/${PROJECT_ID}/invite`, { body: { resourceType: "Practitioner", firstName: "No" } });
  assert.equal(invalid.status, 400);
  assert.deepEqual(issueTexts(invalid.body), ["Last name is required"]);
});

// ---------------------------------------------------------------------------------------------
// POST /admin/projects/{p}/bot and $deploy

test("POST /admin/projects/{p}/bot creates a Bot with default source and a membership; $deploy stores executable code", async () => {
  const created = await call("POST", `/admin/projects/${PROJECT_ID}/bot`, { body: { name: "Deploy test bot" } });
  assert.equal(created.status, 201);
  const bot = created.body;
  assert.equal(bot.resourceType, "Bot");
  assert.equal(bot.name, "Deploy test bot");
  assert.equal(bot.sourceCode.title, "index.ts");
  assert.match(bot.sourceCode.url, /^Binary\//);
  assert.equal(bot.executableCode, undefined);
  const [membership] = await search(`ProjectMembership?profile=Bot/${bot.id}`);
  assert.equal(membership.user.reference, `Bot/${bot.id}`);
  assert.equal((await call("POST", `/admin/projects/${PROJECT_ID}/bot`, { body: {} })).status, 400);

  const missing = await call("POST", `/fhir/R4/Bot/${bot.id}/$deploy`, { body: { filename: "x.js" } });
  assert.equal(missing.status, 400);
  assert.deepEqual(issueTexts(missing.body), ["Missing code"]);
  assert.equal((await call("POST", "/fhir/R4/Bot/no-such-bot/$deploy", { body: { code: "x" } })).status, 404);

  const code = "exports.handler = async () => 'hello';\n";
  const deployed = await call("POST", `/fhir/R4/Bot/${bot.id}/$deploy`, { body: { code, filename: "hello.js" } });
  assert.equal(deployed.status, 200);
  assert.equal(deployed.body.resourceType, "OperationOutcome");
  assert.equal(deployed.body.id, "ok");
  const after = await stored("Bot", bot.id);
  assert.equal(after.executableCode.title, "hello.js");
  assert.equal(after.executableCode.contentType, "application/javascript");
  const binary = await stored("Binary", after.executableCode.url.split("/")[1]);
  assert.equal(Buffer.from(binary.data, "base64").toString("utf8"), code);
});

test("$deploy answers 400 'Bots not enabled' for a project without the bots feature", async () => {
  const bot = (await call("POST", `/admin/projects/${PROJECT_ID}/bot`, { body: { name: "Disabled bots" } })).body;
  const project = await stored("Project", PROJECT_ID);
  const { features, ...withoutFeatures } = project;
  assert.deepEqual(features, ["bots"]);
  assert.equal((await call("PUT", `/fhir/R4/Project/${PROJECT_ID}`, { body: withoutFeatures, contentType: "application/fhir+json" })).status, 200);
  try {
    const response = await call("POST", `/fhir/R4/Bot/${bot.id}/$deploy`, { body: { code: "exports.handler = async () => 1;" } });
    assert.equal(response.status, 400);
    assert.deepEqual(issueTexts(response.body), ["Bots not enabled"]);
    assert.equal((await stored("Bot", bot.id)).executableCode, undefined);
  } finally {
    const current = await stored("Project", PROJECT_ID);
    await call("PUT", `/fhir/R4/Project/${PROJECT_ID}`, { body: { ...current, features: ["bots"] }, contentType: "application/fhir+json" });
  }
});

// ---------------------------------------------------------------------------------------------
// Subscriptions that run bots.

test("a Subscription to a Bot runs its deployed code for matching writes only, with the bot's token and project secrets", async () => {
  await call("POST", `/admin/projects/${PROJECT_ID}/secrets`, { body: [{ name: "GREETING", valueString: "fake-greeting" }] });
  const code = `
    exports.handler = async function handler(medplum, event) {
      const patient = event.input;
      const me = await medplum.readResource("Practitioner", "${practitioners.ada.id}");
      console.log("ran for", patient.id);
      return { patient: patient.id, read: me.id, greeting: event.secrets.GREETING.valueString, contentType: event.contentType, bot: event.bot.reference };
    };`;
  const bot = await deployedBot("Echo bot", code);
  const subscription = await subscribe(bot.id, "Patient?family=Subscribed", ["create", "update"]);

  const matching = await call("POST", "/fhir/R4/Patient", {
    contentType: "application/fhir+json",
    body: { resourceType: "Patient", name: [{ given: ["Test"], family: "Subscribed" }] },
  });
  assert.equal(matching.status, 201);
  await call("POST", "/fhir/R4/Patient", {
    contentType: "application/fhir+json",
    body: { resourceType: "Patient", name: [{ given: ["Test"], family: "Different" }] },
  });

  const runs = await runsOf(bot.id);
  assert.equal(runs.length, 1, "only the matching Patient ran the bot");
  const [run] = runs;
  assert.equal(run.success, true, run.logResult);
  assert.equal(run.interaction, "create");
  assert.equal(run.subscription, `Subscription/${subscription.id}`);
  assert.equal(run.resource, `Patient/${matching.body.id}`);
  assert.deepEqual(run.returnValue, {
    patient: matching.body.id,
    read: practitioners.ada.id,
    greeting: "fake-greeting",
    contentType: "application/fhir+json",
    bot: `Bot/${bot.id}`,
  });
  assert.equal(run.logResult, `ran for ${matching.body.id}`);

  const audit = (await search("AuditEvent?_count=100")).filter((e) => e.source?.observer?.reference === `Bot/${bot.id}`);
  assert.equal(audit.length, 1, "one AuditEvent per execution, as Medplum");
  assert.equal(audit[0].outcome, "0");
  assert.equal(audit[0].type.code, "execute");

  // An update matches (create and update are subscribed); a delete does not.
  const updated = await call("PUT", `/fhir/R4/Patient/${matching.body.id}`, {
    contentType: "application/fhir+json",
    body: { ...matching.body, active: true },
  });
  assert.equal(updated.status, 200);
  await call("DELETE", `/fhir/R4/Patient/${matching.body.id}`);
  const later = await runsOf(bot.id);
  assert.deepEqual(later.map((r) => r.interaction), ["create", "update"]);
  await call("POST", `/admin/projects/${PROJECT_ID}/secrets`, { body: [] });
});

test("a bot that throws, and ES module code, are failed executions (AuditEvent outcome 4)", async () => {
  const failing = await deployedBot("Failing bot", "exports.handler = async () => { throw new Error('boom'); };");
  await subscribe(failing.id, "Practitioner?family=Failing");
  const esm = await deployedBot("ESM bot", "export async function handler() { return 1; }");
  await subscribe(esm.id, "Practitioner?family=Failing");
  await call("POST", "/fhir/R4/Practitioner", {
    contentType: "application/fhir+json",
    body: { resourceType: "Practitioner", name: [{ family: "Failing" }] },
  });

  const [thrown] = await runsOf(failing.id);
  assert.equal(thrown.success, false);
  assert.match(thrown.logResult, /Unhandled error: boom/);
  const [syntax] = await runsOf(esm.id);
  assert.equal(syntax.success, false, "Medplum runs deployed code as CommonJS: `export` is a syntax error");
  assert.match(syntax.logResult, /SyntaxError|Unexpected token/);
  const audits = (await search("AuditEvent?_count=100")).filter((e) => e.source?.observer?.reference === `Bot/${failing.id}`);
  assert.equal(audits[0].outcome, "4");
});

test("a Subscription whose Bot has no deployed code records 'No executable code'", async () => {
  const bot = (await call("POST", `/admin/projects/${PROJECT_ID}/bot`, { body: { name: "Undeployed bot" } })).body;
  await subscribe(bot.id, "Practitioner?family=Undeployed");
  await call("POST", "/fhir/R4/Practitioner", {
    contentType: "application/fhir+json",
    body: { resourceType: "Practitioner", name: [{ family: "Undeployed" }] },
  });
  const [run] = await runsOf(bot.id);
  assert.equal(run.success, false);
  assert.equal(run.logResult, "No executable code");
});

test("GET /__sim/counts counts stored resources per type", async () => {
  const response = await fetch(`${sim.url}/__sim/counts`);
  assert.equal(response.status, 200);
  const { counts } = await response.json();
  assert.equal(counts.Project, 1);
  assert.equal(counts.Appointment, Object.keys(sim.fixtures.appointments).length);
  assert.deepEqual(counts, await sim.counts());
});
