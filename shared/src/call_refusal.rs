//! Why a browser call was not placed: one code per reason, with the sentence Twilio speaks to
//! the clinician and the sentence the call panel shows beside the manual-dial fallback.

use serde::{Deserialize, Serialize};

use crate::dial_policy::{NumberError, Refusal};

/// A reason the voice webhook refused to dial. Serialised as its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallRefusal {
    NotAClinician,
    PermissionMissing,
    AppointmentMissing,
    AppointmentNotFound,
    NotYourAppointment,
    NotAPhoneAppointment,
    AppointmentNotCallable,
    NumberMissing,
    NumberInvalid,
    CountryNotAllowed,
    NumberBlocked,
    NoLineFree,
    ClinicianLimitReached,
    PatientLimitReached,
    /// The voice request of a call that already had its turn (its CallSid took a line before,
    /// as the pool's `placed_calls` records for good, and holds none now): a captured request
    /// sent again, which gets no number.
    CallAlreadyPlaced,
    ServiceUnavailable,
}

impl CallRefusal {
    pub fn code(self) -> &'static str {
        match self {
            Self::NotAClinician => "not_a_clinician",
            Self::PermissionMissing => "permission_missing",
            Self::AppointmentMissing => "appointment_missing",
            Self::AppointmentNotFound => "appointment_not_found",
            Self::NotYourAppointment => "not_your_appointment",
            Self::NotAPhoneAppointment => "not_a_phone_appointment",
            Self::AppointmentNotCallable => "appointment_not_callable",
            Self::NumberMissing => "number_missing",
            Self::NumberInvalid => "number_invalid",
            Self::CountryNotAllowed => "country_not_allowed",
            Self::NumberBlocked => "number_blocked",
            Self::NoLineFree => "no_line_free",
            Self::ClinicianLimitReached => "clinician_limit_reached",
            Self::PatientLimitReached => "patient_limit_reached",
            Self::CallAlreadyPlaced => "call_already_placed",
            Self::ServiceUnavailable => "service_unavailable",
        }
    }

    /// What Twilio says before hanging up: brief, no names or numbers.
    pub fn spoken(self) -> &'static str {
        match self {
            Self::NotAClinician | Self::PermissionMissing => {
                "You are not permitted to place calls from the browser."
            }
            Self::AppointmentMissing
            | Self::AppointmentNotFound
            | Self::NotYourAppointment
            | Self::NotAPhoneAppointment
            | Self::AppointmentNotCallable => "This appointment cannot be called from the browser.",
            Self::NumberMissing => "The patient has no phone number on record.",
            Self::NumberInvalid | Self::CountryNotAllowed | Self::NumberBlocked => {
                "The patient's number cannot be dialled from the browser."
            }
            Self::NoLineFree => "All lines are busy. Please try again shortly.",
            Self::ClinicianLimitReached | Self::PatientLimitReached => {
                "The hourly limit of browser calls has been reached."
            }
            Self::CallAlreadyPlaced => "This call has already been placed.",
            Self::ServiceUnavailable => "The call service is temporarily unavailable.",
        }
    }

    /// What the call panel shows, next to the patient's number for dialing by hand.
    pub fn display(self) -> &'static str {
        match self {
            Self::NotAClinician | Self::PermissionMissing => {
                "Your account is not allowed to place browser calls. Dial the patient by hand."
            }
            Self::AppointmentMissing | Self::AppointmentNotFound => {
                "This appointment could not be found, so the browser cannot call for it."
            }
            Self::NotYourAppointment => "You are not a participant of this appointment.",
            Self::NotAPhoneAppointment => "This is not a phone appointment.",
            Self::AppointmentNotCallable => {
                "This appointment is cancelled or finished, so it cannot be called."
            }
            Self::NumberMissing => "The patient has no phone number on record.",
            Self::NumberInvalid => {
                "The patient's phone number on record is not a valid number. Check it, then dial by hand."
            }
            Self::CountryNotAllowed => {
                "Browser calls to this country are not enabled. Dial the patient by hand."
            }
            Self::NumberBlocked => {
                "The number is in a premium-rate or special range, which the browser never dials."
            }
            Self::NoLineFree => "All lines are busy. Try again in a moment, or dial the patient by hand.",
            Self::ClinicianLimitReached => {
                "You have placed the maximum number of browser calls for this hour. Dial the patient by hand if the call is urgent."
            }
            Self::PatientLimitReached => {
                "This patient has been called the maximum number of times this hour. Dial by hand if the call is urgent."
            }
            Self::CallAlreadyPlaced => "This call was already placed. Press Call again to place a new call.",
            Self::ServiceUnavailable => {
                "The call service is temporarily unavailable. Dial the patient by hand."
            }
        }
    }

    /// The reason with this code, if any.
    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|refusal| refusal.code() == code)
    }

    /// Every reason, for tables and documentation.
    pub const ALL: [CallRefusal; 16] = [
        Self::NotAClinician,
        Self::PermissionMissing,
        Self::AppointmentMissing,
        Self::AppointmentNotFound,
        Self::NotYourAppointment,
        Self::NotAPhoneAppointment,
        Self::AppointmentNotCallable,
        Self::NumberMissing,
        Self::NumberInvalid,
        Self::CountryNotAllowed,
        Self::NumberBlocked,
        Self::NoLineFree,
        Self::ClinicianLimitReached,
        Self::PatientLimitReached,
        Self::CallAlreadyPlaced,
        Self::ServiceUnavailable,
    ];
}

impl From<crate::dial_policy::LimitExceeded> for CallRefusal {
    fn from(limit: crate::dial_policy::LimitExceeded) -> Self {
        match limit {
            crate::dial_policy::LimitExceeded::Clinician => Self::ClinicianLimitReached,
            crate::dial_policy::LimitExceeded::Patient => Self::PatientLimitReached,
        }
    }
}

impl From<Refusal> for CallRefusal {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::InvalidNumber(NumberError::Empty) => Self::NumberMissing,
            Refusal::InvalidNumber(_) => Self::NumberInvalid,
            Refusal::CountryNotAllowed => Self::CountryNotAllowed,
            Refusal::BlockedRange(_) => Self::NumberBlocked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_serialise_as_themselves() {
        let mut codes: Vec<&str> = CallRefusal::ALL.iter().map(|r| r.code()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), CallRefusal::ALL.len());
        for refusal in CallRefusal::ALL {
            assert_eq!(serde_json::to_value(refusal).unwrap(), refusal.code());
            assert!(refusal.spoken().ends_with('.'));
            assert!(!refusal.display().is_empty());
            assert_eq!(CallRefusal::from_code(refusal.code()), Some(refusal));
        }
    }

    #[test]
    fn policy_refusals_map_to_call_refusals() {
        assert_eq!(
            CallRefusal::from(Refusal::InvalidNumber(NumberError::Empty)),
            CallRefusal::NumberMissing
        );
        assert_eq!(
            CallRefusal::from(Refusal::InvalidNumber(NumberError::TooLong)),
            CallRefusal::NumberInvalid
        );
        assert_eq!(
            CallRefusal::from(Refusal::CountryNotAllowed),
            CallRefusal::CountryNotAllowed
        );
    }
}
