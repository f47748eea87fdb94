//! The browser's calling session as a sans-IO state machine: the signaling link (listen,
//! register, heartbeats, reconnect with backoff), the calling token (refreshed before expiry; a
//! 20104 mid-call is repaired without ending the call), and one call at a time (outgoing or a
//! patient calling back), driven by user actions, signaling frames, media events and the
//! worker's call ledger.
//!
//! The browser module feeds [`Input`]s with the current time and performs the [`Effect`]s it gets
//! back; nothing here touches a socket, a clock or the DOM, so every rule is tested natively.

use crate::call_refusal::CallRefusal;
use crate::json::Json;
use crate::signaling::{
    codes, ClientMessage, Frame, Invite, Listen, ServerMessage, TwilioParams, HEARTBEAT,
};
use crate::time::backoff_wait;

/// Milliseconds between the heartbeats the client sends while the link is open.
pub const HEARTBEAT_INTERVAL_MS: u64 = 5_000;
/// Milliseconds of silence from the server after which the link is treated as dropped.
pub const HEARTBEAT_TIMEOUT_MS: u64 = crate::signaling::HEARTBEAT_TIMEOUT_SECONDS as u64 * 1_000;
/// Reconnect delays, in order; the last repeats.
pub const RECONNECT_BACKOFF_MS: [u64; 7] = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000];
/// Failed link attempts after which the panel offers manual dialing while it keeps retrying (and
/// goes on offering it through later attempts, until one succeeds).
pub const ATTEMPTS_BEFORE_UNREACHABLE: u32 = 3;
/// Milliseconds the browser gives one request to the worker before it aborts it (so a token
/// fetch always ends, with an answer or a failure, within this).
pub const REQUEST_DEADLINE_MS: u64 = 20_000;
/// Beyond [`REQUEST_DEADLINE_MS`], how long a token retry's answer is awaited before another is
/// sent regardless (the abort's failure normally comes first).
const RETRY_BACKSTOP_MARGIN_MS: u64 = 5_000;
/// Milliseconds a signaling socket may take to open before the attempt counts as failed (a
/// browser's own limit for an unanswered connection can be minutes).
pub const SOCKET_OPEN_TIMEOUT_MS: u64 = 10_000;
/// Seconds Twilio keeps a call up after the signaling link drops, waiting for the client to
/// reconnect (`listen.reconnectTimeout`; 0 would end the call with the link). Twilio's maximum.
pub const SIGNALING_RECONNECT_SECONDS: u32 = 30;
/// ICE restarts tried for one call before it is given up as failed.
pub const MAX_ICE_RESTARTS: u32 = 3;
/// How often registration for call-backs is renewed on the open link (the official SDK's
/// `REGISTRATION_INTERVAL`, `device.ts`).
pub const REGISTER_INTERVAL_MS: u64 = 30_000;
/// Tokens Twilio may refuse in a row (each answered by fetching a fresh one) before the
/// session stops asking: a fresh token refused again and again means wrong Twilio credentials.
pub const FRESH_TOKENS_REJECTED_LIMIT: u32 = 2;
/// The [`TokenState::Refused`] code when Twilio, not the worker, keeps refusing the tokens.
pub const TWILIO_REJECTED_TOKEN: &str = "twilio-rejected-token";
/// After giving up on tokens Twilio kept refusing, the session tries again this much later (the
/// credentials may have been fixed meanwhile): a few requests per open page every 5 minutes.
pub const TWILIO_REFUSAL_RETRY_MS: u64 = 300_000;
/// A token the worker refused (no calling permission, a sign-in it does not accept) is asked for
/// again after these waits, the last one repeated: a host whose sign-in was only stale (a laptop
/// waking from sleep) gets calling back by itself, and a permission granted meanwhile needs no
/// reload. At most one request per open page every 5 minutes once it has settled.
pub const REFUSED_TOKEN_RETRY_MS: [u64; 4] = [15_000, 60_000, 120_000, 300_000];
/// How long a placed call may wait for Twilio's first word (`ringing`, `answer`, `hangup`)
/// once its offer is ready, including a wait for the signaling link to come back, before it is
/// given up as failed and the panel offers dialing by hand. Twilio answers an invite within
/// seconds; half a minute is only reached when the invite was lost.
pub const CONNECT_TIMEOUT_MS: u64 = 30_000;
/// A call-back still ringing this long after its invite has been given up by Twilio (the worker
/// rings a browser for 20 s, then routes the call on): its cancel was lost, so it ends as missed
/// rather than ring, and block calling, for good.
pub const INCOMING_RING_LIMIT_MS: u64 = 45_000;

/// The signaling link to Twilio (or the local simulator).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// Not started, or waiting for a token before connecting.
    Offline,
    Connecting,
    /// Open; `listen` sent, waiting for `connected`.
    Authenticating,
    /// `connected` received: calls can be placed and received.
    Ready,
    /// Closed; the next attempt is due at `at_ms`.
    Retrying {
        attempt: u32,
        at_ms: u64,
    },
}

/// The calling token's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenState {
    Missing,
    Fetching,
    Valid {
        expires_at_ms: u64,
        refresh_at_ms: u64,
    },
    /// Refused by the worker (e.g. no calling permission), or Twilio kept refusing its tokens;
    /// asked for again at `retry_at_ms` ([`REFUSED_TOKEN_RETRY_MS`], [`TWILIO_REFUSAL_RETRY_MS`]),
    /// `attempt` counting the refusals in a row.
    Refused {
        code: String,
        message: String,
        retry_at_ms: u64,
        attempt: u32,
    },
    /// The worker could not be reached or failed; retried at `retry_at_ms`.
    Unreachable {
        retry_at_ms: u64,
        attempt: u32,
    },
}

/// What the browser knows about the microphone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Microphone {
    Unknown,
    /// The browser will ask when the first call starts.
    Prompt,
    Granted,
    Denied,
    /// No audio input device.
    Absent,
    /// Another application holds it (getUserMedia's `NotReadableError`): the next call may
    /// find it free, so nothing is blocked.
    InUse,
}

/// Who placed the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Outgoing,
    /// A patient calling a pool number back, routed to this clinician.
    Incoming,
}

/// How a call ended, as the panel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Busy,
    NoAnswer,
    Failed {
        code: Option<u32>,
    },
    /// Ended before the patient answered, by the clinician.
    Canceled,
    /// The worker refused to dial (policy, limits, no free line…), by refusal code.
    Refused(String),
    /// The clinician declined an incoming call.
    Declined,
    /// An incoming call stopped ringing before it was answered.
    Missed,
    /// The call could not be started in this browser (microphone denied or missing).
    NotPlaced(Microphone),
    /// The phone service could not say how the call ended (the ledger's status `unknown`).
    Unknown,
}

