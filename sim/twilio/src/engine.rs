//! The simulator's state and call engine: validates access tokens as Twilio does, runs each call
//! (voice webhook → TwiML → scripted callee → signed status callbacks → Dial action), and keeps
//! everything it did for inspection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use shared::access_token::AccessTokenClaims;
use shared::jwt::UnverifiedJwt;
use shared::signaling::{codes, ServerMessage, SignalingError};
use shared::time::rfc3339_utc;
use shared::webhook_signature::compute;
use tokio::sync::Notify;

use crate::routing::{Outbox, Route};
use crate::twiml::{self, Target, Verb};

/// What the simulator is configured with (fake credentials, local URLs).
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub account_sid: String,
    pub auth_token: String,
    pub api_key: String,
    pub api_secret: String,
    /// The TwiML App's Voice URL (the worker's voice webhook).
    pub voice_url: String,
    /// The pool numbers' Voice URL (the worker's inbound webhook).
    pub inbound_url: String,
    /// The account's numbers: `<Dial callerId>` must be one of them (else 13214).
    pub numbers: Vec<String>,
    /// Multiplies every scripted delay and dial timeout (tests run faster with 0.1).
    pub time_scale: f64,
}

/// How a scripted callee behaves, chosen by the dialled number.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Script {
    /// Answers after `after_ms`, then talks until someone hangs up (or `hangup_after_ms`).
    Answer {
        after_ms: u64,
        hangup_after_ms: Option<u64>,
    },
    Busy,
    /// Rings until the dial timeout.
    NoAnswer,
    Failed,
}

/// The documented default callees (Ofcom drama numbers of the seeded patients).
pub fn default_callees() -> HashMap<String, Script> {
    HashMap::from([
        (
            "+447700900123".into(),
            Script::Answer {
                after_ms: 2_000,
                hangup_after_ms: None,
            },
        ),
        ("+442079460123".into(), Script::Busy),
        ("+447700900456".into(), Script::NoAnswer),
        ("+447700900321".into(), Script::Failed),
        (
            "+447700900789".into(),
            Script::Answer {
                after_ms: 1_000,
                hangup_after_ms: Some(5_000),
            },
        ),
        (
            "+447700900654".into(),
            Script::Answer {
                after_ms: 1_500,
                hangup_after_ms: None,
            },
        ),
    ])
}

/// Faults switched on through the control API.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    /// Send every status callback twice.
    pub duplicate_callbacks: bool,
    /// Hold a call's callbacks and send them in reverse order when it ends.
    pub reorder_callbacks: bool,
    /// Delay each status callback.
    pub delay_callbacks_ms: u64,
    /// Do not reach the voice webhook (as if it were down).
    pub fail_webhook: bool,
    /// Treat every token as expired.
    pub expire_tokens: bool,
    /// Answer the SDP offer but run no peer behind it, so the browser's ICE checks fail.
    pub fail_ice: bool,
    /// Send no status callback and no Dial action: all lost, as when the worker could not be
    /// reached while Twilio sent them (the REST API still shows each call as it stands).
    pub lose_callbacks: bool,
    /// The REST API knows no call: 404 for one, an empty list for a search (as with another
    /// account's credentials). Calls themselves go on.
    pub forget_calls: bool,
    /// Hold the voice webhook's answer this long (ms) before acting on it, as when the worker is
    /// slow to answer: a hang-up meanwhile ends the call before anything is dialled, after the
    /// worker has recorded it.
    pub hold_voice_answer_ms: u64,
}

/// One signaling frame, as logged (tokens redacted).
#[derive(Debug, Clone, Serialize)]
pub struct FrameLog {
    pub at: String,
    pub direction: &'static str,
    pub frame: serde_json::Value,
}

/// One status callback or Dial action the simulator sent.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallbackLog {
    pub url: String,
    pub params: Vec<(String, String)>,
    pub status: u16,
}

/// One step of a leg's progress, as a status callback reports it.
#[derive(Debug, Clone, Copy)]
struct Progress<'a> {
    /// The `statusCallbackEvent` name (`initiated`, `ringing`, `answered`, `completed`).
    event: &'a str,
    /// The `CallStatus` sent.
    status: &'a str,
    sequence: u32,
    duration: Option<u64>,
}

/// One call leg.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CallLog {
    pub sid: String,
    pub parent_sid: Option<String>,
    pub identity: Option<String>,
    pub to: Option<String>,
    pub caller_id: Option<String>,
    pub status: String,
    pub digits: String,
    pub ended_by: Option<String>,
    pub error_code: Option<u32>,
    /// Times a reconnect `invite` took this call over on a new signaling socket.
    pub reattached: u32,
    /// The signaling socket that carried this call is gone and no new one has taken it over.
    pub detached: bool,
    /// When it was created, answered and ended (Unix seconds), for the REST API's Call resource.
    pub created_at: i64,
    pub answered_at: Option<i64>,
    pub ended_at: Option<i64>,
}

impl CallLog {
    /// A new leg at `status` (answered or ended now, if that is what it says), created now,
    /// with nothing else known yet.
    pub fn new(sid: String, parent_sid: Option<String>, status: &str) -> Self {
        let mut leg = Self {
            sid,
            parent_sid,
            identity: None,
            to: None,
            caller_id: None,
            status: String::new(),
            digits: String::new(),
            ended_by: None,
            error_code: None,
            reattached: 0,
            detached: false,
            created_at: now_unix(),
            answered_at: None,
            ended_at: None,
        };
        leg.set_status(status);
        leg
    }

