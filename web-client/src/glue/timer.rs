//! Time for the session: the wall clock and a repeating timer whose closure is owned by the
//! timer and released (with `clearInterval`) when it is dropped.

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    let now = js_sys::Date::now();
    if now.is_finite() && now > 0.0 {
        now as u64
    } else {
        0
    }
}

/// A `setInterval` that stops when dropped.
pub struct Interval {
    handle: i32,
    _callback: Closure<dyn FnMut()>,
}

impl Interval {
    pub fn every(period_ms: i32, callback: impl FnMut() + 'static) -> Option<Self> {
        let callback = Closure::<dyn FnMut()>::new(callback);
        let handle = web_sys::window()?
            .set_interval_with_callback_and_timeout_and_arguments_0(
                callback.as_ref().unchecked_ref(),
                period_ms,
            )
            .ok()?;
        Some(Self {
            handle,
            _callback: callback,
        })
    }
}

impl Drop for Interval {
    fn drop(&mut self) {
        if let Some(window) = web_sys::window() {
            window.clear_interval_with_handle(self.handle);
        }
    }
}

/// Resolves after `ms` milliseconds (for bounded waits inside async tasks).
pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}
