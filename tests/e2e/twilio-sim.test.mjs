//! End-to-end through the local Twilio: a client speaking Twilio's signaling protocol (as the
//! browser module will) places calls; sim/twilio validates its token, asks the real worker for
//! TwiML, plays the scripted callee, and sends signed callbacks; the worker records the outcome.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import jwt from "jsonwebtoken";
import { startWorker, startTwilioSim, artifactsDir, freePort, TEST_SECRETS } from "../../sim/stack.mjs";
import { startMedplumServer } from "../../sim/medplum/server.mjs";
import { sleep, waitFor } from "../lib/wait.mjs";
import { connectSignaling } from "../lib/signaling.mjs";

const artifacts = artifactsDir();
const EXTENSION_URL = "https://clinician-calls.example/fhir/StructureDefinition/twilio-voice-call";
let medplum;
let worker;
let twilio;

before(async () => {
  medplum = await startMedplumServer({ port: await freePort(), clientId: TEST_SECRETS.MEDPLUM_CLIENT_ID, clientSecret: TEST_SECRETS.MEDPLUM_CLIENT_SECRET });
  const workerPort = await freePort();
  const simPort = await freePort();
  twilio = await startTwilioSim({ port: simPort, workerUrl: `http://127.0.0.1:${workerPort}`, timeScale: 0.2, logDir: artifacts });
  worker = await startWorker({
    port: workerPort,
    logDir: artifacts,
    name: "twilio-sim-worker",
    vars: {
      MEDPLUM_BASE_URL: medplum.url, TWILIO_API_BASE_URL: twilio.url, TWILIO_CALLER_IDS: "+447700900001,+447700900002", PRACTICE_PHONE_NUMBER: "+442079460000",
      // A call silent for 10 s is checked with the sim's REST API (10 min in production): long
      // enough that a test can still see a line held ~1 s after the answer on a busy machine.
      CALL_CHECK_SECONDS: "10",
    },
  });
});

after(async () => {
  await worker?.stop();
  await twilio?.stop();
  await medplum?.close();
});


/** Sets sim/twilio's faults (`{}` clears them). */
const setFaults = (faults) => fetch(`${twilio.url}/__sim/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(faults) });

async function signIn(practitioner) {
  const response = await fetch(`${medplum.url}/auth/dev-login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ practitioner }) });
  return (await response.json()).access_token;
}

async function twilioToken(practitioner = "clinician-ada") {
  const response = await fetch(`${worker.url}/api/v1/twilio/access-token`, { method: "POST", headers: { authorization: `Bearer ${await signIn(practitioner)}` } });
  assert.equal(response.status, 200);
  return (await response.json()).token;
}


async function signedIn(token) {
  const client = await connectSignaling(twilio.signalingUrl);
  client.send("listen", { token, browserinfo: { p: "browser", plugin: "rtc" }, reconnectTimeout: 0 });
  return client;
}

async function extensions(appointment) {
  const resource = await (await fetch(`${medplum.url}/__sim/resource/Appointment/${appointment}`)).json();
  return (resource.extension ?? []).filter((e) => e.url === EXTENSION_URL).map((e) =>
    Object.fromEntries(e.extension.map((p) => [p.url, p.valueString ?? p.valueCode ?? p.valueInteger ?? p.valueDateTime])));
}


test("listen validates the token as Twilio's gateway does: forged 31204, expired 31205, valid → connected and ready", async () => {
  const forged = await signedIn(jwt.sign({ grants: { identity: "x", voice: {} } }, "not-the-secret", { header: { cty: "twilio-fpa;v=1", typ: "JWT" }, issuer: TEST_SECRETS.TWILIO_API_KEY, subject: TEST_SECRETS.TWILIO_ACCOUNT_SID, expiresIn: 60 }));
  assert.equal((await forged.next("error")).payload.error.code, 31204);
  forged.socket.close();

  const expired = jwt.sign(
    { jti: "x", grants: { identity: "clinician-ada", voice: { incoming: { allow: true }, outgoing: { application_sid: TEST_SECRETS.TWILIO_TWIML_APP_SID } } }, iat: 1, nbf: 1, exp: Math.floor(Date.now() / 1000) - 10 },
    TEST_SECRETS.TWILIO_API_SECRET,
    { header: { cty: "twilio-fpa;v=1", typ: "JWT" }, issuer: TEST_SECRETS.TWILIO_API_KEY, subject: TEST_SECRETS.TWILIO_ACCOUNT_SID, noTimestamp: true },
  );
  const late = await signedIn(expired);
  assert.equal((await late.next("error")).payload.error.code, 31205);
  late.socket.close();

  const client = await signedIn(await twilioToken());
  const connected = await client.next("connected");
  assert.equal(connected.version, "1.6");
  assert.equal(connected.payload.token.identity, "clinician-ada");
  assert.ok(connected.payload.token.ttl > 3000);
  await client.next("ready");
  client.socket.close();
});

