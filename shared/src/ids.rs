//! Validated identifiers: Twilio SIDs, FHIR resource ids and Twilio client identities.
//!
//! Each newtype checks its format on construction ("parse, don't validate"), so code that holds
//! one never has to check it again.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a string is not a valid identifier of some kind.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("{kind} must start with {prefix:?} followed by 32 hexadecimal characters")]
    MalformedSid {
        kind: &'static str,
        prefix: &'static str,
    },
    #[error("a FHIR id is 1 to 64 characters of A-Z, a-z, 0-9, '-' and '.'")]
    MalformedFhirId,
    #[error(
        "a Twilio client identity is 1 to {max} characters of A-Z, a-z, 0-9, '-', '_' and '.'",
        max = Identity::MAX_LEN
    )]
    MalformedIdentity,
    #[error("an E.164 number is '+' followed by 8 to 15 digits, the first not 0")]
    MalformedE164,
}

fn is_sid(value: &str, prefix: &str) -> bool {
    value.len() == prefix.len() + 32
        && value.starts_with(prefix)
        && value[prefix.len()..].bytes().all(|b| b.is_ascii_hexdigit())
}

/// Declares a Twilio SID newtype: a two-letter prefix and 32 hex characters.
macro_rules! twilio_sid {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The two-letter prefix every SID of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Validates `value` as a SID of this kind.
            pub fn parse(value: &str) -> Result<Self, IdError> {
                if is_sid(value, $prefix) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(IdError::MalformedSid { kind: $kind, prefix: $prefix })
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

twilio_sid!(
    /// A Twilio account (`AC…`).
    AccountSid, "AC", "an account SID"
);
twilio_sid!(
    /// A Twilio API key (`SK…`), the issuer of access tokens.
    ApiKeySid, "SK", "an API key SID"
);
twilio_sid!(
    /// A TwiML application (`AP…`) whose Voice URL receives browser calls.
    TwimlAppSid, "AP", "a TwiML app SID"
);
twilio_sid!(
    /// One call leg (`CA…`).
    CallSid, "CA", "a call SID"
);

fn is_fhir_id(value: &str) -> bool {
    (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// Declares a FHIR logical-id newtype (FHIR R4 `id`: `[A-Za-z0-9\-\.]{1,64}`).
macro_rules! fhir_id {
    ($(#[$doc:meta])* $name:ident, $resource:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The FHIR resource type this id belongs to.
            pub const RESOURCE_TYPE: &'static str = $resource;

            pub fn parse(value: &str) -> Result<Self, IdError> {
                if is_fhir_id(value) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(IdError::MalformedFhirId)
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The relative reference, e.g. `Practitioner/123`.
            pub fn reference(&self) -> String {
                format!("{}/{}", $resource, self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::parse(&value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

fhir_id!(
    /// A Medplum `Practitioner` id: also the clinician's Twilio client identity.
    PractitionerId, "Practitioner"
);
fhir_id!(
    /// A Medplum `Appointment` id.
    AppointmentId, "Appointment"
);
fhir_id!(
    /// A Medplum `Patient` id.
    PatientId, "Patient"
);

/// A Twilio Voice client identity (the `identity` grant of an access token and the `client:`
/// address Twilio dials). Twilio allows at most 121 characters; we further restrict the alphabet
/// to `A-Z a-z 0-9 - _ .` so that an identity never needs escaping in TwiML, URLs or logs.
/// Every `PractitionerId` is a valid identity.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Identity(String);

impl Identity {
    /// Twilio's limit on the length of a client identity.
    pub const MAX_LEN: usize = 121;

    pub fn parse(value: &str) -> Result<Self, IdError> {
        let well_formed = (1..=Self::MAX_LEN).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if well_formed {
            Ok(Self(value.to_owned()))
        } else {
            Err(IdError::MalformedIdentity)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&PractitionerId> for Identity {
    fn from(id: &PractitionerId) -> Self {
        // A FHIR id is at most 64 characters of a subset of the identity alphabet.
        Identity(id.as_str().to_owned())
    }
}

impl TryFrom<String> for Identity {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<Identity> for String {
    fn from(value: Identity) -> String {
        value.0
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A phone number in strict E.164 form (`+` and 8 to 15 digits). Lenient parsing of the formats
/// found in patient records lives in `dial_policy::normalise`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// Only [`E164::masked`]: a patient's number never reaches a log through `{:?}`.
impl std::fmt::Debug for E164 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "E164({})", self.masked())
    }
}

impl E164 {
    pub fn parse(value: &str) -> Result<Self, IdError> {
        let digits = value.strip_prefix('+').ok_or(IdError::MalformedE164)?;
        let well_formed = (8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0');
        if well_formed {
            Ok(Self(value.to_owned()))
        } else {
            Err(IdError::MalformedE164)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits after `+`.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }

    /// The number masked to its last three digits (`•••123`), the only form that may appear in
    /// records meant for people, logs and alerts.
    pub fn masked(&self) -> String {
        let digits = self.digits();
        format!("•••{}", &digits[digits.len().saturating_sub(3)..])
    }
}

impl TryFrom<String> for E164 {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::parse(&value)
    }
}

impl From<E164> for String {
    fn from(value: E164) -> String {
        value.0
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HEX32: &str = "0123456789abcdef0123456789ABCDEF";

    #[test]
    fn a_number_printed_with_debug_shows_only_its_last_digits() {
        let number = E164::parse("+447700900123").expect("e164");
        assert_eq!(format!("{number:?}"), "E164(•••123)");
        assert_eq!(format!("{:?}", Some(&number)), "Some(E164(•••123))");
    }

    #[test]
    fn sids_accept_their_prefix_and_32_hex_only() {
        let cases: &[(&str, bool)] = &[
            ("AC0123456789abcdef0123456789ABCDEF", true),
            ("AC0123456789abcdef0123456789ABCDE", false), // 31 hex
            ("AC0123456789abcdef0123456789ABCDEF0", false), // 33 hex
            ("SK0123456789abcdef0123456789ABCDEF", false), // wrong prefix
            ("ac0123456789abcdef0123456789ABCDEF", false), // prefix is case-sensitive
            ("AC0123456789abcdef0123456789ABCDEG", false), // not hex
            ("", false),
        ];
        for (input, valid) in cases {
            assert_eq!(AccountSid::parse(input).is_ok(), *valid, "{input:?}");
        }
        assert!(ApiKeySid::parse(&format!("SK{HEX32}")).is_ok());
        assert!(TwimlAppSid::parse(&format!("AP{HEX32}")).is_ok());
        assert!(CallSid::parse(&format!("CA{HEX32}")).is_ok());
        assert!(CallSid::parse(&format!("AP{HEX32}")).is_err());
    }

    #[test]
    fn sid_error_names_the_expected_prefix() {
        let message = ApiKeySid::parse("AC1").err().map(|e| e.to_string());
        assert_eq!(
            message.as_deref(),
            Some("an API key SID must start with \"SK\" followed by 32 hexadecimal characters")
        );
    }

    #[test]
    fn fhir_ids_follow_the_r4_grammar() {
        let cases: &[(&str, bool)] = &[
            ("123", true),
            ("0b3f6f8e-6a3c-4c34-a2a5-2b1f7a9f4c11", true),
            ("a.b-c", true),
            (&"x".repeat(64), true),
            (&"x".repeat(65), false),
            ("", false),
            ("has space", false),
            ("slash/inside", false),
            ("under_score", false),
        ];
        for (input, valid) in cases {
            assert_eq!(PractitionerId::parse(input).is_ok(), *valid, "{input:?}");
        }
        let id = AppointmentId::parse("appt-1").ok();
        assert_eq!(
            id.map(|i| i.reference()).as_deref(),
            Some("Appointment/appt-1")
        );
    }

    #[test]
    fn identities_allow_121_characters_of_a_safe_alphabet() {
        assert!(Identity::parse(&"a".repeat(121)).is_ok());
        assert!(Identity::parse(&"a".repeat(122)).is_err());
        assert!(Identity::parse("dr_smith.1-x").is_ok());
        assert!(Identity::parse("client:dr").is_err());
        assert!(Identity::parse("").is_err());
        assert!(Identity::parse("dr smith").is_err());
    }

    #[test]
    fn ids_round_trip_through_json_and_reject_bad_values() {
        let sid: AccountSid = serde_json::from_str(&format!("\"AC{HEX32}\"")).unwrap();
        assert_eq!(
            serde_json::to_string(&sid).unwrap(),
            format!("\"AC{HEX32}\"")
        );
        assert!(serde_json::from_str::<AccountSid>("\"ACnope\"").is_err());
    }

    #[test]
    fn e164_is_strict_and_masks_to_three_digits() {
        let table = [
            ("+447700900123", true),
            ("+12025550143", true),
            ("+44770090", true),
            ("+4477009", false),
            ("+447700900", true),
            ("447700900123", false),
            ("+0447700900123", false),
            ("+44 7700 900123", false),
            ("+4477009001231234", false),
            ("+", false),
        ];
        for (input, valid) in table {
            assert_eq!(E164::parse(input).is_ok(), valid, "{input}");
        }
        assert_eq!(E164::parse("+447700900123").unwrap().masked(), "•••123");
    }

    proptest! {
        #[test]
        fn every_practitioner_id_is_a_valid_identity(id in "[A-Za-z0-9.-]{1,64}") {
            let practitioner = PractitionerId::parse(&id).unwrap();
            let identity = Identity::from(&practitioner);
            prop_assert_eq!(Identity::parse(identity.as_str()), Ok(identity.clone()));
        }
    }
}
