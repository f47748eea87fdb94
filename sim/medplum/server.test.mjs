//! Tests for sim/medplum (node --test sim/medplum/server.test.mjs): OAuth, dev sign-in, JWKS, FHIR reads/writes, If-Match and JSON Patch, reset, latency, CLI.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createPublicKey, generateKeyPairSync, verify as cryptoVerify } from "node:crypto";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { startMedplumServer } from "./server.mjs";
import {
  appointments,
  DRAMA_NUMBERS,
  PATIENT_NAMES,
  PHONE_SCAN_PATTERNS,
  patients,
  policies,
  practitioners,
  seedDate,
} from "./fixtures.mjs";

const CLIENT_ID = "test-worker-client";
const CLIENT_SECRET = "fake-test-client-secret";
const SERVER_PATH = fileURLToPath(new URL("./server.mjs", import.meta.url));

let sim;
let logLines;

before(async () => {
  logLines = [];
  sim = await startMedplumServer({
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    log: (line) => logLines.push(line),
  });
});

after(async () => {
  await sim?.close();
});

// ---------------------------------------------------------------------------------------------
// Helpers.

const decodePart = (part) => JSON.parse(Buffer.from(part, "base64url").toString("utf8"));

function decodeJwt(token) {
  const [header, payload] = token.split(".");
  return { header: decodePart(header), payload: decodePart(payload) };
}

async function verifyWithJwks(token) {
  const jwks = await (await fetch(`${sim.url}/.well-known/jwks.json`)).json();
  const [header, payload, signature] = token.split(".");
  const jwk = jwks.keys.find((k) => k.kid === decodePart(header).kid);
  assert.ok(jwk, "the token's kid is in the JWKS");
  const key = createPublicKey({ key: jwk, format: "jwk" });
  return cryptoVerify("RSA-SHA256", Buffer.from(`${header}.${payload}`), key, Buffer.from(signature, "base64url"));
}

function tokenRequest(form, headers = {}) {
  return fetch(`${sim.url}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams(form).toString(),
  });
}

let cachedClientToken;
async function clientToken() {
  if (!cachedClientToken) {
    const response = await tokenRequest({ grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: CLIENT_SECRET });
    assert.equal(response.status, 200);
    cachedClientToken = (await response.json()).access_token;
  }
  return cachedClientToken;
}

async function devLogin(practitioner, expiresInSeconds) {
  return fetch(`${sim.url}/auth/dev-login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(expiresInSeconds === undefined ? { practitioner } : { practitioner, expiresInSeconds }),
  });
}

async function userToken(practitioner, expiresInSeconds) {
  const response = await devLogin(practitioner, expiresInSeconds);
  assert.equal(response.status, 200);
  return (await response.json()).access_token;
}

