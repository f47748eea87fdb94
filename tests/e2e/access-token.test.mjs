//! End-to-end: clinicians' Twilio access tokens and Twilio identity provisioning, through the
//! real worker under `wrangler dev` against the local Medplum (sim/medplum).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createHmac, generateKeyPairSync, sign as rsaSign, createPublicKey } from "node:crypto";
import jwt from "jsonwebtoken";
import twilio from "twilio";
import { startWorker, startTwilioSim, artifactsDir, freePort, TEST_SECRETS } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { withinOneRateWindow } from "../lib/wait.mjs";

const artifacts = artifactsDir();
const IDENTITY_SYSTEM = "http://twilio.com/voice/identity";
let medplum;
let medplumPort;
let worker;
let twilioSim;

async function startLocalMedplum() {
  return startMedplumServer({
    port: medplumPort,
    clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID,
    clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET,
  });
}

before(async () => {
  medplumPort = await freePort();
  medplum = await startLocalMedplum();
  // The signed-in page connects to Twilio's signaling with its token: the local Twilio answers.
  const workerPort = await freePort();
  twilioSim = await startTwilioSim({ workerUrl: `http://127.0.0.1:${workerPort}`, logDir: artifacts, name: "access-token-twilio" });
  worker = await startWorker({
    port: workerPort,
    logDir: artifacts,
    name: "access-token-worker",
    vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_API_BASE_URL: twilioSim.url, TWILIO_SIGNALING_URL: twilioSim.signalingUrl },
  });
});

after(async () => {
  await worker?.stop();
  await twilioSim?.stop();
  await medplum?.close();
});

