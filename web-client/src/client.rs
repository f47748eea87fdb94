//! `CallClient`, the module's public API for host pages: it owns one [`Session`] and performs
//! the session's effects through `glue` (socket, media, HTTP, timers, panel DOM), feeding what
//! happens back in as inputs. Everything it owns (socket, peer connection, timers, listeners,
//! panel) is dropped with it; callbacks hold weak references, so nothing outlives the client.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use shared::call_quality::{Monitor, Warning};
use shared::call_session::{
    Effect, Input, LedgerRecord, Link, Microphone, Phase, Session, TokenState,
};
use shared::json::Json;
use shared::readiness::MicrophonePermission;
use shared::sse;
use wasm_bindgen::prelude::*;

use crate::appointment::AppointmentInfo;
use crate::glue::browser;
use crate::glue::events::{self, Listeners, WindowListener};
use crate::glue::http::{to_js, Api, EventStream, RequestError};
use crate::glue::media::{self, Media, MicrophoneError};
use crate::glue::panel::{copy_to_clipboard, Panel, PanelAction, PanelNotes};
use crate::glue::signaling::Socket;
use crate::glue::task::{promise, spawn};
use crate::glue::timer::{now_ms, sleep, Interval};
use crate::panel::{load_retry_delay_ms, show_load_failure, view, LoadFailure, PanelView};

/// Twilio's public STUN server, used when signaling is Twilio's (not the local simulator).
const TWILIO_STUN: &str = "stun:global.stun.twilio.com:3478";

struct Inner {
    session: Session,
    api: Api,
    signaling_url: Option<String>,
    socket: Option<Socket>,
    media: Option<Media>,
    ticker: Option<Interval>,
    network: Vec<WindowListener>,
    ledger: Option<(String, EventStream)>,
    /// Bumped by every ledger stream opened, so that an old stream's end is not taken for the
    /// current one's.
    ledger_generation: u32,
    /// The ledger stream's health: reopened with backoff, dropped when it goes quiet.
    ledger_watch: sse::Watch,
    panel: Option<Panel>,
    appointment_id: Option<String>,
    appointment: Option<AppointmentInfo>,
    loading: bool,
    load_error: Option<LoadFailure>,
    /// Transient load failures in a row (for the retry delay).
    load_failures: u32,
    /// Bumped by every load, so that a retry scheduled before it does nothing.
    load_generation: u32,
    /// The host element's `fallback-number` (shown as its `fallback-label`), offered when the
    /// appointment itself could not be loaded: (shown, `tel:` link if written as a number).
    host_number: Option<(String, Option<String>)>,
    keypad_open: bool,
    /// Said next to Copy number until the clinician does something else in the panel.
    copy_status: Option<&'static str>,
    manual_status: Option<String>,
    /// A manual outcome is being saved: another Save (a double click) is not sent again.
    manual_saving: bool,
    /// The outcome last sent but not known saved, with its key: saved again (after a reply that
    /// was lost), it is sent with the same key and stored once.
    manual_unconfirmed: Option<(String, u32, String)>,
    monitor: Monitor,
    warnings: Vec<Warning>,
    sampling: bool,
    listeners: Listeners,
    last_snapshot: String,
    /// Manual-dial fallbacks already reported, as `appointment/reason`.
    reported_fallbacks: Vec<String>,
}

struct Shared {
    inner: RefCell<Inner>,
    queue: RefCell<VecDeque<Input>>,
    draining: Cell<bool>,
}

/// The browser calling client. See docs/EMBEDDING.md.
#[wasm_bindgen]
pub struct CallClient {
    shared: Rc<Shared>,
}

fn dispatch_weak(weak: &Weak<Shared>, input: Input) {
    if let Some(shared) = weak.upgrade() {
        dispatch(&shared, input);
    }
}

/// Queues `input` and, unless already draining (a re-entrant call), runs the session until the
/// queue is empty; then renders.
fn dispatch(shared: &Rc<Shared>, input: Input) {
    shared.queue.borrow_mut().push_back(input);
    if shared.draining.replace(true) {
        return;
    }
    loop {
        let next = shared.queue.borrow_mut().pop_front();
        let Some(input) = next else { break };
        let effects = shared.inner.borrow_mut().session.handle(input, now_ms());
        for effect in effects {
            perform(shared, effect);
        }
    }
    shared.draining.set(false);
    render(shared);
}

