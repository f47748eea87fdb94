//! Twilio's REST API, the one call the worker makes: ending a live call
//! (`POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json`, `Status=completed`, basic auth with the
//! API key and its secret).

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use shared::ids::CallSid;
use worker::{Fetch, Headers, Method, Request, RequestInit};

use crate::config::Config;

/// Why Twilio did not end the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TwilioRestError {
    /// Not configured, unreachable, or a 5xx/429: worth retrying.
    Retryable,
    /// A 4xx other than 404/429: retrying will not help.
    Rejected(u16),
}

/// Ends a call. A call Twilio no longer knows (404) counts as ended.
pub async fn end_call(config: &Config, call_sid: &CallSid) -> Result<(), TwilioRestError> {
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
    let url = format!(
        "{}/2010-04-01/Accounts/{account}/Calls/{call_sid}.json",
        base.as_str()
    );
    let headers = Headers::new();
    let credentials = STANDARD.encode(format!("{key}:{}", secret.expose()));
    let set = |name: &str, value: &str| {
        headers
            .set(name, value)
            .map_err(|_| TwilioRestError::Retryable)
    };
    set("authorization", &format!("Basic {credentials}"))?;
    set("content-type", "application/x-www-form-urlencoded")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers.clone())
        .with_body(Some("Status=completed".into()));
    let request = Request::new_with_init(&url, &init).map_err(|_| TwilioRestError::Retryable)?;
    let response = Fetch::Request(request)
        .send()
        .await
        .map_err(|_| TwilioRestError::Retryable)?;
    match response.status_code() {
        200..=299 | 404 => Ok(()),
        429 | 500..=599 => Err(TwilioRestError::Retryable),
        other => Err(TwilioRestError::Rejected(other)),
    }
}