async function signIn(practitioner, expiresInSeconds = 3600) {
  const response = await fetch(`${medplum.url}/auth/dev-login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ practitioner, expiresInSeconds }),
  });
  assert.equal(response.status, 200, `dev sign-in for ${practitioner}`);
  return (await response.json()).access_token;
}

function requestToken(bearer) {
  return fetch(`${worker.url}/api/v1/twilio/access-token`, {
    method: "POST",
    headers: bearer ? { authorization: `Bearer ${bearer}` } : {},
  });
}

function provision(practitioner, secret = TEST_SECRETS.PROVISIONING_SECRET) {
  return fetch(`${worker.url}/api/v1/clinicians/${practitioner}/twilio-identity`, {
    method: "POST",
    headers: secret ? { authorization: `Bearer ${secret}` } : {},
  });
}

async function practitionerResource(id) {
  const response = await fetch(`${medplum.url}/__sim/resource/Practitioner/${id}`);
  assert.equal(response.status, 200);
  return response.json();
}

function twilioIdentifiers(practitioner) {
  return (practitioner.identifier ?? []).filter((i) => i.system === IDENTITY_SYSTEM);
}

async function expectError(response, status, code) {
  const body = await response.json();
  assert.equal(response.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code, JSON.stringify(body));
  return body;
}

const b64url = (value) => Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");

/** Claims of a genuine token, to forge variants of. */
function decodedParts(token) {
  const [header, payload] = token.split(".");
  return {
    header: JSON.parse(Buffer.from(header, "base64url")),
    payload: JSON.parse(Buffer.from(payload, "base64url")),
  };
}

test("a clinician with videocall_own_manage gets a Twilio token that twilio-node's format matches", async () => {
  await fetch(`${medplum.url}/__sim/reset`, { method: "POST" });
  const before = Date.now() / 1000;
  // Signed in for longer than the calling token's TTL, which is then the token's life.
  const response = await requestToken(await signIn("clinician-ada", 7200));
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.equal(body.identity, "clinician-ada");
  assert.equal(body.ttlSeconds, 3600);
  // The configured TWILIO_SIGNALING_URL: where the browser connects with this token.
  assert.equal(body.signalingUrl, twilioSim.signalingUrl);
  assert.ok(Math.abs(Date.parse(body.expiresAt) / 1000 - (before + 3600)) < 30, body.expiresAt);

  // Oracle 1: the token verifies as HS256 with the API secret (jsonwebtoken, as twilio-node uses).
  const verified = jwt.verify(body.token, TEST_SECRETS.TWILIO_API_SECRET, { algorithms: ["HS256"], complete: true });
  assert.equal(verified.header.cty, "twilio-fpa;v=1");
  assert.equal(verified.header.typ, "JWT");

  // Oracle 2: claim for claim against twilio-node's AccessToken for the same inputs.
  const { AccessToken } = twilio.jwt;
  const reference = new AccessToken(TEST_SECRETS.TWILIO_ACCOUNT_SID, TEST_SECRETS.TWILIO_API_KEY, TEST_SECRETS.TWILIO_API_SECRET, {
    identity: "clinician-ada",
    ttl: 3600,
  });
  reference.addGrant(new AccessToken.VoiceGrant({ outgoingApplicationSid: TEST_SECRETS.TWILIO_TWIML_APP_SID, incomingAllow: true }));
  const expected = jwt.decode(reference.toJwt(), { complete: true });
  const ours = verified.payload;
  assert.deepEqual(verified.header, { ...expected.header, typ: "JWT" });
  for (const claim of ["iss", "sub"]) assert.equal(ours[claim], expected.payload[claim], claim);
  assert.deepEqual(ours.grants, expected.payload.grants);
  assert.equal(ours.jti, `${TEST_SECRETS.TWILIO_API_KEY}-${ours.iat}`);
  assert.equal(ours.exp - ours.iat, 3600);
  const missing = Object.keys(expected.payload).filter((claim) => !(claim in ours));
  assert.deepEqual(missing, [], "every claim twilio-node sets is present");

  // The identity was provisioned lazily on the Practitioner.
  assert.deepEqual(twilioIdentifiers(await practitionerResource("clinician-ada")), [{ system: IDENTITY_SYSTEM, value: "clinician-ada" }]);
});

test("a calling token never outlives the Medplum sign-in it was issued on", async () => {
  // Ten minutes of sign-in left: the token lasts ten minutes, not the configured hour.
  const before = Date.now() / 1000;
  const response = await requestToken(await signIn("clinician-ada", 600));
  const body = await response.json();
  assert.equal(response.status, 200, JSON.stringify(body));
  assert.ok(body.ttlSeconds <= 600 && body.ttlSeconds >= 570, `ttlSeconds ${body.ttlSeconds}`);
  const { payload } = decodedParts(body.token);
  assert.equal(payload.exp - payload.iat, body.ttlSeconds);
  assert.ok(payload.exp <= before + 600 + 1, "expires with the sign-in");
  assert.ok(Math.abs(Date.parse(body.expiresAt) / 1000 - payload.exp) < 1, body.expiresAt);
  // Under a minute left: too little to set up a call; the clinician is asked to sign in again.
  await expectError(await requestToken(await signIn("clinician-ada", 30)), 401, "token_expired");
});

test("a sign-in ended at Medplum (signed out, revoked) gets no calling token, though its token is unexpired", async () => {
  const logout = (bearer) => fetch(`${medplum.url}/oauth2/logout`, { method: "POST", headers: { authorization: `Bearer ${bearer}`, "content-type": "application/json" }, body: "{}" });
  // Confirmed a moment ago, then signed out: minting asks Medplum afresh.
  const bearer = await signIn("clinician-ada", 7200);
  assert.equal((await requestToken(bearer)).status, 200);
  assert.equal((await logout(bearer)).status, 200);
  await expectError(await requestToken(bearer), 401, "invalid_credentials");
  // Never seen before and already signed out: refused on every clinician endpoint.
  const other = await signIn("clinician-ada", 7200);
  assert.equal((await logout(other)).status, 200);
  await expectError(await fetch(`${worker.url}/api/v1/appointments`, { headers: { authorization: `Bearer ${other}` } }), 401, "invalid_credentials");
  // Another sign-in of the same clinician is not affected.
  assert.equal((await requestToken(await signIn("clinician-ada", 7200))).status, 200);
});

test("a clinician without videocall_own_manage is refused and nothing is written", async () => {
  const response = await requestToken(await signIn("clinician-bob"));
  await expectError(response, 403, "permission_missing");
  assert.deepEqual(twilioIdentifiers(await practitionerResource("clinician-bob")), []);
});

test("a suspended membership (active: false) grants no calling, whatever its policies", async () => {
  await fetch(`${medplum.url}/__sim/reset`, { method: "POST" });
  const bearer = await signIn("clinician-ada", 7200);
  const fhir = (path, init = {}) => fetch(`${medplum.url}/fhir/R4/${path}`, {
    ...init,
    headers: { authorization: `Bearer ${bearer}`, "content-type": "application/fhir+json", ...init.headers },
  });
  const bundle = await (await fhir("ProjectMembership?profile=Practitioner/clinician-ada")).json();
  const membership = bundle.entry[0].resource;
  const suspended = await fhir(`ProjectMembership/${membership.id}`, { method: "PUT", body: JSON.stringify({ ...membership, active: false }) });
  assert.equal(suspended.status, 200, await suspended.text());
  await expectError(await requestToken(bearer), 403, "permission_missing");
  // Active again: calling again.
  const restored = await fhir(`ProjectMembership/${membership.id}`, { method: "PUT", body: JSON.stringify({ ...membership, active: true }) });
  assert.equal(restored.status, 200);
  assert.equal((await requestToken(bearer)).status, 200);
  await fetch(`${medplum.url}/__sim/reset`, { method: "POST" });
});

test("an identity Medplum will not store yet does not keep the clinician from calling", async () => {
  await fetch(`${medplum.url}/__sim/reset`, { method: "POST" });
  const refuse = (refuse) => fetch(`${medplum.url}/__sim/refuse-writes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ reference: "Practitioner/clinician-ada", refuse }),
  });
  assert.equal((await refuse(true)).status, 200);
  const bearer = await signIn("clinician-ada", 7200);
  const refused = await requestToken(bearer);
  const body = await refused.json();
  assert.equal(refused.status, 200, JSON.stringify(body));
  assert.equal(body.identity, "clinician-ada");
  assert.deepEqual(twilioIdentifiers(await practitionerResource("clinician-ada")), [], "nothing written");
  // Once Medplum takes the write, the next token writes the identifier.
  assert.equal((await refuse(false)).status, 200);
  assert.equal((await requestToken(bearer)).status, 200);
  assert.deepEqual(twilioIdentifiers(await practitionerResource("clinician-ada")), [{ system: IDENTITY_SYSTEM, value: "clinician-ada" }]);
});

