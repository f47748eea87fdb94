//! Events for the host page (`client.on(name, fn)`), window listeners owned and removed on drop,
//! and the few browser facts the session needs (browser info for `listen`, fresh call ids).

use js_sys::{Function, Object, Reflect};
use shared::json::Json;
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};

/// The host's event handlers, by event name.
#[derive(Default)]
pub struct Listeners {
    handlers: Vec<(String, Function)>,
}

impl Listeners {
    pub fn add(&mut self, name: String, handler: Function) {
        self.handlers.push((name, handler));
    }

    /// The handlers for `name` (cloned, so they run without any borrow held).
    pub fn for_event(&self, name: &str) -> Vec<Function> {
        self.handlers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, f)| f.clone())
            .collect()
    }
}

/// Calls each handler with `payload`; a throwing handler does not stop the others.
pub fn emit(handlers: &[Function], payload: &JsValue) {
    for handler in handlers {
        let _ = handler.call1(&JsValue::NULL, payload);
    }
}

/// A window event listener, removed when dropped.
pub struct WindowListener {
    name: &'static str,
    callback: Closure<dyn FnMut()>,
}

impl WindowListener {
    pub fn new(name: &'static str, callback: impl FnMut() + 'static) -> Option<Self> {
        let callback = Closure::<dyn FnMut()>::new(callback);
        web_sys::window()?
            .add_event_listener_with_callback(name, callback.as_ref().unchecked_ref())
            .ok()?;
        Some(Self { name, callback })
    }
}

impl Drop for WindowListener {
    fn drop(&mut self) {
        if let Some(window) = web_sys::window() {
            let _ = window.remove_event_listener_with_callback(
                self.name,
                self.callback.as_ref().unchecked_ref(),
            );
        }
    }
}

fn text_of(target: &JsValue, name: &str) -> String {
    Reflect::get(target, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_string())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// What `listen` carries about the browser, shaped as the official SDK sends it.
pub fn browser_info() -> Json {
    let navigator: JsValue = web_sys::window()
        .map(|w| w.navigator().into())
        .unwrap_or_else(|| Object::new().into());
    let browser = Json::object([
        ("platform", text_of(&navigator, "platform").into()),
        ("userAgent", text_of(&navigator, "userAgent").into()),
    ]);
    Json::object([
        ("browser", browser),
        ("p", "browser".into()),
        ("plugin", "rtc".into()),
        (
            "v",
            concat!("clinician-calls-web-client/", env!("CARGO_PKG_VERSION")).into(),
        ),
    ])
}

/// A fresh client call id, `TJS` + a UUID, as the official SDK names outgoing calls.
pub fn new_local_call_sid() -> String {
    let uuid = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .map(|c| c.random_uuid())
        .unwrap_or_default();
    format!("TJS{uuid}")
}

/// Reads a property of a JS options object as a string.
pub fn option_string(options: &JsValue, name: &str) -> Option<String> {
    Reflect::get(options, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.as_string())
}

/// Reads a function property of a JS options object.
pub fn option_function(options: &JsValue, name: &str) -> Option<Function> {
    Reflect::get(options, &JsValue::from_str(name))
        .ok()
        .and_then(|v| v.dyn_into::<Function>().ok())
}

/// The element the host passed, if it is one.
pub fn as_element(value: &JsValue) -> Option<web_sys::Element> {
    value.clone().dyn_into::<web_sys::Element>().ok()
}
