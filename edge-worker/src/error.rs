//! The one error type of the worker's HTTP surface and its single mapping to a JSON response.
//!
//! Every error body has the shape `{"error": {"code": "<machine-readable>", "message": "<plain
//! words>"}}`; codes are stable and documented, messages never contain secrets or phone numbers.

use serde_json::json;

use crate::config::{SettingState, UnusableSetting};
use crate::reply::Reply;
use crate::router::RouteError;

/// Everything that can go wrong while answering a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error("no such endpoint")]
    NotFound,
    #[error("method not allowed; use {}", allow.join(", "))]
    MethodNotAllowed { allow: &'static [&'static str] },
    #[error("the worker is not configured: {} is {}", .0.name, match .0.state { SettingState::Missing => "missing", _ => "malformed" })]
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
            AppError::NotFound => 404,
            AppError::MethodNotAllowed { .. } => 405,
            AppError::NotConfigured(_) => 503,
            AppError::Internal => 500,
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound => "not_found",
            AppError::MethodNotAllowed { .. } => "method_not_allowed",
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
            AppError::NotConfigured(_) => reply.with_header("retry-after", "60"),
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
