//! Telemetry from the worker. Handlers [`emit`] events (codes only, see `shared::telemetry`);
//! the request's events are handed to the `Telemetry` Durable Object after the response is built,
//! through `waitUntil`, so a webhook never waits for telemetry. Durable Object alarms, which have
//! no response to protect, [`deliver`] directly. A failure to report is logged, never raised.

use std::cell::RefCell;

use serde_json::{json, Value};
use shared::telemetry::{Event, Stamped};
use worker::{Env, Headers, Method, Request, RequestInit};

use crate::durable::call;

/// The one Telemetry instance of an environment.
pub const TELEMETRY_INSTANCE: &str = "telemetry";

thread_local! {
    /// Events emitted while handling requests, until they are handed over.
    static QUEUE: RefCell<Vec<Stamped>> = const { RefCell::new(Vec::new()) };
}

/// Queues an event for delivery after the response.
pub fn emit(event: Event) {
    let at_ms = clock_ms();
    QUEUE.with(|queue| queue.borrow_mut().push(Stamped { at_ms, event }));
}

/// The runtime's clock; native test builds have no JS clock and use the system's.
fn clock_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    {
        u64::try_from(crate::durable::now_ms()).unwrap_or(0)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
    }
}

/// Takes every queued event.
pub fn drain() -> Vec<Stamped> {
    QUEUE.with(|queue| std::mem::take(&mut *queue.borrow_mut()))
}

/// Hands events to the Telemetry Durable Object; failures are logged and dropped.
pub async fn deliver(env: &Env, events: Vec<Stamped>) {
    if events.is_empty() {
        return;
    }
    let body = json!({ "events": events });
    match call(
        env,
        "TELEMETRY",
        TELEMETRY_INSTANCE,
        Method::Post,
        "/record",
        Some(&body),
    )
    .await
    {
        Ok((200, _)) => {}
        _ => crate::log::event("telemetry_undelivered", &[("events", &events_len(&body))]),
    }
}

fn events_len(body: &Value) -> String {
    body["events"].as_array().map_or(0, Vec::len).to_string()
}

/// Delivers the queued events after the response, without delaying it.
pub fn flush_after_response(env: &Env, ctx: &worker::Context) {
    let events = drain();
    if events.is_empty() {
        return;
    }
    let env = env.clone();
    ctx.wait_until(async move { deliver(&env, events).await });
}

/// POSTs JSON to an external sink (Datadog, Slack); true on a 2xx.
pub async fn post_json(url: &str, headers: &[(&str, &str)], body: &Value) -> bool {
    let request_headers = Headers::new();
    if request_headers
        .set("content-type", "application/json")
        .is_err()
    {
        return false;
    }
    for (name, value) in headers {
        if request_headers.set(name, value).is_err() {
            return false;
        }
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(request_headers)
        .with_body(Some(body.to_string().into()));
    let Ok(request) = Request::new_with_init(url, &init) else {
        return false;
    };
    match worker::Fetch::Request(request).send().await {
        Ok(response) => (200..300).contains(&response.status_code()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emitted_events_wait_in_the_queue_until_drained() {
        drain();
        emit(Event::PoolExhausted);
        emit(Event::TokenRefused {
            reason: "permission_missing".into(),
        });
        let events = drain();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].event, Event::PoolExhausted);
        assert!(events[0].at_ms > 1_700_000_000_000);
        assert!(drain().is_empty());
    }
}