test("an answered call: ringing, answer with Twilio's CallSid, DTMF delivered, hang-up recorded with its duration", async () => {
  const client = await signedIn(await twilioToken());
  await client.next("ready");
  client.send("invite", { callsid: "TJS0d3b4e9e-1111-4c22-8a33-000000000001", sdp: "v=0\r\n", twilio: { params: "AppointmentId=appt-mobile&To=%2B447700900999" } });
  await client.next("ringing");
  const answer = await client.next("answer");
  assert.match(answer.payload.callsid, /^CA[0-9a-f]{32}$/);
  client.send("dtmf", { callsid: answer.payload.callsid, dtmf: "12#" });
  await sleep(700);
  client.send("hangup", { callsid: answer.payload.callsid });
  const calls = await waitFor("the call to end in the sim", async () => {
    const { calls } = await (await fetch(`${twilio.url}/__sim/calls`)).json();
    const child = calls.find((c) => c.parentSid === answer.payload.callsid);
    return child?.status === "completed" ? calls : null;
  });
  const child = calls.find((c) => c.parentSid === answer.payload.callsid);
  assert.equal(child.to, "+447700900123", "dialled the patient's number from the record, not the browser's To");
  assert.equal(child.digits, "12#");
  const [ext] = await waitFor("the extension", async () => {
    const found = (await extensions("appt-mobile")).filter((e) => e.parentCallSid === answer.payload.callsid && e.status === "completed");
    return found.length ? found : null;
  });
  assert.equal(ext.callSid, child.sid);
  assert.ok(ext.durationSeconds >= 0);
  const { callbacks } = await (await fetch(`${twilio.url}/__sim/callbacks`)).json();
  const statuses = callbacks.filter((c) => c.params.some(([k, v]) => k === "CallSid" && v === child.sid)).map((c) => Object.fromEntries(c.params).CallStatus);
  assert.deepEqual(statuses, ["initiated", "ringing", "in-progress", "completed"]);
  assert.ok(callbacks.every((c) => c.status === 200), "the worker accepted every signed callback");
  client.socket.close();
});

test("busy, refused, and a clinician ending the call from the panel (REST) all end the call for the client", async () => {
  const client = await signedIn(await twilioToken());
  await client.next("ready");
  client.send("invite", { callsid: "TJS-busy", sdp: "v=0", twilio: { params: "AppointmentId=appt-landline" } });
  await client.next("ringing");
  assert.equal((await client.next("hangup")).payload.callsid?.startsWith("CA"), true);
  await waitFor("busy extension", async () => (await extensions("appt-landline")).some((e) => e.status === "busy"));

  client.send("invite", { callsid: "TJS-premium", sdp: "v=0", twilio: { params: "AppointmentId=appt-premium" } });
  await client.next("hangup");
  assert.ok(!client.received.some((f) => f.type === "ringing"), "a refused call never rings");

  client.send("invite", { callsid: "TJS-end", sdp: "v=0", twilio: { params: "AppointmentId=appt-two-numbers" } });
  const answer = await client.next("answer");
  const end = await fetch(`${worker.url}/api/v1/appointments/appt-two-numbers/call/end`, {
    method: "POST", headers: { authorization: `Bearer ${await signIn("clinician-ada")}`, "content-type": "application/json" },
    body: JSON.stringify({ callSid: answer.payload.callsid }),
  });
  assert.equal(end.status, 200, await end.text());
  assert.equal((await client.next("hangup")).payload.callsid, answer.payload.callsid);
  const [ext] = await waitFor("ended-by-clinician extension", async () => {
    const found = (await extensions("appt-two-numbers")).filter((e) => e.parentCallSid === answer.payload.callsid && e.status === "completed");
    return found.length ? found : null;
  });
  assert.equal(ext.endedBy, "clinician");
  client.socket.close();
});

