//! Test helpers that act as Twilio: signed webhook requests (signatures by npm `twilio`, the
//! oracle), CallSids, RFC 2822 timestamps, and a stand-in for Twilio's REST "end call" endpoint.
import { createServer } from "node:http";
import { randomBytes } from "node:crypto";
import twilio from "twilio";
import { TEST_SECRETS } from "../../sim/stack.mjs";

export const newCallSid = () => `CA${randomBytes(16).toString("hex")}`;
export const rfc2822 = (date = new Date()) => date.toUTCString();

/** POSTs form `params` to `url` signed as Twilio would (or with `signature` when given). */
export async function signedPost(url, params, { signature, authToken = TEST_SECRETS.TWILIO_AUTH_TOKEN } = {}) {
  const body = new URLSearchParams(params).toString();
  return fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/x-www-form-urlencoded",
      "x-twilio-signature": signature ?? twilio.getExpectedTwilioSignature(authToken, url, params),
    },
    body,
  });
}

/**
 * A stand-in for `POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json`: records each request and
 * answers 200, or 503 while `failing` is set.
 */
export async function startFakeTwilioRest() {
  const requests = [];
  const state = { failing: false };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (chunk) => (body += chunk));
    req.on("end", () => {
      requests.push({ method: req.method, path: req.url, authorization: req.headers.authorization, body, failed: state.failing });
      if (state.failing) {
        res.writeHead(503, { "content-type": "application/json" }).end('{"message":"unavailable"}');
      } else {
        res.writeHead(200, { "content-type": "application/json" }).end('{"status":"completed"}');
      }
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    state,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
