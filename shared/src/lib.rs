//! Domain rules of the browser-call product as pure, I/O-free Rust: no clock, no RNG, no network.
//!
//! Everything that decides something lives here and is tested natively; the worker and the
//! browser module are thin adapters that pass time, random bytes and inputs in as values.

pub mod access_token;
pub mod appointment_summary;
pub mod call_quality;
pub mod call_refusal;
pub mod call_session;
pub mod call_state;
pub mod clinician;
pub mod dial_policy;
pub mod fhir;
pub mod form;
pub mod ids;
pub mod json;
pub mod jwt;
pub mod number_pool;
pub mod readiness;
pub mod signaling;
pub mod sse;
pub mod telemetry;
pub mod time;
pub mod twiml;
pub mod webhook_signature;
