//! The call panel's view of a phone appointment: who the patient is, the number to call (or to
//! dial by hand), whether the dialing policy admits it, and a clinician's day of such appointments.
//!
//! Pure: the worker passes in the FHIR resources it read, the dialing policy and the day; the
//! calendar day is parsed and stepped here without a date library.

use serde::Serialize;
use serde_json::Value;
use thiserror::Error;

use crate::call_refusal::CallRefusal;
use crate::dial_policy::{check, normalise, DestinationPolicy};
use crate::fhir::{
    find_resource, has_practitioner, is_callable_status, is_phone_appointment, preferred_phone,
    resources_of,
};
use crate::ids::{PatientId, PractitionerId, E164};
use crate::time::rfc3339_utc;

/// Why a day could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum DayError {
    #[error("the date must be a calendar date written YYYY-MM-DD")]
    Malformed,
}

/// A calendar day in UTC, such as `2026-11-25`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Day {
    year: u16,
    month: u8,
    day: u8,
}

fn is_leap(year: u16) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Parses exactly `digits` ASCII digits.
fn number(text: &str, digits: usize) -> Option<u16> {
    (text.len() == digits && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

impl Day {
    /// Parses `YYYY-MM-DD` (years 0001 to 9999), rejecting days that do not exist.
    pub fn parse(value: &str) -> Result<Self, DayError> {
        let mut parts = value.split('-');
        let (Some(year), Some(month), Some(day), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(DayError::Malformed);
        };
        let year = number(year, 4).filter(|y| *y >= 1);
        let month = number(month, 2)
            .and_then(|m| u8::try_from(m).ok())
            .filter(|m| (1..=12).contains(m));
        let (Some(year), Some(month)) = (year, month) else {
            return Err(DayError::Malformed);
        };
        let day = number(day, 2)
            .and_then(|d| u8::try_from(d).ok())
            .filter(|d| (1..=days_in_month(year, month)).contains(d))
            .ok_or(DayError::Malformed)?;
        Ok(Self { year, month, day })
    }

    /// The UTC day containing the Unix instant (`None` outside years 0001 to 9999).
    pub fn of_unix(unix_seconds: i64) -> Option<Self> {
        let text = rfc3339_utc(unix_seconds);
        Self::parse(text.get(..10)?).ok()
    }

    /// Days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
    fn days_since_epoch(self) -> i64 {
        let month = i64::from(self.month);
        let year = i64::from(self.year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let yoe = year.rem_euclid(400);
        let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5
            + i64::from(self.day)
            - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        era * 146_097 + doe - 719_468
    }

    /// Unix seconds at 00:00:00 UTC of this day.
    pub fn start_unix(self) -> i64 {
        self.days_since_epoch() * 86_400
    }

    /// The following day (`None` after 9999-12-31).
    pub fn next(self) -> Option<Self> {
        Self::of_unix(self.start_unix() + 86_400)
    }

    /// `2026-11-25T00:00:00Z`: the instant the day starts, for FHIR date searches.
    pub fn start_instant(self) -> String {
        rfc3339_utc(self.start_unix())
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// Unix seconds of an RFC 3339 instant such as `2026-11-25T09:00:00.000Z` or
/// `2026-11-25T10:00:00+01:00` (fractions of a second ignored); `None` otherwise.
pub fn instant_unix(value: &str) -> Option<i64> {
    let day = Day::parse(value.get(..10)?).ok()?;
    let rest = value.get(10..)?.strip_prefix(['T', 't'])?;
    let (hour, minute, second) = (
        number(rest.get(0..2)?, 2)?,
        number(rest.get(3..5)?, 2)?,
        number(rest.get(6..8)?, 2)?,
    );
    if rest.get(2..3)? != ":" || rest.get(5..6)? != ":" || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut zone = rest.get(8..)?;
    if let Some(fraction) = zone.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        zone = fraction.get(digits..)?;
    }
    let offset_minutes = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = match zone.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            if zone.len() != 6 || zone.get(3..4)? != ":" {
                return None;
            }
            let hours = i64::from(number(zone.get(1..3)?, 2)?);
            let minutes = i64::from(number(zone.get(4..6)?, 2)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            sign * (hours * 60 + minutes)
        }
    };
    Some(
        day.start_unix() + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)
            - offset_minutes * 60,
    )
}

/// Why the panel cannot call the number, in the panel's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RefusalSummary {
    pub code: &'static str,
    pub message: &'static str,
}

impl From<CallRefusal> for RefusalSummary {
    fn from(refusal: CallRefusal) -> Self {
        Self {
            code: refusal.code(),
            message: refusal.display(),
        }
    }
}

/// The patient of an appointment as the panel shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PatientSummary {
    /// `None` only when the Appointment names no Patient.
    pub id: Option<PatientId>,
    pub name: Option<String>,
    /// The preferred number normalised to E.164, when it can be.
    pub phone: Option<E164>,
    /// The preferred number exactly as recorded: what to show and dial when normalising failed.
    pub phone_as_recorded: Option<String>,
    /// Whether the dialing policy admits `phone`.
    pub dialable: bool,
    /// Why not, when not dialable.
    pub refusal: Option<RefusalSummary>,
}

