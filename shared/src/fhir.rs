//! The few FHIR R4 facts the product reads and writes, on `serde_json::Value` so every field we
//! do not model is preserved: phone appointments, their participants, a patient's preferred
//! phone number, and the call-record extension written back to the Appointment.

use serde_json::{json, Value};

use crate::call_state::{CallStatus, EndedBy};
use crate::ids::{AppointmentId, PatientId, PractitionerId};
use crate::time::rfc3339_utc;

/// SNOMED CT "Telephone encounter".
pub const SNOMED_TELEPHONE_ENCOUNTER: &str = "185317003";
pub const SNOMED_SYSTEM: &str = "http://snomed.info/sct";

/// The complex extension holding one call on an Appointment.
pub const CALL_EXTENSION_URL: &str =
    "https://clinician-calls.example/fhir/StructureDefinition/twilio-voice-call";

/// Whether the Appointment is a phone appointment: serviceType (or appointmentType) carries
/// SNOMED 185317003, or the app's `callType = phone` extension is set.
pub fn is_phone_appointment(appointment: &Value) -> bool {
    let is_telephone_coding = |coding: &Value| {
        coding.get("system").and_then(Value::as_str) == Some(SNOMED_SYSTEM)
            && coding.get("code").and_then(Value::as_str) == Some(SNOMED_TELEPHONE_ENCOUNTER)
    };
    // serviceType is a list of concepts; appointmentType is a single concept.
    let concepts = appointment
        .get("serviceType")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .chain(appointment.get("appointmentType"));
    let snomed = concepts
        .filter_map(|concept| concept.get("coding").and_then(Value::as_array))
        .flatten()
        .any(is_telephone_coding);
    let call_type = appointment
        .get("extension")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|ext| {
            let is_call_type = ext
                .get("url")
                .and_then(Value::as_str)
                .is_some_and(|url| url.ends_with("callType"));
            let value = ext.get("valueString").or_else(|| ext.get("valueCode"));
            is_call_type && value.and_then(Value::as_str) == Some("phone")
        });
    snomed || call_type
}

/// Appointment statuses in which a call may be placed.
pub fn is_callable_status(appointment: &Value) -> bool {
    matches!(
        appointment.get("status").and_then(Value::as_str),
        Some("booked" | "arrived" | "checked-in" | "pending" | "proposed")
    )
}

fn participant_references(appointment: &Value) -> impl Iterator<Item = &str> {
    appointment
        .get("participant")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("status").and_then(Value::as_str) != Some("declined"))
        .filter_map(|p| p.pointer("/actor/reference").and_then(Value::as_str))
}

/// Whether the practitioner takes part in the appointment.
pub fn has_practitioner(appointment: &Value, practitioner: &PractitionerId) -> bool {
    let reference = practitioner.reference();
    participant_references(appointment).any(|r| r == reference)
}

/// The appointment's patient.
pub fn patient_of(appointment: &Value) -> Option<PatientId> {
    participant_references(appointment)
        .find_map(|r| r.strip_prefix("Patient/"))
        .and_then(|id| PatientId::parse(id).ok())
}

/// The resources of one type among a search's results (matches and `_include`s alike).
pub fn resources_of<'a>(resources: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> {
    resources
        .iter()
        .filter(move |r| r.get("resourceType").and_then(Value::as_str) == Some(kind))
}

/// The resource `kind/id` among a search's results, if it came with them.
pub fn find_resource<'a>(resources: &'a [Value], kind: &'a str, id: &str) -> Option<&'a Value> {
    resources_of(resources, kind).find(|r| r.get("id").and_then(Value::as_str) == Some(id))
}

/// The patient's number to call, by this documented preference: `telecom` entries with
/// `system = phone` (or `sms`), not ended (`period.end`), ordered by `rank` (lowest first, unranked
/// last), then `use` (mobile, home, work, temp, other/none), then their order in the record.
pub fn preferred_phone(patient: &Value) -> Option<&str> {
    let use_order = |u: Option<&str>| match u {
        Some("mobile") => 0,
        Some("home") => 1,
        Some("work") => 2,
        Some("temp") => 3,
        _ => 4,
    };
    patient
        .get("telecom")
        .and_then(Value::as_array)?
        .iter()
        .enumerate()
        .filter(|(_, t)| {
            matches!(
                t.get("system").and_then(Value::as_str),
                Some("phone" | "sms")
            )
        })
        .filter(|(_, t)| t.pointer("/period/end").is_none())
        .filter_map(|(index, t)| {
            let value = t.get("value").and_then(Value::as_str)?;
            let rank = t.get("rank").and_then(Value::as_u64).unwrap_or(u64::MAX);
            Some((
                (rank, use_order(t.get("use").and_then(Value::as_str)), index),
                value,
            ))
        })
        .min_by_key(|(key, _)| *key)
        .map(|(_, value)| value)
}

