//! Observes what this browser offers for calls: secure context, WebRTC, getUserMedia and the
//! microphone permission.

use js_sys::{Object, Reflect};
use shared::readiness::{BrowserFacts, MicrophonePermission};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

fn has_property(target: &JsValue, name: &str) -> bool {
    Reflect::has(target, &JsValue::from_str(name)).unwrap_or(false)
}

/// Reads the facts the readiness rules need. Fails only when there is no `window`.
pub async fn observe() -> Result<BrowserFacts, JsValue> {
    let window = web_sys::window().ok_or_else(|| JsValue::from_str("no window"))?;
    let navigator = window.navigator();
    let get_user_media = navigator
        .media_devices()
        .map(|devices| has_property(&devices, "getUserMedia"))
        .unwrap_or(false);
    Ok(BrowserFacts {
        secure_context: window.is_secure_context(),
        webrtc: has_property(&window, "RTCPeerConnection"),
        get_user_media,
        microphone: microphone_permission(&navigator).await,
    })
}

/// The microphone permission as the Permissions API reports it now.
pub async fn microphone_permission_now() -> MicrophonePermission {
    match web_sys::window() {
        Some(window) => microphone_permission(&window.navigator()).await,
        None => MicrophonePermission::Unknown,
    }
}

/// Asks the Permissions API for the microphone's state; `Unknown` where it cannot answer.
async fn microphone_permission(navigator: &web_sys::Navigator) -> MicrophonePermission {
    let Ok(permissions) = navigator.permissions() else {
        return MicrophonePermission::Unknown;
    };
    let descriptor = Object::new();
    if Reflect::set(&descriptor, &"name".into(), &"microphone".into()).is_err() {
        return MicrophonePermission::Unknown;
    }
    let Ok(query) = permissions.query(&descriptor) else {
        return MicrophonePermission::Unknown;
    };
    match JsFuture::from(query).await {
        Ok(status) => match status.dyn_into::<web_sys::PermissionStatus>() {
            Ok(status) => {
                let state = Reflect::get(&status, &"state".into())
                    .ok()
                    .and_then(|s| s.as_string())
                    .unwrap_or_default();
                MicrophonePermission::from_permission_state(&state)
            }
            Err(_) => MicrophonePermission::Unknown,
        },
        Err(_) => MicrophonePermission::Unknown,
    }
}

/// `HH:MM` of an RFC 3339 time in the browser's time zone (as the page's appointment list shows
/// it); `None` when the browser cannot read it.
pub fn local_clock(start: &str) -> Option<String> {
    let date = js_sys::Date::new(&JsValue::from_str(start));
    let (hours, minutes) = (date.get_hours(), date.get_minutes());
    // An unreadable date's time (and so each of its fields) is NaN.
    (!date.get_time().is_nan()).then(|| format!("{hours:02}:{minutes:02}"))
}