/// One phone appointment as the panel lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppointmentSummary {
    pub id: String,
    pub start: Option<String>,
    pub end: Option<String>,
    pub status: Option<String>,
    pub description: Option<String>,
    pub patient: PatientSummary,
    /// Whether the appointment's status allows a call (`shared::fhir::is_callable_status`).
    pub callable: bool,
}

fn text(resource: &Value, field: &str) -> Option<String> {
    resource
        .get(field)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A display name from `Patient.name`: the current `usual`, then `official`, then any other
/// current name (not `old`, not ended); its `text`, else its given names and family name.
pub fn display_name(patient: &Value) -> Option<String> {
    let rank = |name: &Value| match name.get("use").and_then(Value::as_str) {
        Some("usual") => 0,
        Some("official") => 1,
        Some("nickname" | "anonymous" | "temp") => 3,
        _ => 2,
    };
    let spelled = |name: &Value| {
        text(name, "text").or_else(|| {
            let given = name
                .get("given")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str);
            let parts: Vec<&str> = given
                .chain(name.get("family").and_then(Value::as_str))
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        })
    };
    patient
        .get("name")
        .and_then(Value::as_array)?
        .iter()
        .enumerate()
        .filter(|(_, n)| {
            !matches!(n.get("use").and_then(Value::as_str), Some("old" | "maiden"))
                && n.pointer("/period/end").is_none()
        })
        .filter_map(|(index, n)| Some(((rank(n), index), spelled(n)?)))
        .min_by_key(|(key, _)| *key)
        .map(|(_, name)| name)
}

/// The appointment's Patient participant: its id and the display the Appointment gives it.
fn patient_participant(appointment: &Value) -> Option<(PatientId, Option<String>)> {
    appointment
        .get("participant")
        .and_then(Value::as_array)?
        .iter()
        .filter(|p| p.get("status").and_then(Value::as_str) != Some("declined"))
        .find_map(|p| {
            let actor = p.get("actor")?;
            let id = actor
                .get("reference")
                .and_then(Value::as_str)?
                .strip_prefix("Patient/")?;
            Some((PatientId::parse(id).ok()?, text(actor, "display")))
        })
}

/// The patient part of an entry. `patient` is the Patient resource when it could be read.
fn patient_summary(
    appointment: &Value,
    patient: Option<&Value>,
    policy: &DestinationPolicy,
) -> PatientSummary {
    let participant = patient_participant(appointment);
    let recorded = patient
        .and_then(preferred_phone)
        .map(str::trim)
        .filter(|raw| !raw.is_empty());
    let verdict = check(policy, recorded.unwrap_or(""));
    PatientSummary {
        id: participant.as_ref().map(|(id, _)| id.clone()),
        name: patient
            .and_then(display_name)
            .or_else(|| participant.and_then(|(_, display)| display)),
        phone: recorded.and_then(|raw| normalise(raw).ok()),
        phone_as_recorded: recorded.map(str::to_owned),
        dialable: verdict.is_ok(),
        refusal: verdict
            .err()
            .map(|refusal| CallRefusal::from(refusal).into()),
    }
}