test("missing, expired, forged, alg:none, HS256-with-public-key and unknown-key tokens are refused", async () => {
  await expectError(await requestToken(null), 401, "missing_credentials");
  await expectError(await requestToken(await signIn("clinician-ada", -10)), 401, "token_expired");

  const genuine = await signIn("clinician-ada");
  const { header, payload } = decodedParts(genuine);
  const signingInput = `${b64url(header)}.${b64url(payload)}`;

  // Signed with a key that is not Medplum's, same kid.
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const forged = `${signingInput}.${rsaSign("sha256", Buffer.from(signingInput), privateKey).toString("base64url")}`;
  await expectError(await requestToken(forged), 401, "invalid_credentials");

  // alg: none with no signature.
  const none = `${b64url({ ...header, alg: "none" })}.${b64url(payload)}.`;
  await expectError(await requestToken(none), 401, "invalid_credentials");

  // HS256 signed with Medplum's public key as the HMAC secret (algorithm confusion).
  const jwks = await (await fetch(`${medplum.url}/.well-known/jwks.json`)).json();
  const publicPem = createPublicKey({ key: jwks.keys[0], format: "jwk" }).export({ type: "spki", format: "pem" });
  const hsInput = `${b64url({ ...header, alg: "HS256" })}.${b64url(payload)}`;
  const confused = `${hsInput}.${createHmac("sha256", publicPem).update(hsInput).digest("base64url")}`;
  await expectError(await requestToken(confused), 401, "invalid_credentials");

  // A kid Medplum never published.
  const unknownKidInput = `${b64url({ ...header, kid: "not-a-medplum-key" })}.${b64url(payload)}`;
  const unknownKid = `${unknownKidInput}.${rsaSign("sha256", Buffer.from(unknownKidInput), privateKey).toString("base64url")}`;
  await expectError(await requestToken(unknownKid), 401, "invalid_credentials");

  // A genuine token with its payload altered (a different practitioner).
  const altered = `${b64url(header)}.${b64url({ ...payload, profile: "Practitioner/clinician-cy" })}.${genuine.split(".")[2]}`;
  await expectError(await requestToken(altered), 401, "invalid_credentials");

  // Garbage.
  await expectError(await requestToken("not-a-jwt"), 401, "invalid_credentials");
});

