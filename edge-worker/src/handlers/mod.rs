//! Request handlers: thin adapters from HTTP to `shared` and back.

pub mod access_token;
pub mod admin_pool;
pub mod appointment_call;
pub mod appointments;
pub mod call_status;
pub mod dev_sign_in;
pub mod health;
pub mod inbound;
pub mod telemetry;
pub mod twilio_identity;
pub mod voice;

/// Whether an id the browser made up (a call's `TJS…` id, a manual outcome's key) is 1–64
/// letters, digits or dashes: safe to store and to show.
pub(crate) fn is_browser_id(id: &str) -> bool {
    (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}
