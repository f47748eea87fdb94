//! Maps a request's method and path to an [`Endpoint`], purely, so routing is tested natively.
//!
//! Unknown paths are [`RouteError::NotFound`]; a known path with the wrong method is
//! [`RouteError::MethodNotAllowed`] carrying the methods it does allow (for the `Allow` header).

use shared::ids::{AppointmentId, CallSid, PractitionerId};

/// An API endpoint, with its path parameters already extracted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Health,
    AccessToken,
    TwilioIdentity(PractitionerId),
    /// Local environment only.
    DevSignIn,
    VoiceWebhook,
    CallStatusWebhook,
    DialCompleteWebhook,
    /// The signed-in clinician's phone appointments of a day.
    Appointments,
    AppointmentCalls(AppointmentId),
    AppointmentCallEvents(AppointmentId),
    EndAppointmentCall(AppointmentId),
    InboundWebhook,
    InboundCompleteWebhook,
    PracticeCompleteWebhook,
    AdminNumberPool,
    AdminLeases,
    AdminLease(CallSid),
    AdminCallStats,
    /// An appointment's call ledger, for operators (records not yet in Medplum among them).
    AdminAppointmentCalls(AppointmentId),
    ManualFallbackReport,
}

impl Endpoint {
    /// The methods this endpoint answers (HEAD is implied by GET).
    pub fn methods(&self) -> &'static [&'static str] {
        match self {
            Endpoint::Health => &["GET"],
            Endpoint::AccessToken
            | Endpoint::TwilioIdentity(_)
            | Endpoint::DevSignIn
            | Endpoint::VoiceWebhook
            | Endpoint::CallStatusWebhook
            | Endpoint::DialCompleteWebhook
            | Endpoint::EndAppointmentCall(_)
            | Endpoint::InboundWebhook
            | Endpoint::InboundCompleteWebhook
            | Endpoint::PracticeCompleteWebhook
            | Endpoint::AdminLeases
            | Endpoint::ManualFallbackReport => &["POST"],
            Endpoint::AdminNumberPool => &["GET", "POST", "DELETE"],
            Endpoint::AdminLease(_) => &["DELETE"],
            Endpoint::Appointments
            | Endpoint::AppointmentCalls(_)
            | Endpoint::AppointmentCallEvents(_)
            | Endpoint::AdminCallStats
            | Endpoint::AdminAppointmentCalls(_) => &["GET"],
        }
    }
}

/// Why a request matched no endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteError {
    NotFound,
    MethodNotAllowed { allow: &'static [&'static str] },
}

/// A matched request: the endpoint and the method it was called with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub endpoint: Endpoint,
    pub method: &'static str,
}

/// Whether `path` belongs to the API (`/api` and below); everything else is a static page.
pub fn is_api(path: &str) -> bool {
    path == "/api" || path.starts_with("/api/")
}

