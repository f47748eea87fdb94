//! The one error type of the worker's HTTP surface and its single mapping to a JSON response.
//!
//! Every error body has the shape `{"error": {"code": "<machine-readable>", "message": "<plain
//! words>"}}`; codes are stable and documented in README.md, messages never contain secrets,
//! tokens or phone numbers.

use serde_json::json;

use crate::config::{SettingState, UnusableSetting};
use crate::reply::Reply;
use crate::router::RouteError;

/// Why a caller's credentials were refused (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialProblem {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// Malformed, wrong algorithm, unknown key, bad signature, wrong issuer, not a practitioner.
    Invalid,
    Expired,
}

/// Everything that can go wrong while answering a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed; use {}", allow.join(", "))]
    MethodNotAllowed { allow: &'static [&'static str] },
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("{}", match .0 {
        CredentialProblem::Missing => "sign in first: this endpoint needs a bearer token",
        CredentialProblem::Invalid => "the credentials are not valid",
        CredentialProblem::Expired => "the session has expired: sign in again",
    })]
    Unauthenticated(CredentialProblem),
    #[error("this clinician does not have the videocall_own_manage permission")]
    PermissionMissing,
    #[error("no such practitioner")]
    PractitionerNotFound,
    #[error("no such appointment")]
    AppointmentNotFound,
    #[error("you are not a participant of this appointment")]
    NotYourAppointment,
    #[error("no such call on this appointment")]
    CallNotFound,
    #[error("Twilio refused to end the call")]
    TwilioRejected,
    #[error("the call records cannot be stored right now: try again shortly")]
    StorageUnavailable,
    #[error("the practitioner already carries a different Twilio identity")]
    IdentityConflict,
    #[error("too many requests: try again in a minute")]
    RateLimited,
    #[error("the request is not signed by Twilio")]
    InvalidSignature,
    #[error("the request body is too large")]
    PayloadTooLarge,
    #[error("the request body must be {0}")]
    UnsupportedMediaType(&'static str),
    #[error("Medplum cannot be reached right now: try again shortly")]
    MedplumUnavailable,
    /// Medplum answers, but refuses the worker's own client (its secret rotated, or the client
    /// no longer a project admin): a configuration fault, not an outage.
    #[error("Medplum refuses this service's credentials: an administrator must check MEDPLUM_CLIENT_ID and MEDPLUM_CLIENT_SECRET")]
    MedplumClientRefused,
    #[error("the worker is not configured: {} is {}", .0.name, match .0.state { SettingState::Invalid => "malformed", _ => "missing" })]
    NotConfigured(UnusableSetting),
    #[error("internal error")]
    Internal,
}

impl From<RouteError> for AppError {
    fn from(error: RouteError) -> Self {
        match error {
            RouteError::NotFound => AppError::NotFound,
            RouteError::MethodNotAllowed { allow } => AppError::MethodNotAllowed { allow },
        }
    }
}

impl From<UnusableSetting> for AppError {
    fn from(setting: UnusableSetting) -> Self {
        AppError::NotConfigured(setting)
    }
}

impl AppError {
    pub fn status(&self) -> u16 {
        match self {
            AppError::NotFound
            | AppError::PractitionerNotFound
            | AppError::AppointmentNotFound
            | AppError::CallNotFound => 404,
            AppError::NotYourAppointment => 403,
            AppError::TwilioRejected => 502,
            AppError::StorageUnavailable => 503,
            AppError::MethodNotAllowed { .. } => 405,
            AppError::BadRequest(_) => 400,
            AppError::Unauthenticated(_) => 401,
            AppError::PermissionMissing | AppError::InvalidSignature => 403,
            AppError::PayloadTooLarge => 413,
            AppError::UnsupportedMediaType(_) => 415,
            AppError::IdentityConflict => 409,
            AppError::RateLimited => 429,
            AppError::MedplumUnavailable
            | AppError::MedplumClientRefused
            | AppError::NotConfigured(_) => 503,
            AppError::Internal => 500,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
            AppError::BadRequest(_) => "bad_request",
            AppError::Unauthenticated(CredentialProblem::Missing) => "missing_credentials",
            AppError::Unauthenticated(CredentialProblem::Invalid) => "invalid_credentials",
            AppError::Unauthenticated(CredentialProblem::Expired) => "token_expired",
            AppError::PermissionMissing => "permission_missing",
            AppError::PractitionerNotFound => "practitioner_not_found",
            AppError::AppointmentNotFound => "appointment_not_found",
            AppError::NotYourAppointment => "not_your_appointment",
            AppError::CallNotFound => "call_not_found",
            AppError::TwilioRejected => "twilio_rejected",
            AppError::StorageUnavailable => "storage_unavailable",
            AppError::IdentityConflict => "identity_conflict",
            AppError::RateLimited => "rate_limited",
            AppError::InvalidSignature => "invalid_signature",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::MedplumUnavailable => "medplum_unavailable",
            AppError::MedplumClientRefused => "medplum_client_refused",
            AppError::NotConfigured(_) => "not_configured",
            AppError::Internal => "internal",
        }
    }