test("with callbacks duplicated and reordered by fault, the record still converges", async () => {
  await fetch(`${twilio.url}/__sim/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ duplicateCallbacks: true, reorderCallbacks: true }) });
  try {
    const client = await signedIn(await twilioToken());
    await client.next("ready");
    client.send("invite", { callsid: "TJS-faults", sdp: "v=0", twilio: { params: "AppointmentId=appt-intl-prefix" } });
    const answer = await client.next("answer");
    await client.next("hangup"); // the scripted callee hangs up after 5 s (scaled)
    const [ext] = await waitFor("converged extension", async () => {
      const found = (await extensions("appt-intl-prefix")).filter((e) => e.parentCallSid === answer.payload.callsid && e.status === "completed");
      return found.length ? found : null;
    });
    assert.equal(ext.sequenceNumber, 3);
    assert.equal((await extensions("appt-intl-prefix")).filter((e) => e.parentCallSid === answer.payload.callsid).length, 1, "one record for the call");
    client.socket.close();
  } finally {
    await fetch(`${twilio.url}/__sim/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  }
});

test("callbacks lost by fault: the worker asks Twilio's REST API how the quiet call ended, records it and frees its line", async () => {
  await setFaults({ loseCallbacks: true });
  try {
    const client = await signedIn(await twilioToken());
    await client.next("ready");
    client.send("invite", { callsid: "TJS-lost-callbacks", sdp: "v=0", twilio: { params: "AppointmentId=appt-intl-prefix" } });
    const answer = await client.next("answer");
    const parentSid = answer.payload.callsid;
    await client.next("hangup"); // the scripted callee hangs up after 5 s (scaled)
    const { calls } = await (await fetch(`${twilio.url}/__sim/calls`)).json();
    const child = calls.find((c) => c.parentSid === parentSid);
    assert.equal(child?.status, "completed");
    const { callbacks } = await (await fetch(`${twilio.url}/__sim/callbacks`)).json();
    const statusCallbacks = callbacks.filter((c) => /\/(call-status|dial-complete)\?/.test(c.url));
    assert.ok(!statusCallbacks.some((c) => c.params.some(([, v]) => v === child.sid || v === parentSid)), "no status callback or Dial action was sent for it");
    // Nothing told the worker the call ended; after 10 s of silence it asks, and records it.
    const [ext] = await waitFor("the record ended by a status check", async () => {
      const found = (await extensions("appt-intl-prefix")).filter((e) => e.parentCallSid === parentSid && e.status === "completed");
      return found.length ? found : null;
    }, 45_000);
    assert.equal(ext.callSid, child.sid, "the patient's leg, found under the clinician's");
    assert.equal(typeof ext.durationSeconds, "number");
    assert.ok(ext.endedAt);
    const pool = await (await fetch(`${worker.url}/api/v1/admin/number-pool`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } })).json();
    assert.ok(!JSON.stringify(pool.numbers).includes(parentSid), "its line is free");
    client.socket.close();
  } finally {
    await setFaults({});
  }
});

test("End pressed while every callback is lost: the record takes Twilio's own end of the patient's leg, not a made-up 'canceled'", async () => {
  await setFaults({ loseCallbacks: true });
  try {
    const client = await signedIn(await twilioToken());
    await client.next("ready");
    client.send("invite", { callsid: "TJS-ended-lost-callbacks", sdp: "v=0", twilio: { params: "AppointmentId=appt-mobile" } });
    const parentSid = (await client.next("answer")).payload.callsid;
    // The clinician ends it from the server side (the panel does when its link is down).
    const ended = await fetch(`${worker.url}/api/v1/appointments/appt-mobile/call/end`, {
      method: "POST",
      headers: { authorization: `Bearer ${await signIn("clinician-ada")}`, "content-type": "application/json" },
      body: JSON.stringify({ callSid: parentSid }),
    });
    assert.equal(ended.status, 200, await ended.clone().text());
    const forCall = async () => (await extensions("appt-mobile")).filter((e) => e.callSid === parentSid || e.parentCallSid === parentSid);
    const [ext] = await waitFor("the patient's leg's own end", async () => {
      const found = (await forCall()).filter((e) => e.status === "completed");
      return found.length ? found : null;
    }, 30_000);
    const { calls } = await (await fetch(`${twilio.url}/__sim/calls`)).json();
    assert.equal(ext.callSid, calls.find((c) => c.parentSid === parentSid)?.sid, "the patient's leg");
    assert.deepEqual((await forCall()).map((e) => e.status), ["completed"], "one record, never 'canceled'");
    client.socket.close();
  } finally {
    await setFaults({});
  }
});