fn perform(shared: &Rc<Shared>, effect: Effect) {
    let weak = Rc::downgrade(shared);
    match effect {
        Effect::FetchToken => spawn(fetch_token(weak)),
        Effect::OpenSocket => open_socket(shared),
        Effect::CloseSocket => shared.inner.borrow_mut().socket = None,
        Effect::Send(text) => {
            if let Some(socket) = &shared.inner.borrow().socket {
                socket.send(&text);
            }
        }
        Effect::AcquireMicrophone => spawn(acquire_microphone(weak)),
        Effect::CreateOffer { ice_restart } => media_step(shared, move |pc| {
            Box::pin(async move {
                match media::local_offer(pc, ice_restart).await {
                    Ok(sdp) => Input::OfferReady { sdp },
                    Err(_) => Input::MediaFailed,
                }
            })
        }),
        Effect::AnswerOffer { sdp } => media_step(shared, move |pc| {
            Box::pin(async move {
                match media::local_answer(pc, sdp).await {
                    Ok(sdp) => Input::AnswerReady { sdp },
                    Err(_) => Input::MediaFailed,
                }
            })
        }),
        Effect::ApplyAnswer { sdp } => media_step(shared, move |pc| {
            Box::pin(async move {
                match media::apply_answer(pc, sdp).await {
                    Ok(()) => Input::Tick,
                    Err(_) => Input::MediaFailed,
                }
            })
        }),
        Effect::SetMicrophoneEnabled(enabled) => {
            if let Some(media) = &shared.inner.borrow().media {
                media.set_microphone_enabled(enabled);
            }
        }
        Effect::InsertDtmf(digits) => {
            if let Some(media) = &shared.inner.borrow().media {
                media.insert_dtmf(&digits);
            }
        }
        Effect::CloseMedia => {
            let mut inner = shared.inner.borrow_mut();
            inner.media = None;
            inner.monitor = Monitor::new();
            inner.warnings.clear();
            inner.keypad_open = false;
        }
        Effect::EndOnServer { call_sid } => {
            let (api, appointment) = {
                let inner = shared.inner.borrow();
                (inner.api.clone(), inner.appointment_id.clone())
            };
            if let Some(appointment) = appointment {
                spawn(async move {
                    let path = format!("/api/v1/appointments/{appointment}/call/end");
                    let _ = api
                        .json(
                            "POST",
                            &path,
                            Some(&Json::object([("callSid", call_sid.into())])),
                        )
                        .await;
                });
            }
        }
        Effect::WatchLedger { appointment } => watch_ledger(shared, &appointment),
        Effect::IncomingCall => {
            let (handlers, payload) = {
                let inner = shared.inner.borrow();
                let call = inner.session.call.as_ref();
                (
                    inner.listeners.for_event("incoming"),
                    Json::object([
                        ("callSid", call.and_then(|c| c.call_sid.as_deref()).into()),
                        (
                            "appointmentId",
                            call.and_then(|c| c.appointment.as_deref()).into(),
                        ),
                    ]),
                )
            };
            events::emit(&handlers, &to_js(&payload));
        }
        Effect::CallEnded => {
            let handlers = shared.inner.borrow().listeners.for_event("ended");
            let snapshot = snapshot_json(&shared.inner.borrow());
            // After the current dispatch, so the snapshot shows the ended state.
            spawn(async move { events::emit(&handlers, &to_js(&snapshot)) });
        }
    }
}

/// A step on the call's peer connection: a future ending with the input it feeds back.
type MediaStep = std::pin::Pin<Box<dyn std::future::Future<Output = Input>>>;

/// Runs an asynchronous step on the call's peer connection (if there is one) and feeds the
/// input it ends with back into the session. Steps are boxed, so the scheduling below exists
/// once in the module, not once per kind of step.
fn media_step(shared: &Rc<Shared>, step: impl FnOnce(media::Connection) -> MediaStep) {
    let Some(pc) = shared.inner.borrow().media.as_ref().map(Media::connection) else {
        return;
    };
    let weak = Rc::downgrade(shared);
    let future = step(pc.clone());
    spawn(async move {
        let input = future.await;
        // A step of a connection closed since (its call ended) says nothing about the call
        // now on screen: its failure must not end the next call.
        let current = weak.upgrade().is_some_and(|shared| {
            let inner = shared.inner.borrow();
            inner
                .media
                .as_ref()
                .is_some_and(|media| JsValue::from(media.connection()) == JsValue::from(&pc))
        });
        if current {
            dispatch_weak(&weak, input);
        }
    });
}

