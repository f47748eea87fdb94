//! Twilio Voice client signaling (the protocol twilio-voice.js 2.x speaks, version 1.6): every
//! frame as a typed message, and the codec. The browser module and the local Twilio simulator
//! both use these types, so the two sides share one definition.
//!
//! A frame is `{"type": …, "version": "1.6", "payload": {…}}`; a bare `"\n"` is a heartbeat,
//! echoed by the other side.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use thiserror::Error;

/// The protocol version every frame carries.
pub const PROTOCOL_VERSION: &str = "1.6";

/// The heartbeat frame.
pub const HEARTBEAT: &str = "\n";

/// Seconds without any frame after which a client reconnects.
pub const HEARTBEAT_TIMEOUT_SECONDS: u32 = 15;

/// `listen`: the client authenticates with its access token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Listen {
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browserinfo: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_timeout: Option<u32>,
}

/// `invite`'s Twilio parameters: `params` is URL-encoded (`AppointmentId=…`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TwilioParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<String>,
}

/// `invite` from the client: place a call with a complete SDP offer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    /// The client's own id for the call until Twilio's `CA…` arrives: `TJS` + a UUID.
    pub callsid: String,
    pub sdp: String,
    #[serde(default)]
    pub twilio: TwilioParams,
    /// A reconnect token from an earlier `answer`, to resume a call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect: Option<String>,
}

/// An error code and message, as Twilio sends them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalingError {
    pub code: u32,
    pub message: String,
}

/// What `connected` says about the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
        media: Value,
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
        content: Value,
        contenttype: Option<String>,
        messagetype: Option<String>,
        voiceeventsid: Option<String>,
    },
}

/// Frames the server sends.
#[derive(Debug, Clone, PartialEq)]
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
        parameters: Option<Value>,
    },
    Ack {
        callsid: String,
        acktype: Option<String>,
        voiceeventsid: Option<String>,
    },
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

#[derive(Serialize, Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    payload: Value,
}

fn encode(kind: &str, payload: Value) -> String {
    serde_json::json!({"type": kind, "version": PROTOCOL_VERSION, "payload": payload}).to_string()
}

fn field<T: for<'de> Deserialize<'de>>(
    payload: &Value,
    name: &str,
    kind: &'static str,
) -> Result<T, FrameError> {
    serde_json::from_value(payload.get(name).cloned().unwrap_or(Value::Null))
        .map_err(|_| FrameError::BadPayload(kind))
}

