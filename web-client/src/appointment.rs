//! The appointment the panel is mounted on, as the worker describes it (`GET
//! /api/v1/appointments/{id}/call` → `appointment`): who the patient is and how to dial them.

use shared::dial_policy::tel_digits;
use shared::json::Json;

/// What the worker refused about the patient's number, in its words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRefusal {
    pub code: String,
    pub message: String,
}

/// The parts of an appointment the panel shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppointmentInfo {
    pub id: String,
    /// The start as shown, `HH:MM` in the clinician's time zone (see [`Self::from_json`]).
    pub start_time: Option<String>,
    pub description: Option<String>,
    pub patient_name: Option<String>,
    /// E.164, when the number on record could be normalised.
    pub phone: Option<String>,
    /// The number exactly as recorded (to dial by hand when normalising failed).
    pub phone_as_recorded: Option<String>,
    pub dialable: bool,
    pub refusal: Option<NumberRefusal>,
    pub callable: bool,
}

impl AppointmentInfo {
    /// Reads the worker's appointment entry; missing fields are treated as unknown. `clock`
    /// turns its start (RFC 3339) into the time shown: the glue passes the browser's local
    /// clock, so the panel agrees with the page's appointment list; [`utc_clock`] reads UTC.
    pub fn from_json(entry: &Json, clock: fn(&str) -> Option<String>) -> Option<Self> {
        let text = |value: Option<&Json>| value.and_then(Json::as_str).map(str::to_owned);
        let patient = entry.get("patient");
        let field = |name: &str| patient.and_then(|p| p.get(name));
        Some(Self {
            id: text(entry.get("id"))?,
            start_time: entry.get("start").and_then(Json::as_str).and_then(clock),
            description: text(entry.get("description")),
            patient_name: text(field("name")),
            phone: text(field("phone")),
            phone_as_recorded: text(field("phoneAsRecorded")),
            dialable: field("dialable").and_then(Json::as_bool).unwrap_or(false),
            refusal: field("refusal").and_then(|r| {
                Some(NumberRefusal {
                    code: text(r.get("code"))?,
                    message: text(r.get("message")).unwrap_or_default(),
                })
            }),
            callable: entry
                .get("callable")
                .and_then(Json::as_bool)
                .unwrap_or(true),
        })
    }

    /// The number to show for dialing by hand, and its `tel:` link: none for a record that is
    /// not written as a number (`shared::dial_policy::tel_digits`), which is shown to be read.
    pub fn manual_number(&self) -> Option<(String, Option<String>)> {
        match (&self.phone, &self.phone_as_recorded) {
            (Some(e164), recorded) => Some((
                recorded.clone().unwrap_or_else(|| e164.clone()),
                Some(format!("tel:{e164}")),
            )),
            (None, Some(recorded)) => Some((
                recorded.clone(),
                tel_digits(recorded).map(|digits| format!("tel:{digits}")),
            )),
            (None, None) => None,
        }
    }

    /// "09:00 · Medication review": the start time and description.
    pub fn summary_line(&self) -> String {
        match (self.start_time.clone(), &self.description) {
            (Some(time), Some(description)) => format!("{time} · {description}"),
            (Some(time), None) => time,
            (None, Some(description)) => description.clone(),
            (None, None) => String::new(),
        }
    }
}

/// `HH:MM` of an RFC 3339 time in UTC, as written (`2026-11-25T09:30:00Z` → `09:30`).
pub fn utc_clock(start: &str) -> Option<String> {
    start.get(11..16).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_worker_entry_and_offers_a_tel_link() {
        let entry: Json = json!({
            "id": "appt-mobile", "start": "2026-11-25T09:30:00Z", "description": "Review",
            "patient": {"id": "p", "name": "Pat Example", "phone": "+447700900123",
                        "phoneAsRecorded": "07700 900123", "dialable": true, "refusal": null},
            "callable": true,
        })
        .into();
        let info = AppointmentInfo::from_json(&entry, utc_clock).expect("entry");
        assert_eq!(info.patient_name.as_deref(), Some("Pat Example"));
        assert_eq!(
            info.manual_number(),
            Some(("07700 900123".into(), Some("tel:+447700900123".into())))
        );
        assert_eq!(info.summary_line(), "09:30 · Review");
        assert!(info.dialable && info.callable && info.refusal.is_none());
    }

    #[test]
    fn a_number_that_could_not_be_normalised_is_still_offered_as_recorded() {
        let entry: Json =
            json!({"id": "a", "patient": {"phone": null, "phoneAsRecorded": "020 7946 0123 ext 4",
            "dialable": false, "refusal": {"code": "number_invalid", "message": "Not valid."}}})
            .into();
        let info = AppointmentInfo::from_json(&entry, utc_clock).expect("entry");
        // The extension stays in the text, off the link.
        assert_eq!(
            info.manual_number(),
            Some(("020 7946 0123 ext 4".into(), Some("tel:02079460123".into())))
        );
        // A typo is shown to be read, never linked to other digits.
        let typo: Json = json!({"id": "a", "patient": {"phoneAsRecorded": "07700 9OO123"}}).into();
        let typo = AppointmentInfo::from_json(&typo, utc_clock).expect("entry");
        assert_eq!(typo.manual_number(), Some(("07700 9OO123".into(), None)));
        assert_eq!(
            info.refusal.map(|r| r.code),
            Some("number_invalid".to_owned())
        );
        assert_eq!(
            AppointmentInfo::from_json(&json!({"patient": {}}).into(), utc_clock),
            None
        );
        let bare =
            AppointmentInfo::from_json(&json!({"id": "b"}).into(), utc_clock).expect("entry");
        assert_eq!(bare.manual_number(), None);
        assert_eq!(bare.summary_line(), "");
    }
}