    /// The one place errors become responses.
    pub fn into_reply(self) -> Reply {
        let mut body = json!({"error": {"code": self.code(), "message": self.to_string()}});
        if let AppError::NotConfigured(setting) = &self {
            body["error"]["setting"] = json!(setting.name);
        }
        let reply = Reply::json(self.status(), &body);
        match self {
            AppError::MethodNotAllowed { allow } => reply.with_header("allow", allow.join(", ")),
            AppError::NotConfigured(_) | AppError::MedplumClientRefused => {
                reply.with_header("retry-after", "60")
            }
            AppError::MedplumUnavailable | AppError::StorageUnavailable => {
                reply.with_header("retry-after", "30")
            }
            AppError::RateLimited => reply.with_header("retry-after", "60"),
            AppError::Unauthenticated(problem) => reply.with_header(
                "www-authenticate",
                match problem {
                    CredentialProblem::Missing => "Bearer",
                    CredentialProblem::Invalid => "Bearer error=\"invalid_token\"",
                    CredentialProblem::Expired => {
                        "Bearer error=\"invalid_token\", error_description=\"expired\""
                    }
                },
            ),
            _ => reply,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_status_code_and_shape() {
        let table = [
            (AppError::NotFound, 404, "not_found"),
            (
                AppError::MethodNotAllowed {
                    allow: &["GET", "POST"],
                },
                405,
                "method_not_allowed",
            ),
            (AppError::BadRequest("no"), 400, "bad_request"),
            (
                AppError::Unauthenticated(CredentialProblem::Missing),
                401,
                "missing_credentials",
            ),
            (
                AppError::Unauthenticated(CredentialProblem::Invalid),
                401,
                "invalid_credentials",
            ),
            (
                AppError::Unauthenticated(CredentialProblem::Expired),
                401,
                "token_expired",
            ),
            (AppError::PermissionMissing, 403, "permission_missing"),
            (
                AppError::PractitionerNotFound,
                404,
                "practitioner_not_found",
            ),
            (AppError::IdentityConflict, 409, "identity_conflict"),
            (AppError::RateLimited, 429, "rate_limited"),
            (AppError::InvalidSignature, 403, "invalid_signature"),
            (AppError::PayloadTooLarge, 413, "payload_too_large"),
            (
                AppError::UnsupportedMediaType("form data"),
                415,
                "unsupported_media_type",
            ),
            (AppError::MedplumUnavailable, 503, "medplum_unavailable"),
            (
                AppError::MedplumClientRefused,
                503,
                "medplum_client_refused",
            ),
            (
                AppError::NotConfigured(UnusableSetting {
                    name: "TWILIO_API_KEY",
                    state: SettingState::Missing,
                    reason: None,
                }),
                503,
                "not_configured",
            ),
            (AppError::Internal, 500, "internal"),
        ];
        for (error, status, code) in table {
            let reply = error.into_reply();
            assert_eq!(reply.status, status);
            let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
            assert_eq!(body["error"]["code"], code);
            assert!(body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
    }

    #[test]
    fn retryable_errors_say_when_to_retry() {
        assert_eq!(
            AppError::MedplumUnavailable
                .into_reply()
                .header("retry-after"),
            Some("30")
        );
        assert_eq!(
            AppError::RateLimited.into_reply().header("retry-after"),
            Some("60")
        );
        let unauthenticated = AppError::Unauthenticated(CredentialProblem::Expired).into_reply();
        assert!(unauthenticated
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Bearer")));
    }

    #[test]
    fn method_not_allowed_lists_allowed_methods() {
        let reply = AppError::MethodNotAllowed {
            allow: &["GET", "POST"],
        }
        .into_reply();
        assert_eq!(reply.header("allow"), Some("GET, POST"));
    }

    #[test]
    fn not_configured_names_the_setting() {
        let reply = AppError::NotConfigured(UnusableSetting {
            name: "TWILIO_API_KEY",
            state: SettingState::Invalid,
            reason: Some("expected SK…".into()),
        })
        .into_reply();
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"]["setting"], "TWILIO_API_KEY");
        assert_eq!(
            body["error"]["message"],
            "the worker is not configured: TWILIO_API_KEY is malformed"
        );
        assert_eq!(reply.header("retry-after"), Some("60"));
    }
}