impl Outcome {
    /// The machine-readable code shown in `data-outcome` and events.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Busy => "busy",
            Self::NoAnswer => "no-answer",
            Self::Failed { .. } => "failed",
            Self::Canceled => "canceled",
            Self::Refused(_) => "refused",
            Self::Declined => "declined",
            Self::Missed => "missed",
            Self::NotPlaced(_) => "not-placed",
            Self::Unknown => "unknown",
        }
    }

    /// Whether the panel should offer dialing by hand after this outcome.
    pub fn offers_manual_dial(&self) -> bool {
        matches!(
            self,
            Self::Busy
                | Self::NoAnswer
                | Self::Failed { .. }
                | Self::Refused(_)
                | Self::NotPlaced(_)
                | Self::Unknown
        )
    }

    /// Plain-language sentence for the panel.
    pub fn describe(&self) -> String {
        match self {
            Self::Completed => "Call ended.".into(),
            Self::Busy => "The patient's line is busy.".into(),
            Self::NoAnswer => "The patient did not answer.".into(),
            Self::Failed {
                code: Some(codes::TRANSPORT_ERROR),
            } => "The call could not be started: the connection to the phone service was lost."
                .into(),
            Self::Failed { code: Some(code) } => {
                format!("The call could not be connected (phone service code {code}).")
            }
            Self::Failed { code: None } => "The call could not be connected.".into(),
            Self::Canceled => "Call cancelled before the patient answered.".into(),
            Self::Refused(code) => CallRefusal::from_code(code)
                .map(|refusal| refusal.display().to_owned())
                .unwrap_or_else(|| "The call service refused this call.".into()),
            Self::Declined => "Incoming call declined.".into(),
            // Twilio's `cancel` does not say why: the patient hung up, another window or
            // device of this clinician answered, or the ring time ran out and the call went on
            // to the practice line.
            Self::Missed => "Missed call: it stopped ringing here before you answered.".into(),
            Self::NotPlaced(Microphone::Absent) => {
                "No microphone was found, so the browser cannot call.".into()
            }
            Self::NotPlaced(Microphone::InUse) => {
                "Another application is using the microphone, so the browser cannot call. Close it and call again.".into()
            }
            Self::NotPlaced(_) => {
                "The browser was not allowed to use the microphone, so it cannot call.".into()
            }
            Self::Unknown => {
                "The phone service could not say how this call ended; it is no longer live.".into()
            }
        }
    }
}

/// Where the current (or last) call is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    Idle,
    /// Call now pressed: microphone and offer being prepared.
    Preparing,
    /// `invite` sent; waiting for Twilio.
    Connecting,
    /// Ringing at the patient.
    Ringing,
    Connected {
        since_ms: u64,
    },
    /// A patient is calling back; waiting for accept or decline.
    Incoming,
    /// Accepted; the answer is being prepared.
    Answering,
    /// A call of this appointment is live but was not placed by this page (e.g. after a reload).
    Elsewhere {
        status: String,
    },
    Ended {
        outcome: Outcome,
        duration_seconds: u32,
    },
}

impl Phase {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Preparing | Self::Connecting | Self::Answering => "connecting",
            Self::Ringing => "ringing",
            Self::Connected { .. } => "connected",
            Self::Incoming => "incoming",
            Self::Elsewhere { .. } => "elsewhere",
            Self::Ended { .. } => "ended",
        }
    }

    /// A call is under way in this browser (media may be open).
    pub fn in_call(&self) -> bool {
        matches!(
            self,
            Self::Preparing
                | Self::Connecting
                | Self::Ringing
                | Self::Connected { .. }
                | Self::Answering
        )
    }
}

/// The call this session is handling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub direction: Direction,
    /// Our own id until Twilio's arrives (`TJS…`); for incoming calls, Twilio's.
    pub local_sid: String,
    /// Twilio's parent `CA…` once known.
    pub call_sid: Option<String>,
    pub appointment: Option<String>,
    pub muted: bool,
    /// The incoming call's caller, as the worker's routing passed it (shown, never logged).
    pub from: Option<String>,
    remote_offer: Option<String>,
    local_sdp: Option<String>,
    remote_applied: bool,
    reconnect: Option<String>,
    rtp_dtmf: bool,
    restarting: bool,
    /// A restart's `reinvite` awaits Twilio's answer (which must be applied even if the media
    /// recovered by itself meanwhile: the connection holds the restart's offer).
    reinvite_pending: bool,
    ice_restarts: u32,
    /// When our offer was ready (the start of [`CONNECT_TIMEOUT_MS`]), or, for a call-back,
    /// when its offer arrived (the start of [`INCOMING_RING_LIMIT_MS`]).
    offered_at_ms: Option<u64>,
    /// The ledger's view: status and refusal code, when a record for this call arrived.
    ledger_status: Option<String>,
    refused_code: Option<String>,
    ledger_terminal: bool,
    ledger_duration: u32,
    /// Digits sent so far (shown in the keypad).
    pub digits: String,
}

impl Call {
    fn new(direction: Direction, local_sid: String, appointment: Option<String>) -> Self {
        Self {
            direction,
            local_sid,
            call_sid: None,
            appointment,
            muted: false,
            from: None,
            remote_offer: None,
            local_sdp: None,
            remote_applied: false,
            reconnect: None,
            rtp_dtmf: false,
            restarting: false,
            reinvite_pending: false,
            ice_restarts: 0,
            offered_at_ms: None,
            ledger_status: None,
            refused_code: None,
            ledger_terminal: false,
            ledger_duration: 0,
            digits: String::new(),
        }
    }

    fn matches(&self, sid: &str) -> bool {
        self.local_sid == sid || self.call_sid.as_deref() == Some(sid)
    }

    /// The sid to name the call by in frames: Twilio's when known.
    fn sid(&self) -> &str {
        self.call_sid.as_deref().unwrap_or(&self.local_sid)
    }

    /// The latest status the worker's ledger reported for this call.
    pub fn ledger_status(&self) -> Option<&str> {
        self.ledger_status.as_deref()
    }
}

/// One call record from the worker's ledger (`GET …/call` or the event stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRecord {
    pub parent_call_sid: String,
    /// The id the placing page gave the call (`TJS…`), when it sent one: a call being placed
    /// adopts only the record that carries its own id.
    pub client_call_id: Option<String>,
    /// The appointment the call is for (`None` from a record without one): a call being placed
    /// only ever adopts a record of its own appointment.
    pub appointment: Option<String>,
    pub status: String,
    pub terminal: bool,
    pub refused_code: Option<String>,
    pub direction: String,
    pub duration_seconds: u32,
}

impl LedgerRecord {
    /// Reads the fields the session needs from a ledger record's JSON; `None` if it has none.
    pub fn from_json(record: &Json) -> Option<Self> {
        let text = |name: &str| record.get(name).and_then(Json::as_str).map(str::to_owned);
        Some(Self {
            parent_call_sid: text("parentCallSid")?,
            client_call_id: text("clientCallId"),
            appointment: text("appointmentId"),
            status: text("status")?,
            terminal: record.get("terminal").and_then(Json::as_bool)?,
            refused_code: text("refusedCode"),
            direction: text("direction").unwrap_or_default(),
            duration_seconds: record
                .get("durationSeconds")
                .and_then(Json::as_u64)
                .and_then(|d| u32::try_from(d).ok())
                .unwrap_or(0),
        })
    }
}