    /// Moves the leg to `status`, noting when it was answered and when it ended.
    pub fn set_status(&mut self, status: &str) {
        self.status = status.to_owned();
        let now = now_unix();
        if status == "in-progress" && self.answered_at.is_none() {
            self.answered_at = Some(now);
        }
        if matches!(
            status,
            "completed" | "busy" | "no-answer" | "failed" | "canceled"
        ) {
            self.ended_at.get_or_insert(now);
        }
    }

    /// The leg as Twilio's REST API shows a Call resource (the fields the worker reads, and a
    /// few more): `duration` is a decimal string once it has ended, as Twilio sends it.
    pub fn resource(&self, account_sid: &str) -> serde_json::Value {
        let duration = self.ended_at.map(|ended| {
            (ended - self.answered_at.unwrap_or(ended))
                .max(0)
                .to_string()
        });
        serde_json::json!({
            "sid": self.sid,
            "account_sid": account_sid,
            "parent_call_sid": self.parent_sid,
            "status": self.status,
            "direction": if self.parent_sid.is_some() { "outbound-dial" } else { "inbound" },
            "date_created": rfc2822(self.created_at),
            "start_time": self.answered_at.map(rfc2822),
            "end_time": self.ended_at.map(rfc2822),
            "duration": duration,
        })
    }
}

/// How a live call was ended from outside its script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    Client,
    Rest,
    /// The signaling socket dropped and the client did not reconnect within its window.
    SignalingLost,
}

impl Inner {
    /// Logs one signaling frame (access tokens redacted).
    pub fn log(&mut self, direction: &'static str, text: &str) {
        let mut frame: serde_json::Value =
            serde_json::from_str(text).unwrap_or(serde_json::Value::String(text.to_owned()));
        if let Some(token) = frame.pointer_mut("/payload/token") {
            if token.is_string() {
                *token = "<redacted>".into();
            }
        }
        self.frames.push(FrameLog {
            at: rfc3339_utc(now_unix()),
            direction,
            frame,
        });
    }
}

#[derive(Default)]
pub struct Inner {
    pub calls: HashMap<String, CallLog>,
    /// The client's own call id (`TJS…`) → Twilio's parent CallSid.
    pub client_calls: HashMap<String, String>,
    pub ended: HashMap<String, EndedBy>,
    pub notifies: HashMap<String, Arc<Notify>>,
    pub frames: Vec<FrameLog>,
    pub callbacks: Vec<CallbackLog>,
    pub faults: Faults,
    pub callees: HashMap<String, Script>,
    /// The media peer of each call that offered real SDP, by parent CallSid.
    pub media: HashMap<String, Arc<crate::media::MediaStats>>,
    /// The SDP answer to send when the callee answers, by parent CallSid.
    pub answers: HashMap<String, String>,
    /// Registered clients (after `register`), by identity: where incoming calls ring.
    pub clients: HashMap<String, Outbox>,
    /// Each call's signaling route, by the CallSid its client knows (see `routing`).
    pub routes: HashMap<String, Route>,
    /// Live reconnect tokens → the CallSid they resume.
    pub tokens: HashMap<String, String>,
    /// A browser's reply to an incoming call, by the ringing leg's CallSid.
    pub incoming: HashMap<String, IncomingReply>,
}

/// How a browser replied to an incoming call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IncomingReply {
    Answered(String),
    Rejected,
    /// The browser's signaling socket went away while the call rang, and did not come back.
    Lost,
}

/// The simulator.
pub struct Sim {
    pub config: SimConfig,
    pub http: reqwest::Client,
    inner: Mutex<Inner>,
    sequence: std::sync::atomic::AtomicU64,
}

pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `Wed, 25 Nov 2026 06:08:02 +0000`
fn rfc2822(unix: i64) -> String {
    let iso = rfc3339_utc(unix);
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let month = iso[5..7].parse::<usize>().unwrap_or(1).clamp(1, 12);
    let days = unix.div_euclid(86_400);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][days.rem_euclid(7) as usize];
    format!(
        "{weekday}, {} {} {} {} +0000",
        &iso[8..10],
        months[month - 1],
        &iso[0..4],
        &iso[11..19]
    )
}

