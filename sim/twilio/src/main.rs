//! twilio-sim: a local Twilio for the demo and the end-to-end tests. Serves voice client
//! signaling (`/signal`, the frames of `shared::signaling`; calls survive a signaling reconnect,
//! see `routing`), sends signed webhooks and status callbacks to the worker, scripts callees by
//! number, answers the REST call-update API, and exposes faults and inspection under `/__sim/`.
//! Configured by environment variables; listens on 127.0.0.1 only. See sim/twilio/README.md.

mod engine;
mod media;
mod rest;
mod routing;
mod twiml;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use shared::signaling::{
    codes, ClientMessage, Frame, ServerMessage, SignalingError, TokenInfo, HEARTBEAT,
};
use tokio::sync::{mpsc, Notify};

use engine::{EndedBy, Faults, Script, Sim, SimConfig};

/// The simulator plus the means to drop every signaling socket on demand.
struct App {
    sim: Arc<Sim>,
    resources: std::sync::Mutex<rest::Resources>,
    drop_signaling: Notify,
    drops: AtomicU64,
}

type Shared = Arc<App>;

fn env(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

#[tokio::main]
async fn main() {
    let port: u16 = env("TWILIO_SIM_PORT", "8788").parse().unwrap_or(8788);
    let config = SimConfig {
        account_sid: env("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000001"),
        auth_token: env("TWILIO_AUTH_TOKEN", "fake-twilio-auth-token"),
        api_key: env("TWILIO_API_KEY", "SK00000000000000000000000000000001"),
        api_secret: env("TWILIO_API_SECRET", "fake-twilio-api-secret"),
        voice_url: env(
            "TWILIO_SIM_VOICE_URL",
            "http://127.0.0.1:8787/api/v1/twilio/webhooks/voice",
        ),
        inbound_url: env(
            "TWILIO_SIM_INBOUND_URL",
            "http://127.0.0.1:8787/api/v1/twilio/webhooks/inbound",
        ),
        numbers: env("TWILIO_SIM_NUMBERS", "+447700900001,+447700900002")
            .split(',')
            .map(|n| n.trim().to_owned())
            .collect(),
        time_scale: env("TWILIO_SIM_TIME_SCALE", "1").parse().unwrap_or(1.0),
    };
    let resources =
        std::sync::Mutex::new(rest::Resources::new(&config.account_sid, &config.numbers));
    let app = Arc::new(App {
        resources,
        sim: Sim::new(config),
        drop_signaling: Notify::new(),
        drops: AtomicU64::new(0),
    });
    let router = Router::new()
        .route("/healthcheck", get(|| async { Json(json!({"ok": true})) }))
        .route("/signal", get(signal))
        .route(
            "/2010-04-01/Accounts/{account}/Calls/{call}",
            get(fetch_call).post(update_call),
        )
        .route("/2010-04-01/Accounts/{account}/Calls.json", get(list_calls))
        .route(
            "/__sim/calls",
            get(|State(app): State<Shared>| async move {
                Json(json!({"calls": app.sim.lock().calls.values().cloned().collect::<Vec<_>>()}))
            }),
        )
        .route(
            "/__sim/frames",
            get(|State(app): State<Shared>| async move {
                Json(json!({"frames": app.sim.lock().frames.clone()}))
            }),
        )
        .route(
            "/__sim/callbacks",
            get(|State(app): State<Shared>| async move {
                Json(json!({"callbacks": app.sim.lock().callbacks.clone()}))
            }),
        )
        .route("/__sim/media", get(media_reports))
        .route(
            "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers.json",
            get(list_numbers),
        )
        .route(
            "/2010-04-01/Accounts/{account}/IncomingPhoneNumbers/{sid}",
            post(update_number),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Applications.json",
            get(list_applications).post(create_application),
        )
        .route(
            "/2010-04-01/Accounts/{account}/Applications/{sid}",
            post(update_application),
        )
        .route("/__sim/inbound", post(inbound_call))
        .route("/__sim/faults", post(set_faults))
        .route("/__sim/callees", post(set_callee))
        .route("/__sim/drop-signaling", post(drop_signaling))
        .route("/__sim/reset", post(reset))
        .with_state(app);
    let address = SocketAddr::from(([127, 0, 0, 1], port));
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("twilio-sim cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    println!("twilio-sim listening on http://{address}");
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(error) => {
                eprintln!("twilio-sim cannot watch SIGTERM: {error}");
                std::process::exit(1);
            }
        };
    let stop = async move {
        tokio::select! {
            () = shutdown => {}
            _ = terminate.recv() => {}
        }
    };
    if let Err(error) = axum::serve(listener, router)
        .with_graceful_shutdown(stop)
        .await
    {
        eprintln!("twilio-sim stopped: {error}");
    }
}

async fn signal(ws: WebSocketUpgrade, State(app): State<Shared>) -> Response {
    ws.on_upgrade(move |socket| session(app, socket))
}

/// One client's signaling session.
async fn session(app: Shared, socket: WebSocket) {
    let sim = app.sim.clone();
    let (mut sink, mut stream) = socket.split();
    let (outbox, mut rx) = mpsc::unbounded_channel::<String>();
    let mut writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::Text(text.into())).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });
    let send = |message: ServerMessage| {
        let text = message.encode();
        sim.log_frame("server", &text);
        let _ = outbox.send(text);
    };
    let mut identity: Option<String> = None;
    // How long this socket's calls are held for a reconnect if it drops (its `listen` says).
    let mut window = routing::reconnect_window(None);
    loop {
        let incoming = tokio::select! {
            message = stream.next() => message,
            () = app.drop_signaling.notified() => {
                sim.log_frame("server", "\"<dropped by fault>\"");
                break;
            }
        };
        let text = match incoming {
            Some(Ok(Message::Text(text))) => text.to_string(),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
            Some(Ok(_)) => continue,
        };
        if text != HEARTBEAT {
            sim.log_frame("client", &text);
        }
        match ClientMessage::decode(&text) {
            Ok(Frame::Heartbeat) => {
                let _ = outbox.send(HEARTBEAT.to_owned());
            }
            Ok(Frame::Message(ClientMessage::Listen(listen))) => {
                match sim.validate_token(&listen.token) {
                    Ok((id, ttl)) => {
                        identity = Some(id.clone());
                        window = routing::reconnect_window(listen.reconnect_timeout);
                        send(ServerMessage::Connected {
                            token: Some(TokenInfo { identity: id, ttl }),
                            region: Some("gll".into()),
                            edge: Some("roaming".into()),
                        });
                        send(ServerMessage::Ready);
                    }
                    Err(error) => {
                        identity = None;
                        send(ServerMessage::Error {
                            error,
                            callsid: None,
                        });
                    }
                }
            }
            Ok(Frame::Message(ClientMessage::Register { .. })) => {
                if let Some(id) = &identity {
                    sim.lock().clients.insert(id.clone(), outbox.clone());
                    send(ServerMessage::Ready);
                } else {
                    send(ServerMessage::Error {
                        error: SignalingError {
                            code: codes::SIGNALING_TOKEN_INVALID,
                            message: "Register before listen".into(),
                        },
                        callsid: None,
                    });
                }
            }
            Ok(Frame::Message(ClientMessage::Invite(invite))) => {
                let Some(id) = identity.clone() else {
                    send(ServerMessage::Hangup {
                        callsid: Some(invite.callsid),
                        error: Some(SignalingError {
                            code: codes::TOKEN_INVALID,
                            message: "Not authenticated".into(),
                        }),
                    });
                    continue;
                };
                if let Some(token) = &invite.reconnect {
                    // Resume a call on this socket; the media peer is untouched.
                    if let routing::Reattached::Refused(error) =
                        sim.reattach(&invite.callsid, token, &id, &outbox)
                    {
                        send(ServerMessage::Hangup {
                            callsid: Some(invite.callsid),
                            error: Some(error),
                        });
                    }
                    continue;
                }
                let params = invite
                    .twilio
                    .params
                    .as_deref()
                    .map(shared::form::parse)
                    .and_then(Result::ok)
                    .unwrap_or_default();
                // The call's route is opened here, in the session's order, so that this
                // socket's end (below) is sure to see it.
                let parent = sim.new_call_sid();
                sim.lock().open_route(&parent, &id, outbox.clone());
                tokio::spawn(sim.clone().run_outbound(
                    parent,
                    id,
                    invite.callsid,
                    invite.sdp,
                    params,
                ));
            }
            Ok(Frame::Message(ClientMessage::Hangup { callsid, .. })) => {
                let parent = sim
                    .lock()
                    .client_calls
                    .get(&callsid)
                    .cloned()
                    .unwrap_or(callsid);
                sim.end_call(&parent, EndedBy::Client);
            }
            Ok(Frame::Message(ClientMessage::Dtmf { callsid, dtmf })) => {
                let mut inner = sim.lock();
                let parent = inner.client_calls.get(&callsid).cloned().unwrap_or(callsid);
                for call in inner.calls.values_mut() {
                    if call.sid == parent || call.parent_sid.as_deref() == Some(parent.as_str()) {
                        call.digits.push_str(&dtmf);
                    }
                }
            }
            Ok(Frame::Message(ClientMessage::Reinvite { callsid, sdp })) => {
                // An ICE restart: the call's peer accepts the new offer and answers it.
                let parent = sim
                    .lock()
                    .client_calls
                    .get(&callsid)
                    .cloned()
                    .unwrap_or(callsid);
                let stats = sim.lock().media.get(&parent).cloned();
                let answer = match stats {
                    Some(stats) => tokio::task::spawn_blocking(move || stats.renegotiate(&sdp))
                        .await
                        .ok()
                        .and_then(Result::ok),
                    None => None,
                };
                match answer {
                    Some(sdp) => send(ServerMessage::Answer {
                        callsid: parent,
                        sdp: Some(sdp),
                        reconnect: None,
                    }),
                    None => send(ServerMessage::Error {
                        error: SignalingError {
                            code: codes::ICE_FAILED,
                            message: "ICE restart failed".into(),
                        },
                        callsid: Some(parent),
                    }),
                }
            }
            Ok(Frame::Message(ClientMessage::Message {
                callsid,
                voiceeventsid,
                ..
            })) => {
                send(ServerMessage::Ack {
                    callsid,
                    acktype: Some("message".into()),
                    voiceeventsid,
                });
            }
            Ok(Frame::Message(ClientMessage::Answer { callsid, sdp })) => {
                sim.incoming_reply(&callsid, engine::IncomingReply::Answered(sdp));
            }
            Ok(Frame::Message(ClientMessage::Reject { callsid })) => {
                sim.incoming_reply(&callsid, engine::IncomingReply::Rejected);
            }
            Err(error) => send(ServerMessage::Error {
                error: SignalingError {
                    code: codes::CONNECTION_ERROR,
                    message: error.to_string(),
                },
                callsid: None,
            }),
        }
    }
    // The socket is gone: its calls are held for a reconnect (or end, with a zero window).
    sim.session_ended(identity.as_deref(), &outbox, window);
    drop(outbox);
    // Every route and registration has let go of this socket, so the writer drains and closes.
    if tokio::time::timeout(Duration::from_secs(5), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// Twilio's REST authentication: basic auth with an API key and its secret, or the account SID
/// and auth token; and the account in the path must be ours.
fn rest_authorized(
    config: &SimConfig,
    account: &str,
    headers: &HeaderMap,
) -> Result<(), Box<Response>> {
    let authorized = headers
        .get("authorization")
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
        .and_then(|raw| String::from_utf8(raw).ok())
        .is_some_and(|pair| {
            pair == format!("{}:{}", config.api_key, config.api_secret)
                || pair == format!("{}:{}", config.account_sid, config.auth_token)
        });
    if !authorized {
        let refusal = (
            StatusCode::UNAUTHORIZED,
            Json(json!({"code": 20003, "message": "Authenticate", "status": 401})),
        );
        return Err(Box::new(refusal.into_response()));
    }
    if account != config.account_sid {
        return Err(Box::new(not_found()));
    }
    Ok(())
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, Json(json!({"code": 20404, "message": "The requested resource was not found", "status": 404}))).into_response()
}

