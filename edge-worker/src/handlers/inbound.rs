//! Patients calling back: `POST /api/v1/twilio/webhooks/inbound` (a call to a pool number) and
//! `POST /api/v1/twilio/webhooks/inbound-complete` (its Dial action). A caller whom one of our
//! clinicians called recently from that number rings that clinician's browser; if they do not
//! answer, or the caller is unknown, the call goes to the practice number, or a message plays
//! when none is configured. The call is recorded on the ledger of the appointment it relates to.

use serde_json::json;
use shared::ids::{AppointmentId, PractitionerId, E164};
use shared::twiml::{Dial, DialTarget, Response, Say, StatusCallbacks, Verb};
use worker::{Env, Method, Request};

use crate::config::{Config, Setting};
use crate::durable::{call, NUMBER_POOL_INSTANCE};
use crate::error::AppError;
use crate::handlers::call_status::store_dial_outcome;
use crate::handlers::voice::{inbound_callback_url, LEG_EVENTS};
use crate::reply::Reply;
use crate::twilio_webhook::verified_form;

/// Seconds the clinician's browser rings before the call goes to the practice.
pub const CLIENT_RING_SECONDS: u32 = 20;

/// What the caller hears when the practice does not take the call either.
const PRACTICE_UNAVAILABLE: &str = "The practice could not take your call. Please call the practice again later, or wait for the clinician to call you again. Goodbye.";

/// Where a call goes when the clinician cannot take it: the practice, whose `<Dial>` action
/// (`practice-complete`) tells the caller if the practice does not answer either.
pub fn fallback_twiml(practice: Option<&E164>, public_base_url: &str) -> String {
    match practice {
        Some(number) => Response::new()
            .with(Verb::Say(Say::en_gb("The clinician is not available. Connecting you to the practice.")))
            .with(Verb::Dial(Dial {
                caller_id: None,
                answer_on_bridge: false,
                timeout: Some(30),
                action: Some(super::voice::webhook_url(public_base_url, "practice-complete")),
                target: DialTarget::Number { number: number.to_string(), callbacks: StatusCallbacks::default() },
            }))
            .render(),
        None => Response::new()
            .with(Verb::Say(Say::en_gb(
                "Thank you for calling back. The clinician is not available right now. Please contact your practice, or wait for the clinician to call you again. Goodbye.",
            )))
            .with(Verb::Hangup)
            .render(),
    }
}

/// Rings the clinician's browser, with callbacks to the appointment's ledger.
pub fn ring_clinician_twiml(
    public_base_url: &str,
    appointment: &AppointmentId,
    practitioner: &PractitionerId,
) -> String {
    Response::new()
        .with(Verb::Dial(Dial {
            caller_id: None,
            answer_on_bridge: true,
            timeout: Some(CLIENT_RING_SECONDS),
            action: Some(inbound_callback_url(
                public_base_url,
                "inbound-complete",
                appointment,
            )),
            target: DialTarget::Client {
                identity: practitioner.to_string(),
                callbacks: StatusCallbacks {
                    url: Some(inbound_callback_url(
                        public_base_url,
                        "call-status",
                        appointment,
                    )),
                    events: LEG_EVENTS.to_vec(),
                },
                // The browser opens this appointment's panel for the ringing call.
                parameters: vec![("AppointmentId".into(), appointment.to_string())],
            },
        }))
        .render()
}

fn practice_number(config: &Config) -> Option<&E164> {
    match &config.practice_phone_number {
        Setting::Present(number) => Some(number),
        _ => None,
    }
}