/// The panel's entry for an Appointment (`None` if it is not an Appointment with an id).
/// `patient` is its Patient resource, or `None` when it could not be read.
pub fn summarise(
    appointment: &Value,
    patient: Option<&Value>,
    policy: &DestinationPolicy,
) -> Option<AppointmentSummary> {
    if appointment.get("resourceType").and_then(Value::as_str) != Some("Appointment") {
        return None;
    }
    Some(AppointmentSummary {
        id: text(appointment, "id")?,
        start: text(appointment, "start"),
        end: text(appointment, "end"),
        status: text(appointment, "status"),
        description: text(appointment, "description"),
        patient: patient_summary(appointment, patient, policy),
        callable: is_callable_status(appointment),
    })
}

/// The Appointments the clinician's list shows: theirs, by phone, not entered in error.
fn listed<'a>(
    practitioner: &'a PractitionerId,
    resources: &'a [Value],
) -> impl Iterator<Item = &'a Value> {
    resources_of(resources, "Appointment").filter(move |a| {
        has_practitioner(a, practitioner)
            && is_phone_appointment(a)
            && a.get("status").and_then(Value::as_str) != Some("entered-in-error")
    })
}

fn patient_in<'a>(resources: &'a [Value], id: &PatientId) -> Option<&'a Value> {
    find_resource(resources, "Patient", id.as_str())
}

/// Patients of listed appointments that are not among `resources` (a search's `_include` should
/// have brought them; the worker reads any it did not).
pub fn patients_missing(practitioner: &PractitionerId, resources: &[Value]) -> Vec<PatientId> {
    let mut missing: Vec<PatientId> = listed(practitioner, resources)
        .filter_map(patient_participant)
        .map(|(id, _)| id)
        .filter(|id| patient_in(resources, id).is_none())
        .collect();
    missing.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    missing.dedup();
    missing
}

