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
