//! Twilio Voice client signaling (the protocol twilio-voice.js 2.x speaks, version 1.6): every
//! frame as a typed message, and the codec. The browser module and the local Twilio simulator
//! both use these types, so the two sides share one definition.
//!
//! A frame is `{"type": …, "version": "1.6", "payload": {…}}`; a bare `"\n"` is a heartbeat,
//! echoed by the other side.

use thiserror::Error;

use crate::json::Json;

/// The protocol version every frame carries.
pub const PROTOCOL_VERSION: &str = "1.6";

/// The heartbeat frame.
pub const HEARTBEAT: &str = "\n";

/// Seconds without any frame after which a client reconnects.
pub const HEARTBEAT_TIMEOUT_SECONDS: u32 = 15;

/// `listen`: the client authenticates with its access token (left out of its `Debug`).
#[derive(Clone, PartialEq)]
pub struct Listen {
    pub token: String,
    pub browserinfo: Option<Json>,
    /// `reconnectTimeout` on the wire.
    pub reconnect_timeout: Option<u32>,
}

/// `invite`'s Twilio parameters: `params` is URL-encoded (`AppointmentId=…`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TwilioParams {
    pub params: Option<String>,
}

/// `invite` from the client: place a call with a complete SDP offer. Its `Debug` leaves the
/// reconnect token out.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    /// The client's own id for the call until Twilio's `CA…` arrives: `TJS` + a UUID.
    pub callsid: String,
    pub sdp: String,
    pub twilio: TwilioParams,
    /// A reconnect token from an earlier `answer`, to resume a call.
    pub reconnect: Option<String>,
}

impl std::fmt::Debug for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listen")
            .field("browserinfo", &self.browserinfo)
            .field("reconnect_timeout", &self.reconnect_timeout)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invite")
            .field("callsid", &self.callsid)
            .field("sdp", &self.sdp)
            .field("twilio", &self.twilio)
            .field("reconnect", &self.reconnect.as_ref().map(|_| "[token]"))
            .finish()
    }
}

/// An error code and message, as Twilio sends them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignalingError {
    pub code: u32,
    pub message: String,
}

/// What `connected` says about the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    pub identity: String,
    /// Seconds the token has left.
    pub ttl: i64,
}

/// Frames the client sends.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    Listen(Listen),
    Register {
        media: Json,
    },
    Invite(Invite),
    Reinvite {
        callsid: String,
        sdp: String,
    },
    Answer {
        callsid: String,
        sdp: String,
    },
    Hangup {
        callsid: String,
        message: Option<String>,
    },
    Reject {
        callsid: String,
    },
    Dtmf {
        callsid: String,
        dtmf: String,
    },
    /// A user-defined message sent during a call; the server acknowledges it.
    Message {
        callsid: String,
        content: Json,
        contenttype: Option<String>,
        messagetype: Option<String>,
        voiceeventsid: Option<String>,
    },
}

/// Frames the server sends. Its `Debug` leaves out the reconnect token of an `answer` and the
/// values of an incoming `invite`'s parameters (`From` is the patient's number).
#[derive(Clone, PartialEq)]
pub enum ServerMessage {
    Connected {
        token: Option<TokenInfo>,
        region: Option<String>,
        edge: Option<String>,
    },
    Ready,
    Offline,
    Close,
    Error {
        error: SignalingError,
        callsid: Option<String>,
    },
    /// Ringing at the far end; `sdp` carries early media (answerOnBridge).
    Ringing {
        callsid: String,
        sdp: Option<String>,
    },
    /// `callsid` is Twilio's `CA…` for the call.
    Answer {
        callsid: String,
        sdp: Option<String>,
        reconnect: Option<String>,
    },
    Hangup {
        callsid: Option<String>,
        error: Option<SignalingError>,
    },
    Cancel {
        callsid: String,
    },
    /// An incoming call for this client.
    Invite {
        callsid: String,
        sdp: String,
        parameters: Option<Json>,
        /// A token to resume the call after a signaling drop, when Twilio gives one with the
        /// offer (the official SDK keeps it: `device.ts` `_onSignalingInvite`).
        reconnect: Option<String>,
    },
    Ack {
        callsid: String,
        acktype: Option<String>,
        voiceeventsid: Option<String>,
    },
}

