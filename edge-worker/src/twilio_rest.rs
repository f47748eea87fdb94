//! Twilio's REST API, the calls the worker makes (basic auth with the API key and its secret):
//! ending a live call (`POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json`, `Status=completed`),
//! and, for a call gone quiet, reading a call leg (`GET …/Calls/{CA}.json`) and the legs under it
//! (`GET …/Calls.json?ParentCallSid={CA}`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use shared::call_state::TwilioLeg;
use shared::ids::CallSid;
use worker::{Fetch, Headers, Method, Request, RequestInit};

use crate::config::Config;

/// Why Twilio did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioRestError {
    /// Not configured, unreachable, or a 5xx/429: worth retrying.
    Retryable,
    /// A 4xx other than 404/429: retrying will not help.
    Rejected(u16),
}

/// A call leg Twilio returned, with its SID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedLeg {
    pub sid: String,
    pub leg: TwilioLeg,
}

/// Ends a call. A call Twilio no longer knows (404) counts as ended.
pub async fn end_call(config: &Config, call_sid: &CallSid) -> Result<(), TwilioRestError> {
    let (status, _) = send(
        config,
        Method::Post,
        &format!("Calls/{call_sid}.json"),
        Some("Status=completed"),
    )
    .await?;
    match status {
        200..=299 | 404 => Ok(()),
        other => Err(refusal(other)),
    }
}

/// One call leg as Twilio describes it; `None` when Twilio does not know it (404) or describes
/// it in a way this worker cannot read.
pub async fn fetch_call(
    config: &Config,
    call_sid: &CallSid,
) -> Result<Option<FetchedLeg>, TwilioRestError> {
    let (status, body) = send(config, Method::Get, &format!("Calls/{call_sid}.json"), None).await?;
    match status {
        200 => Ok(serde_json::from_str::<Value>(&body)
            .ok()
            .as_ref()
            .and_then(leg_of)),
        404 => Ok(None),
        other => Err(refusal(other)),
    }
}

/// The legs Twilio placed under a call (the `<Dial>`ed patient's), first page.
pub async fn child_calls(
    config: &Config,
    parent_sid: &CallSid,
) -> Result<Vec<FetchedLeg>, TwilioRestError> {
    let query = shared::form::encode([("ParentCallSid", parent_sid.as_str())]);
    let (status, body) = send(config, Method::Get, &format!("Calls.json?{query}"), None).await?;
    match status {
        200 => Ok(serde_json::from_str::<Value>(&body)
            .ok()
            .as_ref()
            .and_then(|page| page.get("calls"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(leg_of)
            .collect()),
        other => Err(refusal(other)),
    }
}

/// A Call resource's `sid`, `status`, `duration` and `end_time`.
fn leg_of(call: &Value) -> Option<FetchedLeg> {
    let text = |name: &str| call.get(name).and_then(Value::as_str);
    Some(FetchedLeg {
        sid: text("sid")?.to_owned(),
        leg: TwilioLeg::parse(text("status")?, text("duration"), text("end_time"))?,
    })
}

fn refusal(status: u16) -> TwilioRestError {
    match status {
        429 | 500..=599 => TwilioRestError::Retryable,
        other => TwilioRestError::Rejected(other),
    }
}

/// How long one request to Twilio's REST API may take, answer and body.
const TWILIO_REQUEST_TIMEOUT_MS: u32 = 10_000;

/// Sends one request under `/2010-04-01/Accounts/{AC}/`; the status and body text.
async fn send(
    config: &Config,
    method: Method,
    path: &str,
    form: Option<&str>,
) -> Result<(u16, String), TwilioRestError> {
    let base = config
        .twilio_api_base_url()
        .map_err(|_| TwilioRestError::Retryable)?;
    let account = config
        .twilio_account_sid
        .require("TWILIO_ACCOUNT_SID")
        .map_err(|_| TwilioRestError::Retryable)?;
    let key = config
        .twilio_api_key
        .require("TWILIO_API_KEY")
        .map_err(|_| TwilioRestError::Retryable)?;
    let secret = config
        .twilio_api_secret
        .require("TWILIO_API_SECRET")
        .map_err(|_| TwilioRestError::Retryable)?;
    let url = format!("{}/2010-04-01/Accounts/{account}/{path}", base.as_str());
    let headers = Headers::new();
    let credentials = STANDARD.encode(format!("{key}:{}", secret.expose()));
    let set = |name: &str, value: &str| {
        headers
            .set(name, value)
            .map_err(|_| TwilioRestError::Retryable)
    };
    set("authorization", &format!("Basic {credentials}"))?;
    if form.is_some() {
        set("content-type", "application/x-www-form-urlencoded")?;
    }
    let mut init = RequestInit::new();
    init.with_method(method)
        .with_headers(headers.clone())
        .with_body(form.map(Into::into));
    let request = Request::new_with_init(&url, &init).map_err(|_| TwilioRestError::Retryable)?;
    // A Twilio that hangs is asked again later rather than holding the ledger's alarm (its
    // hang-ups, releases and checks) or a clinician's End until the platform gives up.
    let deadline = worker::AbortSignal::from(web_sys::AbortSignal::timeout_with_u32(
        TWILIO_REQUEST_TIMEOUT_MS,
    ));
    let mut response = Fetch::Request(request)
        .send_with_signal(&deadline)
        .await
        .map_err(|_| TwilioRestError::Retryable)?;
    let status = response.status_code();
    let body = if status == 200 {
        response
            .text()
            .await
            .map_err(|_| TwilioRestError::Retryable)?
    } else {
        String::new()
    };
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use shared::call_state::CallStatus;

    #[test]
    fn a_call_resource_reads_as_a_leg_and_statuses_map_to_retry_or_refusal() {
        let call = json!({
            "sid": "CA00000000000000000000000000000001", "status": "completed", "duration": "42",
            "start_time": "Sun, 06 Dec 2026 22:39:25 +0000", "end_time": "Sun, 06 Dec 2026 22:40:07 +0000",
        });
        let fetched = leg_of(&call).expect("a leg");
        assert_eq!(fetched.sid, "CA00000000000000000000000000000001");
        assert_eq!(fetched.leg.status, CallStatus::Completed);
        assert_eq!(fetched.leg.duration_seconds, Some(42));
        assert_eq!(
            fetched.leg.ended_at_unix,
            shared::time::parse_rfc2822("Sun, 06 Dec 2026 22:40:07 +0000")
        );
        let live =
            json!({"sid": "CA2", "status": "in-progress", "duration": null, "end_time": null});
        assert_eq!(leg_of(&live).map(|l| l.leg.duration_seconds), Some(None));
        assert_eq!(leg_of(&json!({"sid": "CA3", "status": "unheard-of"})), None);
        assert_eq!(leg_of(&json!({"status": "completed"})), None);
        assert_eq!(refusal(429), TwilioRestError::Retryable);
        assert_eq!(refusal(503), TwilioRestError::Retryable);
        assert_eq!(refusal(401), TwilioRestError::Rejected(401));
    }
}
