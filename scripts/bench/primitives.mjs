//! twilio-node's side of the primitive benchmark: access-token minting and webhook-signature
//! verification, same inputs as shared/examples/token_mint_bench.rs. Prints JSON (median of rounds).
//! Usage: node scripts/bench/primitives.mjs [--rounds 5] [--seconds 0.5]
import twilio from "twilio";

const args = process.argv.slice(2);
const option = (name, fallback) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : fallback; };
const ROUNDS = Number(option("rounds", "5"));
const SECONDS = Number(option("seconds", "0.5"));

const { AccessToken } = twilio.jwt;
const { VoiceGrant } = AccessToken;
let sink = 0;
let now = 1_800_000_000;

/** The quickstart's token: an AccessToken with a VoiceGrant (outgoing app, incoming allowed). */
function mintOnce() {
  now += 1;
  const token = new AccessToken("AC00000000000000000000000000000001", "SK00000000000000000000000000000001", "fake-twilio-api-secret", { identity: "clinician-ada", ttl: 3600, nbf: now });
  token.addGrant(new VoiceGrant({ outgoingApplicationSid: "AP00000000000000000000000000000001", incomingAllow: true }));
  sink += token.toJwt().length;
}

const AUTH_TOKEN = "fake-twilio-auth-token";
const URL_SIGNED = "https://calls.example.org/api/v1/twilio/webhooks/call-status?appointment=appt-mobile";
const PARAMS = {
  CallSid: "CA00000000000000000000000000000002", ParentCallSid: "CA00000000000000000000000000000001",
  CallStatus: "completed", CallDuration: "42", SequenceNumber: "3", Timestamp: "Wed, 25 Nov 2026 06:08:02 +0000",
  To: "+447700900123", From: "+447700900001",
};
const SIGNATURE = twilio.getExpectedTwilioSignature(AUTH_TOKEN, URL_SIGNED, PARAMS);
function verifyOnce() {
  if (twilio.validateRequest(AUTH_TOKEN, SIGNATURE, URL_SIGNED, PARAMS)) sink += 1;
}

function measure(op) {
  let batch = 64;
  for (;;) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) op();
    const ns = Number(process.hrtime.bigint() - start);
    if (ns >= (SECONDS * 1e9) / 4) { batch = Math.max(1, Math.round((batch * SECONDS * 1e9) / ns)); break; }
    batch *= 4;
  }
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < batch; i++) op();
    rounds.push(Number(process.hrtime.bigint() - start) / batch);
  }
  const median = [...rounds].sort((a, b) => a - b)[Math.floor(rounds.length / 2)];
  return { nsPerOp: median, opsPerSec: 1e9 / median, roundsNsPerOp: rounds };
}

if (!twilio.validateRequest(AUTH_TOKEN, SIGNATURE, URL_SIGNED, PARAMS)) throw new Error("the benchmark's own signature does not verify");
const mint = measure(mintOnce);
const verify = measure(verifyOnce);
console.log(JSON.stringify({ mint, verify, version: (await import("twilio/package.json", { with: { type: "json" } })).default.version, sink: sink > 0 }));