impl std::fmt::Debug for ServerMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Connected {
                token,
                region,
                edge,
            } => f
                .debug_struct("Connected")
                .field("token", token)
                .field("region", region)
                .field("edge", edge)
                .finish(),
            Self::Ready => f.write_str("Ready"),
            Self::Offline => f.write_str("Offline"),
            Self::Close => f.write_str("Close"),
            Self::Error { error, callsid } => f
                .debug_struct("Error")
                .field("error", error)
                .field("callsid", callsid)
                .finish(),
            Self::Ringing { callsid, sdp } => f
                .debug_struct("Ringing")
                .field("callsid", callsid)
                .field("sdp", sdp)
                .finish(),
            Self::Answer {
                callsid,
                sdp,
                reconnect,
            } => f
                .debug_struct("Answer")
                .field("callsid", callsid)
                .field("sdp", sdp)
                .field("reconnect", &reconnect.as_ref().map(|_| "[token]"))
                .finish(),
            Self::Hangup { callsid, error } => f
                .debug_struct("Hangup")
                .field("callsid", callsid)
                .field("error", error)
                .finish(),
            Self::Cancel { callsid } => f.debug_struct("Cancel").field("callsid", callsid).finish(),
            Self::Invite {
                callsid,
                sdp,
                parameters,
                reconnect,
            } => {
                let names: Option<Vec<&str>> =
                    parameters.as_ref().map(|parameters| match parameters {
                        Json::Object(members) => {
                            members.iter().map(|(name, _)| name.as_str()).collect()
                        }
                        _ => Vec::new(),
                    });
                f.debug_struct("Invite")
                    .field("callsid", callsid)
                    .field("sdp", sdp)
                    .field("parameter_names", &names)
                    .field("reconnect", &reconnect.as_ref().map(|_| "[token]"))
                    .finish()
            }
            Self::Ack {
                callsid,
                acktype,
                voiceeventsid,
            } => f
                .debug_struct("Ack")
                .field("callsid", callsid)
                .field("acktype", acktype)
                .field("voiceeventsid", voiceeventsid)
                .finish(),
        }
    }
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("the frame is not JSON")]
    NotJson,
    #[error("unknown frame type {0:?}")]
    UnknownType(String),
    #[error("the {0} frame's payload is malformed")]
    BadPayload(&'static str),
}

/// A decoded frame: a heartbeat or a message.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame<M> {
    Heartbeat,
    Message(M),
}

/// A frame's text: `{"type": …, "version": "1.6", "payload": …}`.
fn encode(kind: &str, payload: Json) -> String {
    Json::object([
        ("type", kind.into()),
        ("version", PROTOCOL_VERSION.into()),
        ("payload", payload),
    ])
    .to_string()
}

/// An object of the members whose values are not `null` (how an absent one is left out).
fn present<const N: usize>(members: [(&str, Json); N]) -> Json {
    Json::Object(
        members
            .into_iter()
            .filter(|(_, value)| !value.is_null())
            .map(|(key, value)| (key.to_owned(), value))
            .collect(),
    )
}

/// A payload's member that must be a string.
fn required_string(payload: &Json, name: &str, kind: &'static str) -> Result<String, FrameError> {
    opt_string(payload, name).ok_or(FrameError::BadPayload(kind))
}

/// A payload's member that may be absent or `null`, and is otherwise a string.
fn optional_string(
    payload: &Json,
    name: &str,
    kind: &'static str,
) -> Result<Option<String>, FrameError> {
    match payload.get(name) {
        None | Some(Json::Null) => Ok(None),
        Some(value) => value
            .as_str()
            .map(|text| Some(text.to_owned()))
            .ok_or(FrameError::BadPayload(kind)),
    }
}

/// A payload's member as a string, if it is one (lenient: anything else reads as absent).
fn opt_string(payload: &Json, name: &str) -> Option<String> {
    payload.get(name).and_then(Json::as_str).map(str::to_owned)
}

