//! The clinician's browser calling module (wasm-bindgen): the readiness check, and
//! [`client::CallClient`], which places and receives calls through Twilio's signaling and WebRTC
//! and renders the call panel.
//!
//! Every web-sys/js-sys call lives in [`glue`]; the rules come from `shared` (the session state
//! machine, call quality, readiness) and from [`panel`] (what the panel shows), all plain Rust.

pub mod appointment;
pub mod client;
pub mod glue;
pub mod panel;

use wasm_bindgen::prelude::*;

/// Observes this browser, renders the readiness report into the element with id `target_id`,
/// and returns the report as a plain JS object (`{verdict, summary, checks: [...]}`).
#[wasm_bindgen(js_name = checkReadiness, unchecked_return_type = "Promise<any>")]
pub fn check_readiness(target_id: String) -> js_sys::Promise {
    glue::task::promise(async move {
        let facts = glue::browser::observe().await?;
        let report = shared::readiness::assess(facts);
        glue::dom::render_readiness(&target_id, &report)?;
        Ok(glue::http::to_js(&report.to_json()))
    })
}

/// The module's allocator: TLSF (rlsf: constant-time, bounded fragmentation for a page left open
/// all day) instead of the standard library's dlmalloc, which was 7 kB of a 167 kB module; this
/// one is under 3 kB with reallocation done as allocate-copy-free. Pools are coalesced, so an
/// allocation near the 64 KiB page size (a long SDP, a large response) does not strand memory.
#[cfg(target_arch = "wasm32")]
struct AllocatorOptions;

#[cfg(target_arch = "wasm32")]
impl rlsf::GlobalTlsfOptions for AllocatorOptions {
    const ENABLE_REALLOCATION: bool = false;
    const COALESCE_POOLS: bool = true;
}

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: rlsf::GlobalTlsf<AllocatorOptions> = rlsf::GlobalTlsf::new();
