//! Generates tests/oracles/access-tokens.json: Twilio access tokens minted by npm `twilio` (the
//! oracle) for fixed clocks. `--check` regenerates and fails if the committed file differs.
//! shared/src/access_token.rs decodes each and compares its header and claims with ours.
import twilio from "twilio";
import { writeOrCheck } from "./corpus.mjs";

const out = new URL("./access-tokens.json", import.meta.url);
const { AccessToken } = twilio.jwt;
const { VoiceGrant } = AccessToken;
const account = "AC00000000000000000000000000000001";
const apiKey = "SK00000000000000000000000000000001";
const secret = "fake-twilio-api-secret";
const app = "AP00000000000000000000000000000001";
const inputs = [
  { identity: "clinician-ada", ttl: 3600, now: 1_800_000_000 },
  { identity: "practitioner-0b5e6c", ttl: 60, now: 1_600_000_000 },
  { identity: "a", ttl: 86_400, now: 1_999_999_999 },
];
const realNow = Date.now;
const cases = inputs.map(({ identity, ttl, now }) => {
  // jsonwebtoken and AccessToken read the clock: pinned so the file is reproducible.
  Date.now = () => now * 1000;
  try {
    const token = new AccessToken(account, apiKey, secret, { identity, ttl, nbf: now });
    token.addGrant(new VoiceGrant({ outgoingApplicationSid: app, incomingAllow: true }));
    return { accountSid: account, apiKeySid: apiKey, apiSecret: secret, twimlAppSid: app, identity, ttl, now, jwt: token.toJwt() };
  } finally {
    Date.now = realNow;
  }
});

writeOrCheck(out, cases, { what: "access token", agreement: "mints" });