/// A payload's member that may be absent or `null`, kept as it is otherwise.
fn optional_value(payload: &Json, name: &str) -> Option<Json> {
    payload.get(name).filter(|value| !value.is_null()).cloned()
}

impl Listen {
    fn to_json(&self) -> Json {
        present([
            ("token", self.token.as_str().into()),
            ("browserinfo", self.browserinfo.clone().unwrap_or_default()),
            ("reconnectTimeout", self.reconnect_timeout.into()),
        ])
    }

    fn from_json(payload: &Json) -> Result<Self, FrameError> {
        let reconnect_timeout = match payload.get("reconnectTimeout") {
            None | Some(Json::Null) => None,
            Some(value) => Some(
                value
                    .as_u64()
                    .and_then(|seconds| u32::try_from(seconds).ok())
                    .ok_or(FrameError::BadPayload("listen"))?,
            ),
        };
        Ok(Self {
            token: required_string(payload, "token", "listen")?,
            browserinfo: optional_value(payload, "browserinfo"),
            reconnect_timeout,
        })
    }
}

impl Invite {
    fn to_json(&self) -> Json {
        present([
            ("callsid", self.callsid.as_str().into()),
            ("sdp", self.sdp.as_str().into()),
            (
                "twilio",
                present([("params", self.twilio.params.as_deref().into())]),
            ),
            ("reconnect", self.reconnect.as_deref().into()),
        ])
    }

    fn from_json(payload: &Json) -> Result<Self, FrameError> {
        let twilio = match payload.get("twilio") {
            None => TwilioParams::default(),
            Some(twilio @ Json::Object(_)) => TwilioParams {
                params: optional_string(twilio, "params", "invite")?,
            },
            Some(_) => return Err(FrameError::BadPayload("invite")),
        };
        Ok(Self {
            callsid: required_string(payload, "callsid", "invite")?,
            sdp: required_string(payload, "sdp", "invite")?,
            twilio,
            reconnect: optional_string(payload, "reconnect", "invite")?,
        })
    }
}

impl SignalingError {
    fn to_json(&self) -> Json {
        Json::object([
            ("code", self.code.into()),
            ("message", self.message.as_str().into()),
        ])
    }

    fn from_json(value: &Json) -> Option<Self> {
        Some(Self {
            code: u32::try_from(value.get("code")?.as_u64()?).ok()?,
            message: value.get("message")?.as_str()?.to_owned(),
        })
    }
}

impl TokenInfo {
    fn to_json(&self) -> Json {
        Json::object([
            ("identity", self.identity.as_str().into()),
            ("ttl", self.ttl.into()),
        ])
    }

    fn from_json(value: &Json) -> Option<Self> {
        Some(Self {
            identity: value.get("identity")?.as_str()?.to_owned(),
            ttl: value.get("ttl")?.as_i64()?,
        })
    }
}

/// A frame's type and payload (`null` when absent); `None` for a heartbeat. A frame that is
/// not a JSON object with a string `type` (and, if any, a string `version`) is not a frame.
fn envelope(text: &str) -> Result<Option<(String, Json)>, FrameError> {
    if text == HEARTBEAT {
        return Ok(None);
    }
    let frame = Json::parse(text).map_err(|_| FrameError::NotJson)?;
    let kind = frame
        .get("type")
        .and_then(Json::as_str)
        .ok_or(FrameError::NotJson)?
        .to_owned();
    if !matches!(
        frame.get("version"),
        None | Some(Json::Null | Json::String(_))
    ) {
        return Err(FrameError::NotJson);
    }
    // The payload is moved out of the frame, not copied (it carries the SDP). Like `get`, the
    // last `payload` member wins.
    let payload = match frame {
        Json::Object(mut members) => members
            .iter()
            .rposition(|(name, _)| name == "payload")
            .map(|at| members.swap_remove(at).1),
        _ => None,
    };
    Ok(Some((kind, payload.unwrap_or_default())))
}

