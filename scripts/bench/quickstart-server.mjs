//! The baseline for the HTTP benchmark: what a team would write instead of our worker, following
//! Twilio's Voice JavaScript SDK quickstart (twilio/voice-javascript-sdk-quickstart-node) with npm
//! `twilio`: POST /api/v1/twilio/access-token mints an AccessToken + VoiceGrant for a fixed
//! identity (the quickstart checks no sign-in); POST /api/v1/twilio/webhooks/voice checks the
//! X-Twilio-Signature with twilio.validateRequest and answers <Dial callerId><Number>To</Number>.
//! node:http instead of the quickstart's Express (only makes the baseline faster); no state, no I/O.
//! Usage: node scripts/bench/quickstart-server.mjs --port N   (prints "listening" when ready)
import { createServer } from "node:http";
import twilio from "twilio";
import { TEST_SECRETS } from "../../sim/stack.mjs";

const args = process.argv.slice(2);
const port = Number(args[args.indexOf("--port") + 1]);
const base = `http://127.0.0.1:${port}`;
const CALLER_ID = "+447700900001";
const { AccessToken } = twilio.jwt;
const { VoiceGrant } = AccessToken;

function token() {
  const accessToken = new AccessToken(TEST_SECRETS.TWILIO_ACCOUNT_SID, TEST_SECRETS.TWILIO_API_KEY, TEST_SECRETS.TWILIO_API_SECRET, { identity: "clinician-ada", ttl: 3600 });
  accessToken.addGrant(new VoiceGrant({ outgoingApplicationSid: TEST_SECRETS.TWILIO_TWIML_APP_SID, incomingAllow: true }));
  return JSON.stringify({ identity: "clinician-ada", token: accessToken.toJwt() });
}

function voice(params) {
  const response = new twilio.twiml.VoiceResponse();
  if (params.To) response.dial({ callerId: CALLER_ID }).number(params.To);
  else response.say("Thanks for calling!");
  return response.toString();
}

createServer((req, res) => {
  let body = "";
  req.setEncoding("utf8");
  req.on("data", (chunk) => (body += chunk));
  req.on("end", () => {
    if (req.method === "POST" && req.url === "/api/v1/twilio/access-token") {
      res.writeHead(200, { "content-type": "application/json" }).end(token());
    } else if (req.method === "POST" && req.url === "/api/v1/twilio/webhooks/voice") {
      const params = Object.fromEntries(new URLSearchParams(body));
      if (!twilio.validateRequest(TEST_SECRETS.TWILIO_AUTH_TOKEN, req.headers["x-twilio-signature"] ?? "", `${base}${req.url}`, params)) {
        res.writeHead(403, { "content-type": "text/plain" }).end("invalid signature");
        return;
      }
      res.writeHead(200, { "content-type": "text/xml" }).end(voice(params));
    } else {
      res.writeHead(404).end();
    }
  });
}).listen(port, "127.0.0.1", () => console.log("listening"));