pub async fn inbound(req: &mut Request, env: &Env, config: &Config) -> Result<Reply, AppError> {
    let form = verified_form(req, config).await?;
    let call_sid = form.require("CallSid")?.to_owned();
    let public_base_url = public_base_url(config)?;
    let caller = form.get("From").and_then(|f| E164::parse(f).ok());
    let pool_number = form.get("To").and_then(|t| E164::parse(t).ok());
    let route = match (&caller, &pool_number) {
        (Some(caller), Some(pool_number)) => {
            let body = json!({"caller": caller, "poolNumber": pool_number});
            match call(
                env,
                "NUMBER_POOL",
                NUMBER_POOL_INSTANCE,
                Method::Post,
                "/inbound-route",
                Some(&body),
            )
            .await
            {
                Ok((200, route)) => Some(route),
                _ => None,
            }
        }
        _ => None,
    };
    let known = route.as_ref().and_then(|r| {
        let practitioner = PractitionerId::parse(r.get("practitioner")?.as_str()?).ok()?;
        let appointment = AppointmentId::parse(r.get("appointment_id")?.as_str()?).ok()?;
        Some((practitioner, appointment))
    });
    let Some((practitioner, appointment)) = known else {
        crate::log::event("inbound_call", &[("route", "practice")]);
        return Ok(Reply::twiml(fallback_twiml(
            practice_number(config),
            &public_base_url,
        )));
    };
    let attempt = json!({
        "parentSid": call_sid, "appointmentId": appointment.as_str(), "practitioner": practitioner.as_str(),
        "direction": "inbound", "callerId": pool_number, "patientMasked": caller.as_ref().map(E164::masked),
    });
    if super::voice::record_attempt(env, &appointment, attempt)
        .await
        .is_err()
    {
        crate::log::event("ledger_write_failed", &[("route", "inbound")]);
    }
    crate::log::event("inbound_call", &[("route", "clinician")]);
    Ok(Reply::twiml(ring_clinician_twiml(
        &public_base_url,
        &appointment,
        &practitioner,
    )))
}

/// The clinician's leg ended: its outcome is stored (so a missed call-back is on the record
/// even when the leg's own callbacks are lost), then a call the clinician did not take goes on
/// to the practice (or the message).
pub async fn inbound_complete(
    req: &mut Request,
    env: &Env,
    config: &Config,
    now_unix: i64,
) -> Result<Reply, AppError> {
    let form = verified_form(req, config).await?;
    // A failure to record is logged by the ledger call; the patient is put through regardless.
    let _recorded = store_dial_outcome(req, env, config, &form, now_unix).await;
    match form.get("DialCallStatus") {
        Some("completed") => Ok(Reply::twiml(Response::new().with(Verb::Hangup).render())),
        _ => Ok(Reply::twiml(fallback_twiml(
            practice_number(config),
            &public_base_url(config)?,
        ))),
    }
}

/// The practice's `<Dial>` action: after a call the practice took, hang up; otherwise tell the
/// caller, rather than end the call in silence.
pub async fn practice_complete(req: &mut Request, config: &Config) -> Result<Reply, AppError> {
    let form = verified_form(req, config).await?;
    let answered = form.get("DialCallStatus") == Some("completed");
    crate::log::event(
        "inbound_practice_done",
        &[("answered", if answered { "yes" } else { "no" })],
    );
    let twiml = if answered {
        Response::new().with(Verb::Hangup)
    } else {
        Response::new()
            .with(Verb::Say(Say::en_gb(PRACTICE_UNAVAILABLE)))
            .with(Verb::Hangup)
    };
    Ok(Reply::twiml(twiml.render()))
}

fn public_base_url(config: &Config) -> Result<String, AppError> {
    Ok(config
        .public_base_url
        .require("PUBLIC_BASE_URL")?
        .as_str()
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fallbacks() {
        let practice = E164::parse("+442079460000").unwrap();
        let with_practice = fallback_twiml(Some(&practice), "https://calls.example.org");
        assert!(
            with_practice.contains("<Number>+442079460000</Number>"),
            "{with_practice}"
        );
        assert!(
            with_practice.contains(
                r#"action="https://calls.example.org/api/v1/twilio/webhooks/practice-complete#rc=3&amp;rp=all""#
            ),
            "{with_practice}"
        );
        let without = fallback_twiml(None, "https://calls.example.org");
        assert!(without.ends_with("<Hangup/></Response>"));
        assert!(!without.contains("<Dial"));
    }

    #[test]
    fn rings_the_clinician_with_callbacks() {
        let twiml = ring_clinician_twiml(
            "https://calls.example.org",
            &AppointmentId::parse("appt-mobile").unwrap(),
            &PractitionerId::parse("clinician-ada").unwrap(),
        );
        assert!(
            twiml.contains(
                r#"><Identity>clinician-ada</Identity><Parameter name="AppointmentId" value="appt-mobile"/></Client>"#
            ),
            "{twiml}"
        );
        assert!(twiml.contains(r#"timeout="20""#));
        assert!(twiml.contains("inbound-complete?appointment=appt-mobile&amp;direction=inbound"));
        assert!(twiml.contains("call-status?appointment=appt-mobile&amp;direction=inbound"));
    }
}