/// Matches `method` and `path` (without query) against the API.
pub fn route(method: &str, path: &str) -> Result<Route, RouteError> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let segments: Vec<&str> = trimmed.split('/').skip(1).collect();
    let endpoint = match segments.as_slice() {
        ["api", "v1", "health"] => Endpoint::Health,
        ["api", "v1", "twilio", "access-token"] => Endpoint::AccessToken,
        ["api", "v1", "dev", "sign-in"] => Endpoint::DevSignIn,
        ["api", "v1", "twilio", "webhooks", "voice"] => Endpoint::VoiceWebhook,
        ["api", "v1", "twilio", "webhooks", "call-status"] => Endpoint::CallStatusWebhook,
        ["api", "v1", "twilio", "webhooks", "dial-complete"] => Endpoint::DialCompleteWebhook,
        ["api", "v1", "twilio", "webhooks", "inbound"] => Endpoint::InboundWebhook,
        ["api", "v1", "twilio", "webhooks", "inbound-complete"] => Endpoint::InboundCompleteWebhook,
        ["api", "v1", "twilio", "webhooks", "practice-complete"] => {
            Endpoint::PracticeCompleteWebhook
        }
        ["api", "v1", "admin", "number-pool"] => Endpoint::AdminNumberPool,
        ["api", "v1", "admin", "number-pool", "leases"] => Endpoint::AdminLeases,
        ["api", "v1", "admin", "call-stats"] => Endpoint::AdminCallStats,
        ["api", "v1", "telemetry", "manual-fallback"] => Endpoint::ManualFallbackReport,
        ["api", "v1", "admin", "number-pool", "leases", sid] => {
            Endpoint::AdminLease(CallSid::parse(sid).map_err(|_| RouteError::NotFound)?)
        }
        ["api", "v1", "admin", "appointments", id, "calls"] => Endpoint::AdminAppointmentCalls(
            AppointmentId::parse(id).map_err(|_| RouteError::NotFound)?,
        ),
        ["api", "v1", "appointments"] => Endpoint::Appointments,
        ["api", "v1", "appointments", id, "call"] => {
            Endpoint::AppointmentCalls(AppointmentId::parse(id).map_err(|_| RouteError::NotFound)?)
        }
        ["api", "v1", "appointments", id, "call", "events"] => Endpoint::AppointmentCallEvents(
            AppointmentId::parse(id).map_err(|_| RouteError::NotFound)?,
        ),
        ["api", "v1", "appointments", id, "call", "end"] => Endpoint::EndAppointmentCall(
            AppointmentId::parse(id).map_err(|_| RouteError::NotFound)?,
        ),
        ["api", "v1", "clinicians", id, "twilio-identity"] => {
            Endpoint::TwilioIdentity(PractitionerId::parse(id).map_err(|_| RouteError::NotFound)?)
        }
        _ => return Err(RouteError::NotFound),
    };
    let allowed = endpoint.methods();
    let effective = if method == "HEAD" { "GET" } else { method };
    match allowed.iter().find(|m| **m == effective) {
        Some(method) => Ok(Route { endpoint, method }),
        None => Err(RouteError::MethodNotAllowed { allow: allowed }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_table() {
        let table: &[(&str, &str, Result<Endpoint, RouteError>)] = &[
            ("GET", "/api/v1/health", Ok(Endpoint::Health)),
            ("GET", "/api/v1/health/", Ok(Endpoint::Health)),
            ("HEAD", "/api/v1/health", Ok(Endpoint::Health)),
            (
                "POST",
                "/api/v1/health",
                Err(RouteError::MethodNotAllowed { allow: &["GET"] }),
            ),
            ("GET", "/api/v1/healthz", Err(RouteError::NotFound)),
            // Methods are matched exactly as received: an unknown one is never read as GET.
            (
                "QUERY",
                "/api/v1/health",
                Err(RouteError::MethodNotAllowed { allow: &["GET"] }),
            ),
            (
                "PROPFIND",
                "/api/v1/admin/number-pool",
                Err(RouteError::MethodNotAllowed {
                    allow: &["GET", "POST", "DELETE"],
                }),
            ),
            (
                "get",
                "/api/v1/appointments",
                Err(RouteError::MethodNotAllowed { allow: &["GET"] }),
            ),
            (
                "GET",
                "/api/v1/admin/call-stats",
                Ok(Endpoint::AdminCallStats),
            ),
            (
                "GET",
                "/api/v1/admin/appointments/appt-mobile/calls",
                Ok(Endpoint::AdminAppointmentCalls(
                    AppointmentId::parse("appt-mobile").expect("a FHIR id"),
                )),
            ),
            (
                "GET",
                "/api/v1/admin/appointments/appt%20mobile/calls",
                Err(RouteError::NotFound),
            ),
            (
                "POST",
                "/api/v1/telemetry/manual-fallback",
                Ok(Endpoint::ManualFallbackReport),
            ),
            (
                "GET",
                "/api/v1/telemetry/manual-fallback",
                Err(RouteError::MethodNotAllowed { allow: &["POST"] }),
            ),
            (
                "DELETE",
                "/api/v1/admin/number-pool",
                Ok(Endpoint::AdminNumberPool),
            ),
            (
                "PUT",
                "/api/v1/admin/number-pool",
                Err(RouteError::MethodNotAllowed {
                    allow: &["GET", "POST", "DELETE"],
                }),
            ),
            (
                "POST",
                "/api/v1/twilio/webhooks/inbound",
                Ok(Endpoint::InboundWebhook),
            ),
            (
                "DELETE",
                "/api/v1/admin/number-pool/leases/CA123",
                Err(RouteError::NotFound),
            ),
            ("GET", "/api/v2/health", Err(RouteError::NotFound)),
            ("GET", "/", Err(RouteError::NotFound)),
            ("GET", "", Err(RouteError::NotFound)),
            ("GET", "/api/v1/health/extra", Err(RouteError::NotFound)),
            (
                "POST",
                "/api/v1/twilio/access-token",
                Ok(Endpoint::AccessToken),
            ),
            (
                "GET",
                "/api/v1/twilio/access-token",
                Err(RouteError::MethodNotAllowed { allow: &["POST"] }),
            ),
            (
                "POST",
                "/api/v1/clinicians/clinician-ada/twilio-identity",
                Ok(Endpoint::TwilioIdentity(
                    PractitionerId::parse("clinician-ada").unwrap(),
                )),
            ),
            (
                "POST",
                "/api/v1/clinicians/bad%20id/twilio-identity",
                Err(RouteError::NotFound),
            ),
            (
                "POST",
                "/api/v1/clinicians//twilio-identity",
                Err(RouteError::NotFound),
            ),
            ("GET", "/api/v1/appointments", Ok(Endpoint::Appointments)),
            ("GET", "/api/v1/appointments/", Ok(Endpoint::Appointments)),
            ("HEAD", "/api/v1/appointments", Ok(Endpoint::Appointments)),
            (
                "POST",
                "/api/v1/appointments",
                Err(RouteError::MethodNotAllowed { allow: &["GET"] }),
            ),
            (
                "GET",
                "/api/v1/appointments/appt-mobile/call",
                Ok(Endpoint::AppointmentCalls(
                    AppointmentId::parse("appt-mobile").unwrap(),
                )),
            ),
            (
                "GET",
                "/api/v1/appointments/appt-mobile",
                Err(RouteError::NotFound),
            ),
        ];
        for (method, path, expected) in table {
            let got = route(method, path).map(|r| r.endpoint);
            assert_eq!(&got, expected, "{method} {path}");
        }
    }

    #[test]
    fn api_paths_and_pages() {
        let table = [
            ("/api/v1/health", true),
            ("/api/", true),
            ("/api", true),
            ("/", false),
            ("/index.html", false),
            ("/pkg/web_client_bg.wasm", false),
            ("/apiary", false),
            ("/x/api/v1/health", false),
        ];
        for (path, api) in table {
            assert_eq!(is_api(path), api, "{path}");
        }
    }
}