fn open_socket(shared: &Rc<Shared>) {
    let Some(url) = shared.inner.borrow().signaling_url.clone() else {
        dispatch_later(shared, Input::SocketClosed);
        return;
    };
    let (open, text, close) = (
        Rc::downgrade(shared),
        Rc::downgrade(shared),
        Rc::downgrade(shared),
    );
    let socket = Socket::open(
        &url,
        move || dispatch_weak(&open, Input::SocketOpened),
        move |frame| dispatch_weak(&text, Input::Received(frame)),
        move || dispatch_weak(&close, Input::SocketClosed),
    );
    match socket {
        Ok(socket) => shared.inner.borrow_mut().socket = Some(socket),
        Err(_) => dispatch_later(shared, Input::SocketClosed),
    }
}

/// Queues an input for after the current effect (a failure learnt synchronously).
fn dispatch_later(shared: &Rc<Shared>, input: Input) {
    let weak = Rc::downgrade(shared);
    spawn(async move { dispatch_weak(&weak, input) });
}

async fn fetch_token(weak: Weak<Shared>) {
    let Some(api) = weak.upgrade().map(|s| s.inner.borrow().api.clone()) else {
        return;
    };
    let input = match api.json("POST", "/api/v1/twilio/access-token", None).await {
        Ok(reply) if reply.status == 200 => {
            let token = reply.body.get("token").and_then(Json::as_str);
            let ttl = reply.body.get("ttlSeconds").and_then(Json::as_u64);
            let url = reply.body.get("signalingUrl").and_then(Json::as_str);
            match (token, ttl, url) {
                (Some(token), Some(ttl), Some(url)) => {
                    if let Some(shared) = weak.upgrade() {
                        shared.inner.borrow_mut().signaling_url = Some(url.to_owned());
                    }
                    Input::TokenIssued {
                        token: token.to_owned(),
                        ttl_seconds: u32::try_from(ttl).unwrap_or(u32::MAX),
                    }
                }
                _ => Input::TokenRefused {
                    code: "bad_reply".into(),
                    message: "the call service sent an unexpected reply".into(),
                    retryable: true,
                },
            }
        }
        Ok(reply) => {
            let field = |name: &str| reply.error_field(name).map(str::to_owned);
            Input::TokenRefused {
                code: field("code").unwrap_or_else(|| format!("http_{}", reply.status)),
                message: field("message").unwrap_or_else(|| format!("HTTP {}", reply.status)),
                retryable: reply.status >= 500 || reply.status == 429,
            }
        }
        Err(RequestError::NoSession) => Input::TokenRefused {
            code: "not_signed_in".into(),
            message: "you are not signed in".into(),
            retryable: true,
        },
        Err(RequestError::Unreachable) => Input::TokenRefused {
            code: "unreachable".into(),
            message: "the call service cannot be reached".into(),
            retryable: true,
        },
    };
    dispatch_weak(&weak, input);
}

async fn acquire_microphone(weak: Weak<Shared>) {
    match media::acquire_microphone().await {
        Ok(stream) => {
            let Some(shared) = weak.upgrade() else {
                media::stop_tracks(&stream);
                return;
            };
            // A second microphone for the same page (Call now, Cancel, Call now during one
            // prompt): the call already has one, so this one closes.
            if shared.inner.borrow().media.is_some() {
                media::stop_tracks(&stream);
                return;
            }
            let servers: Vec<String> = match &shared.inner.borrow().signaling_url {
                Some(url) if url.starts_with("wss://") => vec![TWILIO_STUN.to_owned()],
                _ => Vec::new(),
            };
            let ice = Rc::downgrade(&shared);
            let created = Media::new(stream, &servers, move |state| on_ice_state(&ice, &state));
            match created {
                Ok(media) => {
                    shared.inner.borrow_mut().media = Some(media);
                    dispatch(&shared, Input::MicrophoneReady);
                }
                Err(_) => dispatch(&shared, Input::MicrophoneFailed(Microphone::Absent)),
            }
        }
        Err(error) => dispatch_weak(
            &weak,
            Input::MicrophoneFailed(match error {
                MicrophoneError::Denied => Microphone::Denied,
                MicrophoneError::Absent => Microphone::Absent,
                MicrophoneError::InUse => Microphone::InUse,
            }),
        ),
    }
}

