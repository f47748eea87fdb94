//! Twilio's callbacks about a placed call: `POST /api/v1/twilio/webhooks/call-status` (child-leg
//! status callbacks) and `POST /api/v1/twilio/webhooks/dial-complete` (the Dial action). Both are
//! verified, turned into status events and stored in the appointment's ledger before answering;
//! if the ledger cannot store them the answer is 503, so Twilio retries (`#rp=all`).

use serde_json::json;
use shared::call_state::{CallStatus, StatusEvent};
use shared::ids::AppointmentId;
use shared::time::parse_rfc2822;
use shared::twiml::{Response, Verb};
use worker::{Env, Method, Request};

use crate::config::Config;
use crate::durable::call;
use crate::error::AppError;
use crate::reply::Reply;
use crate::twilio_webhook::{verified_form, TwilioForm};

/// The `appointment` query parameter the TwiML put on the callback URL: `Ok(None)` when the URL
/// has none (a number-level status callback, set on each pool number by `scripts/twilio-setup`),
/// an error when it is present but malformed.
fn appointment_of(req: &Request) -> Result<Option<AppointmentId>, AppError> {
    let url = req.inner().url();
    let pairs = shared::form::parse(shared::form::query_of(&url))
        .map_err(|_| AppError::BadRequest("the callback URL's query is malformed"))?;
    match pairs.into_iter().find(|(k, _)| k == "appointment") {
        None => Ok(None),
        Some((_, v)) => AppointmentId::parse(&v)
            .map(Some)
            .map_err(|_| AppError::BadRequest("the callback URL's appointment id is malformed")),
    }
}

/// `"inbound"` when the callback URL says its call is a call-back (`direction=inbound`, signed
/// with the rest of the URL): the ledger then files a callback that arrives before (or without)
/// the call's own record as inbound.
fn direction_of(req: &Request) -> Option<&'static str> {
    let url = req.inner().url();
    let pairs = shared::form::parse(shared::form::query_of(&url)).ok()?;
    pairs
        .iter()
        .any(|(k, v)| k == "direction" && v == "inbound")
        .then_some("inbound")
}

/// As [`appointment_of`], for the Dial action, whose URL always names the appointment.
fn required_appointment(req: &Request) -> Result<AppointmentId, AppError> {
    appointment_of(req)?.ok_or(AppError::BadRequest(
        "the callback URL names no appointment",
    ))
}

fn number<T: std::str::FromStr>(form: &TwilioForm, key: &str) -> Option<T> {
    form.get(key).and_then(|v| v.parse().ok())
}

async fn store(
    env: &Env,
    config: &Config,
    appointment: &AppointmentId,
    body: serde_json::Value,
) -> Result<(), AppError> {
    match call(
        env,
        "CALL_LEDGER",
        appointment.as_str(),
        Method::Post,
        "/callback",
        Some(&body),
    )
    .await
    {
        Ok((200, answer)) => {
            if answer.get("becameTerminal") == Some(&serde_json::Value::Bool(true)) {
                if let Some(record) = answer.get("record") {
                    crate::telemetry::emit(outcome_event(record, &config.telemetry_salt()));
                }
            }
            Ok(())
        }
        _ => {
            crate::log::event("ledger_write_failed", &[("route", "callback")]);
            Err(AppError::StorageUnavailable)
        }
    }
}

/// The telemetry event of a call record that just ended (codes, our pool number, an
/// anonymised clinician key: nothing about the patient).
pub fn outcome_event(record: &serde_json::Value, salt: &str) -> shared::telemetry::Event {
    let text = |name: &str| record.get(name).and_then(serde_json::Value::as_str);
    shared::telemetry::Event::CallOutcome {
        status: text("status")
            .and_then(|s| CallStatus::parse(s).ok())
            .unwrap_or(CallStatus::Failed),
        duration_seconds: record
            .get("durationSeconds")
            .and_then(serde_json::Value::as_u64)
            .and_then(|d| u32::try_from(d).ok())
            .unwrap_or(0),
        pool_number: text("callerId").map(str::to_owned),
        clinician_key: text("practitioner").map(|p| shared::telemetry::clinician_key(p, salt)),
        error_code: record
            .get("errorCode")
            .and_then(serde_json::Value::as_u64)
            .and_then(|c| u32::try_from(c).ok()),
        direction: text("direction").unwrap_or("outbound-browser").to_owned(),
    }
}

pub async fn call_status(
    req: &mut Request,
    env: &Env,
    config: &Config,
    now_unix: i64,
) -> Result<Reply, AppError> {
    let form = verified_form(req, config).await?;
    // Checked first, so that a callback without a call is refused whichever route it takes.
    let call_sid = form.require("CallSid")?;
    let status = CallStatus::parse(form.require("CallStatus")?)
        .map_err(|_| AppError::BadRequest("unknown CallStatus"))?;
    let Some(appointment) = appointment_of(req)? else {
        // The parent leg of a call to a pool number: its legs' own callbacks (which name the
        // appointment) carry everything worth recording, so this one is acknowledged only.
        crate::log::event("call_status_unattributed", &[]);
        return Ok(Reply::twiml(Response::new().render()));
    };
    let event = StatusEvent {
        sequence: number(&form, "SequenceNumber"),
        status,
        timestamp_unix: form
            .get("Timestamp")
            .and_then(parse_rfc2822)
            .unwrap_or(now_unix),
        duration_seconds: number(&form, "CallDuration"),
        error_code: number(&form, "ErrorCode"),
    };
    store(
        env,
        config,
        &appointment,
        json!({"appointmentId": appointment.as_str(), "callSid": call_sid, "parentSid": form.get("ParentCallSid"), "event": event, "direction": direction_of(req)}),
    )
    .await?;
    crate::log::event("call_status", &[("status", status.as_str())]);
    Ok(Reply::twiml(Response::new().render()))
}

pub async fn dial_complete(
    req: &mut Request,
    env: &Env,
    config: &Config,
    now_unix: i64,
) -> Result<Reply, AppError> {
    let form = verified_form(req, config).await?;
    store_dial_outcome(req, env, config, &form, now_unix).await?;
    Ok(Reply::twiml(Response::new().with(Verb::Hangup).render()))
}

/// Stores what a verified `<Dial>` action reports (`DialCallStatus` of the dialled leg) on the
/// appointment's ledger; an action without a known status stores nothing. Returns the status.
pub async fn store_dial_outcome(
    req: &Request,
    env: &Env,
    config: &Config,
    form: &TwilioForm,
    now_unix: i64,
) -> Result<Option<CallStatus>, AppError> {
    let appointment = required_appointment(req)?;
    let parent_sid = form.require("CallSid")?;
    let Some(status) = form
        .get("DialCallStatus")
        .and_then(|s| CallStatus::parse(s).ok())
    else {
        return Ok(None);
    };
    let child_sid = form.get("DialCallSid").unwrap_or(parent_sid);
    let event = StatusEvent {
        sequence: None,
        status,
        timestamp_unix: now_unix,
        duration_seconds: number(form, "DialCallDuration"),
        error_code: number(form, "ErrorCode"),
    };
    store(
        env,
        config,
        &appointment,
        // Stamped on arrival: `once` keeps a retried Dial action from moving the end later.
        json!({"appointmentId": appointment.as_str(), "callSid": child_sid, "parentSid": parent_sid, "event": event, "once": "dial-action", "direction": direction_of(req)}),
    )
    .await?;
    Ok(Some(status))
}
