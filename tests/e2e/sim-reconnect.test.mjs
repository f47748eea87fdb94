//! End-to-end: a live call survives a signaling reconnect through the local Twilio, as Twilio does
//! it for twilio-voice.js. `answer` carries a reconnect token; after the socket drops, a new one
//! (`listen`, then `invite` with the token) takes the call over and gets a fresh `answer`; frames
//! produced while the client was away (a hangup) are delivered on its return; the window is the
//! `reconnectTimeout` the client's `listen` asked for (0, the SDK's default, ends the call at once);
//! bad tokens get `hangup` 31107 / 31209. The official SDK reconnects against it.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import jwt from "jsonwebtoken";
import { startWorker, startTwilioSim, artifactsDir, freePort, TEST_SECRETS } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { sleep, waitFor } from "../lib/wait.mjs";
import { connectSignaling } from "../lib/signaling.mjs";

const artifacts = artifactsDir();
let medplum;
let worker;
let twilio;

before(async () => {
  medplum = await startMedplumServer({ port: await freePort(), clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
  const workerPort = await freePort();
  const simPort = await freePort();
  twilio = await startTwilioSim({ port: simPort, workerUrl: `http://127.0.0.1:${workerPort}`, timeScale: 0.2, logDir: artifacts, name: "twilio-sim-reconnect" });
  worker = await startWorker({
    port: workerPort,
    logDir: artifacts,
    name: "sim-reconnect-worker",
    vars: { MEDPLUM_BASE_URL: medplum.url, TWILIO_API_BASE_URL: twilio.url, TWILIO_CALLER_IDS: "+447700900001,+447700900002", PRACTICE_PHONE_NUMBER: "+442079460000" },
  });
});

after(async () => {
  await worker?.stop();
  await twilio?.stop();
  await medplum?.close();
});

const TOKEN = /^[0-9a-f]{32}$/;
const json = { "content-type": "application/json" };

async function signIn(practitioner) {
  const response = await fetch(`${medplum.url}/auth/dev-login`, { method: "POST", headers: json, body: JSON.stringify({ practitioner }) });
  return (await response.json()).access_token;
}

async function twilioToken(practitioner = "clinician-ada") {
  const response = await fetch(`${worker.url}/api/v1/twilio/access-token`, { method: "POST", headers: { authorization: `Bearer ${await signIn(practitioner)}` } });
  assert.equal(response.status, 200);
  return (await response.json()).token;
}

/** A Twilio access token minted directly (for an identity the worker would not serve). */
function mintedToken(identity) {
  return jwt.sign(
    { jti: `${identity}-${Date.now()}`, grants: { identity, voice: { incoming: { allow: true }, outgoing: { application_sid: TEST_SECRETS.TWILIO_TWIML_APP_SID } } } },
    TEST_SECRETS.TWILIO_API_SECRET,
    { header: { cty: "twilio-fpa;v=1", typ: "JWT" }, issuer: TEST_SECRETS.TWILIO_API_KEY, subject: TEST_SECRETS.TWILIO_ACCOUNT_SID, expiresIn: 600 },
  );
}


/** A client that has sent `listen` and got `connected` + `ready`. */
async function signedIn(token, reconnectTimeout) {
  const client = await connectSignaling(twilio.signalingUrl);
  client.send("listen", { token, browserinfo: { p: "browser", plugin: "rtc" }, reconnectTimeout });
  await client.next("connected");
  await client.next("ready");
  return client;
}

async function dropSignaling(...clients) {
  const response = await fetch(`${twilio.url}/__sim/drop-signaling`, { method: "POST" });
  assert.equal(response.status, 200);
  await Promise.race([Promise.all(clients.map((c) => c.closed)), sleep(5000).then(() => { throw new Error("socket not closed"); })]);
}

async function simCall(sid) {
  const { calls } = await (await fetch(`${twilio.url}/__sim/calls`)).json();
  return calls.find((c) => c.sid === sid);
}


/** Twilio's REST "end call" on the simulator. */
async function endByRest(sid) {
  const auth = `Basic ${Buffer.from(`${TEST_SECRETS.TWILIO_API_KEY}:${TEST_SECRETS.TWILIO_API_SECRET}`).toString("base64")}`;
  const response = await fetch(`${twilio.url}/2010-04-01/Accounts/${TEST_SECRETS.TWILIO_ACCOUNT_SID}/Calls/${sid}.json`, {
    method: "POST", headers: { authorization: auth, "content-type": "application/x-www-form-urlencoded" }, body: "Status=completed",
  });
  assert.equal(response.status, 200, await response.text());
}

async function setCallee(number, script) {
  const response = await fetch(`${twilio.url}/__sim/callees`, { method: "POST", headers: json, body: JSON.stringify({ number, script }) });
  assert.equal(response.status, 200);
}

/** Places a call on `client` and returns the `answer` frame. */
async function placeAnsweredCall(client, appointment, clientCallSid) {
  client.send("invite", { callsid: clientCallSid, sdp: "v=0\r\n", twilio: { params: `AppointmentId=${appointment}` } });
  const answer = await client.next("answer");
  assert.match(answer.payload.callsid, /^CA[0-9a-f]{32}$/);
  assert.match(answer.payload.reconnect, TOKEN, "the answer carries a reconnect token");
  return answer;
}

const reconnectInvite = (client, callsid, reconnect) => client.send("invite", { callsid, sdp: "v=0\r\n", twilio: {}, reconnect });

test("a live call survives a signaling drop: the reconnect invite gets a fresh answer, and the callee's hangup reaches the new socket", async () => {
  // The patient talks for 12 s (scaled) and then hangs up: time for the drop and the reconnect
  // however busy the machine.
  await setCallee("+447700900123", { kind: "answer", after_ms: 1000, hangup_after_ms: 60_000 });
  try {
    const token = await twilioToken();
    const first = await signedIn(token, 30);
    const answer = await placeAnsweredCall(first, "appt-mobile", "TJS-reconnect-live");
    const { callsid, reconnect } = answer.payload;

    await dropSignaling(first);
    const detached = await waitFor("the sim to hold the call", async () => { const c = await simCall(callsid); return c?.detached ? c : null; });
    assert.equal(detached.status, "in-progress", "the drop does not end the call");

    const second = await signedIn(token, 30);
    reconnectInvite(second, callsid, reconnect);
    const resumed = await second.next("answer");
    assert.equal(resumed.payload.callsid, callsid);
    assert.match(resumed.payload.reconnect, TOKEN);
    assert.notEqual(resumed.payload.reconnect, reconnect, "a fresh token; the old one is retired");
    assert.ok(!second.all.some((f) => f.type === "hangup"), "no hangup before the callee hangs up");
    const call = await simCall(callsid);
    assert.equal(call.reattached, 1);
    assert.equal(call.detached, false);

    const hangup = await second.next("hangup", 30_000);
    assert.equal(hangup.payload.callsid, callsid, "the callee's hangup reaches the new socket");
    assert.equal(hangup.payload.error, undefined);
    await waitFor("the call to complete", async () => (await simCall(callsid))?.status === "completed");

    // The retired token resumes nothing.
    reconnectInvite(second, callsid, reconnect);
    const refused = await second.next("hangup");
    assert.equal(refused.payload.error.code, 31107);
    second.socket.close();

    const { frames } = await (await fetch(`${twilio.url}/__sim/frames`)).json();
    assert.ok(frames.some((f) => typeof f.frame === "string" && f.frame.startsWith(`<reattached ${callsid}`)), "the reattachment is logged");
  } finally {
    await setCallee("+447700900123", { kind: "answer", after_ms: 2000, hangup_after_ms: null });
  }
});

test("a hangup that happens while the client is away is delivered when it reconnects", async () => {
  const token = await twilioToken();
  const first = await signedIn(token, 30);
  const answer = await placeAnsweredCall(first, "appt-two-numbers", "TJS-reconnect-away");
  const { callsid, reconnect } = answer.payload;
  await dropSignaling(first);
  await endByRest(callsid);
  await waitFor("the call to end while the client is away", async () => (await simCall(callsid))?.status === "completed");

  const second = await signedIn(token, 30);
  reconnectInvite(second, callsid, reconnect);
  const hangup = await second.next("hangup");
  assert.equal(hangup.payload.callsid, callsid);
  assert.equal(hangup.payload.error, undefined, "the held hangup, as it was produced");
  await sleep(300);
  assert.ok(!second.all.some((f) => f.type === "answer"), "an ended call is not answered");
  assert.equal((await simCall(callsid)).reattached, 1);

  // Delivered once: the token is spent.
  reconnectInvite(second, callsid, reconnect);
  assert.equal((await second.next("hangup")).payload.error.code, 31107);
  second.socket.close();
});

test("with reconnectTimeout 0 (the SDK's default) the drop ends the call at once; bad reconnects are refused", async () => {
  await setCallee("+447700900789", { kind: "answer", after_ms: 1000, hangup_after_ms: null });
  try {
    const token = await twilioToken();
    const first = await signedIn(token, 0);
    const answer = await placeAnsweredCall(first, "appt-intl-prefix", "TJS-reconnect-zero");
    const { callsid, reconnect } = answer.payload;
    await dropSignaling(first);
    const ended = await waitFor("the call to end", async () => { const c = await simCall(callsid); return c?.status === "completed" ? c : null; }, 5000);
    assert.equal(ended.endedBy, "signaling-lost");

    const second = await signedIn(token, 30);
    reconnectInvite(second, callsid, reconnect);
    const refused = await second.next("hangup");
    assert.equal(refused.payload.callsid, callsid);
    assert.equal(refused.payload.error.code, 31107);

    reconnectInvite(second, callsid, "0123456789abcdef0123456789abcdef");
    assert.equal((await second.next("hangup")).payload.error.code, 31107, "an unknown token");
    second.socket.close();
  } finally {
    await setCallee("+447700900789", { kind: "answer", after_ms: 1000, hangup_after_ms: 5000 });
  }

  // Another identity cannot take a call over.
  const token = await twilioToken();
  const owner = await signedIn(token, 30);
  const answer = await placeAnsweredCall(owner, "appt-two-numbers", "TJS-reconnect-thief");
  const thief = await signedIn(mintedToken("clinician-bob"), 30);
  reconnectInvite(thief, answer.payload.callsid, answer.payload.reconnect);
  assert.equal((await thief.next("hangup")).payload.error.code, 31209);
  assert.equal((await simCall(answer.payload.callsid)).status, "in-progress", "the owner's call carries on");
  owner.send("hangup", { callsid: answer.payload.callsid });
  await waitFor("the owner's call to end", async () => (await simCall(answer.payload.callsid))?.status === "completed");
  thief.socket.close();
  owner.socket.close();
});

test("an incoming call answered in the browser survives a reconnect, and ending it elsewhere hangs it up in the browser", async () => {
  const { calls } = await (await fetch(`${twilio.url}/__sim/calls`)).json();
  const poolNumber = calls.find((c) => c.to === "+447700900123" && c.callerId)?.callerId;
  assert.ok(poolNumber, "an earlier test called the patient from a pool number");
  const token = await twilioToken();
  const first = await signedIn(token, 30);
  first.send("register", { media: { audio: true } });
  await first.next("ready");
  const { callSid: parent } = await (await fetch(`${twilio.url}/__sim/inbound`, {
    method: "POST", headers: json, body: JSON.stringify({ from: "+447700900123", to: poolNumber }),
  })).json();
  const invite = await first.next("invite");
  const leg = invite.payload.callsid;
  first.send("answer", { callsid: leg, sdp: "v=0\r\n" });
  const confirmed = await first.next("answer");
  assert.equal(confirmed.payload.callsid, leg);
  assert.match(confirmed.payload.reconnect, TOKEN);

  await dropSignaling(first);
  const second = await signedIn(token, 30);
  second.send("register", { media: { audio: true } });
  reconnectInvite(second, leg, confirmed.payload.reconnect);
  const resumed = await second.next("answer");
  assert.equal(resumed.payload.callsid, leg);
  assert.match(resumed.payload.reconnect, TOKEN);
  assert.equal((await simCall(leg)).reattached, 1);

  await endByRest(parent);
  const hangup = await second.next("hangup");
  assert.equal(hangup.payload.callsid, leg);
  await waitFor("the leg to complete", async () => (await simCall(leg))?.status === "completed");
  second.socket.close();
});

test("faithfulness: the official SDK reconnects a live call after a drop (maxCallSignalingTimeoutMs), and loses it with the default", async () => {
  const { chromium } = await import("playwright-core");
  const { CHROMIUM_ARGS } = await import("../lib/browser.mjs");
  const { startTlsProxy, REPO_ROOT } = await import("../../sim/stack.mjs");
  const { join } = await import("node:path");
  const tls = await startTlsProxy(Number(new URL(twilio.url).port));
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_BIN ?? "/usr/bin/chromium", args: [...CHROMIUM_ARGS, "--ignore-certificate-errors"] });
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${twilio.url}/healthcheck`);
    await page.addScriptTag({ path: join(REPO_ROOT, "node_modules", "@twilio", "voice-sdk", "dist", "twilio.min.js") });
    // Places a call and leaves it up; the page records the call's events.
    const place = async (options, appointment) => page.evaluate(async ({ token, chunderw, options, appointment }) => {
      const withTimeout = (promise, ms, what) => Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms))]);
      const device = new Twilio.Device(token, { chunderw, publishEvents: false, disableAudioContextSounds: true, logLevel: "error", ...options });
      device.on("error", () => {});
      const call = await withTimeout(device.connect({ params: { AppointmentId: appointment } }), 20000, "connect");
      const events = [];
      for (const name of ["reconnecting", "reconnected", "disconnect", "error"]) {
        call.on(name, (arg) => events.push(name === "error" ? `error:${arg?.code}` : name));
      }
      await withTimeout(new Promise((resolve) => call.on("accept", resolve)), 20000, "accept");
      window.__sdk = { device, call, events };
      return call.parameters.CallSid;
    }, { token: await twilioToken(), chunderw: `127.0.0.1:${tls.port}`, options, appointment });
    const events = () => page.evaluate(() => [...window.__sdk.events]);
    const media = async (sid) => (await (await fetch(`${twilio.url}/__sim/media`)).json()).media[sid];

    const callSid = await place({ maxCallSignalingTimeoutMs: 30000 }, "appt-mobile");
    assert.match(callSid, /^CA[0-9a-f]{32}$/);
    await waitFor("media to flow", async () => (await media(callSid))?.packetsIn > 20);
    await fetch(`${twilio.url}/__sim/drop-signaling`, { method: "POST" });
    await waitFor("the SDK to reconnect the call", async () => (await events()).includes("reconnected"));
    assert.deepEqual(await events(), ["reconnecting", "reconnected"]);
    assert.equal(await page.evaluate(() => window.__sdk.call.status()), "open");
    const call = await simCall(callSid);
    assert.equal(call.reattached, 1);
    assert.equal(call.status, "in-progress");
    const before = (await media(callSid)).packetsIn;
    await waitFor("media to keep flowing after the reconnect", async () => (await media(callSid)).packetsIn > before + 20);
    const reconnectInvite = (await (await fetch(`${twilio.url}/__sim/frames`)).json()).frames.find((f) =>
      f.direction === "client" && f.frame?.type === "invite" && f.frame.payload?.callsid === callSid);
    assert.match(reconnectInvite.frame.payload.reconnect, TOKEN, "the SDK resumes with the token from answer");
    assert.deepEqual(reconnectInvite.frame.payload.twilio, {});
    await page.evaluate(() => { window.__sdk.call.disconnect(); window.__sdk.device.destroy(); });
    await waitFor("the call to end", async () => (await simCall(callSid))?.status === "completed");

    // The SDK's default (reconnectTimeout 0): Twilio ends the call when the socket drops; the
    // SDK's reconnect attempt is answered with a hangup and the call disconnects.
    const lostSid = await place({}, "appt-two-numbers");
    await fetch(`${twilio.url}/__sim/drop-signaling`, { method: "POST" });
    await waitFor("the SDK to lose the call", async () => (await events()).includes("disconnect"));
    const lost = await simCall(lostSid);
    assert.equal(lost.endedBy, "signaling-lost");
    assert.equal(lost.status, "completed");
    assert.equal(await page.evaluate(() => window.__sdk.call.status()), "closed");
    await page.evaluate(() => window.__sdk.device.destroy());
  } finally {
    await browser.close();
    await tls.close();
  }
});