fn on_ice_state(weak: &Weak<Shared>, state: &str) {
    let Some(shared) = weak.upgrade() else { return };
    match state {
        "connected" | "completed" => {
            let rtp_dtmf = shared
                .inner
                .borrow()
                .media
                .as_ref()
                .is_some_and(Media::can_insert_dtmf);
            dispatch(&shared, Input::MediaConnected { rtp_dtmf });
        }
        "failed" => dispatch(&shared, Input::MediaFailed),
        _ => {}
    }
}

/// Opens the ledger's event stream for `appointment` unless it is already open.
fn watch_ledger(shared: &Rc<Shared>, appointment: &str) {
    if shared
        .inner
        .borrow()
        .ledger
        .as_ref()
        .is_some_and(|(id, _)| id == appointment)
    {
        return;
    }
    let (on_event, on_end) = (Rc::downgrade(shared), Rc::downgrade(shared));
    let path = format!("/api/v1/appointments/{appointment}/call/events");
    let (api, generation) = {
        let mut inner = shared.inner.borrow_mut();
        inner.ledger_generation = inner.ledger_generation.wrapping_add(1);
        (inner.api.clone(), inner.ledger_generation)
    };
    let stream = api.events(
        &path,
        move |event| {
            // Anything at all, the worker's keep-alive included, shows the stream is alive.
            if let Some(shared) = on_event.upgrade() {
                let mut inner = shared.inner.borrow_mut();
                if inner.ledger_generation == generation {
                    inner.ledger_watch.heard(now_ms());
                }
            }
            let Ok(data) = Json::parse(&event.data) else {
                return;
            };
            match event.name.as_str() {
                "snapshot" => {
                    let newest = data
                        .get("calls")
                        .and_then(Json::as_array)
                        .and_then(|calls| calls.first())
                        .and_then(LedgerRecord::from_json);
                    if let Some(record) = newest {
                        dispatch_weak(&on_event, Input::LedgerSnapshot(record));
                    }
                }
                "call" => {
                    if let Some(record) = LedgerRecord::from_json(&data) {
                        dispatch_weak(&on_event, Input::Ledger(record));
                    }
                }
                _ => {}
            }
        },
        move || {
            if let Some(shared) = on_end.upgrade() {
                let mut inner = shared.inner.borrow_mut();
                if inner.ledger_generation == generation && inner.ledger.is_some() {
                    inner.ledger = None;
                    inner.ledger_watch.closed(now_ms());
                }
            }
        },
    );
    if let Some(stream) = stream {
        let mut inner = shared.inner.borrow_mut();
        inner.ledger_watch.opened(now_ms());
        inner.ledger = Some((appointment.to_owned(), stream));
    }
}

/// Once a second: the session's tick, a quality sample while connected, and a ledger stream
/// reopened if it closed.
fn tick(shared: &Rc<Shared>) {
    dispatch(shared, Input::Tick);
    let (sample_from, reopen) = {
        let mut inner = shared.inner.borrow_mut();
        let connected = matches!(inner.session.phase, Phase::Connected { .. });
        let sample_from = match (&inner.media, connected, inner.sampling) {
            (Some(media), true, false) => Some((
                media.connection(),
                inner.session.call.as_ref().is_some_and(|c| c.muted),
            )),
            _ => None,
        };
        if sample_from.is_some() {
            inner.sampling = true;
        }
        let now = now_ms();
        // Silent past the keep-alives: a dead connection (a sleep, a network change) that
        // would otherwise stay "open" for good. Dropping it aborts the request.
        if inner.ledger.is_some() && inner.ledger_watch.gone_quiet(now) {
            inner.ledger = None;
            inner.ledger_watch.closed(now);
        }
        let reopen = match (&inner.ledger, &inner.appointment_id, inner.loading) {
            (None, Some(id), false) if inner.ledger_watch.reopen_due(now) => Some(id.clone()),
            _ => None,
        };
        (sample_from, reopen)
    };
    if let Some(id) = reopen {
        watch_ledger(shared, &id);
    }
    if let Some((pc, muted)) = sample_from {
        let weak = Rc::downgrade(shared);
        spawn(async move {
            let sample = media::sample(pc, muted).await;
            if let Some(shared) = weak.upgrade() {
                {
                    let mut inner = shared.inner.borrow_mut();
                    inner.sampling = false;
                    if let Some(sample) = sample {
                        if matches!(inner.session.phase, Phase::Connected { .. }) {
                            inner.warnings = inner.monitor.observe(sample);
                        }
                    }
                }
                render(&shared);
            }
        });
    }
}