/// What happened, as the browser module reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Begin: fetch a token, then connect.
    Start,
    TokenIssued {
        token: String,
        ttl_seconds: u32,
    },
    /// The worker refused or could not issue a token; `retryable` for outages and 5xx.
    TokenRefused {
        code: String,
        message: String,
        retryable: bool,
    },
    SocketOpened,
    SocketClosed,
    /// A text frame from the signaling socket (heartbeats included).
    Received(String),
    /// What the Permissions API or the device list says, before any call.
    MicrophoneObserved(Microphone),
    /// getUserMedia succeeded.
    MicrophoneReady,
    /// getUserMedia failed: `Denied` or `Absent`.
    MicrophoneFailed(Microphone),
    /// The local offer, complete with ICE candidates.
    OfferReady {
        sdp: String,
    },
    /// The local answer to an incoming call's offer.
    AnswerReady {
        sdp: String,
    },
    /// ICE connected; whether the sender can insert RTP DTMF.
    MediaConnected {
        rtp_dtmf: bool,
    },
    /// ICE failed or disconnected for good, or the browser could not make its offer or answer
    /// or apply the far end's.
    MediaFailed,
    /// The browser's network changed (online event, connection type change).
    NetworkChanged,
    /// A call record from the ledger's event stream, or from `GET …/call` (a live call).
    Ledger(LedgerRecord),
    /// The newest record in the event stream's opening snapshot: a live call, or the end of
    /// the call from before a reload that the panel shows (older ended calls are history).
    LedgerSnapshot(LedgerRecord),
    /// The panel now shows this appointment: what the last one's call left behind (its outcome,
    /// a call placed before a reload) no longer applies. A call still live in this page stays.
    AppointmentOpened {
        appointment: String,
    },
    /// The clinician pressed Call now; `local_sid` is a fresh `TJS` + UUID from the module.
    Call {
        appointment: String,
        local_sid: String,
    },
    ToggleMute,
    Hangup,
    Digits(String),
    Accept,
    Decline,
    /// Time passed.
    Tick,
}

/// What the browser module must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    FetchToken,
    OpenSocket,
    CloseSocket,
    /// Send this text on the signaling socket.
    Send(String),
    AcquireMicrophone,
    CreateOffer {
        ice_restart: bool,
    },
    /// Set this remote offer (an incoming call) and create an answer.
    AnswerOffer {
        sdp: String,
    },
    /// Set this remote answer.
    ApplyAnswer {
        sdp: String,
    },
    SetMicrophoneEnabled(bool),
    /// Play DTMF on the RTP sender.
    InsertDtmf(String),
    /// Stop the microphone and close the peer connection.
    CloseMedia,
    /// Ask the worker to end this call through Twilio's REST API (signaling can't).
    EndOnServer {
        call_sid: String,
    },
    /// Watch the ledger of this appointment for the call's progress.
    WatchLedger {
        appointment: String,
    },
    /// Tell the host page a call is ringing in.
    IncomingCall,
    /// Tell the host page the call ended.
    CallEnded,
}

/// The whole session.
#[derive(Debug, Clone)]
pub struct Session {
    pub link: Link,
    pub token: TokenState,
    pub microphone: Microphone,
    pub phase: Phase,
    pub call: Option<Call>,
    pub identity: Option<String>,
    token_value: Option<String>,
    started: bool,
    last_sent_ms: u64,
    last_received_ms: u64,
    failed_link_attempts: u32,
    /// When the current socket was asked to open (meaningful while `Link::Connecting`).
    connecting_since_ms: u64,
    /// Calls the ledger has reported over (newest last, at most [`FINISHED_REMEMBERED`]): a
    /// record of one that is not over is older news (the appointment's load racing its event
    /// stream) and is ignored, as a call never comes back from its end.
    finished: Vec<String>,
    /// Tokens Twilio refused since the link was last accepted ([`FRESH_TOKENS_REJECTED_LIMIT`]).
    token_rejections: u32,
    /// Bumped by every token issued, so that a token refused again (a stale one presented on a
    /// reconnect, or a `register` after its `listen` was refused) is counted once.
    token_generation: u32,
    /// The generation of the token Twilio last refused.
    rejected_generation: Option<u32>,
    /// A refresh is out while the held token stays in use (its answer is awaited).
    refreshing: bool,
    /// When `register` was last sent (renewed every [`REGISTER_INTERVAL_MS`]).
    last_registered_ms: u64,
    browser_info: Json,
    now_ms: u64,
}

/// How many finished calls a session remembers for [`Session::finished`]'s check.
const FINISHED_REMEMBERED: usize = 16;

/// Why the panel can't place a call right now, in the order the clinician should fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Blocker {
    Starting,
    TokenRefused { message: String },
    ServiceUnreachable,
    SignalingConnecting,
    SignalingUnreachable,
    MicrophoneDenied,
    MicrophoneAbsent,
    InCall,
}

impl Blocker {
    pub fn code(&self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::TokenRefused { .. } => "token-refused",
            Self::ServiceUnreachable => "service-unreachable",
            Self::SignalingConnecting => "signaling-connecting",
            Self::SignalingUnreachable => "signaling-unreachable",
            Self::MicrophoneDenied => "microphone-denied",
            Self::MicrophoneAbsent => "microphone-absent",
            Self::InCall => "in-call",
        }
    }

    /// Whether this blocker means manual dialing is the way for now.
    pub fn needs_manual_dial(&self) -> bool {
        !matches!(
            self,
            Self::Starting | Self::SignalingConnecting | Self::InCall
        )
    }

    pub fn describe(&self) -> String {
        match self {
            Self::Starting => "Getting ready to call…".into(),
            Self::TokenRefused { message } => {
                format!("Browser calls are not available: {message}")
            }
            Self::ServiceUnreachable => {
                "The call service cannot be reached right now, so the browser cannot call.".into()
            }
            Self::SignalingConnecting => "Connecting to the phone network…".into(),
            Self::SignalingUnreachable => {
                "The phone network cannot be reached from this browser; still trying.".into()
            }
            Self::MicrophoneDenied => {
                "The browser is not allowed to use the microphone. Allow it in the site settings, or dial by hand.".into()
            }
            Self::MicrophoneAbsent => "No microphone is connected to this computer.".into(),
            Self::InCall => "A call is already under way.".into(),
        }
    }
}

fn backoff_ms(attempt: u32) -> u64 {
    backoff_wait(&RECONNECT_BACKOFF_MS, attempt)
}

/// When to refresh a token of `ttl_ms` issued at `now_ms`: at three quarters of its life, and
/// never later than one minute before expiry.
pub fn refresh_at(now_ms: u64, ttl_ms: u64) -> u64 {
    let three_quarters = ttl_ms / 4 * 3;
    let minute_before = ttl_ms.saturating_sub(60_000);
    now_ms + three_quarters.min(minute_before).max(ttl_ms / 2)
}

/// Only digits, `*` and `#` are sent as DTMF.
pub fn valid_digits(digits: &str) -> bool {
    !digits.is_empty()
        && digits.len() <= 32
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
}