/// The clinician's phone appointments among `resources` (Appointments and their Patients, as a
/// search with `_include=Appointment:patient` returns them), sorted by start (appointments
/// without a readable start last), then id.
pub fn day_list(
    practitioner: &PractitionerId,
    resources: &[Value],
    policy: &DestinationPolicy,
) -> Vec<AppointmentSummary> {
    let mut entries: Vec<(Option<i64>, AppointmentSummary)> = listed(practitioner, resources)
        .filter_map(|appointment| {
            let patient =
                patient_participant(appointment).and_then(|(id, _)| patient_in(resources, &id));
            let entry = summarise(appointment, patient, policy)?;
            Some((entry.start.as_deref().and_then(instant_unix), entry))
        })
        .collect();
    entries.sort_by(|(a_start, a), (b_start, b)| {
        (a_start.is_none(), a_start, &a.id).cmp(&(b_start.is_none(), b_start, &b.id))
    });
    entries.into_iter().map(|(_, entry)| entry).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ada() -> PractitionerId {
        PractitionerId::parse("clinician-ada").unwrap()
    }

    fn appointment(id: &str, patient: &str, practitioner: &str, start: &str) -> Value {
        json!({
            "resourceType": "Appointment", "id": id, "status": "booked",
            "description": "Telephone appointment",
            "serviceType": [{"coding": [{"system": "http://snomed.info/sct", "code": "185317003"}]}],
            "start": start, "end": "2026-11-25T09:20:00.000Z",
            "participant": [
                {"actor": {"reference": format!("Patient/{patient}"), "display": "Test Patient Display"}, "status": "accepted"},
                {"actor": {"reference": format!("Practitioner/{practitioner}")}, "status": "accepted"}
            ]
        })
    }

    fn patient(id: &str, telecom: Value) -> Value {
        json!({
            "resourceType": "Patient", "id": id,
            "name": [{"use": "official", "given": ["Test", "Patient"], "family": "Mobile", "text": "Test Patient Mobile"}],
            "telecom": telecom
        })
    }

    #[test]
    fn days_parse_strictly() {
        let table = [
            ("2026-11-25", Some("2026-11-25")),
            ("2024-02-29", Some("2024-02-29")),
            ("2000-02-29", Some("2000-02-29")),
            ("1900-02-29", None),
            ("2026-02-29", None),
            ("2026-04-31", None),
            ("2026-13-01", None),
            ("2026-00-10", None),
            ("2026-11-00", None),
            ("0000-01-01", None),
            ("2026-1-25", None),
            ("26-11-25", None),
            ("2026/11/25", None),
            ("2026-11-25T00:00:00Z", None),
            ("2026-11-25-01", None),
            ("+026-11-25", None),
            ("２026-11-25", None),
            ("", None),
            ("today", None),
        ];
        for (input, expected) in table {
            let got = Day::parse(input).ok().map(|d| d.to_string());
            assert_eq!(got.as_deref(), expected, "{input}");
        }
    }

    #[test]
    fn days_step_and_start() {
        let table = [
            ("2026-11-25", "2026-11-26", 1_795_564_800),
            ("2026-11-30", "2026-12-01", 1_795_996_800),
            ("2026-12-31", "2027-01-01", 1_798_675_200),
            ("2024-02-28", "2024-02-29", 1_709_078_400),
            ("1970-01-01", "1970-01-02", 0),
        ];
        for (day, next, start) in table {
            let parsed = Day::parse(day).unwrap();
            assert_eq!(parsed.start_unix(), start, "{day}");
            assert_eq!(parsed.next().unwrap().to_string(), next, "{day}");
            assert_eq!(Day::of_unix(start + 86_399), Some(parsed), "{day}");
            assert_eq!(parsed.start_instant(), format!("{day}T00:00:00Z"));
        }
        assert_eq!(Day::parse("9999-12-31").unwrap().next(), None);
    }

    #[test]
    fn instants_parse_with_offsets_and_fractions() {
        let nine = 1_795_564_800 + 9 * 3600;
        let table = [
            ("2026-11-25T09:00:00Z", Some(nine)),
            ("2026-11-25T09:00:00.000Z", Some(nine)),
            ("2026-11-25T10:00:00+01:00", Some(nine)),
            ("2026-11-25T04:00:00.5-05:00", Some(nine)),
            ("2026-11-25t09:00:00z", Some(nine)),
            ("2026-11-25", None),
            ("2026-11-25T09:00Z", None),
            ("2026-11-25T24:00:00Z", None),
            ("2026-11-25T09:00:00", None),
            ("2026-11-25T09:00:00.Z", None),
            ("2026-11-25T09:00:00+0100", None),
            ("2026-11-25T09:00:00+99:99", None),
            ("2026-11-25T09:00:00+05:60", None),
            ("2026-11-25T09:00:00+14:00", Some(nine - 14 * 3600)),
            ("garbage", None),
        ];
        for (input, expected) in table {
            assert_eq!(instant_unix(input), expected, "{input}");
        }
    }

    #[test]
    fn entries_say_whether_and_what_to_dial() {
        // Under the UK-only policy.
        /// Recorded telecom → (phone, phoneAsRecorded, dialable, refusal code).
        type Case = (
            Value,
            Option<&'static str>,
            Option<&'static str>,
            bool,
            Option<&'static str>,
        );
        let table: [Case; 9] = [
            (
                json!([{"system": "phone", "value": "07700 900123", "use": "mobile"}]),
                Some("+447700900123"),
                Some("07700 900123"),
                true,
                None,
            ),
            (
                json!([{"system": "phone", "value": "020 7946 0123"}]),
                Some("+442079460123"),
                Some("020 7946 0123"),
                true,
                None,
            ),
            (
                json!([{"system": "phone", "value": "+44 (0)7700 900456"}]),
                Some("+447700900456"),
                Some("+44 (0)7700 900456"),
                true,
                None,
            ),
            (
                json!([{"system": "phone", "value": "0044 7700 900789"}]),
                Some("+447700900789"),
                Some("0044 7700 900789"),
                true,
                None,
            ),
            (
                json!([{"system": "phone", "value": "+1 202 555 0143"}]),
                Some("+12025550143"),
                Some("+1 202 555 0143"),
                false,
                Some("country_not_allowed"),
            ),
            (
                json!([{"system": "phone", "value": "09098 790000"}]),
                Some("+449098790000"),
                Some("09098 790000"),
                false,
                Some("number_blocked"),
            ),
            (
                json!([{"system": "email", "value": "test.patient@example.org"}]),
                None,
                None,
                false,
                Some("number_missing"),
            ),
            (
                json!([{"system": "phone", "value": "07700 9OO123"}]),
                None,
                Some("07700 9OO123"),
                false,
                Some("number_invalid"),
            ),
            (
                json!([
                    {"system": "phone", "value": "020 7946 0456", "use": "home", "rank": 2},
                    {"system": "phone", "value": "07700 900654", "use": "mobile", "rank": 1}
                ]),
                Some("+447700900654"),
                Some("07700 900654"),
                true,
                None,
            ),
        ];
        let policy = DestinationPolicy::UkOnly;
        for (telecom, phone, recorded, dialable, refusal) in table {
            let appt = appointment(
                "appt-1",
                "patient-1",
                "clinician-ada",
                "2026-11-25T09:00:00.000Z",
            );
            let entry =
                summarise(&appt, Some(&patient("patient-1", telecom.clone())), &policy).unwrap();
            let p = &entry.patient;
            assert_eq!(p.phone.as_ref().map(E164::as_str), phone, "{telecom}");
            assert_eq!(p.phone_as_recorded.as_deref(), recorded, "{telecom}");
            assert_eq!(p.dialable, dialable, "{telecom}");
            assert_eq!(p.refusal.map(|r| r.code), refusal, "{telecom}");
            if let Some(code) = refusal {
                let expected = CallRefusal::ALL
                    .into_iter()
                    .find(|r| r.code() == code)
                    .unwrap();
                assert_eq!(p.refusal.unwrap().message, expected.display());
            }
        }
        // A wider policy admits the US number.
        let policy = DestinationPolicy::parse("countries:GB,US").unwrap();
        let appt = appointment(
            "appt-1",
            "patient-1",
            "clinician-ada",
            "2026-11-25T09:00:00Z",
        );
        let us = patient(
            "patient-1",
            json!([{"system": "phone", "value": "+1 202 555 0143"}]),
        );
        assert!(
            summarise(&appt, Some(&us), &policy)
                .unwrap()
                .patient
                .dialable
        );
    }

    #[test]
    fn entry_json_has_the_panel_contract_shape() {
        let appt = appointment(
            "appt-mobile",
            "patient-mobile",
            "clinician-ada",
            "2026-11-25T09:00:00.000Z",
        );
        let patient = patient(
            "patient-mobile",
            json!([{"system": "phone", "value": "09098 790000"}]),
        );
        let entry = summarise(&appt, Some(&patient), &DestinationPolicy::UkOnly).unwrap();
        assert_eq!(
            serde_json::to_value(&entry).unwrap(),
            json!({
                "id": "appt-mobile", "start": "2026-11-25T09:00:00.000Z", "end": "2026-11-25T09:20:00.000Z",
                "status": "booked", "description": "Telephone appointment",
                "patient": {
                    "id": "patient-mobile", "name": "Test Patient Mobile",
                    "phone": "+449098790000", "phoneAsRecorded": "09098 790000", "dialable": false,
                    "refusal": {"code": "number_blocked", "message": CallRefusal::NumberBlocked.display()}
                },
                "callable": true
            })
        );
        let mut bare =
            json!({"resourceType": "Appointment", "id": "appt-bare", "status": "cancelled"});
        let entry =
            serde_json::to_value(summarise(&bare, None, &DestinationPolicy::UkOnly).unwrap())
                .unwrap();
        assert_eq!(
            entry,
            json!({
                "id": "appt-bare", "start": null, "end": null, "status": "cancelled", "description": null,
                "patient": {"id": null, "name": null, "phone": null, "phoneAsRecorded": null, "dialable": false,
                    "refusal": {"code": "number_missing", "message": CallRefusal::NumberMissing.display()}},
                "callable": false
            })
        );
        bare["resourceType"] = json!("Patient");
        assert_eq!(summarise(&bare, None, &DestinationPolicy::UkOnly), None);
    }

    #[test]
    fn names_prefer_current_usual_then_official() {
        let table = [
            (
                json!({"name": [{"use": "official", "text": "Test Patient Official"}]}),
                Some("Test Patient Official"),
            ),
            (
                json!({"name": [{"use": "official", "given": ["Test", "Patient"], "family": "Given"}]}),
                Some("Test Patient Given"),
            ),
            (
                json!({"name": [
                    {"use": "old", "text": "Test Patient Old"},
                    {"use": "official", "text": "Test Patient Official"},
                    {"use": "usual", "text": "Test Patient Usual"}
                ]}),
                Some("Test Patient Usual"),
            ),
            (
                json!({"name": [
                    {"use": "usual", "text": "Test Patient Ended", "period": {"end": "2020-01-01"}},
                    {"text": "Test Patient Plain"}
                ]}),
                Some("Test Patient Plain"),
            ),
            (json!({"name": [{"use": "official", "text": "  "}]}), None),
            (json!({}), None),
        ];
        for (patient, expected) in table {
            assert_eq!(display_name(&patient).as_deref(), expected, "{patient}");
        }
        // Without a readable Patient, the Appointment's participant display stands in.
        let appt = appointment(
            "appt-1",
            "patient-1",
            "clinician-ada",
            "2026-11-25T09:00:00Z",
        );
        let entry = summarise(&appt, None, &DestinationPolicy::UkOnly).unwrap();
        assert_eq!(entry.patient.name.as_deref(), Some("Test Patient Display"));
        assert_eq!(
            entry.patient.id.as_ref().map(PatientId::as_str),
            Some("patient-1")
        );
        assert_eq!(
            entry.patient.refusal.map(|r| r.code),
            Some("number_missing")
        );
    }

    #[test]
    fn day_list_keeps_the_clinicians_phone_appointments_sorted_by_start() {
        let mobile = json!([{"system": "phone", "value": "07700 900123"}]);
        let mut in_person = appointment(
            "appt-in-person",
            "patient-1",
            "clinician-ada",
            "2026-11-25T08:00:00Z",
        );
        in_person["serviceType"] =
            json!([{"coding": [{"system": "http://snomed.info/sct", "code": "185389009"}]}]);
        let mut declined = appointment(
            "appt-declined",
            "patient-1",
            "clinician-ada",
            "2026-11-25T08:30:00Z",
        );
        declined["participant"][1]["status"] = json!("declined");
        let mut error = appointment(
            "appt-error",
            "patient-1",
            "clinician-ada",
            "2026-11-25T08:45:00Z",
        );
        error["status"] = json!("entered-in-error");
        let mut cancelled = appointment(
            "appt-cancelled",
            "patient-2",
            "clinician-ada",
            "2026-11-25T12:00:00Z",
        );
        cancelled["status"] = json!("cancelled");
        let resources = vec![
            appointment(
                "appt-late",
                "patient-1",
                "clinician-ada",
                "2026-11-25T11:00:00+01:00",
            ),
            appointment("appt-no-start", "patient-1", "clinician-ada", ""),
            appointment(
                "appt-early",
                "patient-2",
                "clinician-ada",
                "2026-11-25T09:00:00.000Z",
            ),
            appointment(
                "appt-bob",
                "patient-1",
                "clinician-bob",
                "2026-11-25T07:00:00Z",
            ),
            in_person,
            declined,
            error,
            cancelled,
            patient("patient-1", mobile.clone()),
            patient("patient-2", json!([])),
        ];
        let list = day_list(&ada(), &resources, &DestinationPolicy::UkOnly);
        let ids: Vec<&str> = list.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            ["appt-early", "appt-late", "appt-cancelled", "appt-no-start"]
        );
        assert_eq!(
            list[1].patient.phone.as_ref().map(E164::as_str),
            Some("+447700900123")
        );
        assert_eq!(
            list[0].patient.refusal.map(|r| r.code),
            Some("number_missing")
        );
        assert!(!list[2].callable);
        assert!(list[0].callable);
        assert!(patients_missing(&ada(), &resources).is_empty());

        let without_patients = &resources[..8];
        let missing: Vec<String> = patients_missing(&ada(), without_patients)
            .into_iter()
            .map(String::from)
            .collect();
        assert_eq!(missing, ["patient-1", "patient-2"]);
        assert!(day_list(&ada(), &[], &DestinationPolicy::UkOnly).is_empty());
    }
}