fn snapshot_json(inner: &Inner) -> Json {
    let session = &inner.session;
    let call = session.call.as_ref();
    let panel = panel_view(inner);
    let ready = Json::object([
        (
            "microphone",
            (!matches!(session.microphone, Microphone::Denied | Microphone::Absent)).into(),
        ),
        (
            "token",
            matches!(session.token, TokenState::Valid { .. }).into(),
        ),
        ("signaling", (session.link == Link::Ready).into()),
    ]);
    Json::object([
        ("state", panel.state.into()),
        ("outcome", panel.outcome.into()),
        ("status", panel.status.into()),
        ("muted", call.is_some_and(|c| c.muted).into()),
        ("appointmentId", inner.appointment_id.as_deref().into()),
        ("callSid", call.and_then(|c| c.call_sid.as_deref()).into()),
        ("durationSeconds", session.duration_seconds().into()),
        ("identity", session.identity.as_deref().into()),
        ("ready", ready),
        ("reason", session.blocker().map(|b| b.code()).into()),
        (
            "warnings",
            inner
                .warnings
                .iter()
                .map(|w| w.code())
                .collect::<Vec<_>>()
                .into(),
        ),
        ("digits", call.map(|c| c.digits.as_str()).into()),
    ])
}

fn panel_view(inner: &Inner) -> PanelView {
    let mut v = view(
        &inner.session,
        inner.appointment.as_ref(),
        inner.loading,
        &inner.warnings,
    );
    if let Some(failure) = &inner.load_error {
        show_load_failure(&mut v, &inner.session, failure, inner.host_number.clone());
    }
    v
}

/// Reports a fallback once per appointment and reason (best effort: telemetry only).
fn report_fallback(inner: &mut Inner, view: &PanelView) {
    let reason = crate::panel::fallback_reason(
        &inner.session,
        inner.appointment.as_ref(),
        inner.load_error.is_some(),
        view,
    );
    let (Some(reason), Some(appointment)) = (reason, &inner.appointment_id) else {
        return;
    };
    let key = format!("{appointment}/{reason}");
    if inner.reported_fallbacks.contains(&key) {
        return;
    }
    inner.reported_fallbacks.push(key);
    let api = inner.api.clone();
    spawn(async move {
        let _ = api
            .json(
                "POST",
                "/api/v1/telemetry/manual-fallback",
                Some(&Json::object([("reason", reason.into())])),
            )
            .await;
    });
}

fn render(shared: &Rc<Shared>) {
    let (handlers, snapshot) = {
        let mut inner = shared.inner.borrow_mut();
        if inner.panel.is_some() {
            let view = panel_view(&inner);
            // The copy's note goes with the number it was about.
            if view.fallback.is_none() {
                inner.copy_status = None;
            }
            if let Some(panel) = &inner.panel {
                let notes = PanelNotes {
                    copied: inner.copy_status,
                    manual_outcome: inner.manual_status.as_deref(),
                };
                panel.update(&view, inner.keypad_open, &notes);
            }
            if !inner.loading {
                report_fallback(&mut inner, &view);
            }
        }
        let snapshot = snapshot_json(&inner);
        let text = snapshot.to_string();
        if text == inner.last_snapshot {
            return;
        }
        inner.last_snapshot = text;
        (inner.listeners.for_event("change"), snapshot)
    };
    events::emit(&handlers, &to_js(&snapshot));
}