impl ClientMessage {
    /// The frame's JSON text.
    pub fn encode(&self) -> String {
        let callsid_and = |callsid: &str, name: &str, value: &str| {
            Json::object([("callsid", callsid.into()), (name, value.into())])
        };
        match self {
            Self::Listen(listen) => encode("listen", listen.to_json()),
            Self::Register { media } => {
                encode("register", Json::object([("media", media.clone())]))
            }
            Self::Invite(invite) => encode("invite", invite.to_json()),
            Self::Reinvite { callsid, sdp } => encode("reinvite", callsid_and(callsid, "sdp", sdp)),
            Self::Answer { callsid, sdp } => encode("answer", callsid_and(callsid, "sdp", sdp)),
            Self::Hangup { callsid, message } => encode(
                "hangup",
                present([
                    ("callsid", callsid.into()),
                    ("message", message.as_deref().into()),
                ]),
            ),
            Self::Reject { callsid } => {
                encode("reject", Json::object([("callsid", callsid.into())]))
            }
            Self::Dtmf { callsid, dtmf } => encode("dtmf", callsid_and(callsid, "dtmf", dtmf)),
            Self::Message {
                callsid,
                content,
                contenttype,
                messagetype,
                voiceeventsid,
            } => encode(
                "message",
                Json::object([
                    ("callsid", callsid.into()),
                    ("content", content.clone()),
                    ("contenttype", contenttype.as_deref().into()),
                    ("messagetype", messagetype.as_deref().into()),
                    ("voiceeventsid", voiceeventsid.as_deref().into()),
                ]),
            ),
        }
    }

    /// Decodes a frame the client sent (the simulator's side).
    pub fn decode(text: &str) -> Result<Frame<Self>, FrameError> {
        let Some((kind, p)) = envelope(text)? else {
            return Ok(Frame::Heartbeat);
        };
        let p = &p;
        let message = match kind.as_str() {
            "listen" => Self::Listen(Listen::from_json(p)?),
            "register" => Self::Register {
                media: p.get("media").cloned().unwrap_or_default(),
            },
            "invite" => Self::Invite(Invite::from_json(p)?),
            "reinvite" => Self::Reinvite {
                callsid: required_string(p, "callsid", "reinvite")?,
                sdp: required_string(p, "sdp", "reinvite")?,
            },
            "answer" => Self::Answer {
                callsid: required_string(p, "callsid", "answer")?,
                sdp: required_string(p, "sdp", "answer")?,
            },
            "hangup" => Self::Hangup {
                callsid: required_string(p, "callsid", "hangup")?,
                message: opt_string(p, "message"),
            },
            "reject" => Self::Reject {
                callsid: required_string(p, "callsid", "reject")?,
            },
            "dtmf" => Self::Dtmf {
                callsid: required_string(p, "callsid", "dtmf")?,
                dtmf: required_string(p, "dtmf", "dtmf")?,
            },
            "message" => Self::Message {
                callsid: required_string(p, "callsid", "message")?,
                content: p.get("content").cloned().unwrap_or_default(),
                contenttype: opt_string(p, "contenttype"),
                messagetype: opt_string(p, "messagetype"),
                voiceeventsid: opt_string(p, "voiceeventsid"),
            },
            _ => return Err(FrameError::UnknownType(kind)),
        };
        Ok(Frame::Message(message))
    }
}

