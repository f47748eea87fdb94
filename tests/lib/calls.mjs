//! Test helpers that play Twilio's side of a call against the worker (the voice webhook, a leg's
//! status callbacks in order) and read the outcome back from sim/medplum's Appointment extensions.
import assert from "node:assert/strict";
import { TEST_SECRETS } from "../../sim/stack.mjs";
import { signedPost, newCallSid, rfc2822 } from "./twilio.mjs";
import { waitFor as poll } from "./wait.mjs";

export const EXTENSION_URL = "https://clinician-calls.example/fhir/StructureDefinition/twilio-voice-call";
export const POOL = ["+447700900001", "+447700900002"];

/**
 * Helpers bound to a stack. `workerUrl()` and `medplumUrl()` are read at each call, so a test may
 * restart either. `medplumUrl` is where the test reads resources (sim/medplum itself).
 */
export function callHelpers({ workerUrl, medplumUrl }) {
  const webhook = (path) => `${workerUrl()}/api/v1/twilio/webhooks/${path}`;

  async function voice(appointment, { parentSid = newCallSid(), from = "client:clinician-ada", extra = {} } = {}) {
    const response = await signedPost(webhook("voice"), {
      AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, ApiVersion: "2010-04-01", CallSid: parentSid,
      CallStatus: "ringing", Direction: "inbound", From: from, To: "", AppointmentId: appointment, ...extra,
    });
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type"), /text\/xml/);
    return { parentSid, twiml: await response.text() };
  }

  function statusCallback(appointment, { parentSid, childSid, status, sequence, duration, at = new Date() }) {
    const params = {
      AccountSid: TEST_SECRETS.TWILIO_ACCOUNT_SID, CallSid: childSid, ParentCallSid: parentSid, CallStatus: status,
      SequenceNumber: String(sequence), Timestamp: rfc2822(at), CallbackSource: "call-progress-events",
      Direction: "outbound-dial", From: POOL[0], To: "+447700900123",
    };
    if (duration !== undefined) params.CallDuration = String(duration);
    return signedPost(`${webhook("call-status")}?appointment=${appointment}`, params);
  }

  /** Sends a lifecycle's callbacks in order (or as given) and checks each is accepted. */
  async function sendAll(appointment, callbacks) {
    for (const callback of callbacks) {
      const response = await statusCallback(appointment, callback);
      assert.equal(response.status, 200, await response.text());
    }
  }

  async function appointment(id) {
    return (await fetch(`${medplumUrl()}/__sim/resource/Appointment/${id}`)).json();
  }

  async function waitForExtension(appointmentId, predicate, what, timeoutMs = 30_000) {
    return poll(what, async () => {
      const found = callExtensions(await appointment(appointmentId)).filter(predicate);
      return found.length ? found : null;
    }, timeoutMs, 250);
  }

  return { webhook, voice, statusCallback, sendAll, appointment, waitForExtension };
}

/** A leg's callbacks: initiated, ringing, then in-progress + completed or the failure outcome. */
export function lifecycle(parentSid, childSid, outcome, duration = 42, startedAt = Date.now() - 120_000) {
  const at = (s) => new Date(startedAt + s * 1000);
  const base = { parentSid, childSid };
  const events = [
    { ...base, status: "initiated", sequence: 0, at: at(0) },
    { ...base, status: "ringing", sequence: 1, at: at(1) },
  ];
  if (outcome === "completed") {
    events.push({ ...base, status: "in-progress", sequence: 2, at: at(5) });
    events.push({ ...base, status: "completed", sequence: 3, duration, at: at(5 + duration) });
  } else {
    events.push({ ...base, status: outcome, sequence: 2, at: at(20) });
  }
  return events;
}

/** The call extensions of an Appointment as flat objects. */
export function callExtensions(resource) {
  return (resource.extension ?? []).filter((e) => e.url === EXTENSION_URL).map((e) =>
    Object.fromEntries(e.extension.map((p) => [p.url, p.valueString ?? p.valueCode ?? p.valueInteger ?? p.valueDateTime ?? p.valueReference?.reference])),
  );
}