fn opt_string(payload: &Value, name: &str) -> Option<String> {
    payload.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn envelope(text: &str) -> Result<Option<Envelope>, FrameError> {
    if text == HEARTBEAT {
        return Ok(None);
    }
    serde_json::from_str(text)
        .map(Some)
        .map_err(|_| FrameError::NotJson)
}

impl ClientMessage {
    /// The frame's JSON text.
    pub fn encode(&self) -> String {
        use serde_json::json;
        match self {
            Self::Listen(listen) => encode(
                "listen",
                serde_json::to_value(listen).unwrap_or(Value::Null),
            ),
            Self::Register { media } => encode("register", json!({"media": media})),
            Self::Invite(invite) => encode(
                "invite",
                serde_json::to_value(invite).unwrap_or(Value::Null),
            ),
            Self::Reinvite { callsid, sdp } => {
                encode("reinvite", json!({"callsid": callsid, "sdp": sdp}))
            }
            Self::Answer { callsid, sdp } => {
                encode("answer", json!({"callsid": callsid, "sdp": sdp}))
            }
            Self::Hangup { callsid, message } => match message {
                Some(message) => encode("hangup", json!({"callsid": callsid, "message": message})),
                None => encode("hangup", json!({"callsid": callsid})),
            },
            Self::Reject { callsid } => encode("reject", json!({"callsid": callsid})),
            Self::Dtmf { callsid, dtmf } => {
                encode("dtmf", json!({"callsid": callsid, "dtmf": dtmf}))
            }
            Self::Message {
                callsid,
                content,
                contenttype,
                messagetype,
                voiceeventsid,
            } => encode(
                "message",
                json!({
                    "callsid": callsid, "content": content, "contenttype": contenttype,
                    "messagetype": messagetype, "voiceeventsid": voiceeventsid,
                }),
            ),
        }
    }

    /// Decodes a frame the client sent (the simulator's side).
    pub fn decode(text: &str) -> Result<Frame<Self>, FrameError> {
        let Some(envelope) = envelope(text)? else {
            return Ok(Frame::Heartbeat);
        };
        let p = &envelope.payload;
        let message = match envelope.kind.as_str() {
            "listen" => Self::Listen(
                serde_json::from_value(p.clone()).map_err(|_| FrameError::BadPayload("listen"))?,
            ),
            "register" => Self::Register {
                media: p.get("media").cloned().unwrap_or(Value::Null),
            },
            "invite" => Self::Invite(
                serde_json::from_value(p.clone()).map_err(|_| FrameError::BadPayload("invite"))?,
            ),
            "reinvite" => Self::Reinvite {
                callsid: field(p, "callsid", "reinvite")?,
                sdp: field(p, "sdp", "reinvite")?,
            },
            "answer" => Self::Answer {
                callsid: field(p, "callsid", "answer")?,
                sdp: field(p, "sdp", "answer")?,
            },
            "hangup" => Self::Hangup {
                callsid: field(p, "callsid", "hangup")?,
                message: opt_string(p, "message"),
            },
            "reject" => Self::Reject {
                callsid: field(p, "callsid", "reject")?,
            },
            "dtmf" => Self::Dtmf {
                callsid: field(p, "callsid", "dtmf")?,
                dtmf: field(p, "dtmf", "dtmf")?,
            },
            "message" => Self::Message {
                callsid: field(p, "callsid", "message")?,
                content: p.get("content").cloned().unwrap_or(Value::Null),
                contenttype: opt_string(p, "contenttype"),
                messagetype: opt_string(p, "messagetype"),
                voiceeventsid: opt_string(p, "voiceeventsid"),
            },
            other => return Err(FrameError::UnknownType(other.to_owned())),
        };
        Ok(Frame::Message(message))
    }
}

impl ServerMessage {
    /// The frame's JSON text.
    pub fn encode(&self) -> String {
        use serde_json::json;
        let mut payload = serde_json::Map::new();
        let mut put = |k: &str, v: Value| {
            if !v.is_null() {
                payload.insert(k.to_owned(), v);
            }
        };
        let kind = match self {
            Self::Connected {
                token,
                region,
                edge,
            } => {
                put("token", serde_json::to_value(token).unwrap_or(Value::Null));
                put("region", json!(region));
                put("edge", json!(edge));
                "connected"
            }
            Self::Ready => "ready",
            Self::Offline => "offline",
            Self::Close => "close",
            Self::Error { error, callsid } => {
                put("error", serde_json::to_value(error).unwrap_or(Value::Null));
                put("callsid", json!(callsid));
                "error"
            }
            Self::Ringing { callsid, sdp } => {
                put("callsid", json!(callsid));
                put("sdp", json!(sdp));
                "ringing"
            }
            Self::Answer {
                callsid,
                sdp,
                reconnect,
            } => {
                put("callsid", json!(callsid));
                put("sdp", json!(sdp));
                put("reconnect", json!(reconnect));
                "answer"
            }
            Self::Hangup { callsid, error } => {
                put("callsid", json!(callsid));
                put("error", serde_json::to_value(error).unwrap_or(Value::Null));
                "hangup"
            }
            Self::Cancel { callsid } => {
                put("callsid", json!(callsid));
                "cancel"
            }
            Self::Invite {
                callsid,
                sdp,
                parameters,
            } => {
                put("callsid", json!(callsid));
                put("sdp", json!(sdp));
                put("parameters", parameters.clone().unwrap_or(Value::Null));
                "invite"
            }
            Self::Ack {
                callsid,
                acktype,
                voiceeventsid,
            } => {
                put("callsid", json!(callsid));
                put("acktype", json!(acktype));
                put("voiceeventsid", json!(voiceeventsid));
                "ack"
            }
        };
        encode(kind, Value::Object(payload))
    }

    /// Decodes a frame the server sent (the browser module's side).
    pub fn decode(text: &str) -> Result<Frame<Self>, FrameError> {
        let Some(envelope) = envelope(text)? else {
            return Ok(Frame::Heartbeat);
        };
        let p = &envelope.payload;
        let error_of = |v: &Value| {
            v.get("error")
                .and_then(|e| serde_json::from_value::<SignalingError>(e.clone()).ok())
        };
        let message = match envelope.kind.as_str() {
            "connected" => Self::Connected {
                token: p
                    .get("token")
                    .and_then(|t| serde_json::from_value(t.clone()).ok()),
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
                callsid: field(p, "callsid", "ringing")?,
                sdp: opt_string(p, "sdp"),
            },
            "answer" => Self::Answer {
                callsid: field(p, "callsid", "answer")?,
                sdp: opt_string(p, "sdp"),
                reconnect: opt_string(p, "reconnect"),
            },
            "hangup" => Self::Hangup {
                callsid: opt_string(p, "callsid"),
                error: error_of(p),
            },
            "cancel" => Self::Cancel {
                callsid: field(p, "callsid", "cancel")?,
            },
            "invite" => Self::Invite {
                callsid: field(p, "callsid", "invite")?,
                sdp: field(p, "sdp", "invite")?,
                parameters: p.get("parameters").cloned(),
            },
            "ack" => Self::Ack {
                callsid: field(p, "callsid", "ack")?,
                acktype: opt_string(p, "acktype"),
                voiceeventsid: opt_string(p, "voiceeventsid"),
            },
            other => return Err(FrameError::UnknownType(other.to_owned())),
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
    use serde_json::json;

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
                media: json!({"audio": true})
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
                media: json!({"audio": true}),
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
                content: json!({"hello": "world"}),
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
                parameters: Some(json!({"From": "+447700900123"})),
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
    }
}