impl ServerMessage {
    /// The frame's JSON text; absent values are left out.
    pub fn encode(&self) -> String {
        let string = |value: &Option<String>| Json::from(value.as_deref());
        let (kind, payload) = match self {
            Self::Connected {
                token,
                region,
                edge,
            } => (
                "connected",
                present([
                    (
                        "token",
                        token.as_ref().map(TokenInfo::to_json).unwrap_or_default(),
                    ),
                    ("region", string(region)),
                    ("edge", string(edge)),
                ]),
            ),
            Self::Ready => ("ready", Json::Object(Vec::new())),
            Self::Offline => ("offline", Json::Object(Vec::new())),
            Self::Close => ("close", Json::Object(Vec::new())),
            Self::Error { error, callsid } => (
                "error",
                present([("error", error.to_json()), ("callsid", string(callsid))]),
            ),
            Self::Ringing { callsid, sdp } => (
                "ringing",
                present([("callsid", callsid.into()), ("sdp", string(sdp))]),
            ),
            Self::Answer {
                callsid,
                sdp,
                reconnect,
            } => (
                "answer",
                present([
                    ("callsid", callsid.into()),
                    ("sdp", string(sdp)),
                    ("reconnect", string(reconnect)),
                ]),
            ),
            Self::Hangup { callsid, error } => (
                "hangup",
                present([
                    ("callsid", string(callsid)),
                    (
                        "error",
                        error
                            .as_ref()
                            .map(SignalingError::to_json)
                            .unwrap_or_default(),
                    ),
                ]),
            ),
            Self::Cancel { callsid } => ("cancel", Json::object([("callsid", callsid.into())])),
            Self::Invite {
                callsid,
                sdp,
                parameters,
                reconnect,
            } => (
                "invite",
                present([
                    ("callsid", callsid.into()),
                    ("sdp", sdp.into()),
                    ("parameters", parameters.clone().unwrap_or_default()),
                    ("reconnect", string(reconnect)),
                ]),
            ),
            Self::Ack {
                callsid,
                acktype,
                voiceeventsid,
            } => (
                "ack",
                present([
                    ("callsid", callsid.into()),
                    ("acktype", string(acktype)),
                    ("voiceeventsid", string(voiceeventsid)),
                ]),
            ),
        };
        encode(kind, payload)
    }

    /// Decodes a frame the server sent (the browser module's side).
    pub fn decode(text: &str) -> Result<Frame<Self>, FrameError> {
        let Some((kind, p)) = envelope(text)? else {
            return Ok(Frame::Heartbeat);
        };
        let p = &p;
        let error_of = |v: &Json| v.get("error").and_then(SignalingError::from_json);
        let message = match kind.as_str() {
            "connected" => Self::Connected {
                token: p.get("token").and_then(TokenInfo::from_json),
                region: opt_string(p, "region"),
                edge: opt_string(p, "edge"),
            },
            "ready" => Self::Ready,
            "offline" => Self::Offline,
            "close" => Self::Close,
            "error" => Self::Error {
                error: error_of(p).ok_or(FrameError::BadPayload("error"))?,
                callsid: opt_string(p, "callsid"),
            },
            "ringing" => Self::Ringing {
                callsid: required_string(p, "callsid", "ringing")?,
                sdp: opt_string(p, "sdp"),
            },
            "answer" => Self::Answer {
                callsid: required_string(p, "callsid", "answer")?,
                sdp: opt_string(p, "sdp"),
                reconnect: opt_string(p, "reconnect"),
            },
            "hangup" => Self::Hangup {
                callsid: opt_string(p, "callsid"),
                error: error_of(p),
            },
            "cancel" => Self::Cancel {
                callsid: required_string(p, "callsid", "cancel")?,
            },
            "invite" => Self::Invite {
                callsid: required_string(p, "callsid", "invite")?,
                sdp: required_string(p, "sdp", "invite")?,
                parameters: optional_value(p, "parameters"),
                reconnect: opt_string(p, "reconnect"),
            },
            "ack" => Self::Ack {
                callsid: required_string(p, "callsid", "ack")?,
                acktype: opt_string(p, "acktype"),
                voiceeventsid: opt_string(p, "voiceeventsid"),
            },
            _ => return Err(FrameError::UnknownType(kind)),
        };
        Ok(Frame::Message(message))
    }
}

/// Twilio error codes the product maps to plain language.
pub mod codes {
    /// The access token is invalid (signature, account, grants).
    pub const TOKEN_INVALID: u32 = 20101;
    /// The access token has expired.
    pub const TOKEN_EXPIRED: u32 = 20104;
    /// The signaling gateway's own code for an invalid token (the official SDK reports it as
    /// 20101: `device.ts` `_onSignalingError`).
    pub const SIGNALING_TOKEN_INVALID: u32 = 31204;
    /// The signaling gateway's own code for an expired token (reported as 20104 by the SDK).
    pub const SIGNALING_TOKEN_EXPIRED: u32 = 31205;