async function fhir(path, { token, method = "GET", body, headers = {} } = {}) {
  const bearer = token === undefined ? await clientToken() : token;
  return fetch(`${sim.url}/fhir/R4/${path}`, {
    method,
    headers: {
      ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
      ...(body !== undefined ? { "content-type": "application/fhir+json" } : {}),
      ...headers,
    },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
}

async function readJson(path, options) {
  const response = await fhir(path, options);
  assert.equal(response.status, 200, `${path}: ${response.status}`);
  return response.json();
}

async function reset() {
  const response = await fetch(`${sim.url}/__sim/reset`, { method: "POST" });
  assert.equal(response.status, 200);
}

// ---------------------------------------------------------------------------------------------
// Tests.

test("healthcheck", async () => {
  const response = await fetch(`${sim.url}/healthcheck`);
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { ok: true });
});

test("client credentials: a signed token with Medplum's claims, by form body and by Basic auth", async () => {
  const before = Math.floor(Date.now() / 1000);
  const response = await tokenRequest({ grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: CLIENT_SECRET });
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.token_type, "Bearer");
  assert.equal(body.expires_in, 3600);
  assert.equal(body.scope, "openid");
  const { header, payload } = decodeJwt(body.access_token);
  assert.equal(header.alg, "RS256");
  assert.equal(header.typ, "JWT");
  assert.equal(payload.iss, `${sim.url}/`);
  assert.equal(sim.issuer, `${sim.url}/`);
  assert.equal(payload.sub, CLIENT_ID);
  assert.equal(payload.client_id, CLIENT_ID);
  assert.equal(payload.profile, `ClientApplication/${CLIENT_ID}`);
  assert.equal(payload.scope, "openid");
  assert.match(payload.login_id, /^[0-9a-f-]{36}$/);
  assert.ok(payload.iat >= before && payload.iat <= before + 5);
  assert.equal(payload.exp - payload.iat, 3600);
  assert.ok(await verifyWithJwks(body.access_token));

  const basic = Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString("base64");
  const viaBasic = await tokenRequest({ grant_type: "client_credentials" }, { authorization: `Basic ${basic}` });
  assert.equal(viaBasic.status, 200);
  const second = await viaBasic.json();
  assert.notEqual(decodeJwt(second.access_token).payload.login_id, payload.login_id, "a fresh login_id per token");
});

test("client credentials: wrong secret, unknown client, wrong grant type, missing fields", async () => {
  const cases = [
    [{ grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: "wrong" }, "invalid_client"],
    [{ grant_type: "client_credentials", client_id: "no-such-client", client_secret: CLIENT_SECRET }, "invalid_client"],
    [{ grant_type: "password", client_id: CLIENT_ID, client_secret: CLIENT_SECRET }, "unsupported_grant_type"],
    [{ client_id: CLIENT_ID, client_secret: CLIENT_SECRET }, "invalid_request"],
    [{ grant_type: "client_credentials", client_id: CLIENT_ID }, "invalid_request"],
  ];
  for (const [form, error] of cases) {
    const response = await tokenRequest(form);
    assert.equal(response.status, 400, JSON.stringify(form));
    const body = await response.json();
    assert.equal(body.error, error, JSON.stringify(form));
    assert.equal(typeof body.error_description, "string");
    assert.equal(body.access_token, undefined);
  }
  const basic = Buffer.from(`${CLIENT_ID}:wrong`).toString("base64");
  const viaBasic = await tokenRequest({ grant_type: "client_credentials" }, { authorization: `Basic ${basic}` });
  assert.equal(viaBasic.status, 400);
  assert.equal((await viaBasic.json()).error, "invalid_client");

  const json = await fetch(`${sim.url}/oauth2/token`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ grant_type: "client_credentials", client_id: CLIENT_ID, client_secret: CLIENT_SECRET }),
  });
  assert.equal(json.status, 400, "Medplum only takes form bodies at /oauth2/token");
});

test("dev sign-in: a user token with Medplum's header and claims that verifies against the JWKS", async () => {
  const before = Math.floor(Date.now() / 1000);
  const response = await devLogin("clinician-ada");
  assert.equal(response.status, 200);
  const body = await response.json();
  assert.equal(body.token_type, "Bearer");
  assert.equal(body.expires_in, 3600);
  assert.deepEqual(body.profile, { reference: "Practitioner/clinician-ada" });

  const { header, payload } = decodeJwt(body.access_token);
  const jwks = await (await fetch(`${sim.url}/.well-known/jwks.json`)).json();
  assert.deepEqual(header, { alg: "RS256", typ: "JWT", kid: jwks.keys[0].kid });
  assert.deepEqual(Object.keys(jwks.keys[0]).sort(), ["alg", "e", "kid", "kty", "n", "use"]);
  assert.equal(jwks.keys[0].alg, "RS256");
  assert.equal(jwks.keys[0].use, "sig");
  assert.equal(payload.iss, `${sim.url}/`);
  assert.equal(payload.sub, "user-clinician-ada");
  assert.equal(payload.username, "user-clinician-ada");
  assert.equal(payload.profile, "Practitioner/clinician-ada");
  assert.equal(payload.scope, "openid");
  assert.equal(typeof payload.client_id, "string");
  assert.match(payload.login_id, /^[0-9a-f-]{36}$/);
  assert.ok(payload.iat >= before && payload.iat <= before + 5);
  assert.equal(payload.exp - payload.iat, 3600);
  assert.ok(await verifyWithJwks(body.access_token));

  const short = decodeJwt(await userToken("clinician-bob", 120)).payload;
  assert.equal(short.exp - short.iat, 120);
  assert.equal(short.sub, "user-clinician-bob");
});