impl Session {
    /// A new session; `browser_info` is sent with `listen` as the official SDK does.
    pub fn new(browser_info: Json) -> Self {
        Self {
            link: Link::Offline,
            token: TokenState::Missing,
            microphone: Microphone::Unknown,
            phase: Phase::Idle,
            call: None,
            identity: None,
            token_value: None,
            started: false,
            last_sent_ms: 0,
            last_received_ms: 0,
            failed_link_attempts: 0,
            connecting_since_ms: 0,
            finished: Vec::new(),
            token_rejections: 0,
            token_generation: 0,
            rejected_generation: None,
            refreshing: false,
            last_registered_ms: 0,
            browser_info,
            now_ms: 0,
        }
    }

    /// What stops a call from being placed now; `None` when Call now would work.
    pub fn blocker(&self) -> Option<Blocker> {
        self.call_under_way()
            .or(match self.microphone {
                Microphone::Denied => Some(Blocker::MicrophoneDenied),
                Microphone::Absent => Some(Blocker::MicrophoneAbsent),
                _ => None,
            })
            .or_else(|| self.service_blocker())
    }

    /// Whether Call now places a call. A blocked or missing microphone does not stop it: the
    /// browser is asked again, since the clinician may have allowed it or plugged one in.
    pub fn can_place(&self) -> bool {
        self.call_under_way().is_none() && self.service_blocker().is_none()
    }

    fn call_under_way(&self) -> Option<Blocker> {
        (self.phase.in_call() || matches!(self.phase, Phase::Incoming)).then_some(Blocker::InCall)
    }

    /// What keeps the token or the signaling link from being ready.
    fn service_blocker(&self) -> Option<Blocker> {
        match &self.token {
            TokenState::Refused { message, .. } => {
                return Some(Blocker::TokenRefused {
                    message: message.clone(),
                })
            }
            TokenState::Unreachable { .. } => return Some(Blocker::ServiceUnreachable),
            TokenState::Missing | TokenState::Fetching if !self.started => {
                return Some(Blocker::Starting)
            }
            TokenState::Missing | TokenState::Fetching if self.token_value.is_none() => {
                return Some(Blocker::Starting)
            }
            _ => {}
        }
        match self.link {
            Link::Ready => None,
            // Between attempts and during them alike: the way to dial by hand stays on screen
            // until the link works again.
            _ if self.failed_link_attempts >= ATTEMPTS_BEFORE_UNREACHABLE => {
                Some(Blocker::SignalingUnreachable)
            }
            _ => Some(Blocker::SignalingConnecting),
        }
    }

    /// Seconds the current call has been connected, or the last call lasted.
    pub fn duration_seconds(&self) -> u32 {
        match &self.phase {
            Phase::Connected { since_ms } => {
                u32::try_from(self.now_ms.saturating_sub(*since_ms) / 1_000).unwrap_or(u32::MAX)
            }
            Phase::Ended {
                duration_seconds, ..
            } => *duration_seconds,
            _ => 0,
        }
    }

    /// Handles one input at `now_ms` and returns what to do, in order.
    pub fn handle(&mut self, input: Input, now_ms: u64) -> Vec<Effect> {
        self.now_ms = now_ms;
        let mut out = Vec::new();
        match input {
            Input::Start => self.start(&mut out),
            Input::TokenIssued { token, ttl_seconds } => {
                self.refreshing = false;
                self.token_issued(token, ttl_seconds, &mut out)
            }
            // A refresh refused or failed, or a failure from an earlier fetch answered after a
            // later one issued a token: the held token stands.
            Input::TokenRefused { .. } if matches!(self.token, TokenState::Valid { .. }) => {
                self.refreshing = false;
            }
            Input::TokenRefused {
                code,
                message,
                retryable,
            } => {
                self.token = if retryable {
                    let attempt = match self.token {
                        TokenState::Unreachable { attempt, .. } => attempt + 1,
                        _ => 0,
                    };
                    TokenState::Unreachable {
                        retry_at_ms: now_ms + backoff_ms(attempt + 2),
                        attempt,
                    }
                } else {
                    let attempt = match self.token {
                        TokenState::Refused { attempt, .. } => attempt.saturating_add(1),
                        _ => 0,
                    };
                    TokenState::Refused {
                        code,
                        message,
                        retry_at_ms: now_ms + backoff_wait(&REFUSED_TOKEN_RETRY_MS, attempt),
                        attempt,
                    }
                };
            }
            Input::SocketOpened => {
                self.link = Link::Authenticating;
                self.last_received_ms = now_ms;
                self.send_listen(&mut out);
            }
            Input::SocketClosed => self.link_lost(&mut out),
            Input::Received(text) => self.received(&text, &mut out),
            Input::MicrophoneObserved(state) => {
                // A grant learnt from getUserMedia outranks a later, stale permission query.
                if self.microphone != Microphone::Granted || state == Microphone::Denied {
                    self.microphone = state;
                }
            }
            Input::MicrophoneReady => self.microphone_ready(&mut out),
            Input::MicrophoneFailed(state) => {
                self.microphone = state;
                if matches!(self.phase, Phase::Preparing | Phase::Answering) {
                    self.reject_incoming(&mut out);
                    self.end(Outcome::NotPlaced(state), &mut out);
                }
            }
            Input::OfferReady { sdp } => self.offer_ready(sdp, &mut out),
            Input::AnswerReady { sdp } => {
                if let (Phase::Answering, Some(call)) = (&self.phase, self.call.as_mut()) {
                    call.local_sdp = Some(sdp.clone());
                    out.push(Effect::Send(
                        ClientMessage::Answer {
                            callsid: call.local_sid.clone(),
                            sdp,
                        }
                        .encode(),
                    ));
                    self.phase = Phase::Connected { since_ms: now_ms };
                }
            }
            Input::MediaConnected { rtp_dtmf } => {
                if let Some(call) = self.call.as_mut() {
                    call.rtp_dtmf = rtp_dtmf;
                    call.restarting = false;
                }
            }
            // The browser could not make its offer or answer: nothing to restart, and the
            // call would otherwise wait for ever with the microphone open.
            Input::MediaFailed if matches!(self.phase, Phase::Preparing | Phase::Answering) => {
                self.reject_incoming(&mut out);
                self.end(Outcome::Failed { code: None }, &mut out);
            }
            Input::MediaFailed | Input::NetworkChanged => self.restart_ice(&mut out),
            Input::Ledger(record) => self.ledger(record, &mut out),
            Input::LedgerSnapshot(record) => {
                // A snapshot's ended records are history, except the one of the call on screen
                // (its end, missed while the stream was down and its hangup lost).
                let ours = self.call.as_ref().is_some_and(|call| {
                    call.call_sid.as_deref() == Some(record.parent_call_sid.as_str())
                        || record.client_call_id.as_deref() == Some(call.local_sid.as_str())
                });
                if !record.terminal || ours || matches!(self.phase, Phase::Elsewhere { .. }) {
                    self.ledger(record, &mut out);
                }
            }
            Input::AppointmentOpened { appointment } => {
                let left_behind =
                    matches!(self.phase, Phase::Ended { .. } | Phase::Elsewhere { .. })
                        && self.call.as_ref().and_then(|c| c.appointment.as_deref())
                            != Some(appointment.as_str());
                if left_behind {
                    self.phase = Phase::Idle;
                    self.call = None;
                }
            }
            Input::Call {
                appointment,
                local_sid,
            } => self.place(appointment, local_sid, &mut out),
            Input::ToggleMute => {
                if self.phase.in_call() {
                    if let Some(call) = self.call.as_mut() {
                        call.muted = !call.muted;
                        out.push(Effect::SetMicrophoneEnabled(!call.muted));
                    }
                }
            }
            Input::Hangup => self.hang_up(&mut out),
            Input::Digits(digits) => self.digits(digits, &mut out),
            Input::Accept => {
                if self.phase == Phase::Incoming {
                    self.phase = Phase::Answering;
                    out.push(Effect::AcquireMicrophone);
                }
            }
            Input::Decline => {
                if let (Phase::Incoming, Some(call)) = (&self.phase, &self.call) {
                    out.push(Effect::Send(
                        ClientMessage::Reject {
                            callsid: call.local_sid.clone(),
                        }
                        .encode(),
                    ));
                    self.end(Outcome::Declined, &mut out);
                }
            }
            Input::Tick => self.tick(&mut out),
        }
        out
    }