    /// Whether `code` says Twilio refused the access token, in either numbering.
    pub fn is_token_rejection(code: u32) -> bool {
        matches!(
            code,
            TOKEN_INVALID | TOKEN_EXPIRED | SIGNALING_TOKEN_INVALID | SIGNALING_TOKEN_EXPIRED
        )
    }
    /// Generic connection error from the gateway.
    pub const CONNECTION_ERROR: u32 = 31005;
    /// Transport (WebSocket) failure.
    pub const TRANSPORT_ERROR: u32 = 31009;
    /// The microphone permission was denied.
    pub const MIC_PERMISSION_DENIED: u32 = 31401;
    /// Media permission denied.
    pub const MEDIA_PERMISSION_DENIED: u32 = 31208;
    /// ICE negotiation failed.
    pub const ICE_FAILED: u32 = 53405;
    /// The callerId is not a number of the account (TwiML `<Dial callerId>`).
    pub const INVALID_CALLER_ID: u32 = 13214;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn debug_output_leaves_tokens_out() {
        let listen = Listen {
            token: "eyJsecret.token.sig".into(),
            browserinfo: None,
            reconnect_timeout: Some(0),
        };
        let invite = Invite {
            callsid: "TJS-1".into(),
            sdp: "v=0".into(),
            twilio: TwilioParams::default(),
            reconnect: Some("reconnect-secret".into()),
        };
        let printed = format!(
            "{listen:?} {invite:?} {:?}",
            ClientMessage::Listen(listen.clone())
        );
        assert!(!printed.contains("secret"), "{printed}");
        assert!(
            printed.contains("TJS-1") && printed.contains("[token]"),
            "{printed}"
        );
    }

    #[test]
    fn server_debug_output_leaves_tokens_and_numbers_out() {
        let answer = ServerMessage::Answer {
            callsid: "CA1".into(),
            sdp: None,
            reconnect: Some("reconnect-secret".into()),
        };
        let invite = ServerMessage::Invite {
            callsid: "CA2".into(),
            sdp: "v=0".into(),
            parameters: Some(Json::object([
                ("From", "+447700900123".into()),
                ("Params", "AppointmentId=appt-mobile".into()),
            ])),
            reconnect: Some("invite-secret".into()),
        };
        let printed = format!("{answer:?} {invite:?}");
        assert!(!printed.contains("secret"), "{printed}");
        assert!(!printed.contains("7700900123"), "{printed}");
        assert!(!printed.contains("appt-mobile"), "{printed}");
        assert!(
            printed.contains("CA1") && printed.contains("[token]") && printed.contains("\"From\""),
            "{printed}"
        );
    }

    /// The frames @twilio/voice-sdk 2.18.5 sends, as seen against a local server (REFERENCE.md).
    #[test]
    fn decodes_what_the_official_sdk_sends() {
        let listen = r#"{"payload":{"browserinfo":{"browser":{"platform":"Linux x86_64","userAgent":"Mozilla/5.0"},"p":"browser","plugin":"rtc","v":"2.18.5"},"reconnectTimeout":0,"token":"eyJ.x.y"},"type":"listen","version":"1.6"}"#;
        match ClientMessage::decode(listen) {
            Ok(Frame::Message(ClientMessage::Listen(l))) => {
                assert_eq!(l.token, "eyJ.x.y");
                assert_eq!(l.reconnect_timeout, Some(0));
            }
            other => panic!("{other:?}"),
        }
        let invite = r#"{"payload":{"callsid":"TJSce2e7b4c-8e2f-4e63-9c1e-1b6e0c5d0c11","sdp":"v=0\r\n","twilio":{"params":"AppointmentId=appt-mobile"}},"type":"invite","version":"1.6"}"#;
        match ClientMessage::decode(invite) {
            Ok(Frame::Message(ClientMessage::Invite(i))) => {
                assert!(i.callsid.starts_with("TJS"));
                assert_eq!(
                    i.twilio.params.as_deref(),
                    Some("AppointmentId=appt-mobile")
                );
            }
            other => panic!("{other:?}"),
        }
        let register = r#"{"payload":{"media":{"audio":true}},"type":"register","version":"1.6"}"#;
        assert_eq!(
            ClientMessage::decode(register),
            Ok(Frame::Message(ClientMessage::Register {
                media: Json::from(json!({"audio": true}))
            }))
        );
        assert_eq!(ClientMessage::decode("\n"), Ok(Frame::Heartbeat));
    }

