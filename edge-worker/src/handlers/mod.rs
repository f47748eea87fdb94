//! Request handlers: thin adapters from HTTP to `shared` and back.

pub mod access_token;
pub mod dev_sign_in;
pub mod health;
pub mod twilio_identity;
