//! `POST /api/v1/twilio/webhooks/voice`: Twilio asks what to do with a clinician's browser call.
//! The answer dials the patient's number from the Appointment (never a number the browser sent),
//! with a caller ID leased from the pool, or says why not and hangs up. Either way the attempt is
//! recorded in the appointment's ledger before the answer leaves.

use futures_util::future::join;
use serde_json::json;
use shared::call_refusal::CallRefusal;
use shared::dial_policy::check;
use shared::fhir::{
    find_resource, has_practitioner, is_callable_status, is_phone_appointment, patient_of,
    preferred_phone,
};
use shared::ids::{AppointmentId, PatientId, PractitionerId, E164};
use shared::twiml::{Dial, DialTarget, Response, Say, StatusCallbacks, Verb};
use worker::{Env, Method, Request};

use crate::clinicians::calling_clinician;
use crate::config::Config;
use crate::durable::{call, NUMBER_POOL_INSTANCE};
use crate::error::AppError;
use crate::medplum::Medplum;
use crate::reply::Reply;
use crate::twilio_webhook::verified_form;

/// Seconds the patient's phone rings before the call counts as not answered.
pub const DIAL_TIMEOUT_SECONDS: u32 = 30;

/// Twilio connection overrides on callback URLs: retry 3 times, on any failure (5xx included).
const CALLBACK_RETRIES: &str = "#rc=3&rp=all";

/// The events every dialled leg reports.
pub const LEG_EVENTS: [&str; 4] = ["initiated", "ringing", "answered", "completed"];

/// Where the worker's Twilio webhooks live, under the public base URL.
pub const WEBHOOKS_PATH: &str = "/api/v1/twilio/webhooks/";

/// A webhook's URL (`webhook` may carry a query), with the fragment that asks Twilio to retry
/// failed deliveries.
pub fn webhook_url(public_base_url: &str, webhook: &str) -> String {
    format!("{public_base_url}{WEBHOOKS_PATH}{webhook}{CALLBACK_RETRIES}")
}

/// A Twilio callback URL of this worker for an appointment, e.g. `…/webhooks/call-status?
/// appointment=…#rc=3&rp=all`.
pub fn callback_url(public_base_url: &str, webhook: &str, appointment: &AppointmentId) -> String {
    let query = shared::form::encode([("appointment", appointment.as_str())]);
    webhook_url(public_base_url, &format!("{webhook}?{query}"))
}

/// As [`callback_url`], for the legs of a call-back: `direction=inbound` lets the ledger file
/// their callbacks as inbound even when the call's own record could not be written first.
pub fn inbound_callback_url(
    public_base_url: &str,
    webhook: &str,
    appointment: &AppointmentId,
) -> String {
    let query = shared::form::encode([
        ("appointment", appointment.as_str()),
        ("direction", "inbound"),
    ]);
    webhook_url(public_base_url, &format!("{webhook}?{query}"))
}

/// What the webhook decided to dial.
struct DialPlan {
    practitioner: PractitionerId,
    patient: PatientId,
    number: E164,
}

/// The answer to a refused call: the reason, briefly, then hang up.
pub fn refusal_twiml(refusal: CallRefusal) -> String {
    Response::new()
        .with(Verb::Say(Say::en_gb(format!(
            "{} The patient's number is shown on your screen. Goodbye.",
            refusal.spoken()
        ))))
        .with(Verb::Hangup)
        .render()
}

/// The answer to a placed call.
pub fn dial_twiml(
    public_base_url: &str,
    appointment: &AppointmentId,
    caller_id: &E164,
    number: &E164,
) -> String {
    Response::new()
        .with(Verb::Dial(Dial {
            caller_id: Some(caller_id.to_string()),
            answer_on_bridge: true,
            timeout: Some(DIAL_TIMEOUT_SECONDS),
            action: Some(callback_url(public_base_url, "dial-complete", appointment)),
            target: DialTarget::Number {
                number: number.to_string(),
                callbacks: StatusCallbacks {
                    url: Some(callback_url(public_base_url, "call-status", appointment)),
                    events: LEG_EVENTS.to_vec(),
                },
            },
        }))
        .render()
}

