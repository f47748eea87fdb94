//! Request handlers: thin adapters from HTTP to `shared` and back.

pub mod health;
