//! Generates tests/oracles/webhook-signatures.json: X-Twilio-Signature cases computed by npm
//! `twilio` (the oracle). `--check` regenerates and fails if the committed file differs.
import { createHash } from "node:crypto";
import twilio from "twilio";
import { writeOrCheck } from "./corpus.mjs";

const out = new URL("./webhook-signatures.json", import.meta.url);
const token = "fake-twilio-auth-token";
const base = [
  ["https://calls.example.org/api/v1/twilio/webhooks/voice", {}],
  ["https://calls.example.org/api/v1/twilio/webhooks/call-status?appointment=appt-mobile", {}],
  ["http://127.0.0.1:8787/api/v1/twilio/webhooks/voice", {}],
  ["https://calls.example.org:443/api/v1/twilio/webhooks/voice?a=1&b=%20x", {}],
];
const bodies = [
  { CallSid: "CA00000000000000000000000000000001", From: "client:clinician-ada", To: "", Direction: "inbound", AppointmentId: "appt-mobile" },
  { CallSid: "CA00000000000000000000000000000002", CallStatus: "completed", CallDuration: "42", SequenceNumber: "3", To: "+447700900123", From: "+447700900001" },
  { Body: "unicode é ✓ and spaces", Empty: "", Plus: "a+b", Amp: "x&y=z" },
  {},
];
const cases = [];
for (const [url] of base) {
  for (const params of bodies) {
    cases.push({ authToken: token, url, params: Object.entries(params), signature: twilio.getExpectedTwilioSignature(token, url, params) });
  }
}
// A JSON-bodied webhook: the URL carries bodySHA256 and is signed alone.
const jsonBody = JSON.stringify({ CallSid: "CA00000000000000000000000000000003", status: "completed" });
const jsonUrl = `https://calls.example.org/api/v1/twilio/webhooks/call-status?bodySHA256=${createHash("sha256").update(jsonBody).digest("hex")}`;
cases.push({ authToken: token, url: jsonUrl, jsonBody, signature: twilio.getExpectedTwilioSignature(token, jsonUrl, {}), validBody: twilio.validateRequestWithBody(token, twilio.getExpectedTwilioSignature(token, jsonUrl, {}), jsonUrl, jsonBody) });
// REFERENCE.md's inputs.
const reference = { CallSid: "CA1234567890ABCDE", Caller: "+12349013030", Digits: "1234", From: "+12349013030", To: "+18005551212" };
const referenceUrl = "https://mycompany.com/myapp.php?foo=1&bar=2";
cases.push({ authToken: "12345", url: referenceUrl, params: Object.entries(reference), signature: twilio.getExpectedTwilioSignature("12345", referenceUrl, reference) });

writeOrCheck(out, cases, { what: "webhook signature", agreement: "computes" });