test("callbacks lost and the call unknown to Twilio's REST API: the line is given back, and the record is not invented but kept on the Appointment", async () => {
  const pool = async () => (await (await fetch(`${worker.url}/api/v1/admin/number-pool`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } })).json()).numbers;
  await setFaults({ loseCallbacks: true, forgetCalls: true });
  try {
    const client = await signedIn(await twilioToken());
    await client.next("ready");
    client.send("invite", { callsid: "TJS-forgotten-call", sdp: "v=0", twilio: { params: "AppointmentId=appt-intl-prefix" } });
    const parentSid = (await client.next("answer")).payload.callsid;
    await client.next("hangup");
    assert.ok(JSON.stringify(await pool()).includes(parentSid), "the call holds its line");
    // After the silence the worker asks Twilio, which knows no such call: the line is freed ...
    await waitFor("the line given back", async () => !JSON.stringify(await pool()).includes(parentSid), 45_000);
    // ... and no outcome is made up for the record: it is no longer live, its end unknown.
    assert.ok(!(await extensions("appt-intl-prefix")).some((e) => e.parentCallSid === parentSid && e.status === "completed"));
    const { calls: records } = await (await fetch(`${worker.url}/api/v1/admin/appointments/appt-intl-prefix/calls`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } })).json();
    const record = records.find((c) => c.parentCallSid === parentSid);
    assert.deepEqual([record?.status, record?.terminal, record?.outcomeUnknown], ["unknown", true, "unknown-to-twilio"], JSON.stringify(record));
    // The call was placed (it may have reached the patient): the Appointment keeps it, with the
    // last status known and the reason, and nothing waits to be written.
    const [ext] = await waitFor("the record on the Appointment", async () => {
      const found = (await extensions("appt-intl-prefix")).filter((e) => e.callSid === parentSid);
      return found.length ? found : null;
    }, 30_000);
    assert.deepEqual([ext.status, ext.outcomeUnknown, ext.durationSeconds], ["initiated", "unknown-to-twilio", 0], JSON.stringify(ext));
    assert.ok(ext.startedAt, "with when it was placed");
    const { calls: after } = await (await fetch(`${worker.url}/api/v1/admin/appointments/appt-intl-prefix/calls`, { headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}` } })).json();
    assert.equal(after.find((c) => c.parentCallSid === parentSid)?.fhirPending, false);
    client.socket.close();
  } finally {
    await setFaults({});
  }
});

test("dropping the signaling socket by fault closes it for the client; frames are inspectable without tokens", async () => {
  const client = await signedIn(await twilioToken());
  await client.next("ready");
  await fetch(`${twilio.url}/__sim/drop-signaling`, { method: "POST" });
  await Promise.race([client.closed, sleep(5000).then(() => { throw new Error("socket not closed"); })]);
  const { frames } = await (await fetch(`${twilio.url}/__sim/frames`)).json();
  const listen = frames.find((f) => f.frame?.type === "listen");
  assert.equal(listen.frame.payload.token, "<redacted>");
});

test("media: a real WebRTC peer answers the browser's offer; the clinician hears its tone, and it hears the clinician until muted", async () => {
  const { launchBrowser } = await import("../lib/browser.mjs");
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${twilio.url}/healthcheck`); // a loopback origin: a secure context for the microphone
    const call = await page.evaluate(async ({ signalingUrl, token }) => {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const pc = new RTCPeerConnection();
      // Play the callee's audio, as the call panel does (getStats reports a level only for
      // rendered audio).
      const speaker = new Audio();
      speaker.autoplay = true;
      pc.ontrack = (event) => {
        speaker.srcObject = event.streams[0] ?? new MediaStream([event.track]);
        speaker.play().catch(() => {});
      };
      const [track] = stream.getAudioTracks();
      pc.addTrack(track, stream);
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((resolve) => {
        if (pc.iceGatheringState === "complete") return resolve();
        pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && resolve());
      });
      const ws = new WebSocket(signalingUrl);
      await new Promise((resolve) => (ws.onopen = resolve));
      const frames = [];
      ws.onmessage = (event) => event.data !== "\n" && frames.push(JSON.parse(event.data));
      const next = (type) => new Promise((resolve) => {
        const check = () => {
          const i = frames.findIndex((f) => f.type === type);
          if (i >= 0) resolve(frames.splice(i, 1)[0]);
          else setTimeout(check, 20);
        };
        check();
      });
      const send = (type, payload) => ws.send(JSON.stringify({ type, version: "1.6", payload }));
      send("listen", { token, reconnectTimeout: 0 });
      await next("ready");
      send("invite", { callsid: "TJS-media", sdp: pc.localDescription.sdp, twilio: { params: "AppointmentId=appt-mobile" } });
      // answerOnBridge: the SDP arrives as early media with ringing, as from Twilio.
      const ringing = await next("ringing");
      await pc.setRemoteDescription({ type: "answer", sdp: ringing.payload.sdp });
      const answer = await next("answer");
      await new Promise((resolve) => {
        const check = () => (pc.connectionState === "connected" ? resolve() : setTimeout(check, 50));
        check();
      });
      window.__call = { pc, track, send, callsid: answer.payload.callsid, next };
      return { callsid: answer.payload.callsid };
    }, { signalingUrl: twilio.signalingUrl, token: await twilioToken() });

    const inbound = () => page.evaluate(async () => {
      let found = { bytesReceived: 0, audioLevel: 0 };
      (await window.__call.pc.getStats()).forEach((s) => { if (s.type === "inbound-rtp" && s.kind === "audio") found = s; });
      return { bytesReceived: found.bytesReceived, audioLevel: found.audioLevel ?? 0 };
    });
    const heard = await waitFor("the callee's tone at the clinician", async () => {
      const stats = await inbound();
      return stats.bytesReceived > 4000 && stats.audioLevel > 0.05 ? stats : null;
    });
    assert.ok(heard.audioLevel > 0.05, JSON.stringify(heard));

    const media = async () => (await (await fetch(`${twilio.url}/__sim/media`)).json()).media[call.callsid];
    await waitFor("the clinician's audio at the callee", async () => (await media())?.level > 0.05);
    await page.evaluate(() => { window.__call.track.enabled = false; });
    const muted = await waitFor("silence after mute", async () => { const m = await media(); return m.level < 0.01 ? m : null; });
    assert.ok(muted.packetsIn > 50, "audio packets keep flowing, silent");
    await page.evaluate(() => { window.__call.track.enabled = true; });
    await waitFor("the clinician's audio again after unmute", async () => (await media())?.level > 0.05);

    await page.evaluate(() => window.__call.send("hangup", { callsid: window.__call.callsid }));
    await waitFor("the recorded outcome", async () => (await extensions("appt-mobile")).some((e) => e.parentCallSid === call.callsid && e.status === "completed"));
  } finally {
    await browser.close();
  }
});