async fn list_numbers(
    State(app): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = rest_authorized(&app.sim.config, &account, &headers) {
        return *refused;
    }
    let numbers: Vec<rest::IncomingPhoneNumber> = app
        .resources
        .lock()
        .map(|r| r.numbers.values().cloned().collect())
        .unwrap_or_default();
    Json(json!({"incoming_phone_numbers": numbers, "page": 0, "page_size": 50})).into_response()
}

async fn update_number(
    State(app): State<Shared>,
    Path((account, sid)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(refused) = rest_authorized(&app.sim.config, &account, &headers) {
        return *refused;
    }
    let params = shared::form::parse(&body).unwrap_or_default();
    let updated = app
        .resources
        .lock()
        .ok()
        .and_then(|mut r| r.update_number(sid.trim_end_matches(".json"), &params));
    updated.map_or_else(not_found, |n| Json(n).into_response())
}

async fn list_applications(
    State(app): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = rest_authorized(&app.sim.config, &account, &headers) {
        return *refused;
    }
    let applications: Vec<rest::Application> = app
        .resources
        .lock()
        .map(|r| r.applications.values().cloned().collect())
        .unwrap_or_default();
    Json(json!({"applications": applications, "page": 0, "page_size": 50})).into_response()
}

async fn create_application(
    State(app): State<Shared>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(refused) = rest_authorized(&app.sim.config, &account, &headers) {
        return *refused;
    }
    let params = shared::form::parse(&body).unwrap_or_default();
    let account_sid = app.sim.config.account_sid.clone();
    let created = app
        .resources
        .lock()
        .ok()
        .and_then(|mut r| r.upsert_application(&account_sid, None, &params));
    created.map_or_else(not_found, |a| {
        (StatusCode::CREATED, Json(a)).into_response()
    })
}

async fn update_application(
    State(app): State<Shared>,
    Path((account, sid)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    if let Err(refused) = rest_authorized(&app.sim.config, &account, &headers) {
        return *refused;
    }
    let params = shared::form::parse(&body).unwrap_or_default();
    let account_sid = app.sim.config.account_sid.clone();
    let updated = app.resources.lock().ok().and_then(|mut r| {
        r.upsert_application(&account_sid, Some(sid.trim_end_matches(".json")), &params)
    });
    updated.map_or_else(not_found, |a| Json(a).into_response())
}

/// `GET /2010-04-01/Accounts/{AC}/Calls/{CA}.json`: one leg as a Call resource.
async fn fetch_call(
    State(app): State<Shared>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let config = &app.sim.config;
    if let Err(refused) = rest_authorized(config, &account, &headers) {
        return *refused;
    }
    let sid = call.trim_end_matches(".json");
    let sim = app.sim.lock();
    let found = sim
        .calls
        .get(sid)
        .filter(|_| !sim.faults.forget_calls)
        .map(|c| c.resource(&config.account_sid));
    drop(sim);
    found.map_or_else(not_found, |resource| Json(resource).into_response())
}

/// `GET /2010-04-01/Accounts/{AC}/Calls.json[?ParentCallSid=CA…]`: the legs (under that call).
async fn list_calls(
    State(app): State<Shared>,
    Path(account): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let config = &app.sim.config;
    if let Err(refused) = rest_authorized(config, &account, &headers) {
        return *refused;
    }
    let params = shared::form::parse(query.as_deref().unwrap_or("")).unwrap_or_default();
    let parent = params
        .iter()
        .find(|(k, _)| k == "ParentCallSid")
        .map(|(_, v)| v.clone());
    let sim = app.sim.lock();
    let forgotten = sim.faults.forget_calls;
    let calls: Vec<serde_json::Value> = sim
        .calls
        .values()
        .filter(|c| !forgotten && (parent.is_none() || c.parent_sid == parent))
        .map(|c| c.resource(&config.account_sid))
        .collect();
    Json(json!({"calls": calls, "page": 0, "page_size": 50})).into_response()
}

/// `POST /2010-04-01/Accounts/{AC}/Calls/{CA}.json` with `Status=completed`.
async fn update_call(
    State(app): State<Shared>,
    Path((account, call)): Path<(String, String)>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let config = &app.sim.config;
    if let Err(refused) = rest_authorized(config, &account, &headers) {
        return *refused;
    }
    let sid = call.trim_end_matches(".json");
    let params = shared::form::parse(&body).unwrap_or_default();
    let status = params
        .iter()
        .find(|(k, _)| k == "Status")
        .map(|(_, v)| v.as_str());
    if !matches!(status, Some("completed" | "canceled")) {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"code": 21218, "message": "Invalid Status", "status": 400})),
        )
            .into_response();
    }
    if app.sim.end_call(sid, EndedBy::Rest) {
        Json(json!({"sid": sid, "status": "completed"})).into_response()
    } else {
        not_found()
    }
}