    fn start(&mut self, out: &mut Vec<Effect>) {
        if self.started {
            return;
        }
        self.started = true;
        self.fetch_token(out);
    }

    /// Asks the worker for a token (the fetch in flight until it is issued or refused).
    fn fetch_token(&mut self, out: &mut Vec<Effect>) {
        self.token = TokenState::Fetching;
        out.push(Effect::FetchToken);
    }

    fn token_issued(&mut self, token: String, ttl_seconds: u32, out: &mut Vec<Effect>) {
        let ttl_ms = u64::from(ttl_seconds) * 1_000;
        self.token_generation = self.token_generation.wrapping_add(1);
        self.token = TokenState::Valid {
            expires_at_ms: self.now_ms + ttl_ms,
            refresh_at_ms: refresh_at(self.now_ms, ttl_ms),
        };
        self.token_value = Some(token);
        match self.link {
            Link::Offline => self.open_socket(out),
            // A refreshed token is presented on the open link, as the official SDK does.
            Link::Authenticating | Link::Ready => self.send_listen(out),
            Link::Connecting | Link::Retrying { .. } => {}
        }
    }

    /// Twilio refused the token: a new one is fetched (the call, if any, carries on over its
    /// media). A fresh token refused again means the service's Twilio credentials are wrong, and
    /// fetching more would only hammer it: the clinician is told to dial by hand instead.
    fn token_rejected(&mut self, code: u32, out: &mut Vec<Effect>) {
        // This token was refused already: its replacement is being fetched (or given up on).
        if self.rejected_generation == Some(self.token_generation) {
            return;
        }
        self.rejected_generation = Some(self.token_generation);
        self.token_rejections = self.token_rejections.saturating_add(1);
        if self.token_rejections > FRESH_TOKENS_REJECTED_LIMIT {
            self.token = TokenState::Refused {
                code: TWILIO_REJECTED_TOKEN.to_owned(),
                message: format!(
                    "Twilio refused this service's calling token ({code}), so its Twilio \
                     settings need fixing: tell your administrator."
                ),
                retry_at_ms: self.now_ms + TWILIO_REFUSAL_RETRY_MS,
                attempt: 0,
            };
        } else if self.refreshing {
            // The held token is dead, and its successor is already being fetched: one request
            // at a time.
            self.token = TokenState::Fetching;
        } else if self.token != TokenState::Fetching {
            self.fetch_token(out);
        }
    }

    fn send(&mut self, message: ClientMessage, out: &mut Vec<Effect>) {
        self.last_sent_ms = self.now_ms;
        out.push(Effect::Send(message.encode()));
    }

    /// Registers this client for call-backs (renewed while the link is open, as the SDK does).
    fn register(&mut self, out: &mut Vec<Effect>) {
        self.last_registered_ms = self.now_ms;
        self.send(
            ClientMessage::Register {
                media: Json::object([("audio", true.into())]),
            },
            out,
        );
    }

    fn send_listen(&mut self, out: &mut Vec<Effect>) {
        if let Some(token) = self.token_value.clone() {
            self.send(
                ClientMessage::Listen(Listen {
                    token,
                    browserinfo: Some(self.browser_info.clone()),
                    reconnect_timeout: Some(SIGNALING_RECONNECT_SECONDS),
                }),
                out,
            );
        }
    }

    fn open_socket(&mut self, out: &mut Vec<Effect>) {
        self.link = Link::Connecting;
        self.connecting_since_ms = self.now_ms;
        out.push(Effect::OpenSocket);
    }

    fn link_lost(&mut self, out: &mut Vec<Effect>) {
        if matches!(self.link, Link::Retrying { .. }) {
            return;
        }
        let attempt = self.failed_link_attempts;
        self.failed_link_attempts += 1;
        self.link = Link::Retrying {
            attempt,
            at_ms: self.now_ms + backoff_ms(attempt),
        };
        let _ = out;
    }

    fn received(&mut self, text: &str, out: &mut Vec<Effect>) {
        self.last_received_ms = self.now_ms;
        let message = match ServerMessage::decode(text) {
            Ok(Frame::Heartbeat) => return,
            Ok(Frame::Message(message)) => message,
            // Unknown or malformed frames are ignored, as the official SDK does.
            Err(_) => return,
        };
        match message {
            ServerMessage::Connected { token, .. } => {
                let first = self.link != Link::Ready;
                self.link = Link::Ready;
                self.failed_link_attempts = 0;
                self.token_rejections = 0;
                if let Some(info) = token {
                    self.identity = Some(info.identity);
                }
                if first {
                    self.register(out);
                    self.resume_call(out);
                    self.send_invite(out);
                }
            }
            ServerMessage::Ready | ServerMessage::Ack { .. } => {}
            ServerMessage::Offline | ServerMessage::Close => {
                out.push(Effect::CloseSocket);
                self.link_lost(out);
            }
            ServerMessage::Error { error, callsid } => match error.code {
                code if codes::is_token_rejection(code) => self.token_rejected(code, out),
                code => {
                    if let Some(sid) = callsid {
                        if self.call.as_ref().is_some_and(|c| c.matches(&sid)) {
                            self.end(Outcome::Failed { code: Some(code) }, out);
                        }
                    }
                }
            },
            ServerMessage::Ringing { callsid, sdp } => {
                if let Some(call) = self.outgoing_call_for(&callsid) {
                    call.call_sid = Some(callsid.clone());
                    let apply = match sdp {
                        Some(sdp) if !call.remote_applied => {
                            call.remote_applied = true;
                            Some(sdp)
                        }
                        _ => None,
                    };
                    let appointment = call.appointment.clone();
                    if let Some(sdp) = apply {
                        out.push(Effect::ApplyAnswer { sdp });
                    }
                    if self.phase == Phase::Connecting {
                        self.phase = Phase::Ringing;
                        if let Some(appointment) = appointment {
                            out.push(Effect::WatchLedger { appointment });
                        }
                    }
                }
            }
            ServerMessage::Answer {
                callsid,
                sdp,
                reconnect,
            } => self.answered(callsid, sdp, reconnect, out),
            ServerMessage::Hangup { callsid, error } => {
                let ours = match (&callsid, &self.call) {
                    (_, None) => false,
                    (None, Some(_)) => true,
                    (Some(sid), Some(call)) => {
                        call.matches(sid)
                            || (call.direction == Direction::Outgoing && call.call_sid.is_none())
                    }
                };
                if ours && (self.phase.in_call() || self.phase == Phase::Incoming) {
                    if let (Some(sid), Some(call)) = (callsid, self.call.as_mut()) {
                        call.call_sid.get_or_insert(sid);
                    }
                    let outcome = self.outcome_after_hangup(error.map(|e| e.code));
                    self.end(outcome, out);
                }
            }
            ServerMessage::Cancel { callsid } => {
                // Also while answering (Accept pressed, the microphone still opening): the
                // caller is gone, and an answer sent now would open a call with nobody on it.
                if matches!(self.phase, Phase::Incoming | Phase::Answering)
                    && self.call.as_ref().is_some_and(|c| c.matches(&callsid))
                {
                    self.end(Outcome::Missed, out);
                }
            }
            ServerMessage::Invite {
                callsid,
                sdp,
                parameters,
                reconnect,
            } => {
                if self.phase.in_call() || self.phase == Phase::Incoming {
                    // One call at a time: a second caller hears busy and is routed onwards.
                    self.send(ClientMessage::Reject { callsid }, out);
                    return;
                }
                // The worker's `<Parameter>`s arrive as one query string in `Params`.
                let appointment = parameters
                    .as_ref()
                    .and_then(|p| p.get("Params"))
                    .and_then(Json::as_str)
                    .and_then(appointment_parameter);
                let mut call = Call::new(Direction::Incoming, callsid.clone(), appointment);
                call.call_sid = Some(callsid);
                call.from = parameters
                    .as_ref()
                    .and_then(|p| p.get("From"))
                    .and_then(Json::as_str)
                    .map(str::to_owned);
                call.remote_offer = Some(sdp);
                call.reconnect = reconnect;
                call.offered_at_ms = Some(self.now_ms);
                self.call = Some(call);
                self.phase = Phase::Incoming;
                out.push(Effect::IncomingCall);
            }
        }
    }