/// How a call was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDirection {
    /// From the clinician's browser through Twilio.
    OutboundBrowser,
    /// A patient calling a pool number back.
    Inbound,
    /// Dialled by hand, outcome reported by the clinician.
    Manual,
}

impl CallDirection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OutboundBrowser => "outbound-browser",
            Self::Inbound => "inbound",
            Self::Manual => "manual",
        }
    }
}

/// Everything the extension records about one call. Never the full patient number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecordFields<'a> {
    pub call_sid: &'a str,
    pub parent_call_sid: Option<&'a str>,
    pub status: CallStatus,
    pub direction: CallDirection,
    pub duration_seconds: u32,
    pub started_at_unix: Option<i64>,
    pub answered_at_unix: Option<i64>,
    pub ended_at_unix: Option<i64>,
    pub caller_id: Option<&'a str>,
    /// e.g. `•••123`.
    pub patient_number_masked: Option<&'a str>,
    pub sequence_number: Option<u32>,
    pub ended_by: Option<EndedBy>,
    pub practitioner: Option<&'a PractitionerId>,
    pub error_code: Option<u32>,
    /// Why the call's end could not be learned (Twilio knows no such call, or refused to say
    /// for a day): the record is closed with its last known status and this reason
    /// (`outcomeUnknown`), rather than left live for good or given an outcome made up.
    pub outcome_unknown: Option<&'a str>,
}

fn ended_by_code(ended_by: EndedBy) -> &'static str {
    match ended_by {
        EndedBy::Clinician => "clinician",
        EndedBy::Patient => "patient",
        EndedBy::System => "system",
    }
}

/// The complex extension for one call.
pub fn call_extension(fields: &CallRecordFields<'_>) -> Value {
    // FHIR's `integer` is signed 32-bit: a larger value (only a malformed callback could carry
    // one) is written as the largest, so Medplum never refuses the record over it.
    let integer = |value: u32| i32::try_from(value).unwrap_or(i32::MAX);
    let mut parts = vec![
        json!({"url": "callSid", "valueString": fields.call_sid}),
        json!({"url": "status", "valueCode": fields.status.as_str()}),
        json!({"url": "direction", "valueCode": fields.direction.as_str()}),
        json!({"url": "durationSeconds", "valueInteger": integer(fields.duration_seconds)}),
    ];
    let optional = [
        fields
            .parent_call_sid
            .map(|v| json!({"url": "parentCallSid", "valueString": v})),
        fields
            .started_at_unix
            .map(|t| json!({"url": "startedAt", "valueDateTime": rfc3339_utc(t)})),
        fields
            .answered_at_unix
            .map(|t| json!({"url": "answeredAt", "valueDateTime": rfc3339_utc(t)})),
        fields
            .ended_at_unix
            .map(|t| json!({"url": "endedAt", "valueDateTime": rfc3339_utc(t)})),
        fields
            .caller_id
            .map(|v| json!({"url": "callerId", "valueString": v})),
        fields
            .patient_number_masked
            .map(|v| json!({"url": "patientNumberMasked", "valueString": v})),
        fields
            .sequence_number
            .map(|v| json!({"url": "sequenceNumber", "valueInteger": integer(v)})),
        fields
            .ended_by
            .map(|v| json!({"url": "endedBy", "valueCode": ended_by_code(v)})),
        fields.practitioner.map(
            |p| json!({"url": "practitioner", "valueReference": {"reference": p.reference()}}),
        ),
        fields
            .error_code
            .map(|v| json!({"url": "errorCode", "valueInteger": integer(v)})),
        fields
            .outcome_unknown
            .map(|v| json!({"url": "outcomeUnknown", "valueCode": v})),
    ];
    parts.extend(optional.into_iter().flatten());
    json!({"url": CALL_EXTENSION_URL, "extension": parts})
}