/// What each call's media peer measured, by parent CallSid.
async fn media_reports(State(app): State<Shared>) -> Json<serde_json::Value> {
    let reports: serde_json::Map<String, serde_json::Value> = app
        .sim
        .lock()
        .media
        .iter()
        .map(|(sid, stats)| {
            (
                sid.clone(),
                serde_json::to_value(stats.report()).unwrap_or_default(),
            )
        })
        .collect();
    Json(json!({"media": reports}))
}

#[derive(serde::Deserialize)]
struct InboundRequest {
    from: String,
    to: String,
}

/// A "patient" calls a pool number: the worker's inbound route decides where it rings.
async fn inbound_call(
    State(app): State<Shared>,
    Json(request): Json<InboundRequest>,
) -> Json<serde_json::Value> {
    let sid = app.sim.start_inbound(request.from, request.to);
    Json(json!({"callSid": sid}))
}

async fn set_faults(
    State(app): State<Shared>,
    Json(faults): Json<Faults>,
) -> Json<serde_json::Value> {
    app.sim.lock().faults = faults.clone();
    Json(json!({"faults": faults}))
}

#[derive(serde::Deserialize)]
struct CalleeRequest {
    number: String,
    script: Script,
}

async fn set_callee(
    State(app): State<Shared>,
    Json(request): Json<CalleeRequest>,
) -> Json<serde_json::Value> {
    app.sim
        .lock()
        .callees
        .insert(request.number, request.script);
    Json(json!({"ok": true}))
}

async fn drop_signaling(State(app): State<Shared>) -> Json<serde_json::Value> {
    app.drops.fetch_add(1, Ordering::Relaxed);
    app.drop_signaling.notify_waiters();
    Json(json!({"dropped": app.drops.load(Ordering::Relaxed)}))
}

async fn reset(State(app): State<Shared>) -> Json<serde_json::Value> {
    let mut inner = app.sim.lock();
    inner.frames.clear();
    inner.callbacks.clear();
    inner.faults = Faults::default();
    inner.callees = engine::default_callees();
    Json(json!({"ok": true}))
}
