//! Prints the native cost of minting one Twilio access token (and of verifying one webhook
//! signature), as a figure, not a test: `cargo run --release -p shared --example token_mint_bench`.

use std::hint::black_box;
use std::time::Instant;

use shared::access_token::{mint, TokenRequest, TokenTtl};
use shared::ids::{AccountSid, ApiKeySid, Identity, TwimlAppSid};
use shared::webhook_signature::{compute, verify_form};

fn measure(label: &str, iterations: u32, mut op: impl FnMut()) {
    for _ in 0..iterations / 10 {
        op(); // warm-up
    }
    let start = Instant::now();
    for _ in 0..iterations {
        op();
    }
    let elapsed = start.elapsed();
    let per_op_ns = elapsed.as_nanos() as f64 / f64::from(iterations);
    println!(
        "{label:<34} {per_op_ns:>9.0} ns/op  {:>10.0} ops/s  ({iterations} iterations)",
        1e9 / per_op_ns
    );
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let account = AccountSid::parse("AC00000000000000000000000000000001")?;
    let key = ApiKeySid::parse("SK00000000000000000000000000000001")?;
    let app = TwimlAppSid::parse("AP00000000000000000000000000000001")?;
    let identity = Identity::parse("clinician-ada")?;
    let mut now = 1_800_000_000;
    measure("access token mint (HS256)", 200_000, || {
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
    });

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
    measure("webhook signature verify (8 params)", 200_000, || {
        black_box(verify_form(&["fake-twilio-auth-token"], url, &params, Some(&signature)).is_ok());
    });
    Ok(())
}
