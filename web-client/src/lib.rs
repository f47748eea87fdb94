//! The clinician's browser calling module (wasm-bindgen): today, the readiness check that tells a
//! clinician whether this browser can place calls, rendered into the page.
//!
//! Every web-sys/js-sys call lives in [`glue`]; the rules come from `shared::readiness`.

pub mod glue;

use wasm_bindgen::prelude::*;

/// Observes this browser, renders the readiness report into the element with id `target_id`,
/// and returns the report as a plain JS object (`{verdict, summary, checks: [...]}`).
#[wasm_bindgen(js_name = checkReadiness)]
pub async fn check_readiness(target_id: String) -> Result<JsValue, JsValue> {
    let facts = glue::browser::observe().await?;
    let report = shared::readiness::assess(facts);
    glue::dom::render_readiness(&target_id, &report)?;
    glue::to_js_object(&report)
}
