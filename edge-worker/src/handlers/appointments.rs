//! `GET /api/v1/appointments?date=YYYY-MM-DD`: the signed-in clinician's phone appointments of a
//! day (UTC; today when `date` is absent), each with its patient's number for the call panel, and
//! the same entry for one appointment (`GET /api/v1/appointments/{id}/call` includes it). The
//! rules (which appointments, which number, dialable or why not) are in
//! `shared::appointment_summary`; this gathers the resources from Medplum.

use serde::Serialize;
use serde_json::Value;
use shared::appointment_summary::{day_list, patients_missing, summarise, AppointmentSummary, Day};
use shared::fhir::patient_of;
use worker::Request;

use crate::auth::authenticate_clinician;
use crate::config::Config;
use crate::error::AppError;
use crate::medplum::Medplum;
use crate::reply::Reply;

/// The most appointments one day's list asks Medplum for (one search page; Medplum allows 1000).
const MAX_APPOINTMENTS_PER_DAY: &str = "200";

const MALFORMED_DATE: &str = "date must be a calendar date written YYYY-MM-DD";

#[derive(Serialize)]
struct DayReply {
    date: String,
    appointments: Vec<AppointmentSummary>,
}

/// The day a request asks for: its `date` query parameter, else the UTC day of `now_unix`.
pub fn requested_day(raw_url: &str, now_unix: i64) -> Result<Day, AppError> {
    let pairs = shared::form::parse(shared::form::query_of(raw_url))
        .map_err(|_| AppError::BadRequest(MALFORMED_DATE))?;
    match pairs.iter().find(|(key, _)| key == "date") {
        Some((_, value)) => Day::parse(value).map_err(|_| AppError::BadRequest(MALFORMED_DATE)),
        None => Day::of_unix(now_unix).ok_or(AppError::Internal),
    }
}

/// The FHIR search for the practitioner's Appointments starting within `day` (UTC), with their
/// Patients included.
pub fn day_search(
    practitioner_reference: &str,
    day: Day,
) -> Result<Vec<(String, String)>, AppError> {
    let next = day
        .next()
        .ok_or(AppError::BadRequest("date is out of range"))?;
    Ok(vec![
        ("practitioner".into(), practitioner_reference.into()),
        ("date".into(), format!("ge{}", day.start_instant())),
        ("date".into(), format!("lt{}", next.start_instant())),
        ("_include".into(), "Appointment:patient".into()),
        ("_sort".into(), "date".into()),
        ("_count".into(), MAX_APPOINTMENTS_PER_DAY.into()),
    ])
}

pub async fn list(req: &Request, config: &Config, now_unix: i64) -> Result<Reply, AppError> {
    let medplum = crate::medplum_client(config)?;
    let practitioner = authenticate_clinician(req, &medplum, now_unix).await?;
    let day = requested_day(&req.inner().url(), now_unix)?;
    let policy = config.dial_policy()?;
    let query = day_search(&practitioner.reference(), day)?;
    let query: Vec<(&str, &str)> = query
        .iter()
        .map(|(key, value)| (key.as_str(), value.as_str()))
        .collect();
    let mut resources = medplum.search("Appointment", &query).await?;
    // `_include` brings every Patient; read any it did not, one by one.
    for patient in patients_missing(&practitioner, &resources) {
        if let Some(found) = medplum.read("Patient", patient.as_str()).await? {
            resources.push(found.resource);
        }
    }
    let appointments = day_list(&practitioner, &resources, &policy);
    crate::log::event(
        "appointments_listed",
        &[("count", &appointments.len().to_string())],
    );
    Ok(Reply::json(
        200,
        &DayReply {
            date: day.to_string(),
            appointments,
        },
    ))
}

/// The panel's entry for an Appointment already read, with its Patient read now.
pub async fn entry(
    medplum: &Medplum<'_>,
    config: &Config,
    appointment: &Value,
) -> Result<AppointmentSummary, AppError> {
    let policy = config.dial_policy()?;
    let patient = match patient_of(appointment) {
        Some(id) => medplum
            .read("Patient", id.as_str())
            .await?
            .map(|found| found.resource),
        None => None,
    };
    summarise(appointment, patient.as_ref(), &policy).ok_or(AppError::AppointmentNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-25T06:08:02Z.
    const NOW: i64 = 1_795_586_882;

    #[test]
    fn the_day_is_the_query_date_or_today_in_utc() {
        let table: [(&str, Result<&str, u16>); 9] = [
            ("https://w.example/api/v1/appointments", Ok("2026-11-25")),
            ("https://w.example/api/v1/appointments?", Ok("2026-11-25")),
            (
                "https://w.example/api/v1/appointments?date=2026-12-01",
                Ok("2026-12-01"),
            ),
            (
                "https://w.example/api/v1/appointments?x=1&date=2024-02-29#top",
                Ok("2024-02-29"),
            ),
            (
                "https://w.example/api/v1/appointments?date=2026-02-29",
                Err(400),
            ),
            (
                "https://w.example/api/v1/appointments?date=25/11/2026",
                Err(400),
            ),
            ("https://w.example/api/v1/appointments?date=", Err(400)),
            (
                "https://w.example/api/v1/appointments?date=2026-11-25T00:00:00Z",
                Err(400),
            ),
            ("https://w.example/api/v1/appointments?date=%ZZ", Err(400)),
        ];
        for (url, expected) in table {
            let got = requested_day(url, NOW)
                .map(|day| day.to_string())
                .map_err(|e| e.status());
            assert_eq!(got, expected.map(str::to_owned), "{url}");
        }
        let error = requested_day("https://w.example/?date=nope", NOW).unwrap_err();
        assert_eq!(error.code(), "bad_request");
        assert_eq!(error.to_string(), MALFORMED_DATE);
    }

    #[test]
    fn the_search_covers_the_utc_day_and_includes_patients() {
        let day = Day::parse("2026-12-31").unwrap();
        let query = day_search("Practitioner/clinician-ada", day).unwrap();
        let pairs: Vec<(&str, &str)> = query
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("practitioner", "Practitioner/clinician-ada"),
                ("date", "ge2026-12-31T00:00:00Z"),
                ("date", "lt2027-01-01T00:00:00Z"),
                ("_include", "Appointment:patient"),
                ("_sort", "date"),
                ("_count", "200"),
            ]
        );
        let last = Day::parse("9999-12-31").unwrap();
        assert_eq!(
            day_search("Practitioner/x", last).unwrap_err().status(),
            400
        );
    }
}
