//! Calls to the worker: JSON requests with the clinician's Medplum bearer (asked of the host page
//! each time, never stored by the module), and the ledger's Server-Sent Events read from a fetch
//! body stream (EventSource cannot send a bearer). An [`EventStream`] aborts its fetch when dropped.

use js_sys::{Function, Object, Reflect, Uint8Array};
use shared::json::Json;
use shared::sse;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, ReadableStreamDefaultReader, Response};

/// How long a JSON request to the worker may take, answer and body (the worker gives up on
/// Medplum after 8 s a request, and a token takes a few of them).
const REQUEST_TIMEOUT_MS: u32 = {
    let deadline = shared::call_session::REQUEST_DEADLINE_MS;
    assert!(deadline <= u32::MAX as u64);
    deadline as u32
};

/// A worker's answer: status and parsed JSON body (`Null` when it was not JSON).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Json,
}

impl Reply {
    /// A field of the worker's error body `{"error": {"code", "message"}}`.
    pub fn error_field(&self, name: &str) -> Option<&str> {
        self.body
            .get("error")
            .and_then(|e| e.get(name))
            .and_then(Json::as_str)
    }
}

/// Why a request got no answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestError {
    /// The host page gave no session token.
    NoSession,
    /// The worker could not be reached.
    Unreachable,
}

/// The worker's base URL and the host's session-token function.
#[derive(Clone)]
pub struct Api {
    base: String,
    session_token: Function,
    token_wait_ms: u32,
}

/// A promise rejected after `ms`.
fn rejected_after(ms: u32) -> js_sys::Promise {
    let ms = i32::try_from(ms).unwrap_or(i32::MAX);
    js_sys::Promise::new(&mut |_, reject| {
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(&reject, ms);
        }
    })
}

impl Api {
    pub fn new(base: String, session_token: Function) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            session_token,
            token_wait_ms: REQUEST_TIMEOUT_MS,
        }
    }

    /// How long the host's session-token promise may take (default: a request's deadline).
    pub fn with_token_wait(mut self, ms: u32) -> Self {
        self.token_wait_ms = ms;
        self
    }

    /// Asks the host for the Medplum bearer; accepts a string or a promise of one. A promise
    /// still pending after the wait counts as no session (and is asked again later), so a host
    /// whose own token refresh hangs, after a laptop sleep say, cannot hold the panel for good.
    async fn bearer(&self) -> Result<String, RequestError> {
        let value = self
            .session_token
            .call0(&JsValue::NULL)
            .map_err(|_| RequestError::NoSession)?;
        let value = match value.dyn_into::<js_sys::Promise>() {
            Ok(promise) => {
                let bounded = js_sys::Promise::race(&js_sys::Array::of2(
                    &promise,
                    &rejected_after(self.token_wait_ms),
                ));
                JsFuture::from(bounded)
                    .await
                    .map_err(|_| RequestError::NoSession)?
            }
            Err(value) => value,
        };
        value
            .as_string()
            .filter(|t| !t.is_empty())
            .ok_or(RequestError::NoSession)
    }

    async fn fetch(
        &self,
        method: &str,
        path: &str,
        body: Option<&Json>,
        signal: Option<&web_sys::AbortSignal>,
    ) -> Result<Response, RequestError> {
        let bearer = self.bearer().await?;
        let init = web_sys::RequestInit::new();
        init.set_method(method);
        let headers = web_sys::Headers::new().map_err(|_| RequestError::Unreachable)?;
        let _ = headers.set("authorization", &format!("Bearer {bearer}"));
        let _ = headers.set("accept", "application/json, text/event-stream");
        if let Some(body) = body {
            let _ = headers.set("content-type", "application/json");
            init.set_body(&JsValue::from_str(&body.to_string()));
        }
        init.set_headers(&headers);
        init.set_cache(web_sys::RequestCache::NoStore);
        if let Some(signal) = signal {
            init.set_signal(Some(signal));
        }
        let window = web_sys::window().ok_or(RequestError::Unreachable)?;
        let url = format!("{}{path}", self.base);
        let response = JsFuture::from(window.fetch_with_str_and_init(&url, &init))
            .await
            .map_err(|_| RequestError::Unreachable)?;
        response.dyn_into().map_err(|_| RequestError::Unreachable)
    }

    /// Sends a JSON request and reads the JSON reply.
    pub async fn json(
        &self,
        method: &str,
        path: &str,
        body: Option<&Json>,
    ) -> Result<Reply, RequestError> {
        // A worker that never answers counts as unreachable (and is tried again) instead of
        // leaving the panel waiting for good.
        let deadline = web_sys::AbortSignal::timeout_with_u32(REQUEST_TIMEOUT_MS);
        let response = self.fetch(method, path, body, Some(&deadline)).await?;
        let status = response.status();
        let text = match response.text() {
            Ok(promise) => JsFuture::from(promise)
                .await
                .ok()
                .and_then(|t| t.as_string())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        Ok(Reply {
            status,
            body: Json::parse(&text).unwrap_or_default(),
        })
    }

    /// Opens an event stream at `path`; `on_event` gets each event, `on_end` when it stops.
    pub fn events(
        &self,
        path: &str,
        mut on_event: impl FnMut(sse::Event) + 'static,
        on_end: impl FnOnce() + 'static,
    ) -> Option<EventStream> {
        let controller = AbortController::new().ok()?;
        let signal = controller.signal();
        let api = self.clone();
        let path = path.to_owned();
        crate::glue::task::spawn(async move {
            if let Ok(response) = api.fetch("GET", &path, None, Some(&signal)).await {
                if response.ok() {
                    if let Some(reader) = response.body().and_then(|body| {
                        body.get_reader()
                            .dyn_into::<ReadableStreamDefaultReader>()
                            .ok()
                    }) {
                        let mut parser = sse::Parser::new();
                        while let Ok(chunk) = JsFuture::from(reader.read()).await {
                            if Reflect::get(&chunk, &"done".into())
                                .ok()
                                .and_then(|d| d.as_bool())
                                .unwrap_or(true)
                            {
                                break;
                            }
                            let Ok(bytes) = Reflect::get(&chunk, &"value".into())
                                .and_then(|v| v.dyn_into::<Uint8Array>())
                            else {
                                break;
                            };
                            for event in parser.feed(&bytes.to_vec()) {
                                on_event(event);
                            }
                        }
                    }
                }
            }
            on_end();
        });
        Some(EventStream { controller })
    }
}

/// An open event stream; dropping it aborts the request.
pub struct EventStream {
    controller: AbortController,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.controller.abort();
    }
}

/// Parses JSON text into a JS value (for events handed to the host page).
pub fn to_js(value: &Json) -> JsValue {
    js_sys::JSON::parse(&value.to_string()).unwrap_or_else(|_| Object::new().into())
}