    #[test]
    fn client_frames_round_trip_with_the_sdk_field_names() {
        let messages = vec![
            ClientMessage::Listen(Listen {
                token: "t".into(),
                browserinfo: None,
                reconnect_timeout: Some(0),
            }),
            ClientMessage::Register {
                media: Json::from(json!({"audio": true})),
            },
            ClientMessage::Invite(Invite {
                callsid: "TJS1".into(),
                sdp: "v=0".into(),
                twilio: TwilioParams {
                    params: Some("AppointmentId=a".into()),
                },
                reconnect: None,
            }),
            ClientMessage::Reinvite {
                callsid: "CA1".into(),
                sdp: "v=0".into(),
            },
            ClientMessage::Answer {
                callsid: "CA1".into(),
                sdp: "v=0".into(),
            },
            ClientMessage::Hangup {
                callsid: "CA1".into(),
                message: None,
            },
            ClientMessage::Reject {
                callsid: "CA1".into(),
            },
            ClientMessage::Dtmf {
                callsid: "CA1".into(),
                dtmf: "12#".into(),
            },
            ClientMessage::Message {
                callsid: "CA1".into(),
                content: Json::from(json!({"hello": "world"})),
                contenttype: Some("application/json".into()),
                messagetype: Some("user-defined-message".into()),
                voiceeventsid: Some("ve1".into()),
            },
        ];
        for message in messages {
            let text = message.encode();
            let value: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(value["version"], "1.6");
            assert_eq!(
                ClientMessage::decode(&text),
                Ok(Frame::Message(message.clone())),
                "{text}"
            );
        }
        let dtmf: Value = serde_json::from_str(
            &ClientMessage::Dtmf {
                callsid: "CA1".into(),
                dtmf: "5".into(),
            }
            .encode(),
        )
        .unwrap();
        assert_eq!(dtmf["payload"], json!({"callsid": "CA1", "dtmf": "5"}));
        let listen: Value = serde_json::from_str(
            &ClientMessage::Listen(Listen {
                token: "t".into(),
                browserinfo: None,
                reconnect_timeout: Some(0),
            })
            .encode(),
        )
        .unwrap();
        assert_eq!(listen["payload"]["reconnectTimeout"], 0);
    }