/// A string part (`callSid`, `parentCallSid`) of a call extension, if `ext` is one.
fn call_part<'a>(ext: &'a Value, name: &str) -> Option<&'a str> {
    if ext.get("url").and_then(Value::as_str) != Some(CALL_EXTENSION_URL) {
        return None;
    }
    ext.get("extension")
        .and_then(Value::as_array)?
        .iter()
        .find(|part| part.get("url").and_then(Value::as_str) == Some(name))
        .and_then(|part| part.get("valueString").and_then(Value::as_str))
}

/// The callSid of a call extension, if `ext` is one.
pub fn call_sid_of(ext: &Value) -> Option<&str> {
    call_part(ext, "callSid")
}

/// Whether two call extensions record the same call: the same callSid, or the same clinician's
/// leg (`parentCallSid`), or one written under the clinician's leg before the patient's leg was
/// known (its callSid is the other's parentCallSid).
fn same_call(a: &Value, b: &Value) -> bool {
    let (a_sid, a_parent) = (call_sid_of(a), call_part(a, "parentCallSid"));
    let (b_sid, b_parent) = (call_sid_of(b), call_part(b, "parentCallSid"));
    let some_eq = |x: Option<&str>, y: Option<&str>| x.is_some() && x == y;
    some_eq(a_sid, b_sid)
        || some_eq(a_parent, b_parent)
        || some_eq(a_sid, b_parent)
        || some_eq(a_parent, b_sid)
}

/// The Appointment's extension list with `call` inserted, or replacing the one recording the
/// same call ([`same_call`]), so a call is never recorded twice, even when it was first written
/// before its patient's leg had a SID. Other extensions are kept in place.
pub fn upsert_call_extension(appointment: &Value, call: Value) -> Vec<Value> {
    let mut extensions: Vec<Value> = appointment
        .get("extension")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    match extensions.iter().position(|ext| same_call(ext, &call)) {
        Some(first) => {
            // Every copy goes (one written twice before this rule too); nothing before the
            // first moves, so the call takes the first one's place.
            extensions.retain(|ext| !same_call(ext, &call));
            extensions.insert(first, call);
        }
        None => extensions.push(call),
    }
    extensions
}

/// A JSON Patch that replaces the extension list only if the Appointment is still at
/// `version_id` (`test` on `/meta/versionId`), so no concurrent edit is overwritten.
pub fn extension_patch(version_id: &str, extensions: Vec<Value>) -> Value {
    json!([
        {"op": "test", "path": "/meta/versionId", "value": version_id},
        {"op": "add", "path": "/extension", "value": extensions},
    ])
}