test("faithfulness: the official @twilio/voice-sdk places, hears and ends a call against the simulator", async () => {
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
    const outcome = await page.evaluate(async ({ token, chunderw }) => {
      const withTimeout = (promise, ms, what) => Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms))]);
      const device = new Twilio.Device(token, { chunderw, publishEvents: false, disableAudioContextSounds: true, logLevel: "error" });
      const call = await withTimeout(device.connect({ params: { AppointmentId: "appt-mobile" } }), 20000, "connect");
      await withTimeout(new Promise((resolve) => call.on("accept", resolve)), 20000, "accept");
      const callSid = call.parameters.CallSid;
      await new Promise((r) => setTimeout(r, 1500));
      const disconnected = new Promise((resolve) => call.on("disconnect", resolve));
      call.disconnect();
      await withTimeout(disconnected, 10000, "disconnect");
      device.destroy();
      return { callSid, status: call.status() };
    }, { token: await twilioToken(), chunderw: `127.0.0.1:${tls.port}` });
    assert.match(outcome.callSid, /^CA[0-9a-f]{32}$/);
    assert.equal(outcome.status, "closed");
    const { frames } = await (await fetch(`${twilio.url}/__sim/frames`)).json();
    const sdkInvite = frames.find((f) => f.direction === "client" && f.frame?.type === "invite" && f.frame.payload?.twilio?.params === "AppointmentId=appt-mobile" && /^TJS[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(f.frame.payload.callsid));
    assert.ok(sdkInvite, "the SDK's invite reached the simulator");
    assert.match(sdkInvite.frame.payload.sdp, /m=audio \d+ UDP\/TLS\/RTP\/SAVPF 0 /, "PCMU first, as the SDK orders codecs");
    const media = (await (await fetch(`${twilio.url}/__sim/media`)).json()).media[outcome.callSid];
    assert.ok(media?.connected && media.packetsIn > 20, JSON.stringify(media));
    await waitFor("the SDK call's outcome", async () => (await extensions("appt-mobile")).some((e) => e.parentCallSid === outcome.callSid && e.status === "completed"));
  } finally {
    await browser.close();
    await tls.close();
  }
});