fn refusal_of(error: AppError) -> CallRefusal {
    match error {
        AppError::PermissionMissing | AppError::PractitionerNotFound => {
            CallRefusal::PermissionMissing
        }
        _ => CallRefusal::ServiceUnavailable,
    }
}

/// Decides whether and what to dial. Every rule lives in `shared`; this gathers the facts.
/// The clinician's permission and the appointment's patient are looked up together (one round
/// trip to Medplum, not five); a refusal is the one the checks would give one after another.
async fn plan(
    medplum: &Medplum<'_>,
    config: &Config,
    from: &str,
    appointment_id: &AppointmentId,
) -> Result<DialPlan, (CallRefusal, Option<PractitionerId>)> {
    let practitioner = from
        .strip_prefix("client:")
        .and_then(|identity| PractitionerId::parse(identity).ok())
        .ok_or((CallRefusal::NotAClinician, None))?;
    let refuse = |refusal: CallRefusal| (refusal, Some(practitioner.clone()));
    let (clinician, patient) = join(
        calling_clinician(medplum, &practitioner),
        appointment_patient(medplum, appointment_id, &practitioner),
    )
    .await;
    clinician.map_err(|e| refuse(refusal_of(e)))?;
    let (patient_id, patient) = patient.map_err(refuse)?;
    let raw = preferred_phone(&patient).unwrap_or("");
    let policy = config
        .dial_policy()
        .map_err(|_| refuse(CallRefusal::ServiceUnavailable))?;
    let number = check(&policy, raw).map_err(|refusal| refuse(refusal.into()))?;
    Ok(DialPlan {
        practitioner,
        patient: patient_id,
        number,
    })
}

/// The patient of a callable phone appointment of `practitioner`'s, or why there is none. One
/// round trip: the Appointment is searched with its Patient included (read on its own only if
/// the search did not include it).
async fn appointment_patient(
    medplum: &Medplum<'_>,
    appointment_id: &AppointmentId,
    practitioner: &PractitionerId,
) -> Result<(PatientId, serde_json::Value), CallRefusal> {
    let found = medplum
        .search(
            "Appointment",
            &[
                ("_id", appointment_id.as_str()),
                ("_include", "Appointment:patient"),
            ],
        )
        .await
        .map_err(|_| CallRefusal::ServiceUnavailable)?;
    let appointment = find_resource(&found, "Appointment", appointment_id.as_str())
        .ok_or(CallRefusal::AppointmentNotFound)?;
    if !has_practitioner(appointment, practitioner) {
        return Err(CallRefusal::NotYourAppointment);
    }
    if !is_phone_appointment(appointment) {
        return Err(CallRefusal::NotAPhoneAppointment);
    }
    if !is_callable_status(appointment) {
        return Err(CallRefusal::AppointmentNotCallable);
    }
    let patient_id = patient_of(appointment).ok_or(CallRefusal::AppointmentNotFound)?;
    let patient = match find_resource(&found, "Patient", patient_id.as_str()) {
        Some(patient) => patient.clone(),
        None => {
            medplum
                .read("Patient", patient_id.as_str())
                .await
                .map_err(|_| CallRefusal::ServiceUnavailable)?
                .ok_or(CallRefusal::NumberMissing)?
                .resource
        }
    };
    Ok((patient_id, patient))
}

