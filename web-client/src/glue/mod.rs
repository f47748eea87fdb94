//! Every call into web-sys and js-sys lives under this module; the rest of the crate is plain Rust.

pub mod browser;
pub mod dom;
pub mod events;
pub mod http;
pub mod media;
pub mod panel;
pub mod signaling;
pub mod timer;

use wasm_bindgen::JsValue;

/// Serialises a value to JSON and parses it into a JS object.
pub fn to_js_object(value: &impl serde::Serialize) -> Result<JsValue, JsValue> {
    let text = serde_json::to_string(value).map_err(|e| JsValue::from_str(&e.to_string()))?;
    js_sys::JSON::parse(&text)
}
