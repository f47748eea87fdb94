//! Clinician rules: who may place browser calls, and the Twilio identity identifier on their
//! Practitioner resource.
//!
//! Resources are handled as JSON values so that every field we do not know is kept exactly as
//! Medplum returned it: adding an identifier never loses another edit.

use serde_json::{json, Value};

use crate::ids::{Identity, PractitionerId};

/// The AccessPolicy name that allows a clinician to place and manage their own calls.
pub const VIDEOCALL_POLICY_NAME: &str = "videocall_own_manage";

/// The identifier system holding a clinician's Twilio client identity.
pub const TWILIO_IDENTITY_SYSTEM: &str = "http://twilio.com/voice/identity";

/// References (`AccessPolicy/<id>`) a ProjectMembership grants, from both `accessPolicy` and
/// `access[].policy`, without duplicates, in order. A suspended membership (`active: false`)
/// grants nothing.
pub fn membership_policy_references(membership: &Value) -> Vec<String> {
    if membership.get("active").and_then(Value::as_bool) == Some(false) {
        return Vec::new();
    }
    let direct = membership
        .pointer("/accessPolicy/reference")
        .and_then(Value::as_str);
    let listed = membership
        .get("access")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| entry.pointer("/policy/reference").and_then(Value::as_str));
    let mut references: Vec<String> = Vec::new();
    for reference in direct.into_iter().chain(listed) {
        if reference.starts_with("AccessPolicy/") && !references.iter().any(|r| r == reference) {
            references.push(reference.to_owned());
        }
    }
    references
}

/// Whether any of the clinician's access policy names allows browser calls.
pub fn may_place_calls<'a>(policy_names: impl IntoIterator<Item = &'a str>) -> bool {
    policy_names
        .into_iter()
        .any(|name| name == VIDEOCALL_POLICY_NAME)
}

/// The Twilio identity recorded on a Practitioner, if any.
pub fn recorded_identity(practitioner: &Value) -> Option<&str> {
    practitioner
        .get("identifier")
        .and_then(Value::as_array)?
        .iter()
        .find(|identifier| {
            identifier.get("system").and_then(Value::as_str) == Some(TWILIO_IDENTITY_SYSTEM)
        })
        .and_then(|identifier| identifier.get("value").and_then(Value::as_str))
}

/// What provisioning must do to a Practitioner.
#[derive(Debug, Clone, PartialEq)]
pub enum IdentityProvisioning {
    /// The identifier is already there with the right value.
    AlreadyProvisioned,
    /// Write this updated resource (the original plus one identifier).
    Add(Value),
    /// An identifier with our system exists but holds another value: left alone, reported.
    Conflicting(String),
}

/// Decides how to give `practitioner` its Twilio identity identifier (value = its id).
pub fn provision_identity(practitioner: &Value, id: &PractitionerId) -> IdentityProvisioning {
    let identity = Identity::from(id);
    match recorded_identity(practitioner) {
        Some(value) if value == identity.as_str() => IdentityProvisioning::AlreadyProvisioned,
        Some(other) => IdentityProvisioning::Conflicting(other.to_owned()),
        None => {
            let mut updated = practitioner.clone();
            let entry = json!({"system": TWILIO_IDENTITY_SYSTEM, "value": identity.as_str()});
            match updated.get_mut("identifier").and_then(Value::as_array_mut) {
                Some(identifiers) => identifiers.push(entry),
                None => {
                    if let Some(object) = updated.as_object_mut() {
                        object.insert("identifier".into(), json!([entry]));
                    }
                }
            }
            IdentityProvisioning::Add(updated)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(value: &str) -> PractitionerId {
        PractitionerId::parse(value).unwrap()
    }

    #[test]
    fn policy_references_come_from_both_fields() {
        let membership = json!({
            "resourceType": "ProjectMembership",
            "accessPolicy": {"reference": "AccessPolicy/a"},
            "access": [
                {"policy": {"reference": "AccessPolicy/b"}},
                {"policy": {"reference": "AccessPolicy/a"}},
                {"policy": {"reference": "Patient/not-a-policy"}},
                {"parameter": []}
            ]
        });
        assert_eq!(
            membership_policy_references(&membership),
            vec!["AccessPolicy/a".to_owned(), "AccessPolicy/b".to_owned()]
        );
        assert!(membership_policy_references(&json!({})).is_empty());
        // Suspended: grants nothing. Marked active, or not marked: grants its policies.
        let with_active = |active: Value| {
            let mut membership = membership.clone();
            membership["active"] = active;
            membership_policy_references(&membership).len()
        };
        assert_eq!(with_active(json!(false)), 0);
        assert_eq!(with_active(json!(true)), 2);
        assert_eq!(with_active(Value::Null), 2);
    }

    #[test]
    fn only_the_videocall_policy_allows_calls() {
        assert!(may_place_calls(["read_only", "videocall_own_manage"]));
        assert!(!may_place_calls(["read_only"]));
        assert!(!may_place_calls(["Videocall_Own_Manage"]));
        assert!(!may_place_calls([]));
    }

    #[test]
    fn provisioning_adds_one_identifier_and_keeps_everything_else() {
        let practitioner = json!({
            "resourceType": "Practitioner", "id": "dr-1",
            "meta": {"versionId": "3"},
            "name": [{"family": "Example"}],
            "identifier": [{"system": "urn:npi", "value": "123"}],
            "extension": [{"url": "x", "valueString": "kept"}]
        });
        let IdentityProvisioning::Add(updated) = provision_identity(&practitioner, &id("dr-1"))
        else {
            panic!("expected an identifier to be added");
        };
        assert_eq!(updated["identifier"].as_array().unwrap().len(), 2);
        assert_eq!(updated["identifier"][0], practitioner["identifier"][0]);
        assert_eq!(recorded_identity(&updated), Some("dr-1"));
        assert_eq!(updated["extension"], practitioner["extension"]);
        assert_eq!(updated["name"], practitioner["name"]);
        assert_eq!(
            provision_identity(&updated, &id("dr-1")),
            IdentityProvisioning::AlreadyProvisioned
        );
    }

    #[test]
    fn provisioning_creates_the_identifier_list_when_absent() {
        let practitioner = json!({"resourceType": "Practitioner", "id": "dr-2"});
        let IdentityProvisioning::Add(updated) = provision_identity(&practitioner, &id("dr-2"))
        else {
            panic!("expected an identifier to be added");
        };
        assert_eq!(
            updated["identifier"],
            json!([{"system": TWILIO_IDENTITY_SYSTEM, "value": "dr-2"}])
        );
    }

    #[test]
    fn a_conflicting_identity_is_reported_not_overwritten() {
        let practitioner = json!({
            "resourceType": "Practitioner", "id": "dr-3",
            "identifier": [{"system": TWILIO_IDENTITY_SYSTEM, "value": "someone-else"}]
        });
        assert_eq!(
            provision_identity(&practitioner, &id("dr-3")),
            IdentityProvisioning::Conflicting("someone-else".into())
        );
    }
}