    /// The outgoing call a frame naming `sid` belongs to (before Twilio's sid is known, the
    /// first one it names).
    fn outgoing_call_for(&mut self, sid: &str) -> Option<&mut Call> {
        if !matches!(
            self.phase,
            Phase::Connecting | Phase::Ringing | Phase::Connected { .. }
        ) {
            return None;
        }
        self.call.as_mut().filter(|call| {
            call.direction == Direction::Outgoing && (call.matches(sid) || call.call_sid.is_none())
        })
    }

    fn answered(
        &mut self,
        callsid: String,
        sdp: Option<String>,
        reconnect: Option<String>,
        out: &mut Vec<Effect>,
    ) {
        let now = self.now_ms;
        // A call-back the clinician answered hears `answer` too: Twilio's confirmation (with a
        // reconnect token), and the reply to an ICE restart's `reinvite`.
        let answered_here = matches!(self.phase, Phase::Connected { .. })
            && self
                .call
                .as_ref()
                .is_some_and(|c| c.direction == Direction::Incoming && c.matches(&callsid));
        let call = if answered_here {
            self.call.as_mut()
        } else {
            self.outgoing_call_for(&callsid)
        };
        let Some(call) = call else {
            return;
        };
        call.call_sid = Some(callsid);
        if reconnect.is_some() {
            call.reconnect = reconnect;
        }
        // An incoming call's remote description is the caller's offer: only a restart's answer
        // is applied to it.
        let awaits_answer = call.restarting
            || call.reinvite_pending
            || (call.direction == Direction::Outgoing && !call.remote_applied);
        let apply = match sdp {
            Some(sdp) if awaits_answer => {
                call.remote_applied = true;
                call.restarting = false;
                call.reinvite_pending = false;
                Some(sdp)
            }
            _ => None,
        };
        let appointment = call.appointment.clone();
        if let Some(sdp) = apply {
            out.push(Effect::ApplyAnswer { sdp });
        }
        if matches!(self.phase, Phase::Connecting | Phase::Ringing) {
            if self.phase == Phase::Connecting {
                if let Some(appointment) = appointment {
                    out.push(Effect::WatchLedger { appointment });
                }
            }
            self.phase = Phase::Connected { since_ms: now };
        }
    }

    /// After a signaling reconnect mid-call, re-attach the call with its reconnect token.
    fn resume_call(&mut self, out: &mut Vec<Effect>) {
        if !matches!(self.phase, Phase::Ringing | Phase::Connected { .. }) {
            return;
        }
        let Some(call) = self.call.as_ref() else {
            return;
        };
        if let (Some(reconnect), Some(sdp), Some(sid)) = (
            call.reconnect.clone(),
            call.local_sdp.clone(),
            call.call_sid.clone(),
        ) {
            self.send(
                ClientMessage::Invite(Invite {
                    callsid: sid,
                    sdp,
                    twilio: TwilioParams::default(),
                    reconnect: Some(reconnect),
                }),
                out,
            );
        }
    }

    fn outcome_after_hangup(&self, error: Option<u32>) -> Outcome {
        let Some(call) = &self.call else {
            return Outcome::Completed;
        };
        if let Some(outcome) = ledger_outcome(call) {
            return outcome;
        }
        if let Some(code) = error {
            return Outcome::Failed { code: Some(code) };
        }
        match self.phase {
            Phase::Connected { .. } => Outcome::Completed,
            Phase::Incoming => Outcome::Missed,
            // Hung up before answering, with no reason yet: the ledger refines it when it comes.
            _ => Outcome::Failed { code: None },
        }
    }

    fn end(&mut self, outcome: Outcome, out: &mut Vec<Effect>) {
        let duration_seconds = match self.phase {
            Phase::Connected { .. } => self.duration_seconds(),
            _ => 0,
        };
        let had_media = self.phase.in_call();
        self.phase = Phase::Ended {
            outcome,
            duration_seconds,
        };
        if had_media {
            out.push(Effect::CloseMedia);
        }
        out.push(Effect::CallEnded);
    }

    /// A call-back being answered that this browser cannot take after all: Twilio is told, so
    /// that the call goes on (to the practice line) instead of waiting for an answer.
    fn reject_incoming(&self, out: &mut Vec<Effect>) {
        if let (Phase::Answering, Some(call)) = (&self.phase, &self.call) {
            out.push(Effect::Send(
                ClientMessage::Reject {
                    callsid: call.local_sid.clone(),
                }
                .encode(),
            ));
        }
    }

    /// The microphone is open. A mute pressed while it was opening applies to it before any
    /// audio leaves; a microphone that opens after its call ended (cancelled during the
    /// browser's prompt) is closed at once, so it does not stay live.
    fn microphone_ready(&mut self, out: &mut Vec<Effect>) {
        self.microphone = Microphone::Granted;
        let Some(call) = self
            .call
            .as_ref()
            .filter(|_| matches!(self.phase, Phase::Preparing | Phase::Answering))
        else {
            out.push(Effect::CloseMedia);
            return;
        };
        if call.muted {
            out.push(Effect::SetMicrophoneEnabled(false));
        }
        match (&self.phase, &call.remote_offer) {
            (Phase::Preparing, _) => out.push(Effect::CreateOffer { ice_restart: false }),
            (Phase::Answering, Some(sdp)) => out.push(Effect::AnswerOffer { sdp: sdp.clone() }),
            _ => {}
        }
    }