/// The Appointment's id as a path segment.
pub fn appointment_path(id: &AppointmentId) -> String {
    format!("Appointment/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_is_found_among_search_results_by_type_and_id() {
        let found = [
            json!({"resourceType": "Appointment", "id": "a1"}),
            json!({"resourceType": "Patient", "id": "a1"}),
            json!({"resourceType": "Patient", "id": "p2"}),
        ];
        let table: [(&str, &str, Option<usize>); 4] = [
            ("Patient", "a1", Some(1)),
            ("Appointment", "a1", Some(0)),
            ("Patient", "p3", None),
            ("AccessPolicy", "a1", None),
        ];
        for (kind, id, expected) in table {
            assert_eq!(
                find_resource(&found, kind, id),
                expected.map(|i| &found[i]),
                "{kind}/{id}"
            );
        }
        assert_eq!(resources_of(&found, "Patient").count(), 2);
    }

    fn appointment() -> Value {
        json!({
            "resourceType": "Appointment", "id": "appt-mobile", "status": "booked",
            "meta": {"versionId": "7"},
            "serviceType": [{"coding": [{"system": SNOMED_SYSTEM, "code": SNOMED_TELEPHONE_ENCOUNTER, "display": "Telephone encounter"}]}],
            "participant": [
                {"actor": {"reference": "Patient/patient-mobile"}, "status": "accepted"},
                {"actor": {"reference": "Practitioner/clinician-ada"}, "status": "accepted"}
            ],
            "extension": [{"url": "https://example.org/other", "valueString": "kept"}]
        })
    }

    #[test]
    fn reads_phone_appointments() {
        let appt = appointment();
        assert!(is_phone_appointment(&appt));
        assert!(is_callable_status(&appt));
        assert!(has_practitioner(
            &appt,
            &PractitionerId::parse("clinician-ada").unwrap()
        ));
        assert!(!has_practitioner(
            &appt,
            &PractitionerId::parse("clinician-bob").unwrap()
        ));
        assert_eq!(
            patient_of(&appt).map(|p| p.to_string()).as_deref(),
            Some("patient-mobile")
        );

        let video =
            json!({"serviceType": [{"coding": [{"system": SNOMED_SYSTEM, "code": "448337001"}]}]});
        assert!(!is_phone_appointment(&video));
        let by_extension =
            json!({"extension": [{"url": "https://app.example/callType", "valueString": "phone"}]});
        assert!(is_phone_appointment(&by_extension));
        for status in ["cancelled", "fulfilled", "noshow", "entered-in-error"] {
            assert!(!is_callable_status(&json!({"status": status})), "{status}");
        }
    }

    #[test]
    fn preferred_phone_order() {
        let patient = json!({"telecom": [
            {"system": "email", "value": "a@example.org"},
            {"system": "phone", "value": "020 7946 0123", "use": "home"},
            {"system": "phone", "value": "07700 900999", "use": "mobile", "period": {"end": "2020-01-01"}},
            {"system": "phone", "value": "07700 900123", "use": "mobile"}
        ]});
        assert_eq!(preferred_phone(&patient), Some("07700 900123"));
        let ranked = json!({"telecom": [
            {"system": "phone", "value": "07700 900123", "use": "mobile", "rank": 2},
            {"system": "phone", "value": "020 7946 0123", "use": "home", "rank": 1}
        ]});
        assert_eq!(preferred_phone(&ranked), Some("020 7946 0123"));
        assert_eq!(
            preferred_phone(&json!({"telecom": [{"system": "email", "value": "x"}]})),
            None
        );
        assert_eq!(preferred_phone(&json!({})), None);
    }

    fn fields(sid: &str, status: CallStatus) -> CallRecordFields<'_> {
        fields_of(sid, Some("CA-parent"), status)
    }

    fn fields_of<'a>(
        sid: &'a str,
        parent: Option<&'a str>,
        status: CallStatus,
    ) -> CallRecordFields<'a> {
        CallRecordFields {
            call_sid: sid,
            parent_call_sid: parent,
            status,
            direction: CallDirection::OutboundBrowser,
            duration_seconds: 42,
            started_at_unix: Some(1_795_586_882),
            answered_at_unix: None,
            ended_at_unix: None,
            caller_id: Some("+447700900001"),
            patient_number_masked: Some("•••123"),
            sequence_number: Some(3),
            ended_by: Some(EndedBy::Clinician),
            practitioner: None,
            error_code: None,
            outcome_unknown: None,
        }
    }

    #[test]
    fn a_call_whose_end_is_unknown_says_so_beside_its_last_known_status() {
        let unknown = CallRecordFields {
            outcome_unknown: Some("unknown-to-twilio"),
            ..fields("CA1", CallStatus::Ringing)
        };
        let ext = call_extension(&unknown);
        let part = |name: &str| {
            ext["extension"]
                .as_array()
                .and_then(|parts| parts.iter().find(|p| p["url"] == name))
                .cloned()
        };
        assert_eq!(
            part("status").map(|p| p["valueCode"].clone()),
            Some(json!("ringing"))
        );
        assert_eq!(
            part("outcomeUnknown").map(|p| p["valueCode"].clone()),
            Some(json!("unknown-to-twilio"))
        );
        let known = call_extension(&fields("CA1", CallStatus::Completed));
        assert!(!known.to_string().contains("outcomeUnknown"));
    }

    #[test]
    fn integers_beyond_fhirs_range_are_written_as_its_largest() {
        let huge = CallRecordFields {
            duration_seconds: u32::MAX,
            sequence_number: Some(3_000_000_000),
            error_code: Some(31_005),
            ..fields("CA1", CallStatus::Completed)
        };
        let ext = call_extension(&huge);
        let integer = |name: &str| {
            ext["extension"]
                .as_array()
                .and_then(|parts| parts.iter().find(|p| p["url"] == name))
                .map(|p| p["valueInteger"].clone())
        };
        assert_eq!(integer("durationSeconds"), Some(json!(i32::MAX)));
        assert_eq!(integer("sequenceNumber"), Some(json!(i32::MAX)));
        assert_eq!(integer("errorCode"), Some(json!(31_005)));
    }

    #[test]
    fn call_extension_shape() {
        let ext = call_extension(&fields("CA1", CallStatus::Completed));
        assert_eq!(ext["url"], CALL_EXTENSION_URL);
        assert_eq!(call_sid_of(&ext), Some("CA1"));
        let part = |name: &str| {
            ext["extension"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["url"] == name)
                .cloned()
        };
        assert_eq!(part("status").unwrap()["valueCode"], "completed");
        assert_eq!(part("durationSeconds").unwrap()["valueInteger"], 42);
        assert_eq!(
            part("startedAt").unwrap()["valueDateTime"],
            "2026-11-25T06:08:02Z"
        );
        assert_eq!(
            part("patientNumberMasked").unwrap()["valueString"],
            "•••123"
        );
        assert_eq!(part("endedBy").unwrap()["valueCode"], "clinician");
        assert!(part("answeredAt").is_none());
        assert!(!ext.to_string().contains("900123"), "never the full number");
    }

    #[test]
    fn upsert_replaces_by_call_sid_and_keeps_other_extensions() {
        let mut appt = appointment();
        let first =
            upsert_call_extension(&appt, call_extension(&fields("CA1", CallStatus::Ringing)));
        assert_eq!(first.len(), 2);
        appt["extension"] = Value::Array(first);
        let second =
            upsert_call_extension(&appt, call_extension(&fields("CA1", CallStatus::Completed)));
        assert_eq!(second.len(), 2, "same call updated in place");
        assert_eq!(second[0]["valueString"], "kept");
        appt["extension"] = Value::Array(second);
        let third = upsert_call_extension(
            &appt,
            call_extension(&fields_of("CA2", Some("CA-parent-2"), CallStatus::Busy)),
        );
        assert_eq!(third.len(), 3, "a second call is a second extension");
        let patch = extension_patch("7", third);
        assert_eq!(
            patch[0],
            json!({"op": "test", "path": "/meta/versionId", "value": "7"})
        );
        assert_eq!(patch[1]["op"], "add");
    }

    #[test]
    fn a_call_first_written_under_the_clinicians_leg_is_updated_not_written_twice() {
        let status_of = |ext: &Value| {
            ext["extension"]
                .as_array()
                .and_then(|parts| parts.iter().find(|p| p["url"] == "status"))
                .map(|p| p["valueCode"].clone())
        };
        let mut appt = appointment();
        // Ended while connecting: written under the clinician's leg, no patient's leg yet.
        let early = call_extension(&fields_of("CA-parent", None, CallStatus::Canceled));
        appt["extension"] = Value::Array(upsert_call_extension(&appt, early.clone()));
        // Then the patient's leg reports: the same call, now under the patient's leg.
        let late = call_extension(&fields_of(
            "CA-child",
            Some("CA-parent"),
            CallStatus::Completed,
        ));
        let merged = upsert_call_extension(&appt, late.clone());
        assert_eq!(
            merged.len(),
            2,
            "one extension for the call, and the other kept"
        );
        assert_eq!(call_sid_of(&merged[1]), Some("CA-child"));
        assert_eq!(status_of(&merged[1]), Some(json!("completed")));
        // Written twice before this rule: the copies become one, where the first was.
        appt["extension"] =
            json!([early, {"url": "https://example.org/x", "valueString": "kept"}, late.clone()]);
        let mended = upsert_call_extension(&appt, late);
        assert_eq!(mended.len(), 2);
        assert_eq!(call_sid_of(&mended[0]), Some("CA-child"));
        assert_eq!(mended[1]["valueString"], "kept");
        // The patient's leg of another call from another clinician's leg is another call.
        let other = call_extension(&fields_of(
            "CA-child-2",
            Some("CA-parent-2"),
            CallStatus::Busy,
        ));
        assert_eq!(upsert_call_extension(&appt, other).len(), 4);
    }
}