fn on_panel_action(weak: &Weak<Shared>, action: PanelAction) {
    let Some(shared) = weak.upgrade() else { return };
    if action != PanelAction::CopyNumber {
        shared.inner.borrow_mut().copy_status = None;
    }
    match action {
        PanelAction::Call if shared.inner.borrow().load_error.is_some() => {
            let appointment = {
                let mut inner = shared.inner.borrow_mut();
                inner.load_error = None;
                inner.loading = true;
                inner.appointment_id.clone()
            };
            render(&shared);
            if let Some(appointment) = appointment {
                spawn(load_appointment(Rc::downgrade(&shared), appointment));
            }
        }
        PanelAction::Call => place_call(&shared),
        PanelAction::Mute => dispatch(&shared, Input::ToggleMute),
        PanelAction::End => dispatch(&shared, Input::Hangup),
        PanelAction::Accept => dispatch(&shared, Input::Accept),
        PanelAction::Decline => dispatch(&shared, Input::Decline),
        PanelAction::Digit(digit) => dispatch(&shared, Input::Digits(digit)),
        PanelAction::Keypad => {
            {
                let mut inner = shared.inner.borrow_mut();
                inner.keypad_open = !inner.keypad_open;
            }
            render(&shared);
        }
        PanelAction::CopyNumber => {
            // The number the panel shows: the appointment's, or the host page's when the
            // appointment could not be loaded.
            let number = panel_view(&shared.inner.borrow())
                .fallback
                .and_then(|fallback| fallback.number);
            if let Some((shown, _)) = number {
                // Said in the status next to the button, so that a screen reader hears it too
                // (unless another appointment was opened meanwhile).
                let weak = Rc::downgrade(&shared);
                let copied_for = shared.inner.borrow().appointment_id.clone();
                spawn(async move {
                    let said = if copy_to_clipboard(&shown).await {
                        "Number copied."
                    } else {
                        "The browser did not allow copying: select the number instead."
                    };
                    if let Some(shared) = weak.upgrade() {
                        if shared.inner.borrow().appointment_id != copied_for {
                            return;
                        }
                        shared.inner.borrow_mut().copy_status = Some(said);
                        render(&shared);
                    }
                });
            }
        }
        PanelAction::ManualOutcome { outcome, minutes } => {
            let Some(seconds) = shared::call_state::minutes_as_seconds(&minutes) else {
                shared.inner.borrow_mut().manual_status =
                    Some("Enter the minutes as a number, such as 5 or 2.5 (at most 1440).".into());
                render(&shared);
                return;
            };
            let weak = Rc::downgrade(&shared);
            spawn(async move {
                let _ = record_manual(weak, outcome, seconds).await;
            });
        }
    }
}

fn place_call(shared: &Rc<Shared>) {
    let appointment = shared.inner.borrow().appointment_id.clone();
    if let Some(appointment) = appointment {
        let local_sid = events::new_local_call_sid();
        dispatch(
            shared,
            Input::Call {
                appointment,
                local_sid,
            },
        );
    }
}

/// Stores the outcome of a call dialled by hand through the call-end endpoint.
async fn record_manual(weak: Weak<Shared>, outcome: String, seconds: u32) -> Result<Json, JsValue> {
    let Some(shared) = weak.upgrade() else {
        return Err(JsValue::from_str("no appointment is mounted"));
    };
    let (api, appointment, key) = {
        let mut inner = shared.inner.borrow_mut();
        let Some(appointment) = inner.appointment_id.clone() else {
            return Err(JsValue::from_str("no appointment is mounted"));
        };
        if inner.manual_saving {
            return Err(JsValue::from_str("this outcome is already being saved"));
        }
        inner.manual_saving = true;
        inner.manual_status = Some("Saving the outcome…".to_owned());
        let key = match &inner.manual_unconfirmed {
            Some((sent, sent_seconds, key)) if *sent == outcome && *sent_seconds == seconds => {
                key.clone()
            }
            _ => events::new_local_call_sid(),
        };
        inner.manual_unconfirmed = Some((outcome.clone(), seconds, key.clone()));
        (inner.api.clone(), appointment, key)
    };
    render(&shared);
    drop(shared);
    let body = Json::object([(
        "manual",
        Json::object([
            ("outcome", outcome.into()),
            ("durationSeconds", seconds.into()),
            ("key", key.into()),
        ]),
    )]);
    let path = format!("/api/v1/appointments/{appointment}/call/end");
    let result = api.json("POST", &path, Some(&body)).await;
    let (message, answer) = match &result {
        Ok(reply) if reply.status == 201 || reply.status == 200 => (
            "Outcome saved to the appointment.".to_owned(),
            Ok(reply.body.clone()),
        ),
        Ok(reply) => {
            let message = reply
                .error_field("message")
                .unwrap_or("the call service refused it")
                .to_owned();
            (
                format!("Not saved: {message}."),
                Err(JsValue::from_str(&message)),
            )
        }
        Err(_) => (
            "Not saved: the call service cannot be reached. Note the outcome in the record."
                .to_owned(),
            Err(JsValue::from_str("unreachable")),
        ),
    };
    if let Some(shared) = weak.upgrade() {
        {
            let mut inner = shared.inner.borrow_mut();
            inner.manual_saving = false;
            inner.manual_status = Some(message);
            if answer.is_ok() {
                inner.manual_unconfirmed = None;
            }
        }
        render(&shared);
    }
    answer
}

