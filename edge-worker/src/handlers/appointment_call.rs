//! The clinician's view of an appointment's calls: `GET /api/v1/appointments/{id}/call` (records
//! and live state) and `POST /api/v1/appointments/{id}/call/end` (end a live call through Twilio's
//! REST API, or record the outcome of a call dialled by hand), and
//! `GET /api/v1/appointments/{id}/call/events` (the ledger's live Server-Sent Events stream).
//! Only a participant of the appointment may use them. The records come with the appointment's
//! panel entry (patient, number, dialable or why not), so a panel opened with only an appointment
//! id can show the number to dial by hand.

use futures_util::future::join;
use serde::Deserialize;
use serde_json::{json, Value};
use shared::call_state::{CallStatus, EndedBy};
use shared::fhir::has_practitioner;
use shared::ids::{AppointmentId, CallSid, PractitionerId};
use worker::{Env, Method, Request};

use crate::auth::authenticate_clinician;
use crate::config::Config;
use crate::durable::call;
use crate::error::AppError;
use crate::medplum::Medplum;
use crate::reply::Reply;
use crate::twilio_rest::{end_call, TwilioRestError};

/// A clinician taking part in an appointment, and the Appointment as read.
struct Participant {
    practitioner: PractitionerId,
    appointment: Value,
}

/// Authenticates the clinician and checks they take part in the appointment.
async fn participant(
    req: &Request,
    medplum: &Medplum<'_>,
    appointment: &AppointmentId,
    now_unix: i64,
) -> Result<Participant, AppError> {
    let practitioner = authenticate_clinician(req, medplum, now_unix).await?;
    let resource = medplum
        .read("Appointment", appointment.as_str())
        .await?
        .ok_or(AppError::AppointmentNotFound)?
        .resource;
    if has_practitioner(&resource, &practitioner) {
        Ok(Participant {
            practitioner,
            appointment: resource,
        })
    } else {
        Err(AppError::NotYourAppointment)
    }
}