    fn offer_ready(&mut self, sdp: String, out: &mut Vec<Effect>) {
        let phase = self.phase.clone();
        let now = self.now_ms;
        let Some(call) = self.call.as_mut() else {
            return;
        };
        call.local_sdp = Some(sdp.clone());
        if phase == Phase::Preparing {
            call.offered_at_ms = Some(now);
            self.send_invite(out);
        } else if call.restarting && phase.in_call() {
            if let Some(callsid) = call.call_sid.clone() {
                call.reinvite_pending = true;
                self.send(ClientMessage::Reinvite { callsid, sdp }, out);
            }
        }
    }

    /// Sends the placed call's invite once its offer is ready and the link is up; until then
    /// the call waits in `Preparing` (a link that dropped during the microphone prompt).
    fn send_invite(&mut self, out: &mut Vec<Effect>) {
        if self.phase != Phase::Preparing || self.link != Link::Ready {
            return;
        }
        let Some(call) = self.call.as_ref() else {
            return;
        };
        let Some(sdp) = call.local_sdp.clone() else {
            return;
        };
        // The appointment, for the worker; our own id for the call, which the worker keeps on
        // the call's record so that this page knows that record as this call's.
        let params = call.appointment.as_deref().map(|id| {
            crate::form::encode([("AppointmentId", id), ("ClientCallId", &call.local_sid)])
        });
        let message = ClientMessage::Invite(Invite {
            callsid: call.local_sid.clone(),
            sdp,
            twilio: TwilioParams { params },
            reconnect: None,
        });
        self.phase = Phase::Connecting;
        self.send(message, out);
    }

    /// A placed call that has heard nothing from Twilio within [`CONNECT_TIMEOUT_MS`] of its
    /// offer is cancelled (on the link if it is up, through the worker if the ledger has named
    /// the call) and ends as failed, so the panel offers dialing by hand.
    fn give_up_unanswered_invite(&mut self, out: &mut Vec<Effect>) {
        if !matches!(self.phase, Phase::Preparing | Phase::Connecting) {
            return;
        }
        let Some(call) = self.call.as_ref() else {
            return;
        };
        let waited = call
            .offered_at_ms
            .is_some_and(|at| self.now_ms.saturating_sub(at) >= CONNECT_TIMEOUT_MS);
        if !waited {
            return;
        }
        let (sid, server_sid) = (call.sid().to_owned(), call.call_sid.clone());
        if self.phase == Phase::Connecting && self.link == Link::Ready {
            self.send(
                ClientMessage::Hangup {
                    callsid: sid,
                    message: None,
                },
                out,
            );
        }
        if let Some(call_sid) = server_sid {
            out.push(Effect::EndOnServer { call_sid });
        }
        self.end(
            Outcome::Failed {
                code: Some(codes::TRANSPORT_ERROR),
            },
            out,
        );
    }

    fn restart_ice(&mut self, out: &mut Vec<Effect>) {
        if !matches!(self.phase, Phase::Ringing | Phase::Connected { .. }) {
            return;
        }
        let Some(call) = self.call.as_mut() else {
            return;
        };
        if call.restarting {
            return;
        }
        if call.ice_restarts >= MAX_ICE_RESTARTS {
            let hangup = ClientMessage::Hangup {
                callsid: call.sid().to_owned(),
                message: None,
            };
            self.send(hangup, out);
            self.end(
                Outcome::Failed {
                    code: Some(codes::ICE_FAILED),
                },
                out,
            );
            return;
        }
        call.ice_restarts += 1;
        call.restarting = true;
        out.push(Effect::CreateOffer { ice_restart: true });
    }