/// Loads the mounted appointment and its live call; a transient failure is tried again by
/// itself (2 s, doubling, at most 30 s) for as long as the appointment stays mounted.
async fn load_appointment(weak: Weak<Shared>, appointment: String) {
    let Some((api, generation)) = weak.upgrade().map(|shared| {
        let mut inner = shared.inner.borrow_mut();
        inner.load_generation = inner.load_generation.wrapping_add(1);
        (inner.api.clone(), inner.load_generation)
    }) else {
        return;
    };
    let reply = api
        .json(
            "GET",
            &format!("/api/v1/appointments/{appointment}/call"),
            None,
        )
        .await;
    let Some(shared) = weak.upgrade() else { return };
    {
        let inner = shared.inner.borrow();
        if inner.appointment_id.as_deref() != Some(appointment.as_str())
            || inner.load_generation != generation
        {
            return;
        }
    }
    let mut live = None;
    let mut retry_in = None;
    {
        let mut inner = shared.inner.borrow_mut();
        inner.loading = false;
        match reply {
            Ok(reply) if reply.status == 200 => {
                inner.appointment = reply
                    .body
                    .get("appointment")
                    .and_then(|entry| AppointmentInfo::from_json(entry, browser::local_clock));
                live = reply.body.get("live").and_then(LedgerRecord::from_json);
                inner.load_error = None;
                inner.load_failures = 0;
            }
            reply => {
                let failure = match &reply {
                    Ok(reply) => LoadFailure::new(Some(reply.status), reply.error_field("message")),
                    Err(_) => LoadFailure::new(None, None),
                };
                if failure.transient {
                    inner.load_failures = inner.load_failures.saturating_add(1);
                    retry_in = Some(load_retry_delay_ms(inner.load_failures));
                }
                inner.load_error = Some(failure);
            }
        }
    }
    if let Some(delay) = retry_in {
        let weak = Rc::downgrade(&shared);
        let appointment = appointment.clone();
        spawn(async move {
            sleep(delay as i32).await;
            let still_failing = weak.upgrade().is_some_and(|shared| {
                let inner = shared.inner.borrow();
                inner.load_generation == generation && inner.load_error.is_some()
            });
            if still_failing {
                load_appointment(weak, appointment).await;
            }
        });
    }
    if let Some(record) = live {
        dispatch(&shared, Input::Ledger(record));
    }
    watch_ledger(&shared, &appointment);
    render(&shared);
}

async fn observe_microphone(weak: Weak<Shared>) {
    let permission = crate::glue::browser::microphone_permission_now().await;
    let present = media::has_audio_input().await;
    let state = match (present, permission) {
        (Some(false), _) => Microphone::Absent,
        (_, MicrophonePermission::Granted) => Microphone::Granted,
        (_, MicrophonePermission::Denied) => Microphone::Denied,
        (_, MicrophonePermission::Prompt) => Microphone::Prompt,
        (_, MicrophonePermission::Unknown) => Microphone::Unknown,
    };
    dispatch_weak(&weak, Input::MicrophoneObserved(state));
}

#[wasm_bindgen]
impl CallClient {
    /// `options`: `{apiBase?: string, sessionToken: () => string | Promise<string>}`.
    #[wasm_bindgen(constructor)]
    pub fn new(options: JsValue) -> Result<CallClient, JsValue> {
        let session_token = events::option_function(&options, "sessionToken")
            .ok_or_else(|| JsValue::from_str("CallClient needs options.sessionToken, a function returning the Medplum access token"))?;
        let base = events::option_string(&options, "apiBase").unwrap_or_default();
        let inner = Inner {
            session: Session::new(events::browser_info()),
            api: Api::new(base, session_token),
            signaling_url: None,
            socket: None,
            media: None,
            ticker: None,
            network: Vec::new(),
            ledger: None,
            ledger_generation: 0,
            ledger_watch: sse::Watch::default(),
            panel: None,
            appointment_id: None,
            appointment: None,
            loading: false,
            load_error: None,
            load_failures: 0,
            load_generation: 0,
            host_number: None,
            keypad_open: false,
            copy_status: None,
            manual_status: None,
            manual_saving: false,
            manual_unconfirmed: None,
            monitor: Monitor::new(),
            warnings: Vec::new(),
            sampling: false,
            listeners: Listeners::default(),
            last_snapshot: String::new(),
            reported_fallbacks: Vec::new(),
        };
        Ok(CallClient {
            shared: Rc::new(Shared {
                inner: RefCell::new(inner),
                queue: RefCell::new(VecDeque::new()),
                draining: Cell::new(false),
            }),
        })
    }

    /// Adds a handler: `change`, `incoming`, `ended` (each gets a snapshot or call details).
    pub fn on(&self, name: String, handler: js_sys::Function) {
        self.shared.inner.borrow_mut().listeners.add(name, handler);
    }