async fn ledger(
    env: &Env,
    appointment: &AppointmentId,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, AppError> {
    match call(env, "CALL_LEDGER", appointment.as_str(), method, path, body).await {
        Ok((200, value)) => Ok(value),
        _ => Err(AppError::StorageUnavailable),
    }
}

/// `GET /api/v1/admin/appointments/{id}/calls` (admin token): the appointment's call ledger as it
/// stands, without Medplum, so that operators can see a record Medplum has not taken
/// (`fhirPending`) during an outage or after a refusal. The log lines `fhir_write_retry` and
/// `fhir_record_refused` name the appointment.
pub async fn admin_calls(
    req: &Request,
    env: &Env,
    config: &Config,
    appointment: &AppointmentId,
) -> Result<Reply, AppError> {
    crate::handlers::admin_pool::admin(req, config)?;
    let calls = ledger(env, appointment, Method::Get, "/calls", None).await?;
    Ok(Reply::json(
        200,
        &json!({"appointmentId": appointment.as_str(), "calls": calls.get("calls").cloned().unwrap_or_else(|| json!([]))}),
    ))
}

/// Streams the ledger's events to the clinician (the Durable Object's response, passed through).
pub async fn events(
    req: &Request,
    env: &Env,
    config: &Config,
    appointment: &AppointmentId,
    now_unix: i64,
) -> Result<worker::Response, AppError> {
    participant(req, &crate::medplum_client(config)?, appointment, now_unix).await?;
    let stub = env
        .durable_object("CALL_LEDGER")
        .and_then(|ns| ns.get_by_name(appointment.as_str()))
        .map_err(|_| AppError::StorageUnavailable)?;
    let response = stub
        .fetch_with_str("https://durable-object/events")
        .await
        .map_err(|_| AppError::StorageUnavailable)?;
    if response.status_code() == 200 {
        Ok(response)
    } else {
        Err(AppError::StorageUnavailable)
    }
}

pub async fn list(
    req: &Request,
    env: &Env,
    config: &Config,
    appointment: &AppointmentId,
    now_unix: i64,
) -> Result<Reply, AppError> {
    let medplum = crate::medplum_client(config)?;
    let participant = participant(req, &medplum, appointment, now_unix).await?;
    // The patient (Medplum) and the calls (the ledger) are asked for together: the panel
    // waits for both before it offers Call now.
    let (entry, calls) = join(
        crate::handlers::appointments::entry(&medplum, config, &participant.appointment),
        ledger(env, appointment, Method::Get, "/calls", None),
    )
    .await;
    let (entry, calls) = (entry?, calls?);
    let calls = calls
        .get("calls")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    let live = calls
        .as_array()
        .and_then(|list| {
            list.iter()
                .find(|c| c.get("terminal") == Some(&Value::Bool(false)))
        })
        .cloned();
    Ok(Reply::json(
        200,
        &json!({"appointmentId": appointment.as_str(), "appointment": entry, "live": live, "calls": calls}),
    ))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManualOutcome {
    outcome: String,
    #[serde(default)]
    duration_seconds: u32,
    /// The browser's key for this outcome: saving it again with the same key (after a reply
    /// that was lost) stores it once.
    #[serde(default)]
    key: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EndRequest {
    call_sid: Option<String>,
    manual: Option<ManualOutcome>,
}

pub async fn end(
    req: &mut Request,
    env: &Env,
    config: &Config,
    appointment: &AppointmentId,
    now_unix: i64,
) -> Result<Reply, AppError> {
    let practitioner = participant(req, &crate::medplum_client(config)?, appointment, now_unix)
        .await?
        .practitioner;
    let body: EndRequest = crate::body::json(
        req,
        "expected {\"callSid\": \"CA…\"} or {\"manual\": {\"outcome\", \"durationSeconds\"}}",
    )
    .await?;
    match (body.call_sid, body.manual) {
        (Some(sid), None) => end_live(env, config, appointment, &sid).await,
        (None, Some(manual)) => {
            let outcome = match CallStatus::parse(&manual.outcome) {
                Ok(
                    status @ (CallStatus::Completed
                    | CallStatus::Busy
                    | CallStatus::NoAnswer
                    | CallStatus::Failed),
                ) => status,
                _ => {
                    return Err(AppError::BadRequest(
                        "a manual outcome is completed, busy, no-answer or failed",
                    ))
                }
            };
            if manual.duration_seconds > 24 * 3600 {
                return Err(AppError::BadRequest("durationSeconds is at most one day"));
            }
            if manual
                .key
                .as_deref()
                .is_some_and(|key| !super::is_browser_id(key))
            {
                return Err(AppError::BadRequest(
                    "key is 1 to 64 letters, digits or dashes",
                ));
            }
            let body = json!({
                "appointmentId": appointment.as_str(), "practitioner": practitioner.as_str(),
                "outcome": outcome, "durationSeconds": manual.duration_seconds, "atUnix": now_unix,
                "key": manual.key,
            });
            let answer = ledger(env, appointment, Method::Post, "/manual", Some(&body)).await?;
            let repeated = answer.get("repeated") == Some(&Value::Bool(true));
            crate::log::event(
                "manual_call_recorded",
                &[
                    ("outcome", outcome.as_str()),
                    ("repeated", if repeated { "true" } else { "false" }),
                ],
            );
            // The same outcome saved again is answered as the first time, and counted once.
            let answer = json!({"record": answer.get("record")});
            if let Some(record) = answer.get("record").filter(|_| !repeated) {
                crate::telemetry::emit(crate::handlers::call_status::outcome_event(
                    record,
                    &config.telemetry_salt(),
                ));
            }
            Ok(Reply::json(201, &answer))
        }
        _ => Err(AppError::BadRequest(
            "give either callSid or manual, not both",
        )),
    }
}

async fn end_live(
    env: &Env,
    config: &Config,
    appointment: &AppointmentId,
    sid: &str,
) -> Result<Reply, AppError> {
    let calls = ledger(env, appointment, Method::Get, "/calls", None).await?;
    let record = calls
        .get("calls")
        .and_then(Value::as_array)
        .and_then(|list| {
            list.iter().find(|c| {
                c.get("parentCallSid").and_then(Value::as_str) == Some(sid)
                    || c.get("callSid").and_then(Value::as_str) == Some(sid)
            })
        })
        .cloned()
        .ok_or(AppError::CallNotFound)?;
    let parent_sid = record
        .get("parentCallSid")
        .and_then(Value::as_str)
        .unwrap_or(sid)
        .to_owned();
    // A call that ended before the request (the patient hung up while the clinician pressed
    // End) is answered as it is: nothing is written, so it is never marked ended by the
    // clinician.
    if record.get("terminal") == Some(&Value::Bool(true)) {
        return Ok(Reply::json(
            200,
            &json!({"hangupPending": false, "record": record}),
        ));
    }
    let call_sid = CallSid::parse(&parent_sid).map_err(|_| AppError::CallNotFound)?;
    let hangup_pending = match end_call(config, &call_sid).await {
        Ok(()) => false,
        Err(TwilioRestError::Retryable) => true,
        Err(TwilioRestError::Rejected(_)) => return Err(AppError::TwilioRejected),
    };
    let body = json!({"parentSid": parent_sid, "endedBy": EndedBy::Clinician, "hangupPending": hangup_pending});
    let answer = ledger(env, appointment, Method::Post, "/end", Some(&body)).await?;
    crate::log::event(
        "call_end_requested",
        &[(
            "hangup_pending",
            if hangup_pending { "true" } else { "false" },
        )],
    );
    Ok(Reply::json(
        if hangup_pending { 202 } else { 200 },
        &json!({"hangupPending": hangup_pending, "record": answer.get("record")}),
    ))
}

#[cfg(test)]
mod tests {
    use crate::handlers::is_browser_id;

    #[test]
    fn an_outcome_key_is_short_plain_text() {
        let long = "a".repeat(65);
        let table: &[(&str, bool)] = &[
            ("TJS0f8e2a3c-5b1d-4e7f-9a2b-3c4d5e6f7a8b", true),
            ("k", true),
            (&long[..64], true),
            (&long, false),
            ("", false),
            ("a b", false),
            ("a/b", false),
            ("ключ", false),
        ];
        for (key, ok) in table {
            assert_eq!(is_browser_id(key), *ok, "{key:?}");
        }
    }
}