/// Leases a caller ID for the call, within the misuse limits; the refusal when there is none.
async fn lease_caller_id(
    env: &Env,
    config: &Config,
    parent_sid: &str,
    appointment: &AppointmentId,
    plan: &DialPlan,
) -> Result<E164, CallRefusal> {
    let limits = config
        .call_limits()
        .map_err(|_| CallRefusal::ServiceUnavailable)?;
    let body = json!({
        "callSid": parent_sid, "destination": plan.number, "patientKey": plan.patient.as_str(),
        "practitioner": plan.practitioner.as_str(), "appointmentId": appointment.as_str(),
        "limits": {"perClinicianPerHour": limits.per_clinician_per_hour, "perPatientPerHour": limits.per_patient_per_hour},
    });
    let Ok((status, answer)) = call(
        env,
        "NUMBER_POOL",
        NUMBER_POOL_INSTANCE,
        Method::Post,
        "/lease",
        Some(&body),
    )
    .await
    else {
        // The pool may have stored the lease before failing: give it back (a no-op if not).
        give_back_line(env, parent_sid).await;
        return Err(CallRefusal::ServiceUnavailable);
    };
    match status {
        200 => answer
            .get("number")
            .and_then(|n| n.as_str())
            .and_then(|n| E164::parse(n).ok())
            .ok_or(CallRefusal::ServiceUnavailable),
        409 => {
            crate::log::event("pool_exhausted", &[]);
            crate::telemetry::emit(shared::telemetry::Event::PoolExhausted);
            Err(CallRefusal::NoLineFree)
        }
        429 => Err(match answer.get("code").and_then(|c| c.as_str()) {
            Some("patient_limit_reached") => CallRefusal::PatientLimitReached,
            _ => CallRefusal::ClinicianLimitReached,
        }),
        410 => Err(CallRefusal::CallAlreadyPlaced),
        _ => {
            give_back_line(env, parent_sid).await;
            Err(CallRefusal::ServiceUnavailable)
        }
    }
}

/// Releases whatever line `parent_sid` holds, for a call that will not be placed after all
/// (best effort: a failure is logged, and the lease expires anyway).
async fn give_back_line(env: &Env, parent_sid: &str) {
    if !crate::durable::release_line(env, parent_sid).await {
        crate::log::event("pool_release_failed", &[]);
    }
}

/// Writes a call attempt to its appointment's ledger; anything but the ledger's 200 is an error
/// (a 500 from the object is as much a lost write as an unreachable one).
pub(super) async fn record_attempt(
    env: &Env,
    appointment: &AppointmentId,
    body: serde_json::Value,
) -> worker::Result<()> {
    let (status, _) = call(
        env,
        "CALL_LEDGER",
        appointment.as_str(),
        Method::Post,
        "/attempt",
        Some(&body),
    )
    .await?;
    if status == 200 {
        Ok(())
    } else {
        Err(worker::Error::RustError(format!(
            "ledger answered {status}"
        )))
    }
}

/// The browser's own id for the call it placed (`TJS…`, its `ClientCallId` parameter), when it
/// sent a well-formed one: its page knows the call's record by it.
fn client_call_id(raw: Option<&str>) -> Option<&str> {
    raw.filter(|id| id.len() > "TJS".len() && id.starts_with("TJS") && super::is_browser_id(id))
}

async fn refuse(
    env: &Env,
    client_id: Option<&str>,
    appointment: Option<&AppointmentId>,
    parent_sid: &str,
    practitioner: Option<&PractitionerId>,
    refusal: CallRefusal,
) -> Reply {
    crate::log::event("call_refused", &[("code", refusal.code())]);
    if let Some(appointment) = appointment {
        let body = json!({
            "parentSid": parent_sid, "appointmentId": appointment.as_str(),
            "practitioner": practitioner.map(PractitionerId::as_str),
            "direction": "outbound-browser", "refusedCode": refusal.code(),
            "clientCallId": client_id,
        });
        if record_attempt(env, appointment, body).await.is_err() {
            crate::log::event("ledger_write_failed", &[("code", refusal.code())]);
        }
    }
    Reply::twiml(refusal_twiml(refusal))
}