    /// Fetches a token, connects signaling and registers for incoming calls. Resolves once the
    /// microphone has been looked at; progress arrives as `change` events.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn start(&self) -> js_sys::Promise {
        let weak = Rc::downgrade(&self.shared);
        promise(async move {
            let Some(shared) = weak.upgrade() else {
                return Ok(JsValue::UNDEFINED);
            };
            {
                let mut inner = shared.inner.borrow_mut();
                if inner.ticker.is_none() {
                    let tick_weak = weak.clone();
                    inner.ticker = Interval::every(1_000, move || {
                        if let Some(shared) = tick_weak.upgrade() {
                            tick(&shared);
                        }
                    });
                    for name in ["online", "offline"] {
                        let network_weak = weak.clone();
                        if let Some(listener) = WindowListener::new(name, move || {
                            dispatch_weak(&network_weak, Input::NetworkChanged)
                        }) {
                            inner.network.push(listener);
                        }
                    }
                }
            }
            dispatch(&shared, Input::Start);
            drop(shared);
            observe_microphone(weak).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn mount(&self, element: JsValue, appointment_id: String) -> js_sys::Promise {
        let weak = Rc::downgrade(&self.shared);
        promise(async move {
            let host = events::as_element(&element)
                .ok_or_else(|| JsValue::from_str("mount needs an element"))?;
            if shared::ids::AppointmentId::parse(&appointment_id).is_err() {
                return Err(JsValue::from_str("not an appointment id"));
            }
            let Some(shared) = weak.upgrade() else {
                return Ok(JsValue::UNDEFINED);
            };
            let host_number = host.get_attribute("fallback-number").map(|number| {
                let link = shared::dial_policy::tel_digits(&number).map(|d| format!("tel:{d}"));
                (host.get_attribute("fallback-label").unwrap_or(number), link)
            });
            let action_weak = weak.clone();
            let panel = Panel::mount(&host, move |action| on_panel_action(&action_weak, action))?;
            let switching = {
                let mut inner = shared.inner.borrow_mut();
                let switching = inner.appointment_id.as_deref() != Some(appointment_id.as_str());
                inner.panel = Some(panel);
                inner.host_number = host_number;
                if switching {
                    inner.appointment_id = Some(appointment_id.clone());
                    inner.appointment = None;
                    inner.load_error = None;
                    inner.load_failures = 0;
                    inner.copy_status = None;
                    inner.manual_status = None;
                    inner.manual_unconfirmed = None;
                    inner.ledger = None;
                    inner.ledger_watch = sse::Watch::default();
                    inner.loading = true;
                }
                switching
            };
            if switching {
                let appointment = appointment_id.clone();
                dispatch(&shared, Input::AppointmentOpened { appointment });
            } else {
                render(&shared);
            }
            drop(shared);
            load_appointment(weak, appointment_id).await;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Places a call for the mounted appointment (what Call now does).
    pub fn call(&self) {
        place_call(&self.shared);
    }

    #[wasm_bindgen(js_name = toggleMute)]
    pub fn toggle_mute(&self) {
        dispatch(&self.shared, Input::ToggleMute);
    }

    pub fn hangup(&self) {
        dispatch(&self.shared, Input::Hangup);
    }

    /// Sends DTMF digits (0-9, *, #) during a connected call.
    #[wasm_bindgen(js_name = sendDigits)]
    pub fn send_digits(&self, digits: String) {
        dispatch(&self.shared, Input::Digits(digits));
    }

    pub fn accept(&self) {
        dispatch(&self.shared, Input::Accept);
    }

    pub fn decline(&self) {
        dispatch(&self.shared, Input::Decline);
    }

    /// Records the outcome of a call dialled by hand (`completed`, `busy`, `no-answer`, `failed`).
    #[wasm_bindgen(js_name = recordManualOutcome, unchecked_return_type = "Promise<any>")]
    pub fn record_manual_outcome(&self, outcome: String, duration_seconds: u32) -> js_sys::Promise {
        let weak = Rc::downgrade(&self.shared);
        promise(async move {
            record_manual(weak, outcome, duration_seconds)
                .await
                .map(|body| to_js(&body))
        })
    }

    /// The client's state as a plain object (see docs/EMBEDDING.md).
    pub fn snapshot(&self) -> JsValue {
        to_js(&snapshot_json(&self.shared.inner.borrow()))
    }
}