test("a patient calling back rings the registered clinician's browser with an offer; rejected, the call goes to the practice", async () => {
  const client = await signedIn(await twilioToken());
  await client.next("ready");
  client.send("register", { media: { audio: true } });
  await client.next("ready");
  const { calls } = await (await fetch(`${twilio.url}/__sim/calls`)).json();
  const poolNumber = calls.find((c) => c.to === "+447700900123" && c.callerId)?.callerId;
  assert.ok(poolNumber, "an earlier test called the patient from a pool number");
  const callBack = async () => (await (await fetch(`${twilio.url}/__sim/inbound`, {
    method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ from: "+447700900123", to: poolNumber }),
  })).json()).callSid;

  const answered = await callBack();
  const invite = await client.next("invite");
  assert.equal(invite.payload.parameters.From, "+447700900123");
  // The appointment, as Twilio hands a <Client>'s <Parameter>s to the SDK.
  assert.equal(new URLSearchParams(invite.payload.parameters.Params).get("AppointmentId"), "appt-mobile");
  assert.match(invite.payload.sdp, /m=audio/);
  client.send("answer", { callsid: invite.payload.callsid, sdp: "v=0\r\n" });
  await sleep(500);
  client.send("hangup", { callsid: invite.payload.callsid });
  const record = await waitFor("the inbound record", async () => {
    const response = await fetch(`${worker.url}/api/v1/appointments/appt-mobile/call`, { headers: { authorization: `Bearer ${await signIn("clinician-ada")}` } });
    const found = (await response.json()).calls.find((c) => c.parentCallSid === answered);
    return found?.status === "completed" ? found : null;
  });
  assert.equal(record.direction, "inbound");
  assert.equal(record.patientNumberMasked, "•••123");

  const rejected = await callBack();
  const second = await client.next("invite");
  client.send("reject", { callsid: second.payload.callsid });
  await waitFor("the practice leg", async () => {
    const { calls } = await (await fetch(`${twilio.url}/__sim/calls`)).json();
    return calls.some((c) => c.parentSid === rejected && c.to === "+442079460000");
  });
  client.socket.close();
});

test("REST: the account's numbers and TwiML Apps are listed, created and updated with basic auth", async () => {
  const auth = `Basic ${Buffer.from(`${TEST_SECRETS.TWILIO_API_KEY}:${TEST_SECRETS.TWILIO_API_SECRET}`).toString("base64")}`;
  const base = `${twilio.url}/2010-04-01/Accounts/${TEST_SECRETS.TWILIO_ACCOUNT_SID}`;
  const form = { authorization: auth, "content-type": "application/x-www-form-urlencoded" };
  assert.equal((await fetch(`${base}/IncomingPhoneNumbers.json`)).status, 401);
  assert.equal((await fetch(`${twilio.url}/2010-04-01/Accounts/AC99999999999999999999999999999999/IncomingPhoneNumbers.json`, { headers: { authorization: auth } })).status, 404);
  const numbers = (await (await fetch(`${base}/IncomingPhoneNumbers.json`, { headers: { authorization: auth } })).json()).incoming_phone_numbers;
  assert.deepEqual(numbers.map((n) => n.phone_number).sort(), ["+447700900001", "+447700900002"]);
  const inboundUrl = "https://calls.example.org/api/v1/twilio/webhooks/inbound";
  const updated = await (await fetch(`${base}/IncomingPhoneNumbers/${numbers[0].sid}.json`, {
    method: "POST", headers: form, body: new URLSearchParams({ VoiceUrl: inboundUrl, VoiceMethod: "POST" }).toString(),
  })).json();
  assert.equal(updated.voice_url, inboundUrl);

  const created = await fetch(`${base}/Applications.json`, {
    method: "POST", headers: form, body: new URLSearchParams({ FriendlyName: "Clinician calls", VoiceUrl: "https://calls.example.org/api/v1/twilio/webhooks/voice" }).toString(),
  });
  assert.equal(created.status, 201);
  const app = await created.json();
  assert.match(app.sid, /^AP[0-9a-f]{32}$/);
  const changed = await (await fetch(`${base}/Applications/${app.sid}.json`, {
    method: "POST", headers: form, body: "VoiceUrl=https%3A%2F%2Fcalls.example.org%2Fv2",
  })).json();
  assert.equal(changed.voice_url, "https://calls.example.org/v2");
  const listed = (await (await fetch(`${base}/Applications.json`, { headers: { authorization: auth } })).json()).applications;
  assert.deepEqual(listed.map((a) => a.friendly_name), ["Clinician calls"]);
});

