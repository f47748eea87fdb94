//! Prints the native cost of minting one Twilio access token and of verifying one webhook
//! signature, as figures, not a test. Same inputs as scripts/bench/primitives.{mjs,py}.
//!
//! `cargo run --release -p shared --example token_mint_bench` prints a table;
//! `… -- --json --rounds 5 --seconds 0.5` prints `{"mint": {...}, "verify": {...},
//! "verifyOneShot": {...}}` (median of the rounds) for scripts/bench.mjs; `… -- --only mint
//! --iterations N` runs exactly N operations and prints nothing (for instruction counts under
//! `valgrind --tool=callgrind`). "verify" checks with a verifier keyed once, as the worker keeps
//! one per isolate; "verifyOneShot" keys it for every request.

use std::hint::black_box;
use std::time::{Duration, Instant};

use shared::access_token::{mint, TokenRequest, TokenTtl};
use shared::ids::{AccountSid, ApiKeySid, Identity, TwimlAppSid};
use shared::webhook_signature::{compute, verify_form, WebhookVerifier};

/// Runs `op` in rounds of about `seconds` each; returns each round's nanoseconds per operation.
fn measure(rounds: u32, seconds: f64, op: &mut dyn FnMut()) -> Vec<f64> {
    // Calibrate: how many operations fill one round.
    let mut batch: u64 = 64;
    loop {
        let start = Instant::now();
        for _ in 0..batch {
            op();
        }
        let elapsed = start.elapsed();
        if elapsed >= Duration::from_secs_f64(seconds / 4.0) || batch > 1 << 30 {
            batch = ((batch as f64) * seconds / elapsed.as_secs_f64().max(1e-9)).max(1.0) as u64;
            break;
        }
        batch *= 4;
    }
    (0..rounds)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..batch {
                op();
            }
            start.elapsed().as_nanos() as f64 / batch as f64
        })
        .collect()
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn option<'a>(args: &'a [String], name: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(String::as_str)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let json = args.iter().any(|a| a == "--json");
    let rounds: u32 = option(&args, "--rounds").unwrap_or("5").parse()?;
    let seconds: f64 = option(&args, "--seconds").unwrap_or("0.5").parse()?;

    let account = AccountSid::parse("AC00000000000000000000000000000001")?;
    let key = ApiKeySid::parse("SK00000000000000000000000000000001")?;
    let app = TwimlAppSid::parse("AP00000000000000000000000000000001")?;
    let identity = Identity::parse("clinician-ada")?;
    let mut now = 1_800_000_000;
    let mut mint_once = || {
        now += 1;
        let token = mint(&TokenRequest {
            account_sid: &account,
            api_key: &key,
            api_secret: "fake-twilio-api-secret",
            twiml_app_sid: &app,
            identity: &identity,
            ttl: TokenTtl::default(),
            now_unix: now,
        });
        black_box(token.ok());
    };

    let url =
        "https://calls.example.org/api/v1/twilio/webhooks/call-status?appointment=appt-mobile";
    let params: Vec<(String, String)> = [
        ("CallSid", "CA00000000000000000000000000000002"),
        ("ParentCallSid", "CA00000000000000000000000000000001"),
        ("CallStatus", "completed"),
        ("CallDuration", "42"),
        ("SequenceNumber", "3"),
        ("Timestamp", "Wed, 25 Nov 2026 06:08:02 +0000"),
        ("To", "+447700900123"),
        ("From", "+447700900001"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let signature = compute("fake-twilio-auth-token", url, &params);
    // As the worker does: one verifier per isolate, keyed once with the auth token and the fixed
    // starts of its webhook URLs, checking every request.
    let verifier = WebhookVerifier::with_url_prefixes(
        &["fake-twilio-auth-token"],
        &["https://calls.example.org/api/v1/twilio/webhooks/call-status?appointment="],
    );
    let mut verify_once = || {
        let ok = verifier.verify_form(url, &params, Some(&signature)).is_ok();
        black_box(ok);
    };
    // Keyed for every request, as twilio-node's validateRequest is.
    let mut verify_one_shot = || {
        let ok = verify_form(&["fake-twilio-auth-token"], url, &params, Some(&signature)).is_ok();
        black_box(ok);
    };

    if let Some(only) = option(&args, "--only") {
        let iterations: u64 = option(&args, "--iterations").unwrap_or("1000").parse()?;
        let op: &mut dyn FnMut() = match only {
            "mint" => &mut mint_once,
            "verify" => &mut verify_once,
            "verify-one-shot" => &mut verify_one_shot,
            "none" => return Ok(()),
            other => {
                return Err(format!("--only mint|verify|verify-one-shot|none, not {other}").into())
            }
        };
        for _ in 0..iterations {
            op();
        }
        return Ok(());
    }

    if verify_form(&["fake-twilio-auth-token"], url, &params, Some(&signature)).is_err() {
        return Err("the benchmark's own signature does not verify".into());
    }
    let mint_ns = measure(rounds, seconds, &mut mint_once);
    let verify_ns = measure(rounds, seconds, &mut verify_once);
    let verify_one_shot_ns = measure(rounds, seconds, &mut verify_one_shot);
    let report = |ns: &[f64]| serde_json::json!({"nsPerOp": median(ns), "opsPerSec": 1e9 / median(ns), "roundsNsPerOp": ns});
    if json {
        println!(
            "{}",
            serde_json::json!({"mint": report(&mint_ns), "verify": report(&verify_ns), "verifyOneShot": report(&verify_one_shot_ns)})
        );
    } else {
        for (label, ns) in [
            ("access token mint (HS256)", &mint_ns),
            ("webhook signature verify (8 params)", &verify_ns),
            ("  keyed for this request only", &verify_one_shot_ns),
        ] {
            let per_op = median(ns);
            println!(
                "{label:<36} {per_op:>9.0} ns/op  {:>10.0} ops/s  (median of {rounds} rounds)",
                1e9 / per_op
            );
        }
    }
    Ok(())
}