test("provisioning needs the service secret and a permitted, existing practitioner", async () => {
  await fetch(`${medplum.url}/__sim/reset`, { method: "POST" });
  await expectError(await provision("clinician-cy", null), 401, "missing_credentials");
  await expectError(await provision("clinician-cy", "wrong-secret"), 401, "invalid_credentials");
  await expectError(await provision("no-such-clinician"), 404, "practitioner_not_found");
  await expectError(await provision("clinician-bob"), 403, "permission_missing");
  assert.deepEqual(twilioIdentifiers(await practitionerResource("clinician-cy")), []);

  const created = await provision("clinician-cy");
  assert.equal(created.status, 201);
  assert.deepEqual(await created.json(), {
    practitionerId: "clinician-cy",
    identity: "clinician-cy",
    system: IDENTITY_SYSTEM,
    status: "created",
  });
  const again = await provision("clinician-cy");
  assert.equal(again.status, 200);
  assert.equal((await again.json()).status, "already-provisioned");
  assert.deepEqual(twilioIdentifiers(await practitionerResource("clinician-cy")), [{ system: IDENTITY_SYSTEM, value: "clinician-cy" }]);
});

test("20 concurrent provisioning calls write exactly one identifier and keep a concurrent edit", async () => {
  await fetch(`${medplum.url}/__sim/reset`, { method: "POST" });
  const adminToken = await signIn("clinician-ada");
  // A concurrent edit by someone else, retried on 412 like any careful client.
  const otherEdit = (async () => {
    for (let attempt = 0; attempt < 50; attempt++) {
      const current = await (await fetch(`${medplum.url}/fhir/R4/Practitioner/clinician-ada`, { headers: { authorization: `Bearer ${adminToken}` } })).json();
      const edited = { ...current, extension: [...(current.extension ?? []), { url: "https://example.org/other-edit", valueString: "kept" }] };
      const response = await fetch(`${medplum.url}/fhir/R4/Practitioner/clinician-ada`, {
        method: "PUT",
        headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/fhir+json", "if-match": `W/"${current.meta.versionId}"` },
        body: JSON.stringify(edited),
      });
      if (response.ok) return;
    }
    throw new Error("the other edit never landed");
  })();
  const responses = await Promise.all(Array.from({ length: 20 }, () => provision("clinician-ada")));
  await otherEdit;
  const statuses = responses.map((r) => r.status).sort();
  assert.equal(statuses.filter((s) => s === 201).length, 1, `statuses ${statuses}`);
  assert.equal(statuses.filter((s) => s === 200).length, 19, `statuses ${statuses}`);
  const practitioner = await practitionerResource("clinician-ada");
  assert.deepEqual(twilioIdentifiers(practitioner), [{ system: IDENTITY_SYSTEM, value: "clinician-ada" }]);
  assert.ok(
    (practitioner.extension ?? []).some((e) => e.url === "https://example.org/other-edit"),
    "the concurrent edit to the Practitioner survived",
  );
});