test("fault: with ICE failing, the browser's connection fails instead of connecting", async () => {
  const { launchBrowser } = await import("../lib/browser.mjs");
  await fetch(`${twilio.url}/__sim/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ failIce: true }) });
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${twilio.url}/healthcheck`);
    const state = await page.evaluate(async ({ signalingUrl, token }) => {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const pc = new RTCPeerConnection();
      pc.addTrack(stream.getAudioTracks()[0], stream);
      await pc.setLocalDescription(await pc.createOffer());
      await new Promise((r) => (pc.iceGatheringState === "complete" ? r() : pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r())));
      const ws = new WebSocket(signalingUrl);
      await new Promise((r) => (ws.onopen = r));
      const frames = [];
      ws.onmessage = (e) => e.data !== "\n" && frames.push(JSON.parse(e.data));
      const next = (type) => new Promise((resolve) => { const c = () => { const i = frames.findIndex((f) => f.type === type); if (i >= 0) resolve(frames.splice(i, 1)[0]); else setTimeout(c, 20); }; c(); });
      ws.send(JSON.stringify({ type: "listen", version: "1.6", payload: { token } }));
      await next("ready");
      ws.send(JSON.stringify({ type: "invite", version: "1.6", payload: { callsid: "TJS-ice", sdp: pc.localDescription.sdp, twilio: { params: "AppointmentId=appt-two-numbers" } } }));
      // answerOnBridge: the SDP arrives as early media with ringing, as from Twilio.
      const ringing = await next("ringing");
      await pc.setRemoteDescription({ type: "answer", sdp: ringing.payload.sdp });
      const answer = await next("answer");
      const started = Date.now();
      await new Promise((r) => { const c = () => (["failed", "connected"].includes(pc.connectionState) || Date.now() - started > 45000 ? r() : setTimeout(c, 100)); c(); });
      ws.send(JSON.stringify({ type: "hangup", version: "1.6", payload: { callsid: answer.payload.callsid } }));
      return { state: pc.connectionState, seconds: (Date.now() - started) / 1000 };
    }, { signalingUrl: twilio.signalingUrl, token: await twilioToken() });
    assert.equal(state.state, "failed", JSON.stringify(state));
  } finally {
    await browser.close();
    await fetch(`${twilio.url}/__sim/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  }
});

test("Twilio's rules hold: a caller ID that is not an account number is refused (13214); a failing webhook ends the call", async () => {
  const admin = (method, number) => fetch(`${worker.url}/api/v1/admin/number-pool`, {
    method, headers: { authorization: `Bearer ${TEST_SECRETS.ADMIN_TOKEN}`, "content-type": "application/json" }, body: JSON.stringify({ number }),
  });
  // The pool offers only a number the Twilio account does not own.
  assert.equal((await admin("POST", "+447700900099")).status, 200);
  assert.equal((await admin("DELETE", "+447700900001")).status, 200);
  assert.equal((await admin("DELETE", "+447700900002")).status, 200);
  try {
    const client = await signedIn(await twilioToken());
    await client.next("ready");
    client.send("invite", { callsid: "TJS-13214", sdp: "v=0", twilio: { params: "AppointmentId=appt-two-numbers" } });
    const error = await client.next("error");
    assert.equal(error.payload.error.code, 13214);
    await client.next("hangup");
    client.socket.close();
  } finally {
    await admin("POST", "+447700900001");
    await admin("POST", "+447700900002");
    await admin("DELETE", "+447700900099");
  }

  await fetch(`${twilio.url}/__sim/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ failWebhook: true }) });
  try {
    const client = await signedIn(await twilioToken());
    await client.next("ready");
    client.send("invite", { callsid: "TJS-webhook-down", sdp: "v=0", twilio: { params: "AppointmentId=appt-two-numbers" } });
    const hangup = await client.next("hangup");
    assert.equal(hangup.payload.error.code, 11200);
    client.socket.close();
  } finally {
    await fetch(`${twilio.url}/__sim/faults`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
  }
});