pub async fn voice(req: &mut Request, env: &Env, config: &Config) -> Result<Reply, AppError> {
    let form = verified_form(req, config).await?;
    let parent_sid = form.require("CallSid")?.to_owned();
    let client_id = client_call_id(form.get("ClientCallId"));
    let public_base_url = config
        .public_base_url
        .require("PUBLIC_BASE_URL")?
        .as_str()
        .to_owned();
    let Some(appointment) = form
        .get("AppointmentId")
        .and_then(|a| AppointmentId::parse(a).ok())
    else {
        return Ok(refuse(
            env,
            client_id,
            None,
            &parent_sid,
            None,
            CallRefusal::AppointmentMissing,
        )
        .await);
    };
    let medplum = match crate::medplum_client(config) {
        Ok(medplum) => medplum,
        Err(_) => {
            return Ok(refuse(
                env,
                client_id,
                Some(&appointment),
                &parent_sid,
                None,
                CallRefusal::ServiceUnavailable,
            )
            .await)
        }
    };
    let plan = match plan(
        &medplum,
        config,
        form.get("From").unwrap_or(""),
        &appointment,
    )
    .await
    {
        Ok(plan) => plan,
        Err((refusal, practitioner)) => {
            return Ok(refuse(
                env,
                client_id,
                Some(&appointment),
                &parent_sid,
                practitioner.as_ref(),
                refusal,
            )
            .await);
        }
    };
    let caller_id = match lease_caller_id(env, config, &parent_sid, &appointment, &plan).await {
        Ok(number) => number,
        Err(refusal) => {
            return Ok(refuse(
                env,
                client_id,
                Some(&appointment),
                &parent_sid,
                Some(&plan.practitioner),
                refusal,
            )
            .await);
        }
    };
    let attempt = json!({
        "parentSid": parent_sid, "appointmentId": appointment.as_str(),
        "practitioner": plan.practitioner.as_str(), "direction": "outbound-browser",
        "callerId": caller_id, "patientMasked": plan.number.masked(),
        "clientCallId": client_id,
    });
    if record_attempt(env, &appointment, attempt).await.is_err() {
        // No record, no call: give the line back and refuse.
        give_back_line(env, &parent_sid).await;
        return Ok(Reply::twiml(refusal_twiml(CallRefusal::ServiceUnavailable)));
    }
    crate::log::event("call_placed", &[("appointment", appointment.as_str())]);
    Ok(Reply::twiml(dial_twiml(
        &public_base_url,
        &appointment,
        &caller_id,
        &plan.number,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_well_formed_client_call_id_is_kept() {
        let uuid = "TJS0f8e2a3c-5b1d-4e7f-9a2b-3c4d5e6f7a8b";
        let table: &[(Option<&str>, Option<&str>)] = &[
            (Some(uuid), Some(uuid)),
            (None, None),
            (Some(""), None),
            (Some("TJS"), None),
            (Some("CA0123"), None),
            (Some("TJS<script>"), None),
            (Some("TJS abc"), None),
            (Some("TJS0123456789"), Some("TJS0123456789")),
        ];
        for (raw, kept) in table {
            assert_eq!(client_call_id(*raw), *kept, "{raw:?}");
        }
        let long = format!("TJS{}", "a".repeat(62));
        assert_eq!(client_call_id(Some(&long)), None);
        assert_eq!(client_call_id(Some(&long[..64])), Some(&long[..64]));
    }

    #[test]
    fn dial_twiml_dials_the_number_with_callbacks_for_the_appointment() {
        let twiml = dial_twiml(
            "https://calls.example.org",
            &AppointmentId::parse("appt-mobile").unwrap(),
            &E164::parse("+447700900001").unwrap(),
            &E164::parse("+447700900123").unwrap(),
        );
        assert!(twiml.contains(r#"<Dial callerId="+447700900001" answerOnBridge="true" timeout="30" action="https://calls.example.org/api/v1/twilio/webhooks/dial-complete?appointment=appt-mobile#rc=3&amp;rp=all" method="POST">"#), "{twiml}");
        assert!(twiml.contains(r#"statusCallback="https://calls.example.org/api/v1/twilio/webhooks/call-status?appointment=appt-mobile#rc=3&amp;rp=all""#), "{twiml}");
        assert!(twiml.contains(">+447700900123</Number>"));
    }

    #[test]
    fn refusal_twiml_says_why_without_numbers_and_hangs_up() {
        for refusal in CallRefusal::ALL {
            let twiml = refusal_twiml(refusal);
            assert!(twiml.ends_with("</Say><Hangup/></Response>"), "{twiml}");
            let spoken = twiml
                .split("<Say language=\"en-GB\">")
                .nth(1)
                .and_then(|rest| rest.split("</Say>").next())
                .unwrap_or_default();
            assert!(
                spoken.starts_with(&shared::twiml::escape(refusal.spoken())),
                "{twiml}"
            );
            assert!(
                !spoken.chars().any(|c| c.is_ascii_digit()),
                "no digits spoken: {spoken}"
            );
        }
    }
}
