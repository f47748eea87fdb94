//! Every call into web-sys and js-sys lives under this module; the rest of the crate is plain Rust.

pub mod browser;
pub mod dom;
pub mod events;
pub mod http;
pub mod media;
pub mod panel;
pub mod signaling;
pub mod task;
pub mod timer;