test("an ICE restart (reinvite) is answered and media keeps flowing; user messages are acknowledged", async () => {
  const { launchBrowser } = await import("../lib/browser.mjs");
  const browser = await launchBrowser();
  try {
    const page = await (await browser.newContext()).newPage();
    await page.goto(`${twilio.url}/healthcheck`);
    const result = await page.evaluate(async ({ signalingUrl, token }) => {
      const gathered = (pc) => new Promise((r) => (pc.iceGatheringState === "complete" ? r() : pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && r())));
      const connected = (pc) => new Promise((r) => { const c = () => (pc.connectionState === "connected" ? r() : setTimeout(c, 50)); c(); });
      const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
      const pc = new RTCPeerConnection();
      pc.addTrack(stream.getAudioTracks()[0], stream);
      await pc.setLocalDescription(await pc.createOffer());
      await gathered(pc);
      const ws = new WebSocket(signalingUrl);
      await new Promise((r) => (ws.onopen = r));
      const frames = [];
      ws.onmessage = (e) => e.data !== "\n" && frames.push(JSON.parse(e.data));
      const next = (type) => new Promise((resolve) => { const c = () => { const i = frames.findIndex((f) => f.type === type); if (i >= 0) resolve(frames.splice(i, 1)[0]); else setTimeout(c, 20); }; c(); });
      const send = (type, payload) => ws.send(JSON.stringify({ type, version: "1.6", payload }));
      send("listen", { token });
      await next("ready");
      send("invite", { callsid: "TJS-restart", sdp: pc.localDescription.sdp, twilio: { params: "AppointmentId=appt-two-numbers" } });
      const ringing = await next("ringing");
      await pc.setRemoteDescription({ type: "answer", sdp: ringing.payload.sdp });
      const answer = await next("answer");
      const callsid = answer.payload.callsid;
      await connected(pc);
      // ICE restart, as the panel does on a network change.
      await pc.setLocalDescription(await pc.createOffer({ iceRestart: true }));
      await gathered(pc);
      send("reinvite", { callsid, sdp: pc.localDescription.sdp });
      const restarted = await next("answer");
      await pc.setRemoteDescription({ type: "answer", sdp: restarted.payload.sdp });
      await connected(pc);
      const packetsIn = async () => (await (await fetch("/__sim/media")).json()).media[callsid]?.packetsIn ?? 0;
      const atRestart = await packetsIn();
      send("message", { callsid, content: { note: "hello" }, contenttype: "application/json", messagetype: "user-defined-message", voiceeventsid: "ve-1" });
      const ack = await next("ack");
      // Audio arriving after the restart (polled: a busy machine may take a while).
      let afterRestart = atRestart;
      for (let i = 0; i < 100 && afterRestart < atRestart + 25; i++) {
        await new Promise((r) => setTimeout(r, 100));
        afterRestart = await packetsIn();
      }
      send("hangup", { callsid });
      return { callsid, ack: ack.payload, state: pc.connectionState, atRestart, afterRestart };
    }, { signalingUrl: twilio.signalingUrl, token: await twilioToken() });
    assert.equal(result.state, "connected");
    assert.deepEqual(result.ack, { callsid: result.callsid, acktype: "message", voiceeventsid: "ve-1" });
    const media = (await (await fetch(`${twilio.url}/__sim/media`)).json()).media[result.callsid];
    assert.equal(media.restarts, 1);
    assert.ok(result.afterRestart >= result.atRestart + 25, `packets after the restart: ${result.atRestart} → ${result.afterRestart}`);
  } finally {
    await browser.close();
  }
});
