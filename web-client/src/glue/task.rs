//! Futures run on the browser's event loop and promises handed to the page, each through one
//! entry point for boxed futures: js-sys's `spawn_local` and `future_to_promise` are generic, so
//! calling them with each future's own type would put their scheduling code in the module once
//! per call site.

use std::future::Future;
use std::pin::Pin;

use wasm_bindgen::JsValue;

/// A future as these entry points take it: boxed, so they are compiled once.
type Boxed<T> = Pin<Box<dyn Future<Output = T>>>;

/// Runs `future` to completion on the event loop (after the current task).
pub fn spawn(future: impl Future<Output = ()> + 'static) {
    spawn_boxed(Box::pin(future));
}

fn spawn_boxed(future: Boxed<()>) {
    wasm_bindgen_futures::spawn_local(future);
}

/// A promise settled by `future`: what an exported `async` method returns to the page.
pub fn promise(
    future: impl Future<Output = Result<JsValue, JsValue>> + 'static,
) -> js_sys::Promise {
    promise_boxed(Box::pin(future))
}

fn promise_boxed(future: Boxed<Result<JsValue, JsValue>>) -> js_sys::Promise {
    wasm_bindgen_futures::future_to_promise(future)
}