test("dev sign-in: unknown practitioner is 404 JSON, bad expiry is 400", async () => {
  const missing = await devLogin("no-such-clinician");
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).error, "not_found");
  const patient = await devLogin("patient-mobile");
  assert.equal(patient.status, 404);
  const badExpiry = await devLogin("clinician-ada", "soon");
  assert.equal(badExpiry.status, 400);
});

test("FHIR needs a bearer token this server issued and that has not expired", async () => {
  const none = await fhir("Practitioner/clinician-ada", { token: null });
  assert.equal(none.status, 401);
  const outcome = await none.json();
  assert.equal(outcome.resourceType, "OperationOutcome");
  assert.equal(outcome.id, "unauthorized");

  assert.equal((await fhir("Practitioner/clinician-ada", { token: "not-a-jwt" })).status, 401);
  assert.equal((await fhir("Practitioner/clinician-ada", { token: await userToken("clinician-ada") })).status, 200);
  assert.equal((await fhir("Practitioner/clinician-ada")).status, 200, "the client token works too");

  const expired = await fhir("Practitioner/clinician-ada", { token: await userToken("clinician-ada", -10) });
  assert.equal(expired.status, 401);
  assert.equal((await expired.json()).resourceType, "OperationOutcome");

  // A genuine token with its payload altered.
  const genuine = await userToken("clinician-bob");
  const [header, payload, signature] = genuine.split(".");
  const altered = Buffer.from(JSON.stringify({ ...decodePart(payload), profile: "Practitioner/clinician-ada" })).toString("base64url");
  assert.equal((await fhir("Patient/patient-mobile", { token: `${header}.${altered}.${signature}` })).status, 401);

  // alg: none.
  const none2 = `${Buffer.from(JSON.stringify({ ...decodePart(header), alg: "none" })).toString("base64url")}.${payload}.`;
  assert.equal((await fhir("Patient/patient-mobile", { token: none2 })).status, 401);

  // Another sim with its own key, and one with the same key but a different issuer.
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const other = await startMedplumServer({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, privateKey });
  const sameKey = await startMedplumServer({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  try {
    for (const foreign of [other, sameKey]) {
      const response = await fetch(`${foreign.url}/auth/dev-login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ practitioner: "clinician-ada" }),
      });
      const token = (await response.json()).access_token;
      assert.equal((await fhir("Patient/patient-mobile", { token })).status, 401);
    }
  } finally {
    await other.close();
    await sameKey.close();
  }
});

test("reading Appointment/appt-mobile: today's phone appointment, with ETag and Last-Modified", async () => {
  const response = await fhir("Appointment/appt-mobile");
  assert.equal(response.status, 200);
  assert.match(response.headers.get("content-type"), /^application\/fhir\+json/);
  const appointment = await response.json();
  assert.equal(response.headers.get("etag"), `W/"${appointment.meta.versionId}"`);
  assert.equal(response.headers.get("last-modified"), new Date(appointment.meta.lastUpdated).toUTCString());
  assert.equal(appointment.status, "booked");
  assert.equal(appointment.start, `${seedDate()}T09:00:00.000Z`);
  assert.deepEqual(appointment.serviceType[0].coding[0], {
    system: "http://snomed.info/sct",
    code: "185317003",
    display: "Telephone encounter",
  });
  const actors = appointment.participant.map((p) => p.actor.reference);
  assert.deepEqual(actors, ["Patient/patient-mobile", "Practitioner/clinician-ada"]);
  assert.ok(appointment.participant.every((p) => p.status === "accepted"));
});

test("fixtures: one phone appointment per patient today, drama-range numbers only", async () => {
  const bundle = await readJson(`Appointment?date=ge${seedDate()}T00:00:00Z&date=lt${seedDate()}T23:59:59Z&_count=100`);
  const byId = new Map(bundle.entry.map((e) => [e.resource.id, e.resource]));
  assert.equal(byId.size, Object.keys(appointments).length);
  for (const patient of Object.values(patients)) {
    const phoneAppointments = [...byId.values()].filter(
      (a) =>
        a.participant.some((p) => p.actor.reference === `Patient/${patient.id}`) &&
        a.participant.some((p) => p.actor.reference === "Practitioner/clinician-ada") &&
        a.serviceType[0].coding[0].code === "185317003",
    );
    assert.equal(phoneAppointments.length, 1, patient.id);
  }
  assert.ok(byId.get("appt-bob").participant.some((p) => p.actor.reference === "Practitioner/clinician-bob"));
  assert.notEqual(byId.get("appt-in-person").serviceType[0].coding[0].code, "185317003");

  const twoNumbers = await readJson("Patient/patient-two-numbers");
  assert.deepEqual(
    twoNumbers.telecom.map((t) => [t.use, t.rank]),
    [["home", 2], ["mobile", 1]],
  );
  assert.equal(twoNumbers.name[0].text, "Test Patient Twonumbers");

  // Every UK number is in an Ofcom drama range; the one other number is NANP 555-01xx.
  const drama = [/^07700900\d{3}$/, /^02079460\d{3}$/, /^09098790\d{3}$/];
  for (const raw of DRAMA_NUMBERS) {
    let digits = raw.replace(/\D/g, "");
    if (raw.startsWith("+1")) {
      assert.match(digits, /^1\d{3}55501\d{2}$/, raw);
      continue;
    }
    digits = digits.replace(/^0044/, "0").replace(/^440/, "0").replace(/^44/, "0");
    assert.ok(drama.some((range) => range.test(digits)), `${raw} is not in a drama range`);
  }
  assert.equal(PATIENT_NAMES.length, Object.keys(patients).length);
  assert.ok(PHONE_SCAN_PATTERNS.includes("+447700900123"));
  assert.ok(PHONE_SCAN_PATTERNS.includes("07700 900123"));
});

test("PUT with If-Match: the current version succeeds, a stale one gets 412", async () => {
  await reset();
  const current = await readJson("Practitioner/clinician-ada");
  const oldVersion = current.meta.versionId;
  const updated = await fhir("Practitioner/clinician-ada", {
    method: "PUT",
    body: { ...current, gender: "female" },
    headers: { "if-match": `W/"${oldVersion}"` },
  });
  assert.equal(updated.status, 200);
  const saved = await updated.json();
  assert.notEqual(saved.meta.versionId, oldVersion);
  assert.equal(updated.headers.get("etag"), `W/"${saved.meta.versionId}"`);
  assert.equal(saved.gender, "female");

  const stale = await fhir("Practitioner/clinician-ada", {
    method: "PUT",
    body: { ...current, gender: "male" },
    headers: { "if-match": `W/"${oldVersion}"` },
  });
  assert.equal(stale.status, 412);
  const outcome = await stale.json();
  assert.equal(outcome.resourceType, "OperationOutcome");
  assert.equal(outcome.id, "precondition-failed");
  assert.equal((await readJson("Practitioner/clinician-ada")).gender, "female", "the stale write changed nothing");
});

test("PUT that changes nothing keeps the version (as Medplum does)", async () => {
  await reset();
  const current = await readJson("Practitioner/clinician-cy");
  const response = await fhir("Practitioner/clinician-cy", {
    method: "PUT",
    body: current,
    headers: { "if-match": `W/"${current.meta.versionId}"` },
  });
  assert.equal(response.status, 200);
  assert.equal((await response.json()).meta.versionId, current.meta.versionId);
});

test("PATCH (JSON Patch): `test` on /meta/versionId passes when current and fails with 400 when stale", async () => {
  await reset();
  const current = await readJson("Practitioner/clinician-bob");
  const patch = (version, value) => [
    { op: "test", path: "/meta/versionId", value: version },
    { op: "add", path: "/gender", value },
  ];
  const ok = await fhir("Practitioner/clinician-bob", {
    method: "PATCH",
    body: JSON.stringify(patch(current.meta.versionId, "male")),
    headers: { "content-type": "application/json-patch+json" },
  });
  assert.equal(ok.status, 200);
  const patched = await ok.json();
  assert.equal(patched.gender, "male");
  assert.notEqual(patched.meta.versionId, current.meta.versionId);
  assert.equal(ok.headers.get("etag"), `W/"${patched.meta.versionId}"`);

  const stale = await fhir("Practitioner/clinician-bob", {
    method: "PATCH",
    body: JSON.stringify(patch(current.meta.versionId, "other")),
    headers: { "content-type": "application/json-patch+json" },
  });
  assert.equal(stale.status, 400, "Medplum answers a failed JSON Patch `test` with 400 Bad Request");
  const outcome = await stale.json();
  assert.equal(outcome.resourceType, "OperationOutcome");
  assert.match(outcome.issue[0].details.text, /^Test failed/);
  assert.equal((await readJson("Practitioner/clinician-bob")).gender, "male", "the failed patch changed nothing");

  // PATCH also honours If-Match: a stale version is 412.
  const ifMatch = await fhir("Practitioner/clinician-bob", {
    method: "PATCH",
    body: JSON.stringify([{ op: "add", path: "/gender", value: "unknown" }]),
    headers: { "content-type": "application/json-patch+json", "if-match": `W/"${current.meta.versionId}"` },
  });
  assert.equal(ifMatch.status, 412);
});

test("__sim/refuse-writes: a marked resource's patches and updates get Medplum's 400 and change nothing, until lifted", async () => {
  await reset();
  const refuse = (body) => fetch(`${sim.url}/__sim/refuse-writes`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  assert.equal((await refuse({ reference: "Appointment/appt-mobile" })).status, 400, "refuse must be a boolean");
  assert.equal((await refuse({ reference: "../etc", refuse: true })).status, 400);
  assert.deepEqual(await (await refuse({ reference: "Appointment/appt-mobile", refuse: true, diagnostics: "Constraint app-3 failed" })).json(), { refused: ["Appointment/appt-mobile"] });
  const before = await readJson("Appointment/appt-mobile");
  const patch = () => fhir("Appointment/appt-mobile", {
    method: "PATCH",
    body: JSON.stringify([{ op: "test", path: "/meta/versionId", value: before.meta.versionId }, { op: "add", path: "/comment", value: "x" }]),
    headers: { "content-type": "application/json-patch+json" },
  });
  const refused = await patch();
  assert.equal(refused.status, 400);
  assert.match((await refused.json()).issue[0].details.text, /Constraint app-3 failed/);
  assert.equal((await fhir("Appointment/appt-mobile", { method: "PUT", body: { ...before, comment: "y" } })).status, 400);
  assert.equal((await readJson("Appointment/appt-mobile")).meta.versionId, before.meta.versionId, "nothing changed");
  assert.equal((await readJson("Appointment/appt-landline")).id, "appt-landline");
  assert.deepEqual(await (await refuse({ reference: "Appointment/appt-mobile", refuse: false })).json(), { refused: [] });
  assert.equal((await patch()).status, 200);
});

test("PATCH `add` to /identifier/- creates the array (Medplum's implicitArrayCreation); bodies must parse", async () => {
  await reset();
  const identifier = { system: "http://example.org/test-identifier", value: "clinician-cy" };
  const response = await fhir("Practitioner/clinician-cy", {
    method: "PATCH",
    body: JSON.stringify([{ op: "add", path: "/identifier/-", value: identifier }]),
    headers: { "content-type": "application/json-patch+json" },
  });
  assert.equal(response.status, 200);
  assert.deepEqual((await response.json()).identifier, [identifier]);

  const renamed = await fhir("Practitioner/clinician-cy", {
    method: "PATCH",
    body: JSON.stringify([{ op: "replace", path: "/id", value: "someone-else" }]),
    headers: { "content-type": "application/json-patch+json" },
  });
  assert.equal(renamed.status, 400);

  const garbled = await fhir("Practitioner/clinician-cy", { method: "PUT", body: "{not json" });
  assert.equal(garbled.status, 400);
  assert.equal((await garbled.json()).issue[0].details.text, "Content could not be parsed");
});

test("20 concurrent PUTs with the same If-Match: exactly one 200, the rest 412", async () => {
  await reset();
  const current = await readJson("Practitioner/clinician-ada");
  const responses = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      fhir("Practitioner/clinician-ada", {
        method: "PUT",
        body: { ...current, birthDate: `1970-01-${String(i + 1).padStart(2, "0")}` },
        headers: { "if-match": `W/"${current.meta.versionId}"` },
      }),
    ),
  );
  const statuses = responses.map((r) => r.status);
  assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses ${statuses}`);
  assert.equal(statuses.filter((s) => s === 412).length, 19, `statuses ${statuses}`);
  const history = await readJson("Practitioner/clinician-ada/_history");
  assert.equal(history.entry.length, 2, "one new version on top of the seeded one");
});

test("20 concurrent JSON Patches testing the same version: exactly one 200, the rest 400", async () => {
  await reset();
  const current = await readJson("Practitioner/clinician-cy");
  const responses = await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      fhir("Practitioner/clinician-cy", {
        method: "PATCH",
        body: JSON.stringify([
          { op: "test", path: "/meta/versionId", value: current.meta.versionId },
          { op: "add", path: "/birthDate", value: `1980-02-${String(i + 1).padStart(2, "0")}` },
        ]),
        headers: { "content-type": "application/json-patch+json" },
      }),
    ),
  );
  const statuses = responses.map((r) => r.status);
  assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses ${statuses}`);
  assert.equal(statuses.filter((s) => s === 400).length, 19, `statuses ${statuses}`);
});

test("search ProjectMembership?profile=Practitioner/clinician-ada returns ada's membership", async () => {
  const bundle = await readJson("ProjectMembership?profile=Practitioner/clinician-ada");
  assert.equal(bundle.resourceType, "Bundle");
  assert.equal(bundle.entry.length, 1);
  const membership = bundle.entry[0].resource;
  assert.equal(membership.id, practitioners.ada.membershipId);
  assert.deepEqual(membership.access, [{ policy: { reference: `AccessPolicy/${policies.videocallOwnManage.id}` } }]);
  assert.deepEqual(membership.user, { reference: "User/user-clinician-ada" });

  const bob = (await readJson("ProjectMembership?profile=Practitioner/clinician-bob")).entry[0].resource;
  assert.deepEqual(bob.accessPolicy, { reference: "AccessPolicy/read-only" });
  assert.equal(bob.access, undefined);
  const cy = (await readJson("ProjectMembership?profile=Practitioner/clinician-cy")).entry[0].resource;
  assert.deepEqual(cy.accessPolicy, { reference: "AccessPolicy/videocall-own-manage" });

  assert.equal((await readJson("AccessPolicy/videocall-own-manage")).name, "videocall_own_manage");
  assert.equal((await readJson("AccessPolicy/read-only")).name, "read_only");
  const worker = (await readJson(`ProjectMembership?profile=ClientApplication/${CLIENT_ID}`)).entry[0].resource;
  assert.equal(worker.id, "membership-worker");
  assert.equal(worker.admin, true);

  const unknown = await fhir("ProjectMembership?no-such-param=1");
  assert.equal(unknown.status, 400, "unknown search parameters are 400, as in Medplum");
});

test("__sim/reset restores a modified resource; __sim/resource reads without auth", async () => {
  const current = await readJson("Patient/patient-mobile");
  const changed = await fhir("Patient/patient-mobile", { method: "PUT", body: { ...current, gender: "unknown" } });
  assert.equal(changed.status, 200);
  const created = await fhir("Patient", { method: "POST", body: { resourceType: "Patient", name: [{ text: "Test Patient Extra" }] } });
  assert.equal(created.status, 201);
  assert.match(created.headers.get("location"), /\/fhir\/R4\/Patient\//);
  const createdId = (await created.json()).id;

  let raw = await fetch(`${sim.url}/__sim/resource/Patient/patient-mobile`);
  assert.equal(raw.status, 200);
  assert.equal((await raw.json()).gender, "unknown");

  await reset();
  raw = await fetch(`${sim.url}/__sim/resource/Patient/patient-mobile`);
  const restored = await raw.json();
  assert.equal(restored.gender, undefined);
  assert.deepEqual(restored.telecom, patients.mobile.telecom);
  assert.equal((await fetch(`${sim.url}/__sim/resource/Patient/${createdId}`)).status, 404);
  assert.equal((await fhir(`Patient/${createdId}`)).status, 404);
});

test("__sim/latency: requests wait the delay; made together they are seen in flight together, one after another they are not; reset lifts it", async () => {
  const latency = (body) =>
    fetch(`${sim.url}/__sim/latency`, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  assert.equal((await latency({ ms: -1 })).status, 400);
  assert.equal((await latency({ ms: 10_001 })).status, 400);
  assert.equal((await latency({ ms: "50" })).status, 400);
  assert.deepEqual(await (await latency({ ms: 150 })).json(), { ms: 150, peakInFlight: 0, fhirRequests: 0 });
  const health = () => fetch(`${sim.url}/healthcheck`).then((r) => r.status);
  const started = performance.now();
  assert.equal(await health(), 200);
  assert.ok(performance.now() - started >= 140, "the request waited for the delay");
  assert.equal(await health(), 200);
  assert.equal((await (await latency()).json()).peakInFlight, 1, "one after another");
  assert.deepEqual(await Promise.all([health(), health(), health()]), [200, 200, 200]);
  assert.equal((await (await latency()).json()).peakInFlight, 3, "made together");
  assert.equal((await fetch(`${sim.url}/fhir/R4/metadata`)).status, 200);
  assert.equal((await (await latency()).json()).fhirRequests, 1, "FHIR requests counted, others not");
  await fetch(`${sim.url}/__sim/reset`, { method: "POST" });
  assert.deepEqual(await (await latency()).json(), { ms: 0, peakInFlight: 0, fhirRequests: 0 });
});

test("userinfo and /auth/me for a clinician", async () => {
  const token = await userToken("clinician-ada");
  const info = await (await fetch(`${sim.url}/oauth2/userinfo`, { headers: { authorization: `Bearer ${token}` } })).json();
  assert.equal(info.profile, "Practitioner/clinician-ada");
  assert.equal(info.sub, "clinician-ada");
  assert.equal(info.name, "Dr Ada Example");

  const response = await fetch(`${sim.url}/auth/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal(response.status, 200);
  const me = await response.json();
  assert.equal(me.user.resourceType, "User");
  assert.equal(me.user.id, "user-clinician-ada");
  assert.equal(me.profile.resourceType, "Practitioner");
  assert.equal(me.profile.id, "clinician-ada");
  assert.equal(me.membership.id, "membership-ada");
  assert.equal(me.project.id, "clinician-calls-demo");
  assert.equal(me.accessPolicy.name, "videocall_own_manage");

  assert.equal((await fetch(`${sim.url}/auth/me`)).status, 401);
  const expired = await userToken("clinician-ada", -10);
  assert.equal((await fetch(`${sim.url}/auth/me`, { headers: { authorization: `Bearer ${expired}` } })).status, 401);
});

test("logout ends the sign-in: that sign-in's tokens are refused everywhere, another's still work", async () => {
  const ended = await userToken("clinician-ada");
  const other = await userToken("clinician-ada");
  const me = (token) => fetch(`${sim.url}/auth/me`, { headers: { authorization: `Bearer ${token}` } });
  assert.equal((await me(ended)).status, 200);
  const logout = await fetch(`${sim.url}/oauth2/logout`, { method: "POST", headers: { authorization: `Bearer ${ended}`, "content-type": "application/json" }, body: "{}" });
  assert.equal(logout.status, 200);
  assert.equal((await logout.json()).resourceType, "OperationOutcome");
  assert.equal((await me(ended)).status, 401);
  assert.equal((await fhir("Practitioner/clinician-ada", { token: ended })).status, 401);
  assert.equal((await me(other)).status, 200, "another sign-in of the same clinician is kept");
  assert.equal((await fetch(`${sim.url}/oauth2/logout`, { method: "POST" })).status, 401);
});

test("logs carry method, path and status only: no query strings, tokens or phone numbers", async () => {
  const token = await userToken("clinician-ada");
  await fhir(`Patient?phone=${encodeURIComponent("07700 900123")}`, { token });
  const text = logLines.join("\n");
  assert.ok(logLines.some((line) => line === "medplum-sim GET /fhir/R4/Patient 200"), text);
  assert.ok(!text.includes(token) && !text.includes("eyJ"), "no token in the logs");
  for (const pattern of PHONE_SCAN_PATTERNS) assert.ok(!text.includes(pattern), `${pattern} in the logs`);
  for (const name of PATIENT_NAMES) assert.ok(!text.includes(name), `${name} in the logs`);
});

test("a closed server keeps its key on restart in the same process, like Medplum", async () => {
  const first = await startMedplumServer({ clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  const { port } = first;
  const kid = (await (await fetch(`${first.url}/.well-known/jwks.json`)).json()).keys[0].kid;
  const token = (
    await (
      await fetch(`${first.url}/auth/dev-login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ practitioner: "clinician-ada" }),
      })
    ).json()
  ).access_token;
  await first.close();
  await assert.rejects(fetch(`${first.url}/healthcheck`));
  const second = await startMedplumServer({ port, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET });
  try {
    assert.equal((await (await fetch(`${second.url}/.well-known/jwks.json`)).json()).keys[0].kid, kid);
    const response = await fetch(`${second.url}/fhir/R4/Practitioner/clinician-ada`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(response.status, 200);
  } finally {
    await second.close();
  }
});

test("CLI: prints the listening line, serves, and stops cleanly on SIGTERM", async () => {
  const child = spawn(process.execPath, [SERVER_PATH, "--port", "0", "--client-id", CLIENT_ID, "--client-secret", CLIENT_SECRET], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  try {
    let output = "";
    const url = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line: ${output}`)), 20_000);
      child.stdout.on("data", (chunk) => {
        output += chunk;
        const match = /^medplum-sim listening on (http:\/\/127\.0\.0\.1:\d+)$/m.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1]);
        }
      });
      child.once("exit", (code) => reject(new Error(`exited ${code}: ${output}`)));
    });
    assert.equal(output.split("\n")[0], `medplum-sim listening on ${url}`);
    assert.equal((await fetch(`${url}/healthcheck`)).status, 200);
    const exited = once(child, "exit");
    child.kill("SIGTERM");
    const [code] = await exited;
    assert.equal(code, 0);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  }
});
