"""twilio-python's side of the primitive benchmark: access-token minting and webhook-signature
verification, same inputs as shared/examples/token_mint_bench.rs. Prints JSON (median of rounds).
Usage: $BENCH_VENV/bin/python scripts/bench/primitives.py [--rounds 5] [--seconds 0.5]"""
import argparse
import warnings
import json
import time
from importlib.metadata import version

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant
from twilio.request_validator import RequestValidator

parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--seconds", type=float, default=0.5)
args = parser.parse_args()
# PyJWT warns that the fake 22-byte API secret is short; the real ones are 32 bytes. Not a figure.
warnings.simplefilter("ignore")

state = {"now": 1_800_000_000, "sink": 0}


def mint_once():
    """The quickstart's token: an AccessToken with a VoiceGrant (outgoing app, incoming allowed)."""
    state["now"] += 1
    token = AccessToken("AC00000000000000000000000000000001", "SK00000000000000000000000000000001",
                        "fake-twilio-api-secret", identity="clinician-ada", ttl=3600, nbf=state["now"])
    token.add_grant(VoiceGrant(outgoing_application_sid="AP00000000000000000000000000000001", incoming_allow=True))
    state["sink"] += len(token.to_jwt())


AUTH_TOKEN = "fake-twilio-auth-token"
URL = "https://calls.example.org/api/v1/twilio/webhooks/call-status?appointment=appt-mobile"
PARAMS = {
    "CallSid": "CA00000000000000000000000000000002", "ParentCallSid": "CA00000000000000000000000000000001",
    "CallStatus": "completed", "CallDuration": "42", "SequenceNumber": "3",
    "Timestamp": "Wed, 25 Nov 2026 06:08:02 +0000", "To": "+447700900123", "From": "+447700900001",
}
VALIDATOR = RequestValidator(AUTH_TOKEN)
SIGNATURE = VALIDATOR.compute_signature(URL, PARAMS)


def verify_once():
    if VALIDATOR.validate(URL, PARAMS, SIGNATURE):
        state["sink"] += 1


def measure(op):
    batch = 16
    while True:
        start = time.perf_counter_ns()
        for _ in range(batch):
            op()
        ns = time.perf_counter_ns() - start
        if ns >= args.seconds * 1e9 / 4:
            batch = max(1, round(batch * args.seconds * 1e9 / ns))
            break
        batch *= 4
    rounds = []
    for _ in range(args.rounds):
        start = time.perf_counter_ns()
        for _ in range(batch):
            op()
        rounds.append((time.perf_counter_ns() - start) / batch)
    median = sorted(rounds)[len(rounds) // 2]
    return {"nsPerOp": median, "opsPerSec": 1e9 / median, "roundsNsPerOp": rounds}


if not VALIDATOR.validate(URL, PARAMS, SIGNATURE):
    raise SystemExit("the benchmark's own signature does not verify")
print(json.dumps({"mint": measure(mint_once), "verify": measure(verify_once), "version": version("twilio"),
                  "python": ".".join(map(str, __import__("sys").version_info[:3])), "sink": state["sink"] > 0}))