    #[test]
    fn server_frames_round_trip() {
        let messages = vec![
            ServerMessage::Connected {
                token: Some(TokenInfo {
                    identity: "clinician-ada".into(),
                    ttl: 3600,
                }),
                region: Some("gll".into()),
                edge: None,
            },
            ServerMessage::Ready,
            ServerMessage::Offline,
            ServerMessage::Close,
            ServerMessage::Error {
                error: SignalingError {
                    code: 20104,
                    message: "expired".into(),
                },
                callsid: None,
            },
            ServerMessage::Ringing {
                callsid: "CA1".into(),
                sdp: Some("v=0".into()),
            },
            ServerMessage::Answer {
                callsid: "CA1".into(),
                sdp: Some("v=0".into()),
                reconnect: Some("r".into()),
            },
            ServerMessage::Hangup {
                callsid: Some("CA1".into()),
                error: Some(SignalingError {
                    code: 31005,
                    message: "gone".into(),
                }),
            },
            ServerMessage::Hangup {
                callsid: None,
                error: None,
            },
            ServerMessage::Cancel {
                callsid: "CA1".into(),
            },
            ServerMessage::Invite {
                callsid: "CA2".into(),
                sdp: "v=0".into(),
                parameters: Some(Json::from(json!({"From": "+447700900123"}))),
                reconnect: None,
            },
            ServerMessage::Invite {
                callsid: "CA3".into(),
                sdp: "v=0".into(),
                parameters: None,
                reconnect: Some("r".into()),
            },
            ServerMessage::Ack {
                callsid: "CA1".into(),
                acktype: Some("message".into()),
                voiceeventsid: Some("ve1".into()),
            },
        ];
        for message in messages {
            let text = message.encode();
            assert_eq!(
                ServerMessage::decode(&text),
                Ok(Frame::Message(message.clone())),
                "{text}"
            );
        }
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        assert_eq!(ClientMessage::decode("{"), Err(FrameError::NotJson));
        assert_eq!(
            ClientMessage::decode(r#"{"type":"fly","payload":{}}"#),
            Err(FrameError::UnknownType("fly".into()))
        );
        assert_eq!(
            ClientMessage::decode(r#"{"type":"invite","payload":{"sdp":1}}"#),
            Err(FrameError::BadPayload("invite"))
        );
        assert_eq!(
            ServerMessage::decode(r#"{"type":"error","payload":{}}"#),
            Err(FrameError::BadPayload("error"))
        );
        assert_eq!(
            ServerMessage::decode(r#"{"type":"answer"}"#),
            Err(FrameError::BadPayload("answer"))
        );
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_text_never_panics(text in ".{0,200}") {
            let _ = ClientMessage::decode(&text);
            let _ = ServerMessage::decode(&text);
        }

        /// Any text in the fields (quotes, backslashes, control characters, any script) comes
        /// back as it went: the frames' JSON escaping is lossless both ways.
        #[test]
        fn frames_with_any_field_text_round_trip(
            callsid in "\\PC{0,40}|[\"\\\\\u{0}-\u{1f}]{0,8}",
            sdp in "\\PC{0,80}|(v=0\r\n[a-z]=[^\r\n]{0,20}\r\n){0,4}",
            token in proptest::option::of("\\PC{0,30}"),
            code in 0u32..100_000,
        ) {
            let client = [
                ClientMessage::Invite(Invite {
                    callsid: callsid.clone(),
                    sdp: sdp.clone(),
                    twilio: TwilioParams { params: token.clone() },
                    reconnect: token.clone(),
                }),
                ClientMessage::Reinvite { callsid: callsid.clone(), sdp: sdp.clone() },
                ClientMessage::Hangup { callsid: callsid.clone(), message: token.clone() },
                ClientMessage::Dtmf { callsid: callsid.clone(), dtmf: sdp.clone() },
            ];
            for message in client {
                proptest::prop_assert_eq!(
                    ClientMessage::decode(&message.encode()),
                    Ok(Frame::Message(message.clone()))
                );
            }
            let server = [
                ServerMessage::Answer { callsid: callsid.clone(), sdp: Some(sdp.clone()), reconnect: token.clone() },
                ServerMessage::Ringing { callsid: callsid.clone(), sdp: token.clone() },
                ServerMessage::Hangup {
                    callsid: Some(callsid.clone()),
                    error: Some(SignalingError { code, message: sdp.clone() }),
                },
                ServerMessage::Cancel { callsid: callsid.clone() },
            ];
            for message in server {
                proptest::prop_assert_eq!(
                    ServerMessage::decode(&message.encode()),
                    Ok(Frame::Message(message.clone()))
                );
            }
        }

        /// A frame cut short anywhere (a torn read) is refused or read, never a panic.
        #[test]
        fn every_prefix_of_a_real_frame_decodes_or_is_refused(callsid in "[A-Za-z0-9]{1,34}", sdp in "\\PC{0,60}") {
            let frame = ServerMessage::Answer { callsid, sdp: Some(sdp), reconnect: None }.encode();
            for end in (0..=frame.len()).filter(|end| frame.is_char_boundary(*end)) {
                let _ = ServerMessage::decode(&frame[..end]);
                let _ = ClientMessage::decode(&frame[..end]);
            }
        }
    }
}