impl Sim {
    pub fn new(config: SimConfig) -> Arc<Self> {
        let inner = Inner {
            callees: default_callees(),
            ..Inner::default()
        };
        Arc::new(Self {
            config,
            http: reqwest::Client::new(),
            inner: Mutex::new(inner),
            sequence: std::sync::atomic::AtomicU64::new(1),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh `CA…` sid.
    pub fn new_call_sid(&self) -> String {
        let n = self.next_sequence();
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("CA{:016x}{:08x}{:08x}", n, nanos, std::process::id())
    }

    /// The next value of the simulator's sequence (call sids, tokens).
    pub fn next_sequence(&self) -> u64 {
        self.sequence
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    fn scaled(&self, ms: u64) -> Duration {
        Duration::from_millis((ms as f64 * self.config.time_scale).round() as u64)
    }

    pub fn log_frame(&self, direction: &'static str, text: &str) {
        self.lock().log(direction, text);
    }

    /// Validates an access token as Twilio's gateway does. `Ok((identity, seconds left))`; a
    /// refusal carries the gateway's own codes, 31204 (invalid) and 31205 (expired), which the
    /// official SDK translates to 20101 and 20104 (`device.ts` `_onSignalingError`).
    pub fn validate_token(&self, token: &str) -> Result<(String, i64), SignalingError> {
        let invalid = |message: &str| SignalingError {
            code: codes::SIGNALING_TOKEN_INVALID,
            message: message.to_owned(),
        };
        let jwt = UnverifiedJwt::parse(token).map_err(|_| invalid("Invalid Access Token"))?;
        if jwt.header.cty.as_deref() != Some("twilio-fpa;v=1") {
            return Err(invalid("Invalid Access Token content type"));
        }
        jwt.verify_hs256(self.config.api_secret.as_bytes())
            .map_err(|_| invalid("Invalid Access Token signature"))?;
        let claims: AccessTokenClaims = jwt
            .claims()
            .map_err(|_| invalid("Invalid Access Token grants"))?;
        if claims.iss != self.config.api_key {
            return Err(invalid("Invalid Access Token issuer/subject"));
        }
        if claims.sub != self.config.account_sid {
            return Err(invalid("Invalid Access Token issuer/subject"));
        }
        let left = claims.exp - now_unix();
        if left <= 0 || self.lock().faults.expire_tokens {
            return Err(SignalingError {
                code: codes::SIGNALING_TOKEN_EXPIRED,
                message: "Access Token expired or expiration date invalid".into(),
            });
        }
        if claims.grants.identity.is_empty() {
            return Err(invalid("Invalid Access Token grants"));
        }
        Ok((claims.grants.identity, left))
    }

    fn set_status(&self, sid: &str, status: &str) {
        if let Some(call) = self.lock().calls.get_mut(sid) {
            call.set_status(status);
        }
    }

    fn notify_for(&self, sid: &str) -> Arc<Notify> {
        self.lock()
            .notifies
            .entry(sid.to_owned())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    /// Ends a live call from outside its script (the client hung up, or the REST API).
    pub fn end_call(&self, sid: &str, by: EndedBy) -> bool {
        let parent = {
            let inner = self.lock();
            match inner.calls.get(sid) {
                Some(call) => call.parent_sid.clone().unwrap_or_else(|| sid.to_owned()),
                None => return false,
            }
        };
        self.lock().ended.entry(parent.clone()).or_insert(by);
        self.notify_for(&parent).notify_waiters();
        true
    }

    fn ended(&self, parent: &str) -> Option<EndedBy> {
        self.lock().ended.get(parent).copied()
    }

    /// POSTs signed form params to a webhook URL (its fragment, Twilio's connection overrides,
    /// is not sent and not signed). Returns the status and body.
    pub async fn post_signed(
        &self,
        url: &str,
        params: &[(String, String)],
    ) -> Result<(u16, String), String> {
        let url = url.split('#').next().unwrap_or(url);
        let signature = compute(&self.config.auth_token, url, params);
        let body = shared::form::encode(params.iter().map(|(k, v)| (k, v)));
        let response = self
            .http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-twilio-signature", signature)
            .header("user-agent", "TwilioProxy/1.1")
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(|e| e.to_string())?;
        self.lock().callbacks.push(CallbackLog {
            url: url.to_owned(),
            params: params.to_vec(),
            status,
        });
        Ok((status, text))
    }

    /// Runs one outbound call placed by a client's `invite`, to its end. `parent` is its
    /// CallSid, whose route the session has opened.
    pub async fn run_outbound(
        self: Arc<Self>,
        parent: String,
        identity: String,
        client_callsid: String,
        offer_sdp: String,
        params: Vec<(String, String)>,
    ) {
        // A real offer gets a real peer; a placeholder SDP (protocol-only tests) gets none.
        let fail_ice = self.lock().faults.fail_ice;
        if let Ok((answer, stats)) = crate::media::answer(&offer_sdp, !fail_ice) {
            let mut inner = self.lock();
            inner.media.insert(parent.clone(), stats);
            inner.answers.insert(parent.clone(), answer);
        }
        {
            let mut inner = self.lock();
            inner
                .client_calls
                .insert(client_callsid.clone(), parent.clone());
            inner.calls.insert(
                parent.clone(),
                CallLog {
                    identity: Some(identity.clone()),
                    ..CallLog::new(parent.clone(), None, "ringing")
                },
            );
        }
        let mut webhook: Vec<(String, String)> = vec![
            ("AccountSid".into(), self.config.account_sid.clone()),
            ("ApiVersion".into(), "2010-04-01".into()),
            (
                "ApplicationSid".into(),
                "AP00000000000000000000000000000001".into(),
            ),
            ("CallSid".into(), parent.clone()),
            ("CallStatus".into(), "ringing".into()),
            ("Direction".into(), "inbound".into()),
            ("From".into(), format!("client:{identity}")),
            ("Caller".into(), format!("client:{identity}")),
        ];
        webhook.extend(params);
        if !webhook.iter().any(|(k, _)| k == "To") {
            webhook.push(("To".into(), String::new()));
        }
        let answer = if self.lock().faults.fail_webhook {
            Err("fault: webhook unreachable".to_owned())
        } else {
            self.post_signed(&self.config.voice_url, &webhook).await
        };
        let hold = self.lock().faults.hold_voice_answer_ms;
        if hold > 0 {
            tokio::time::sleep(Duration::from_millis(hold)).await;
        }
        let verbs = match answer {
            Ok((200, body)) => twiml::parse(&body),
            Ok((status, _)) => Err(format!("11200 HTTP retrieval failure ({status})")),
            Err(error) => Err(format!("11200 HTTP retrieval failure ({error})")),
        };
        let verbs = match verbs {
            Ok(verbs) => verbs,
            Err(reason) => {
                let code = reason
                    .split(' ')
                    .next()
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(codes::CONNECTION_ERROR);
                self.finish_parent(
                    &parent,
                    "failed",
                    Some(SignalingError {
                        code,
                        message: reason,
                    }),
                );
                return;
            }
        };
        for verb in verbs {
            if self.ended(&parent).is_some() {
                break;
            }
            match verb {
                Verb::Say(_) | Verb::Pause(_) => {
                    self.answer_before_speaking(&parent);
                    tokio::time::sleep(self.scaled(1_000)).await
                }
                Verb::Hangup | Verb::Reject => break,
                Verb::Dial(dial) => {
                    self.clone().run_dial(&parent, dial).await;
                    break;
                }
            }
        }
        self.finish_parent(&parent, "completed", None);
    }

    /// Twilio answers the browser's leg before it speaks (`<Say>`, `<Pause>`), so that the
    /// words are heard: `answer` with the SDP and a reconnect token, once, and the call is
    /// in progress. A `<Dial>` after it then answers with no SDP.
    fn answer_before_speaking(&self, parent: &str) {
        let Some(sdp) = self.lock().answers.remove(parent) else {
            return;
        };
        self.set_status(parent, "in-progress");
        let reconnect = self.issue_token(parent);
        self.send_call(
            parent,
            ServerMessage::Answer {
                callsid: parent.to_owned(),
                sdp: Some(sdp),
                reconnect,
            },
        );
    }

    fn finish_parent(&self, parent: &str, status: &str, error: Option<SignalingError>) {
        let by_client = self.ended(parent) == Some(EndedBy::Client);
        if let Some(stats) = self.lock().media.get(parent) {
            stats.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some(call) = self.lock().calls.get_mut(parent) {
            call.set_status(status);
            call.error_code = error.as_ref().map(|e| e.code);
        }
        if !by_client {
            self.send_call(
                parent,
                ServerMessage::Hangup {
                    callsid: Some(parent.to_owned()),
                    error,
                },
            );
        }
        self.close_route(parent);
    }

    async fn status_callback(
        &self,
        dial: &twiml::Dial,
        leg: &CallLog,
        progress: Progress<'_>,
        held: &mut Vec<Vec<(String, String)>>,
    ) {
        let Progress {
            event,
            status,
            sequence,
            duration,
        } = progress;
        let Some(url) = &dial.status_callback else {
            return;
        };
        let wanted = dial.status_callback_events.iter().any(|e| e == event) || event == "completed";
        if !wanted {
            return;
        }
        let mut params: Vec<(String, String)> = vec![
            ("AccountSid".into(), self.config.account_sid.clone()),
            ("ApiVersion".into(), "2010-04-01".into()),
            ("CallSid".into(), leg.sid.clone()),
            (
                "ParentCallSid".into(),
                leg.parent_sid.clone().unwrap_or_default(),
            ),
            ("CallStatus".into(), status.into()),
            ("CallbackSource".into(), "call-progress-events".into()),
            ("Direction".into(), "outbound-dial".into()),
            ("From".into(), leg.caller_id.clone().unwrap_or_default()),
            ("To".into(), leg.to.clone().unwrap_or_default()),
            ("SequenceNumber".into(), sequence.to_string()),
            ("Timestamp".into(), rfc2822(now_unix())),
        ];
        if let Some(seconds) = duration {
            params.push(("CallDuration".into(), seconds.to_string()));
        }
        params.push(("__url".into(), url.clone()));
        let faults = self.lock().faults.clone();
        if faults.reorder_callbacks {
            held.push(params);
            return;
        }
        self.deliver(params, &faults).await;
    }

    /// A new dialled leg: the `initiated` callback, then it rings (`ringing`).
    async fn announce_leg(
        &self,
        dial: &twiml::Dial,
        leg: &CallLog,
        held: &mut Vec<Vec<(String, String)>>,
    ) {
        let initiated = Progress {
            event: "initiated",
            status: "initiated",
            sequence: 0,
            duration: None,
        };
        self.status_callback(dial, leg, initiated, held).await;
        self.set_status(&leg.sid, "ringing");
        let ringing = Progress {
            event: "ringing",
            status: "ringing",
            sequence: 1,
            duration: None,
        };
        self.status_callback(dial, leg, ringing, held).await;
    }

    async fn deliver(&self, mut params: Vec<(String, String)>, faults: &Faults) {
        let url = params
            .iter()
            .position(|(k, _)| k == "__url")
            .map(|i| params.remove(i).1)
            .unwrap_or_default();
        if faults.lose_callbacks {
            return;
        }
        if faults.delay_callbacks_ms > 0 {
            tokio::time::sleep(Duration::from_millis(faults.delay_callbacks_ms)).await;
        }
        let copies = if faults.duplicate_callbacks { 2 } else { 1 };
        for _ in 0..copies {
            // Retries as `#rc=3&rp=all` asks: up to three more attempts on any failure.
            for attempt in 0..4 {
                match self.post_signed(&url, &params).await {
                    Ok((status, _)) if status < 300 => break,
                    _ if attempt < 3 => tokio::time::sleep(Duration::from_millis(200)).await,
                    _ => {}
                }
            }
        }
    }

    async fn run_dial(self: Arc<Self>, parent: &str, dial: twiml::Dial) {
        let Target::Number(number) = dial.target.clone() else {
            // <Dial><Client> from an outbound browser call is not used by the product.
            return;
        };
        let caller_id_ok = dial
            .caller_id
            .as_ref()
            .is_some_and(|c| self.config.numbers.contains(c));
        if !caller_id_ok {
            let error = SignalingError {
                code: codes::INVALID_CALLER_ID,
                message: "Caller ID is not a valid number of this account".into(),
            };
            if let Some(call) = self.lock().calls.get_mut(parent) {
                call.error_code = Some(error.code);
            }
            self.send_call(
                parent,
                ServerMessage::Error {
                    error,
                    callsid: Some(parent.to_owned()),
                },
            );
            return;
        }
        let child = CallLog {
            to: Some(number.clone()),
            caller_id: dial.caller_id.clone(),
            ..CallLog::new(self.new_call_sid(), Some(parent.to_owned()), "initiated")
        };
        self.lock().calls.insert(child.sid.clone(), child.clone());
        let script = self
            .lock()
            .callees
            .get(&number)
            .cloned()
            .unwrap_or(Script::Answer {
                after_ms: 1_000,
                hangup_after_ms: None,
            });
        let notify = self.notify_for(parent);
        let mut held = Vec::new();
        self.announce_leg(&dial, &child, &mut held).await;
        // With answerOnBridge the browser's leg is not answered until the callee is, but its
        // ringback is early media: `ringing` carries the SDP and the later `answer` none.
        let early_media = if dial.answer_on_bridge {
            self.lock().answers.remove(parent)
        } else {
            None
        };
        self.send_call(
            parent,
            ServerMessage::Ringing {
                callsid: parent.to_owned(),
                sdp: early_media,
            },
        );

        let ring_limit = self.scaled(u64::from(dial.timeout_seconds) * 1_000);
        let (outcome, duration) = match script {
            Script::Busy => {
                tokio::time::sleep(self.scaled(1_000)).await;
                ("busy", None)
            }
            Script::Failed => {
                tokio::time::sleep(self.scaled(500)).await;
                ("failed", None)
            }
            Script::NoAnswer => {
                let cancelled = tokio::time::timeout(ring_limit, notify.notified())
                    .await
                    .is_ok();
                (if cancelled { "canceled" } else { "no-answer" }, None)
            }
            Script::Answer {
                after_ms,
                hangup_after_ms,
            } => {
                let wait = self.scaled(after_ms).min(ring_limit);
                if tokio::time::timeout(wait, notify.notified()).await.is_ok()
                    || self.ended(parent).is_some()
                {
                    ("canceled", None)
                } else if self.scaled(after_ms) > ring_limit {
                    ("no-answer", None)
                } else {
                    self.set_status(&child.sid, "in-progress");
                    self.set_status(parent, "in-progress");
                    self.status_callback(
                        &dial,
                        &child,
                        Progress {
                            event: "answered",
                            status: "in-progress",
                            sequence: 2,
                            duration: None,
                        },
                        &mut held,
                    )
                    .await;
                    let answer_sdp = self.lock().answers.get(parent).cloned();
                    let reconnect = self.issue_token(parent);
                    self.send_call(
                        parent,
                        ServerMessage::Answer {
                            callsid: parent.to_owned(),
                            sdp: answer_sdp,
                            reconnect,
                        },
                    );
                    let answered = Instant::now();
                    match hangup_after_ms {
                        Some(ms) => {
                            if tokio::time::timeout(self.scaled(ms), notify.notified())
                                .await
                                .is_err()
                            {
                                self.lock()
                                    .ended
                                    .entry(parent.to_owned())
                                    .or_insert(EndedBy::Rest);
                                if let Some(call) = self.lock().calls.get_mut(&child.sid) {
                                    call.ended_by = Some("callee".into());
                                }
                            }
                        }
                        None => {
                            // Poll the flag too: a notification that lands before we wait is not lost.
                            while self.ended(parent).is_none() {
                                let _ = tokio::time::timeout(
                                    Duration::from_millis(200),
                                    notify.notified(),
                                )
                                .await;
                            }
                        }
                    }
                    (
                        "completed",
                        Some(
                            (answered.elapsed().as_secs_f64() / self.config.time_scale).round()
                                as u64,
                        ),
                    )
                }
            }
        };
        let sequence = if duration.is_some() { 3 } else { 2 };
        self.set_status(&child.sid, outcome);
        self.status_callback(
            &dial,
            &child,
            Progress {
                event: "completed",
                status: outcome,
                sequence,
                duration,
            },
            &mut held,
        )
        .await;
        if !held.is_empty() {
            let faults = self.lock().faults.clone();
            for params in held.into_iter().rev() {
                self.deliver(
                    params,
                    &Faults {
                        reorder_callbacks: false,
                        ..faults.clone()
                    },
                )
                .await;
            }
        }
        let lost = self.lock().faults.lose_callbacks;
        if let (Some(action), false) = (&dial.action, lost) {
            let params = vec![
                ("AccountSid".into(), self.config.account_sid.clone()),
                ("CallSid".into(), parent.to_owned()),
                ("DialCallSid".into(), child.sid.clone()),
                ("DialCallStatus".into(), outcome.to_owned()),
                ("DialCallDuration".into(), duration.unwrap_or(0).to_string()),
            ];
            let _ = self.post_signed(action, &params).await;
        }
    }
}

impl Sim {
    /// A browser answered or rejected the incoming call ringing on leg `sid` (or vanished while
    /// it rang). The first reply stands.
    pub fn incoming_reply(&self, sid: &str, reply: IncomingReply) {
        self.lock().incoming.entry(sid.to_owned()).or_insert(reply);
        let parent = self
            .lock()
            .calls
            .get(sid)
            .and_then(|c| c.parent_sid.clone());
        if let Some(parent) = parent {
            self.notify_for(&parent).notify_waiters();
        }
    }

    /// A patient calls a pool number: the control call behind `POST /__sim/inbound`.
    pub fn start_inbound(self: &Arc<Self>, from: String, to: String) -> String {
        let parent = self.new_call_sid();
        self.lock().calls.insert(
            parent.clone(),
            CallLog {
                to: Some(to.clone()),
                caller_id: Some(from.clone()),
                ..CallLog::new(parent.clone(), None, "ringing")
            },
        );
        tokio::spawn(self.clone().run_inbound(parent.clone(), from, to));
        parent
    }

    async fn run_inbound(self: Arc<Self>, parent: String, from: String, to: String) {
        let params: Vec<(String, String)> = vec![
            ("AccountSid".into(), self.config.account_sid.clone()),
            ("ApiVersion".into(), "2010-04-01".into()),
            ("CallSid".into(), parent.clone()),
            ("CallStatus".into(), "ringing".into()),
            ("Direction".into(), "inbound".into()),
            ("From".into(), from.clone()),
            ("To".into(), to.clone()),
        ];
        let mut document = match self.post_signed(&self.config.inbound_url, &params).await {
            Ok((200, body)) => body,
            _ => {
                self.set_status(&parent, "failed");
                return;
            }
        };
        // Execute the TwiML, following Dial actions (at most a few hops, as a guard).
        for _ in 0..4 {
            let Ok(verbs) = twiml::parse(&document) else {
                self.set_status(&parent, "failed");
                return;
            };
            let mut next = None;
            for verb in verbs {
                match verb {
                    Verb::Say(_) | Verb::Pause(_) => tokio::time::sleep(self.scaled(500)).await,
                    Verb::Hangup | Verb::Reject => break,
                    Verb::Dial(dial) => {
                        let (outcome, child) = match dial.target.clone() {
                            Target::Client { identity, .. } => {
                                self.clone()
                                    .ring_client(&parent, &from, &to, &dial, &identity)
                                    .await
                            }
                            Target::Number(number) => {
                                self.dial_number_from_inbound(&parent, &number).await
                            }
                        };
                        if let Some(action) = &dial.action {
                            let params = vec![
                                ("AccountSid".into(), self.config.account_sid.clone()),
                                ("CallSid".into(), parent.clone()),
                                ("DialCallSid".into(), child),
                                ("DialCallStatus".into(), outcome.to_owned()),
                            ];
                            if let Ok((200, body)) = self.post_signed(action, &params).await {
                                next = Some(body);
                            }
                        }
                        break;
                    }
                }
            }
            match next {
                Some(body) => document = body,
                None => break,
            }
        }
        self.set_status(&parent, "completed");
    }

    /// An inbound call dialling an ordinary number (the practice): plays that number's script.
    async fn dial_number_from_inbound(&self, parent: &str, number: &str) -> (&'static str, String) {
        let sid = self.new_call_sid();
        let script = self
            .lock()
            .callees
            .get(number)
            .cloned()
            .unwrap_or(Script::Answer {
                after_ms: 500,
                hangup_after_ms: Some(1_000),
            });
        let outcome = match script {
            Script::Busy => "busy",
            Script::Failed => "failed",
            Script::NoAnswer => "no-answer",
            Script::Answer { .. } => "completed",
        };
        self.lock().calls.insert(
            sid.clone(),
            CallLog {
                to: Some(number.to_owned()),
                ..CallLog::new(sid.clone(), Some(parent.to_owned()), outcome)
            },
        );
        (outcome, sid)
    }

    /// Rings a registered browser with a real offer; waits for answer, reject or the timeout.
    async fn ring_client(
        self: Arc<Self>,
        parent: &str,
        from: &str,
        to: &str,
        dial: &twiml::Dial,
        identity: &str,
    ) -> (&'static str, String) {
        let child = CallLog {
            identity: Some(identity.to_owned()),
            to: Some(format!("client:{identity}")),
            caller_id: Some(from.to_owned()),
            ..CallLog::new(self.new_call_sid(), Some(parent.to_owned()), "initiated")
        };
        let registered = {
            let mut inner = self.lock();
            inner.calls.insert(child.sid.clone(), child.clone());
            // The leg rings the socket the browser registered on; its frames follow the call's
            // route from now on (opened under the same lock that socket's end takes).
            match inner.clients.get(identity).cloned() {
                Some(outbox) => {
                    inner.open_route(&child.sid, identity, outbox);
                    true
                }
                None => false,
            }
        };
        if !registered {
            self.set_status(&child.sid, "no-answer");
            return ("no-answer", child.sid);
        }
        let Ok(offerer) = crate::media::Offerer::new() else {
            self.lock().routes.remove(&child.sid);
            self.set_status(&child.sid, "failed");
            return ("failed", child.sid);
        };
        let mut held = Vec::new();
        self.announce_leg(dial, &child, &mut held).await;
        let mut parameters = serde_json::json!({"CallSid": child.sid, "From": from, "To": to, "AccountSid": self.config.account_sid});
        // The `<Parameter>`s, as Twilio hands them to the SDK: one query string in `Params`.
        if let Target::Client {
            parameters: custom, ..
        } = &dial.target
        {
            if !custom.is_empty() {
                parameters["Params"] =
                    shared::form::encode(custom.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                        .into();
            }
        }
        self.send_call(
            &child.sid,
            ServerMessage::Invite {
                callsid: child.sid.clone(),
                sdp: offerer.offer_sdp().to_owned(),
                reconnect: None,
                parameters: Some(parameters.into()),
            },
        );
        let notify = self.notify_for(parent);
        let deadline =
            tokio::time::Instant::now() + self.scaled(u64::from(dial.timeout_seconds) * 1_000);
        let reply = loop {
            if let Some(reply) = self.lock().incoming.get(&child.sid).cloned() {
                break Some(reply);
            }
            if tokio::time::timeout_at(deadline, notify.notified())
                .await
                .is_err()
            {
                break self.lock().incoming.get(&child.sid).cloned();
            }
        };
        match reply {
            Some(IncomingReply::Answered(sdp)) => {
                if let Ok(stats) = offerer.accept(&sdp) {
                    self.lock().media.insert(child.sid.clone(), stats);
                }
                self.set_status(&child.sid, "in-progress");
                self.status_callback(
                    dial,
                    &child,
                    Progress {
                        event: "answered",
                        status: "in-progress",
                        sequence: 2,
                        duration: None,
                    },
                    &mut held,
                )
                .await;
                // Twilio confirms the browser's answer with an `answer` carrying a reconnect token.
                let reconnect = self.issue_token(&child.sid);
                self.send_call(
                    &child.sid,
                    ServerMessage::Answer {
                        callsid: child.sid.clone(),
                        sdp: None,
                        reconnect,
                    },
                );
                let answered = Instant::now();
                // Poll the flag too: a notification that lands before we wait is not lost.
                while self.ended(parent).is_none() {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(200), notify.notified()).await;
                }
                if self.ended(parent) != Some(EndedBy::Client) {
                    // Ended elsewhere (REST): the browser is told.
                    self.send_call(
                        &child.sid,
                        ServerMessage::Hangup {
                            callsid: Some(child.sid.clone()),
                            error: None,
                        },
                    );
                }
                self.close_route(&child.sid);
                if let Some(stats) = self.lock().media.get(&child.sid) {
                    stats.stop.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                let seconds =
                    (answered.elapsed().as_secs_f64() / self.config.time_scale).round() as u64;
                self.set_status(&child.sid, "completed");
                self.status_callback(
                    dial,
                    &child,
                    Progress {
                        event: "completed",
                        status: "completed",
                        sequence: 3,
                        duration: Some(seconds),
                    },
                    &mut held,
                )
                .await;
                ("completed", child.sid)
            }
            Some(IncomingReply::Rejected) => {
                self.end_unanswered_leg(dial, &child, "busy", &mut held)
                    .await;
                ("busy", child.sid)
            }
            Some(IncomingReply::Lost) => {
                self.end_unanswered_leg(dial, &child, "no-answer", &mut held)
                    .await;
                ("no-answer", child.sid)
            }
            None => {
                self.send_call(
                    &child.sid,
                    ServerMessage::Cancel {
                        callsid: child.sid.clone(),
                    },
                );
                self.end_unanswered_leg(dial, &child, "no-answer", &mut held)
                    .await;
                ("no-answer", child.sid)
            }
        }
    }

    /// Ends a leg that rang the browser but was never answered: its route closes, and its
    /// final status goes out as the `completed` callback.
    async fn end_unanswered_leg(
        &self,
        dial: &twiml::Dial,
        child: &CallLog,
        status: &'static str,
        held: &mut Vec<Vec<(String, String)>>,
    ) {
        self.close_route(&child.sid);
        self.set_status(&child.sid, status);
        self.status_callback(
            dial,
            child,
            Progress {
                event: "completed",
                status,
                sequence: 2,
                duration: None,
            },
            held,
        )
        .await;
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A simulator with the fake account of `.dev.vars.example` (shared with routing's tests).
    pub(crate) fn sim() -> Arc<Sim> {
        Sim::new(SimConfig {
            account_sid: "AC00000000000000000000000000000001".into(),
            auth_token: "fake-twilio-auth-token".into(),
            api_key: "SK00000000000000000000000000000001".into(),
            api_secret: "fake-twilio-api-secret".into(),
            voice_url: "http://127.0.0.1:1/voice".into(),
            inbound_url: "http://127.0.0.1:1/inbound".into(),
            numbers: vec!["+447700900001".into()],
            time_scale: 1.0,
        })
    }

    fn token(claims: serde_json::Value, secret: &str) -> String {
        let header = shared::jwt::Header {
            alg: "HS256".into(),
            kid: None,
            typ: Some("JWT".into()),
            cty: Some("twilio-fpa;v=1".into()),
        };
        shared::jwt::encode_hs256(&header, &claims, secret.as_bytes()).unwrap()
    }

    #[test]
    fn validates_tokens_as_twilio_does() {
        let sim = sim();
        let now = now_unix();
        let grants = serde_json::json!({"identity": "clinician-ada", "voice": {"incoming": {"allow": true}, "outgoing": {"application_sid": "AP00000000000000000000000000000001"}}});
        let claims = |iss: &str, sub: &str, exp: i64| serde_json::json!({"jti": "j", "iss": iss, "sub": sub, "nbf": now, "exp": exp, "grants": grants});
        // twilio-python style: nbf but no iat.
        let good = token(
            claims(
                "SK00000000000000000000000000000001",
                "AC00000000000000000000000000000001",
                now + 600,
            ),
            "fake-twilio-api-secret",
        );
        let (identity, ttl) = sim.validate_token(&good).unwrap();
        assert_eq!(identity, "clinician-ada");
        assert!(ttl > 590 && ttl <= 600);
        let table = [
            (
                token(
                    claims(
                        "SK00000000000000000000000000000001",
                        "AC00000000000000000000000000000001",
                        now + 600,
                    ),
                    "wrong-secret",
                ),
                codes::SIGNALING_TOKEN_INVALID,
            ),
            (
                token(
                    claims(
                        "SK00000000000000000000000000000009",
                        "AC00000000000000000000000000000001",
                        now + 600,
                    ),
                    "fake-twilio-api-secret",
                ),
                codes::SIGNALING_TOKEN_INVALID,
            ),
            (
                token(
                    claims(
                        "SK00000000000000000000000000000001",
                        "AC00000000000000000000000000000009",
                        now + 600,
                    ),
                    "fake-twilio-api-secret",
                ),
                codes::SIGNALING_TOKEN_INVALID,
            ),
            (
                token(
                    claims(
                        "SK00000000000000000000000000000001",
                        "AC00000000000000000000000000000001",
                        now - 1,
                    ),
                    "fake-twilio-api-secret",
                ),
                codes::SIGNALING_TOKEN_EXPIRED,
            ),
            ("not.a.token".to_owned(), codes::SIGNALING_TOKEN_INVALID),
        ];
        for (token, code) in table {
            assert_eq!(sim.validate_token(&token).map_err(|e| e.code), Err(code));
        }
        sim.lock().faults.expire_tokens = true;
        assert_eq!(
            sim.validate_token(&good).map_err(|e| e.code),
            Err(codes::SIGNALING_TOKEN_EXPIRED)
        );
    }

    #[test]
    fn a_leg_shows_as_a_call_resource_with_its_times_and_duration() {
        let mut leg = CallLog {
            to: Some("+447700900123".into()),
            created_at: 1_795_586_882,
            ..CallLog::new("CA1".into(), Some("CA0".into()), "initiated")
        };
        let live = leg.resource("AC1");
        assert_eq!(live["status"], "initiated");
        assert_eq!(live["parent_call_sid"], "CA0");
        assert!(live["end_time"].is_null() && live["duration"].is_null());
        leg.set_status("in-progress");
        leg.answered_at = Some(1_795_586_890);
        leg.set_status("completed");
        leg.ended_at = Some(1_795_586_932);
        let ended = leg.resource("AC1");
        assert_eq!(ended["status"], "completed");
        assert_eq!(ended["duration"], "42");
        assert_eq!(
            shared::time::parse_rfc2822(ended["end_time"].as_str().unwrap_or_default()),
            Some(1_795_586_932)
        );
        // A leg never answered lasted 0 s; its end is kept from the first terminal status.
        let mut unanswered = leg.clone();
        unanswered.answered_at = None;
        assert_eq!(unanswered.resource("AC1")["duration"], "0");
        unanswered.set_status("failed");
        assert_eq!(unanswered.ended_at, Some(1_795_586_932));
        // A leg created at a final status ended then.
        let busy = CallLog::new("CA2".into(), Some("CA0".into()), "busy");
        assert_eq!(busy.ended_at, Some(busy.created_at));
        assert_eq!(busy.resource("AC1")["duration"], "0");
    }

    #[test]
    fn rfc2822_matches_the_parser() {
        let text = rfc2822(1_795_586_882);
        assert_eq!(text, "Wed, 25 Nov 2026 06:08:02 +0000");
        assert_eq!(shared::time::parse_rfc2822(&text), Some(1_795_586_882));
    }
}