test("token requests are rate-limited per clinician", async () => {
  const bearer = await signIn("clinician-cy");
  await withinOneRateWindow();
  const statuses = [];
  let limited;
  for (let i = 0; i < 25 && !limited; i++) {
    const response = await requestToken(bearer);
    statuses.push(response.status);
    if (response.status === 429) limited = response;
    else await response.body?.cancel();
  }
  assert.ok(limited, `no 429 in ${statuses}`);
  assert.equal(limited.headers.get("retry-after"), "60");
  assert.equal((await limited.json()).error.code, "rate_limited");
  assert.ok(statuses.slice(0, 20).every((s) => s === 200), `the first 20 succeed: ${statuses}`);
});

test("Medplum refusing the worker's own client is said as a configuration fault, not an outage", async () => {
  const misconfigured = await startWorker({
    logDir: artifacts,
    name: "access-token-wrong-client-worker",
    secrets: { ...TEST_SECRETS, MEDPLUM_CLIENT_SECRET: "not-the-client-secret" },
    vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_API_BASE_URL: twilioSim.url, TWILIO_SIGNALING_URL: twilioSim.signalingUrl },
  });
  try {
    const response = await fetch(`${misconfigured.url}/api/v1/twilio/access-token`, {
      method: "POST",
      headers: { authorization: `Bearer ${await signIn("clinician-ada", 7200)}` },
    });
    const body = await expectError(response, 503, "medplum_client_refused");
    assert.match(body.error.message, /MEDPLUM_CLIENT_SECRET/);
    assert.doesNotMatch(body.error.message, /not-the-client-secret/);
    assert.equal(response.headers.get("retry-after"), "60");
  } finally {
    await misconfigured.stop();
  }
});

test("Medplum down: 503 with Retry-After and nothing issued; back up: tokens again", async () => {
  const bearer = await signIn("clinician-ada");
  await medplum.close();
  const response = await requestToken(bearer);
  await expectError(response, 503, "medplum_unavailable");
  assert.equal(response.headers.get("retry-after"), "30");
  const provisioning = await provision("clinician-cy");
  await expectError(provisioning, 503, "medplum_unavailable");

  medplum = await startLocalMedplum();
  const recovered = await requestToken(await signIn("clinician-ada"));
  assert.equal(recovered.status, 200, await recovered.text());
});

test("the demo page signs a clinician in and gets a calling token, or says why not", async () => {
  const { launchBrowser, openPage } = await import("../lib/browser.mjs");
  const { join } = await import("node:path");
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    const { page, problems } = await openPage(context, worker.url);
    await page.waitForSelector("#demo-sign-in:not([hidden])", { timeout: 15_000 });
    await page.selectOption("#clinician", "clinician-ada");
    await page.click("#sign-in");
    await page.waitForSelector("#session[data-state=token-ready]", { timeout: 15_000 });
    assert.equal(await page.getAttribute("#session", "data-identity"), "clinician-ada");
    assert.match(await page.textContent("#session"), /Ready to call as clinician-ada/);
    await page.screenshot({ path: join(artifacts, "signed-in-token-ready.png"), fullPage: true });

    await page.selectOption("#clinician", "clinician-bob");
    await page.click("#sign-in");
    await page.waitForSelector("#session[data-state=refused]", { timeout: 15_000 });
    assert.equal(await page.getAttribute("#session", "data-code"), "permission_missing");
    assert.match(await page.textContent("#session"), /dial patients by hand/);
    await page.screenshot({ path: join(artifacts, "signed-in-refused.png"), fullPage: true });
    assert.deepEqual(problems.filter((p) => !p.includes("403")), []);
  } finally {
    await browser.close();
  }
});