    fn ledger(&mut self, record: LedgerRecord, out: &mut Vec<Effect>) {
        if record.direction != "outbound-browser" && record.direction != "inbound" {
            return;
        }
        if self.finished.contains(&record.parent_call_sid) {
            if !record.terminal {
                return;
            }
        } else if record.terminal {
            if self.finished.len() == FINISHED_REMEMBERED {
                self.finished.remove(0);
            }
            self.finished.push(record.parent_call_sid.clone());
        }
        let phase = self.phase.clone();
        match (&phase, self.call.as_mut()) {
            // A call this page did not place (e.g. before a reload): show it and let it be ended.
            (Phase::Idle, None) | (Phase::Elsewhere { .. }, None) => {
                self.phase = if record.terminal {
                    Phase::Idle
                } else {
                    Phase::Elsewhere {
                        status: record.status.clone(),
                    }
                };
                if !record.terminal {
                    let mut call =
                        Call::new(Direction::Outgoing, record.parent_call_sid.clone(), None);
                    call.call_sid = Some(record.parent_call_sid);
                    self.call = Some(call);
                }
            }
            (_, Some(call)) => {
                // The record of the call this page placed: the one carrying its id. (A record
                // without one, from a worker before client ids, is taken by its appointment.)
                let placed_here = match (&record.client_call_id, &record.appointment) {
                    (Some(id), _) => *id == call.local_sid,
                    (None, Some(recorded)) => call.appointment.as_ref() == Some(recorded),
                    (None, None) => true,
                };
                let adopt = call.call_sid.is_none()
                    && call.direction == Direction::Outgoing
                    && placed_here
                    && matches!(phase, Phase::Connecting | Phase::Ended { .. });
                if !(call.matches(&record.parent_call_sid) || adopt) {
                    return;
                }
                // Ended here before Twilio said a word (End pressed while connecting, or no
                // answer in time), yet the worker has it placed: it ends it, so no line stays
                // held and no other window shows it live.
                if adopt && matches!(phase, Phase::Ended { .. }) && !record.terminal {
                    out.push(Effect::EndOnServer {
                        call_sid: record.parent_call_sid.clone(),
                    });
                }
                call.call_sid = Some(record.parent_call_sid.clone());
                call.ledger_status = Some(record.status.clone());
                call.refused_code = record.refused_code.clone();
                call.ledger_terminal = record.terminal;
                call.ledger_duration = record.duration_seconds;
                match &phase {
                    Phase::Elsewhere { .. } => {
                        if record.terminal {
                            let outcome = ledger_outcome(call).unwrap_or(Outcome::Completed);
                            let duration_seconds = record.duration_seconds;
                            self.phase = Phase::Ended {
                                outcome,
                                duration_seconds,
                            };
                            out.push(Effect::CallEnded);
                        } else {
                            self.phase = Phase::Elsewhere {
                                status: record.status,
                            };
                        }
                    }
                    // The ledger says the call is over although no hangup frame came (lost
                    // with the signaling link): end it in the UI anyway.
                    p if p.in_call() && record.terminal => {
                        let outcome = ledger_outcome(call).unwrap_or(Outcome::Completed);
                        let hangup = ClientMessage::Hangup {
                            callsid: call.sid().to_owned(),
                            message: None,
                        };
                        if self.link == Link::Ready {
                            self.send(hangup, out);
                        }
                        self.end(outcome, out);
                    }
                    // Refine an outcome decided before the ledger had spoken.
                    Phase::Ended {
                        outcome,
                        duration_seconds,
                    } => {
                        if let Some(better) = ledger_outcome(call) {
                            if *outcome != better
                                && matches!(
                                    outcome,
                                    Outcome::Failed { code: None } | Outcome::Completed
                                )
                            {
                                self.phase = Phase::Ended {
                                    outcome: better,
                                    duration_seconds: (*duration_seconds)
                                        .max(record.duration_seconds),
                                };
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }

    fn place(&mut self, appointment: String, local_sid: String, out: &mut Vec<Effect>) {
        if !self.can_place() {
            return;
        }
        self.call = Some(Call::new(Direction::Outgoing, local_sid, Some(appointment)));
        self.phase = Phase::Preparing;
        out.push(Effect::AcquireMicrophone);
    }

    fn hang_up(&mut self, out: &mut Vec<Effect>) {
        let phase = self.phase.clone();
        let Some(call) = self.call.clone() else {
            return;
        };
        match phase {
            Phase::Elsewhere { .. } => {
                if let Some(call_sid) = call.call_sid {
                    out.push(Effect::EndOnServer { call_sid });
                }
            }
            Phase::Incoming => {
                self.send(
                    ClientMessage::Reject {
                        callsid: call.local_sid,
                    },
                    out,
                );
                self.end(Outcome::Declined, out);
            }
            p if p.in_call() => {
                let outcome = match p {
                    Phase::Connected { .. } => Outcome::Completed,
                    _ => Outcome::Canceled,
                };
                if p != Phase::Preparing {
                    let on_link = self.link == Link::Ready;
                    if on_link {
                        self.send(
                            ClientMessage::Hangup {
                                callsid: call.sid().to_owned(),
                                message: None,
                            },
                            out,
                        );
                    }
                    // Before Twilio's first word the worker may hold the call as placed with
                    // nothing dialled: no callback would ever tell it the call ended, so it is
                    // told. (Once a call is recorded and not yet ringing; a call not yet recorded
                    // is ended when its record comes, in `ledger`.)
                    let tell_worker = !on_link || p == Phase::Connecting;
                    if let Some(call_sid) = call.call_sid.filter(|_| tell_worker) {
                        out.push(Effect::EndOnServer { call_sid });
                    }
                }
                self.end(outcome, out);
            }
            _ => {}
        }
    }

    fn digits(&mut self, digits: String, out: &mut Vec<Effect>) {
        if !matches!(self.phase, Phase::Connected { .. }) || !valid_digits(&digits) {
            return;
        }
        let Some(call) = self.call.as_mut() else {
            return;
        };
        call.digits.push_str(&digits);
        if call.rtp_dtmf {
            out.push(Effect::InsertDtmf(digits));
        } else {
            let message = ClientMessage::Dtmf {
                callsid: call.sid().to_owned(),
                dtmf: digits,
            };
            self.send(message, out);
        }
    }

    fn tick(&mut self, out: &mut Vec<Effect>) {
        let now = self.now_ms;
        self.give_up_unanswered_invite(out);
        let rang_out = self.phase == Phase::Incoming
            && self
                .call
                .as_ref()
                .and_then(|c| c.offered_at_ms)
                .is_some_and(|at| now.saturating_sub(at) >= INCOMING_RING_LIMIT_MS);
        if rang_out {
            self.end(Outcome::Missed, out);
        }
        // Should a retry's answer never come, the next is due after the request's deadline.
        let backstop = now + REQUEST_DEADLINE_MS + RETRY_BACKSTOP_MARGIN_MS;
        match self.token {
            TokenState::Valid {
                refresh_at_ms,
                expires_at_ms,
            } if now >= refresh_at_ms => {
                if backstop < expires_at_ms {
                    // The held token still works: calls go on with it while its successor is
                    // fetched, and a refresh refused or failed (ignored while a token is valid)
                    // is tried again at the backstop, not turned into a blocked panel.
                    self.token = TokenState::Valid {
                        expires_at_ms,
                        refresh_at_ms: backstop,
                    };
                    self.refreshing = true;
                    out.push(Effect::FetchToken);
                } else {
                    self.fetch_token(out);
                }
            }
            // Asked for again while the refusal stays on screen; a refusal in answer counts the
            // attempt on.
            TokenState::Refused {
                ref code,
                ref mut retry_at_ms,
                ..
            } if now >= *retry_at_ms => {
                *retry_at_ms = backstop;
                if code == TWILIO_REJECTED_TOKEN {
                    self.token_rejections = 0;
                }
                out.push(Effect::FetchToken);
            }
            // One retry at a time: the next is due only once this one has failed.
            TokenState::Unreachable {
                retry_at_ms,
                attempt,
            } if now >= retry_at_ms => {
                self.token = TokenState::Unreachable {
                    retry_at_ms: backstop,
                    attempt,
                };
                out.push(Effect::FetchToken);
            }
            _ => {}
        }
        match self.link {
            Link::Retrying { at_ms, .. } if now >= at_ms && self.token_value.is_some() => {
                self.open_socket(out);
            }
            Link::Connecting
                if now.saturating_sub(self.connecting_since_ms) >= SOCKET_OPEN_TIMEOUT_MS =>
            {
                out.push(Effect::CloseSocket);
                self.link_lost(out);
            }
            Link::Authenticating | Link::Ready => {
                if now.saturating_sub(self.last_received_ms) >= HEARTBEAT_TIMEOUT_MS {
                    out.push(Effect::CloseSocket);
                    self.link_lost(out);
                } else if self.link == Link::Ready
                    && matches!(self.token, TokenState::Valid { .. })
                    && now.saturating_sub(self.last_registered_ms) >= REGISTER_INTERVAL_MS
                {
                    self.register(out);
                } else if now.saturating_sub(self.last_sent_ms) >= HEARTBEAT_INTERVAL_MS {
                    self.last_sent_ms = now;
                    out.push(Effect::Send(HEARTBEAT.to_owned()));
                }
            }
            _ => {}
        }
    }
}

/// The outcome the ledger's record gives, when it has a terminal one.
fn ledger_outcome(call: &Call) -> Option<Outcome> {
    if let Some(code) = &call.refused_code {
        return Some(Outcome::Refused(code.clone()));
    }
    if !call.ledger_terminal {
        return None;
    }
    match call.ledger_status.as_deref()? {
        "completed" => Some(Outcome::Completed),
        "busy" => Some(Outcome::Busy),
        "no-answer" => Some(Outcome::NoAnswer),
        "failed" => Some(Outcome::Failed { code: None }),
        "canceled" => Some(Outcome::Canceled),
        "unknown" => Some(Outcome::Unknown),
        _ => None,
    }
}

/// The `AppointmentId` in an incoming call's custom parameters (`Params`, a query string). A
/// FHIR id (`[A-Za-z0-9\-.]{1,64}`) needs no percent-encoding, so the value is taken as it is
/// and anything else is refused rather than decoded.
fn appointment_parameter(query: &str) -> Option<String> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix("AppointmentId="))
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        })
        .map(str::to_owned)
}

#[cfg(test)]
mod tests;
